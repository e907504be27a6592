// Vitest compiles TypeScript with esbuild, which does not emit the decorator metadata Nest's
// dependency injection and validation read; SWC does (Nest's documented set-up for Vitest).
import swc from "unplugin-swc";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The tests share no state but start an application each: one file at a time keeps the
    // machine's other work going.
    fileParallelism: false,
  },
  plugins: [swc.vite({ module: { type: "es6" } })],
});
