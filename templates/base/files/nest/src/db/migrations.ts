// This service's own tables, created by the SQL files saaskit generated for it
// (migrations/<backend>/<version>_<name>.sql), applied in order and recorded in a table of its
// own: `_sqlx_migrations` belongs to the Rust services, whose sqlx would refuse to start on
// finding versions it does not know there.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

import { SERVICE } from "../service";
import type { Database } from "./database";

/** `<service>_migrations`, the record of the migrations applied. */
export const MIGRATIONS_TABLE = `${SERVICE.name.replace(/[^A-Za-z0-9]/g, "_")}_migrations`;

export interface Migration {
  version: string;
  name: string;
  sql: string;
  checksum: string;
}

export class MigrationError extends Error {
  override name = "MigrationError";
}

/** The migrations in `directory` for the backend, by version. */
export function readMigrations(directory: string, kind: Database["kind"]): Migration[] {
  const folder = join(directory, kind);
  return readdirSync(folder)
    .filter((file) => file.endsWith(".sql"))
    .sort()
    .map((file) => {
      const [, version, name] = /^(\d+)_(.+)\.sql$/.exec(file) ?? [];
      if (version === undefined || name === undefined) {
        throw new MigrationError(
          `${join(folder, file)}: a migration is named <version>_<name>.sql`,
        );
      }
      const sql = readFileSync(join(folder, file), "utf8");
      const checksum = createHash("sha256").update(sql).digest("hex");
      return { version, name, sql, checksum };
    });
}

/** Applies the migrations not applied yet, each in its own transaction; returns their versions. */
export async function migrate(db: Database, migrations: Migration[]): Promise<string[]> {
  await db.exec(
    `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (
       version TEXT PRIMARY KEY,
       name TEXT NOT NULL,
       checksum TEXT NOT NULL,
       applied_at BIGINT NOT NULL
     )`,
  );
  const applied = new Map(
    (await db.all(`SELECT version, checksum FROM ${MIGRATIONS_TABLE}`)).map((row) => [
      String(row.version),
      String(row.checksum),
    ]),
  );
  const done: string[] = [];
  for (const migration of migrations) {
    const checksum = applied.get(migration.version);
    if (checksum !== undefined) {
      // An applied migration edited afterwards would leave databases that differ silently.
      if (checksum !== migration.checksum) {
        throw new MigrationError(
          `migration ${migration.version}_${migration.name} was changed after it was applied: ` +
            "restore it and add a new migration for the change",
        );
      }
      continue;
    }
    const applying = await db.transaction(async (tx) => {
      // Another instance may have applied it since the list above was read (on SQLite, where
      // there is no migration lock): the write lock of this transaction makes the check final.
      const version = [migration.version];
      if (await tx.get(`SELECT 1 FROM ${MIGRATIONS_TABLE} WHERE version = $1`, version)) {
        return false;
      }
      await tx.exec(migration.sql);
      await tx.run(
        `INSERT INTO ${MIGRATIONS_TABLE} (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)`,
        [migration.version, migration.name, migration.checksum, Math.floor(Date.now() / 1000)],
      );
      return true;
    });
    if (applying) done.push(migration.version);
  }
  return done;
}
