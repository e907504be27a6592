// `npm run migrate`: applies this service's migrations and exits (for deployments that set
// DATABASE_MIGRATE_ON_START=false and migrate once, before starting the instances).
import { join } from "node:path";

import { loadEnvironment, readConfig } from "./config";
import { type Database, openDatabase } from "./db/database";
import { migrate, MigrationError, readMigrations } from "./db/migrations";

/** Where the SQL files are: beside `src/` and `dist/`. */
const MIGRATIONS = join(__dirname, "..", "migrations");

export async function migrateOnStart(db: Database): Promise<string[]> {
  // This service's tables refer to the api's (`users`): the api migrates first.
  const users = await db
    .get("SELECT 1 FROM users LIMIT 1")
    .then(() => true)
    .catch(() => false);
  if (!users) {
    throw new MigrationError(
      "the shared tables (users, sessions) are missing: start the api, or run its `migrate` command, first",
    );
  }
  return migrate(db, readMigrations(MIGRATIONS, db.kind));
}

if (require.main === module) {
  const { vars, root } = loadEnvironment();
  const db = openDatabase(readConfig(vars, root).database);
  migrateOnStart(db)
    .then((applied) => {
      process.stdout.write(`applied ${applied.length} migration(s)\n`);
    })
    .catch((error: unknown) => {
      process.stderr.write(`error: ${String(error)}\n`);
      process.exitCode = 1;
    })
    .finally(() => void db.close());
}
