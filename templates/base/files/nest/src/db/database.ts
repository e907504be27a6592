// The shared database: the SQLite file the Rust services use (concurrently with them, in WAL
// mode) or their PostgreSQL database. One small interface over both, so that queries are written
// once with PostgreSQL's `$1` placeholders, as the Rust services' are.
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { crc32 } from "node:zlib";

import { Logger } from "@nestjs/common";
import BetterSqlite3 from "better-sqlite3";
import { Pool } from "pg";

import type { DatabaseUrl } from "../config";

export type Value = string | number | null;
export type Row = Record<string, unknown>;

export interface Database {
  readonly kind: "sqlite" | "postgres";
  /** The first row `sql` returns, if any. */
  get(sql: string, params?: Value[]): Promise<Row | undefined>;
  all(sql: string, params?: Value[]): Promise<Row[]>;
  /** Runs a statement; resolves to the number of rows it changed. */
  run(sql: string, params?: Value[]): Promise<number>;
  /** Runs a script of statements without parameters (a migration). */
  exec(sql: string): Promise<void>;
  /** Runs `work` in one transaction (committed when it resolves, rolled back when it throws). */
  transaction<T>(work: (db: Database) => Promise<T>): Promise<T>;
  /**
   * Runs `work` while no other process migrates this database: on PostgreSQL under the advisory
   * lock the Rust services' sqlx migrator takes ([`migrationLockId`]), so this service neither
   * applies its migrations while the api is half-way through its own nor at the same time as
   * another instance of itself. On SQLite `work` runs as it is: the Rust services lock a file
   * (`flock`) that Node cannot lock without a native module, and each of this service's
   * migrations is checked again inside its own `BEGIN IMMEDIATE` transaction instead.
   */
  migrationLock<T>(work: (db: Database) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export function openDatabase(url: DatabaseUrl): Database {
  if (url.kind === "sqlite") return SqliteDatabase.open(url.file);
  const pool = new Pool({ connectionString: url.url, max: 10 });
  // An idle connection the server dropped (a restart, a failover) is an event, not a crash: the
  // pool opens a new one on the next query, and /readyz says whether that works.
  pool.on("error", (error) => {
    new Logger("database").warn(`idle connection lost: ${error.message}`);
  });
  return new PostgresDatabase(pool);
}

/**
 * `$1`-style SQL for SQLite's anonymous `?`, with the parameters in the order they appear (a
 * parameter used twice is bound twice). better-sqlite3 has no numbered parameters.
 */
export function toSqlite(sql: string, params: Value[]): [string, Value[]] {
  const ordered: Value[] = [];
  const text = sql.replace(/\$(\d+)/g, (_, index: string) => {
    ordered.push(params[Number(index) - 1] ?? null);
    return "?";
  });
  return [text, ordered];
}

class SqliteDatabase implements Database {
  readonly kind = "sqlite";
  private inTransaction = false;

  private constructor(private readonly connection: BetterSqlite3.Database) {}

  static open(file: string): SqliteDatabase {
    mkdirSync(dirname(file), { recursive: true });
    const connection = new BetterSqlite3(file);
    // WAL lets this service read while a Rust service writes (and the mode is stored in the
    // file, as the Rust services set it too); a writer waits up to 5 s for another's turn rather
    // than failing at once with SQLITE_BUSY.
    connection.pragma("journal_mode = WAL");
    connection.pragma("busy_timeout = 5000");
    connection.pragma("foreign_keys = ON");
    return new SqliteDatabase(connection);
  }

  // better-sqlite3 is synchronous: each call holds the event loop for one statement, which for
  // these lookups by primary key is microseconds, less than a round trip to a thread would cost.
  get(sql: string, params: Value[] = []): Promise<Row | undefined> {
    const [text, values] = toSqlite(sql, params);
    return Promise.resolve(this.connection.prepare(text).get(...values) as Row | undefined);
  }

  all(sql: string, params: Value[] = []): Promise<Row[]> {
    const [text, values] = toSqlite(sql, params);
    return Promise.resolve(this.connection.prepare(text).all(...values) as Row[]);
  }

  run(sql: string, params: Value[] = []): Promise<number> {
    const [text, values] = toSqlite(sql, params);
    return Promise.resolve(this.connection.prepare(text).run(...values).changes);
  }

  exec(sql: string): Promise<void> {
    this.connection.exec(sql);
    return Promise.resolve();
  }

  async transaction<T>(work: (db: Database) => Promise<T>): Promise<T> {
    if (this.inTransaction) return work(this);
    // IMMEDIATE takes the write lock up front, so that two writers never both read and then
    // fail to upgrade (the Rust services begin their writes the same way).
    this.connection.exec("BEGIN IMMEDIATE");
    this.inTransaction = true;
    try {
      const result = await work(this);
      this.connection.exec("COMMIT");
      return result;
    } catch (error) {
      this.connection.exec("ROLLBACK");
      throw error;
    } finally {
      this.inTransaction = false;
    }
  }

  migrationLock<T>(work: (db: Database) => Promise<T>): Promise<T> {
    return work(this);
  }

  close(): Promise<void> {
    this.connection.close();
    return Promise.resolve();
  }
}

/**
 * The key of sqlx's migration lock on PostgreSQL (`generate_lock_id` in sqlx-postgres): the
 * CRC-32 of the database's name times 0x3d32ad9e, a 64-bit `pg_advisory_lock` key. Taking the
 * same key is what makes the Rust services and this one take turns.
 */
export function migrationLockId(database: string): bigint {
  return 0x3d32ad9en * BigInt(crc32(database));
}

type Client = { query: Pool["query"] };

/**
 * PostgreSQL through a pool, or through one of its clients: inside a transaction
 * (`inTransaction`), or held for the session-level migration lock.
 */
class PostgresDatabase implements Database {
  readonly kind = "postgres";

  constructor(
    private readonly pool: Pool,
    private readonly client?: Client,
    private readonly inTransaction = false,
  ) {}

  private query(sql: string, params: Value[]) {
    return (this.client ?? this.pool).query(sql, params);
  }

  async get(sql: string, params: Value[] = []): Promise<Row | undefined> {
    const result = await this.query(sql, params);
    return result.rows[0] as Row | undefined;
  }

  async all(sql: string, params: Value[] = []): Promise<Row[]> {
    return (await this.query(sql, params)).rows as Row[];
  }

  async run(sql: string, params: Value[] = []): Promise<number> {
    return (await this.query(sql, params)).rowCount ?? 0;
  }

  async exec(sql: string): Promise<void> {
    await (this.client ?? this.pool).query(sql);
  }

  async transaction<T>(work: (db: Database) => Promise<T>): Promise<T> {
    if (this.inTransaction) return work(this);
    if (this.client) return this.inTransactionOn(this.client, work);
    const client = await this.pool.connect();
    try {
      return await this.inTransactionOn(client, work);
    } finally {
      client.release();
    }
  }

  private async inTransactionOn<T>(client: Client, work: (db: Database) => Promise<T>): Promise<T> {
    await client.query("BEGIN");
    try {
      const result = await work(new PostgresDatabase(this.pool, client, true));
      await client.query("COMMIT");
      return result;
    } catch (error) {
      await client.query("ROLLBACK");
      throw error;
    }
  }

  async migrationLock<T>(work: (db: Database) => Promise<T>): Promise<T> {
    if (this.client) throw new Error("migrationLock inside a transaction or another lock");
    // A session-level lock lives on one connection: the work runs on that connection, and the
    // lock ends with it even if this process dies half-way.
    const client = await this.pool.connect();
    try {
      const { rows } = await client.query<{ name: string }>("SELECT current_database() AS name");
      const key = migrationLockId(rows[0]?.name ?? "").toString();
      await client.query("SELECT pg_advisory_lock($1::bigint)", [key]);
      try {
        return await work(new PostgresDatabase(this.pool, client));
      } finally {
        await client.query("SELECT pg_advisory_unlock($1::bigint)", [key]);
      }
    } finally {
      client.release();
    }
  }

  close(): Promise<void> {
    return this.client ? Promise.resolve() : this.pool.end();
  }
}

/** An integer column: PostgreSQL's BIGINT comes back as a string from `pg`. */
export function int(value: unknown): number {
  return typeof value === "number" ? value : Number(value);
}
