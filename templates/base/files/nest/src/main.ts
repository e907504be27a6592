// Starts the service: configuration, migrations, then the HTTP server; stops on SIGTERM or
// SIGINT after the requests in flight are answered.
import "reflect-metadata";

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
  // SIGTERM and SIGINT close the server (answering the requests in flight), then the modules
  // (the database last).
  app.enableShutdownHooks();
  // saaskit adds what modules do at shutdown after the next line: keep it.
  // <<<inject:shutdown>>>
  await app.listen(config.port, config.host);
}

main().catch((error: unknown) => {
  // Start-up errors are the operator's to fix: the message, without a stack trace.
  const message = error instanceof ConfigError ? error.message : String(error);
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
});
