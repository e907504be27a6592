// What the tests share: a SQLite database with the api's tables (as its migrations leave them),
// a key pair standing in for the api's, and the application on top.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import type { INestApplication } from "@nestjs/common";
import type { App } from "supertest/types";
import { afterAll, beforeAll } from "vitest";
import BetterSqlite3 from "better-sqlite3";
import {
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
  calculateJwkThumbprint,
} from "jose";

import { createApp } from "../src/app";
import { openDatabase } from "../src/db/database";
import { migrateOnStart } from "../src/migrate";
import { TokenVerifier } from "../src/auth/tokens";
import type { Config } from "../src/config";

export const ISSUER = "acme";
export const AUDIENCE = "acme";

/**
 * The api's tables the service reads (their columns it reads), as the api's migrations leave
 * them: those of its `auth`, and those of the modules installed on this service.
 */
const SHARED_TABLES = [
  `CREATE TABLE users (
    id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
    full_name TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, disabled_at BIGINT,
    email_verified_at BIGINT, role TEXT NOT NULL DEFAULT 'customer'
  )`,
  `CREATE TABLE sessions (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE, user_agent TEXT, created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, revoked_at BIGINT,
    kind TEXT NOT NULL DEFAULT 'customer'
  )`,
  // saaskit adds the tables of the modules it installs after the next line: keep it.
  // <<<inject:shared-tables>>>
];

type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];

export function now(): number {
  return Math.floor(Date.now() / 1000);
}

export class Fixture {
  private constructor(
    readonly app: INestApplication,
    readonly sql: BetterSqlite3.Database,
    readonly key: PrivateKey,
    readonly kid: string,
  ) {}

  static async start(): Promise<Fixture> {
    const file = join(mkdtempSync(join(tmpdir(), "nest-test-")), "shared.db");
    const sql = new BetterSqlite3(file);
    sql.pragma("journal_mode = WAL");
    for (const table of SHARED_TABLES) sql.exec(table);
    const { publicKey, privateKey } = await generateKeyPair("EdDSA", { extractable: true });
    const jwk: JWK = { ...(await exportJWK(publicKey)), alg: "EdDSA", use: "sig" };
    jwk.kid = await calculateJwkThumbprint(jwk);
    const config: Config = {
      host: "127.0.0.1",
      port: 0,
      database: { kind: "sqlite", file },
      migrateOnStart: true,
      jwksUrl: new URL("http://127.0.0.1:9/unused"),
      issuer: ISSUER,
      audience: AUDIENCE,
      sessionIdleSecs: 3600,
      logLevel: "silent",
    };
    const verifier = new TokenVerifier(createLocalJWKSet({ keys: [jwk] }), ISSUER, AUDIENCE);
    const db = openDatabase(config.database);
    await migrateOnStart(db);
    await db.close();
    const app = await createApp({ config, verifier });
    await app.init();
    return new Fixture(app, sql, privateKey, jwk.kid);
  }

  async stop(): Promise<void> {
    await this.app.close();
    this.sql.close();
  }

  /** A user with a customer session in force; returns their id, the session's and a token. */
  async signIn(
    email: string,
    kind = "customer",
  ): Promise<{ user: string; session: string; token: string }> {
    const user = crypto.randomUUID();
    const session = crypto.randomUUID();
    const t = now();
    this.sql
      .prepare(
        "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?, ?, 'x', ?, ?)",
      )
      .run(user, email, t, t);
    this.sql
      .prepare(
        "INSERT INTO sessions (id, user_id, token_hash, created_at, last_seen_at, expires_at, kind) VALUES (?, ?, ?, ?, ?, ?, ?)",
      )
      .run(session, user, session, t, t, t + 3600, kind);
    return { user, session, token: await this.token({ sub: user, sid: session }) };
  }

  /** An access token as the api signs it, with `claims` over the usual ones. */
  token(claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
    const t = now();
    return new SignJWT({ typ: "access", jti: crypto.randomUUID(), ...claims })
      .setProtectedHeader({ alg: "EdDSA", typ: "JWT", kid: this.kid, ...header })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt(t)
      .setExpirationTime(t + 900)
      .sign(this.key);
  }
}

/** The fixture of a test file: started before its tests, stopped after them. */
export interface Running {
  readonly fixture: Fixture;
  /** The application's HTTP server, for supertest. */
  readonly http: App;
}

export function useFixture(): Running {
  const running = {} as { fixture: Fixture; http: App };
  beforeAll(async () => {
    running.fixture = await Fixture.start();
    running.http = running.fixture.app.getHttpServer() as App;
  });
  afterAll(() => running.fixture.stop());
  return running;
}
