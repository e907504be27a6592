// Starts the service: configuration, migrations, then the HTTP server; stops on SIGTERM or
// SIGINT after the requests in flight are answered.
import "reflect-metadata";

import { type INestApplication, Logger } from "@nestjs/common";

import { createApp } from "./app";
import { ConfigError, loadEnvironment, readConfig } from "./config";
import { openDatabase } from "./db/database";
import { migrateOnStart } from "./migrate";
// saaskit adds the imports of the modules it installs after the next line: keep it.
// <<<inject:imports>>>

async function main(): Promise<void> {
  const { vars, root } = loadEnvironment();
  const config = readConfig(vars, root);
  if (config.migrateOnStart) {
    const db = openDatabase(config.database);
    try {
      await migrateOnStart(db);
    } finally {
      await db.close();
    }
  }
  const app = await createApp({ config });
  // saaskit adds what modules run at start-up after the next line: keep it.
  // <<<inject:startup>>>
  // saaskit adds what modules do at shutdown after the next line: keep it.
  // <<<inject:shutdown>>>
  stopOn(["SIGTERM", "SIGINT"], app);
  await app.listen(config.port, config.host);
}

/**
 * On the first of `signals`: stop accepting connections, answer the requests in flight, run the
 * modules' shutdown hooks (the database closes last), and exit 0 as the Rust services do. (Nest's
 * own `enableShutdownHooks` ends the process by raising the signal again, which reports it as
 * killed.) A second signal, or 30 s, ends it at once.
 */
function stopOn(signals: NodeJS.Signals[], app: INestApplication): void {
  const logger = new Logger("shutdown");
  const stop = (signal: NodeJS.Signals) => {
    for (const other of signals) process.removeListener(other, stop);
    logger.log(`${signal}: answering the requests in flight, then stopping`);
    setTimeout(() => {
      logger.error("requests still in flight after 30 s: stopping now");
      process.exit(1);
    }, 30_000).unref();
    app.close().then(
      () => logger.log("stopped"),
      (error: unknown) => {
        logger.error(`shutdown failed: ${String(error)}`);
        process.exitCode = 1;
      },
    );
  };
  for (const signal of signals) process.once(signal, stop);
}

main().catch((error: unknown) => {
  // Start-up errors are the operator's to fix: the message, without a stack trace.
  const message = error instanceof ConfigError ? error.message : String(error);
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
});
