import { mkdtempSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { openDatabase, toSqlite } from "../src/db/database";
import { migrate, MIGRATIONS_TABLE, readMigrations } from "../src/db/migrations";

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
});
