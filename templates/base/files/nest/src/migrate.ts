// `npm run migrate`: applies this service's migrations and exits (for deployments that set
// DATABASE_MIGRATE_ON_START=false and migrate once, before starting the instances).
import { join } from "node:path";

import { Logger } from "@nestjs/common";

import { loadEnvironment, readConfig } from "./config";
import { type Database, openDatabase } from "./db/database";
import { migrate, MigrationError, readMigrations } from "./db/migrations";

/** Where the SQL files are: beside `src/` and `dist/`. */
const MIGRATIONS = join(__dirname, "..", "migrations");

/**
 * How long the service waits for the api to create the shared tables when it starts first (as
 * `saaskit dev`, compose or systemd start every service at once on a new database).
 */
const SHARED_TABLES_WAIT_MS = 30_000;
const SHARED_TABLES_POLL_MS = 250;

/**
 * Applies this service's migrations once the api's are in. On PostgreSQL the check and the
 * migrations run under the Rust services' migration lock ([`Database.migrationLock`]): while the
 * api migrates, this waits; once it holds the lock, the api's migrations are either all applied
 * or not begun, never half-way (this service's tables refer to the api's, `organizations` too
 * when the orgs module is installed).
 */
export async function migrateOnStart(
  db: Database,
  waitMs: number = SHARED_TABLES_WAIT_MS,
): Promise<string[]> {
  const migrations = readMigrations(MIGRATIONS, db.kind);
  const deadline = Date.now() + waitMs;
  let waiting = false;
  for (;;) {
    const applied = await db.migrationLock(async (locked) =>
      (await sharedTablesExist(locked)) ? migrate(locked, migrations) : undefined,
    );
    if (applied) return applied;
    if (Date.now() >= deadline) {
      throw new MigrationError(
        "the shared tables (users, sessions) are missing: start the api, or run its `migrate` command, first",
      );
    }
    if (!waiting) new Logger("migrations").log("waiting for the api to create the shared tables");
    waiting = true;
    // Not holding the lock while waiting: the api takes it to migrate.
    await new Promise((resolve) => setTimeout(resolve, SHARED_TABLES_POLL_MS));
  }
}

async function sharedTablesExist(db: Database): Promise<boolean> {
  try {
    // (SQLite's driver throws at once rather than rejecting: an `await` inside `try` has both.)
    await db.get("SELECT 1 FROM users LIMIT 1");
    return true;
  } catch (error) {
    // Only a missing table means "not yet"; a database that does not answer is reported as such.
    const { code, message } = error as { code?: unknown; message?: unknown };
    if (code === "42P01" || (typeof message === "string" && message.includes("no such table"))) {
      return false;
    }
    throw error;
  }
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
