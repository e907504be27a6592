import { mkdtempSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { type Database, migrationLockId, openDatabase, toSqlite } from "../src/db/database";
import { migrate, MIGRATIONS_TABLE, readMigrations } from "../src/db/migrations";
import { migrateOnStart } from "../src/migrate";

describe("migrations", () => {
  it("apply once each, in a table of the service's own", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nest-migrations-"));
    mkdirSync(join(dir, "sqlite"));
    writeFileSync(join(dir, "sqlite", "0001_one.sql"), "CREATE TABLE one (id TEXT);");
    writeFileSync(join(dir, "sqlite", "0002_two.sql"), "CREATE TABLE two (id TEXT);");
    const db = openDatabase({ kind: "sqlite", file: join(dir, "test.db") });
    try {
      expect(await migrate(db, readMigrations(dir, "sqlite"))).toEqual(["0001", "0002"]);
      expect(await migrate(db, readMigrations(dir, "sqlite"))).toEqual([]);
      expect(MIGRATIONS_TABLE).not.toBe("_sqlx_migrations");
      expect(await db.all(`SELECT version FROM ${MIGRATIONS_TABLE} ORDER BY version`)).toEqual([
        { version: "0001" },
        { version: "0002" },
      ]);

      writeFileSync(join(dir, "sqlite", "0002_two.sql"), "CREATE TABLE two (id INTEGER);");
      await expect(migrate(db, readMigrations(dir, "sqlite"))).rejects.toThrow(
        /0002_two was changed after it was applied/,
      );
    } finally {
      await db.close();
    }
  });

  it("a failed migration leaves nothing behind", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nest-migrations-"));
    mkdirSync(join(dir, "sqlite"));
    writeFileSync(join(dir, "sqlite", "0001_bad.sql"), "CREATE TABLE half (id TEXT); NOT SQL;");
    const db = openDatabase({ kind: "sqlite", file: join(dir, "test.db") });
    try {
      await expect(migrate(db, readMigrations(dir, "sqlite"))).rejects.toThrow();
      expect(await db.get("SELECT name FROM sqlite_master WHERE name = 'half'")).toBeUndefined();
    } finally {
      await db.close();
    }
  });

  it("SQLite gets PostgreSQL's numbered placeholders in order", () => {
    expect(toSqlite("SELECT $2, $1, $2", ["a", "b"])).toEqual(["SELECT ?, ?, ?", ["b", "a", "b"]]);
  });

  it("an instance that read the list before another applied them applies nothing twice", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nest-migrations-"));
    mkdirSync(join(dir, "sqlite"));
    for (const n of ["0001", "0002"]) {
      writeFileSync(join(dir, "sqlite", `${n}_t${n}.sql`), `CREATE TABLE t${n} (id TEXT);`);
    }
    const file = join(dir, "test.db");
    const [a, b] = [openDatabase({ kind: "sqlite", file }), openDatabase({ kind: "sqlite", file })];
    try {
      const migrations = readMigrations(dir, "sqlite");
      expect(await migrate(a, migrations)).toEqual(["0001", "0002"]);
      // `b` as a second process sees it when it read the applied list just before `a` applied
      // them (SQLite has no migration lock): the list is stale, each transaction's check is not.
      const stale: Database = { ...b, all: () => Promise.resolve([]) };
      for (const method of ["get", "run", "exec", "transaction", "migrationLock"] as const) {
        Object.assign(stale, { [method]: b[method].bind(b) });
      }
      expect(await migrate(stale, migrations)).toEqual([]);
      expect(await a.get(`SELECT COUNT(*) AS n FROM ${MIGRATIONS_TABLE}`)).toEqual({ n: 2 });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("wait for the api's shared tables, then apply", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "nest-migrations-")), "shared.db");
    const db = openDatabase({ kind: "sqlite", file });
    try {
      const started = migrateOnStart(db, 10_000);
      // The api creating its tables a moment after this service started.
      setTimeout(() => {
        void db.exec("CREATE TABLE users (id TEXT PRIMARY KEY)");
      }, 400);
      const applied = await started;
      expect(applied.length).toBeGreaterThan(0);
      expect(await db.get(`SELECT COUNT(*) AS n FROM ${MIGRATIONS_TABLE}`)).toEqual({
        n: applied.length,
      });
      await expect(migrateOnStart(db, 0)).resolves.toEqual([]);
    } finally {
      await db.close();
    }
  });

  it("give up naming what to do when the api never creates them", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "nest-migrations-")), "alone.db");
    const db = openDatabase({ kind: "sqlite", file });
    try {
      await expect(migrateOnStart(db, 300)).rejects.toThrow(
        /shared tables \(users, sessions\) are missing: start the api/,
      );
    } finally {
      await db.close();
    }
  });

  it("take sqlx's migration lock key on PostgreSQL", () => {
    // sqlx-postgres's generate_lock_id("acme"): 0x3d32ad9e times the CRC-32/ISO-HDLC of the
    // name, 0x05c4ba3e for "acme" (Python's zlib.crc32(b"acme")).
    expect(migrationLockId("acme")).toBe(0x3d32ad9en * 0x05c4ba3en);
  });
});
