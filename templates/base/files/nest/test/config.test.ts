import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { ConfigError, loadEnvironment, readConfig } from "../src/config";
import { SERVICE } from "../src/service";

const VALID = {
  DATABASE_URL: "sqlite://data/acme.db?mode=rwc",
  AUTH_ISSUER: "acme",
  AUTH_AUDIENCE: "acme",
};

function problems(vars: Record<string, string>): [string, string][] {
  try {
    readConfig(vars, "/workspace");
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error("the configuration was accepted");
}

describe("configuration", () => {
  it("reads the workspace's keys, with defaults", () => {
    const config = readConfig({ ...VALID, API_ADDR: "127.0.0.1:4000" }, "/workspace");
    expect(config.database).toEqual({ kind: "sqlite", file: "/workspace/data/acme.db" });
    expect(config.jwksUrl.href).toBe("http://127.0.0.1:4000/.well-known/jwks.json");
    expect([config.host, config.port, config.issuer, config.audience]).toEqual([
      "127.0.0.1",
      SERVICE.defaultPort,
      "acme",
      "acme",
    ]);
    expect(config.sessionIdleSecs).toBe(604800);
    const postgres = readConfig({ ...VALID, DATABASE_URL: "postgres://u:p@db:5432/acme" }, "/");
    expect(postgres.database).toEqual({ kind: "postgres", url: "postgres://u:p@db:5432/acme" });
  });

  it("names every bad key at once", () => {
    expect(
      problems({
        DATABASE_URL: "mysql://nope",
        [`${SERVICE.envPrefix}_ADDR`]: "no-port",
        [`${SERVICE.envPrefix}_AUTH_JWKS_URL`]: "ftp://api/jwks",
        AUTH_SESSION_IDLE_TIMEOUT_SECS: "-1",
        DATABASE_MIGRATE_ON_START: "maybe",
        [`${SERVICE.envPrefix}_LOG_LEVEL`]: "loud",
      })
        .map(([key]) => key)
        .sort(),
    ).toEqual(
      [
        "DATABASE_MIGRATE_ON_START",
        `${SERVICE.envPrefix}_ADDR`,
        "DATABASE_URL",
        `${SERVICE.envPrefix}_AUTH_JWKS_URL`,
        `${SERVICE.envPrefix}_LOG_LEVEL`,
        "AUTH_ISSUER",
        "AUTH_AUDIENCE",
        "AUTH_SESSION_IDLE_TIMEOUT_SECS",
      ].sort(),
    );
  });

  it("takes the nearest .env under the exported variables, empty ones counting as unset", () => {
    const root = mkdtempSync(join(tmpdir(), "nest-env-"));
    writeFileSync(join(root, ".env"), "AUTH_ISSUER=from-file\nAUTH_AUDIENCE=from-file\n");
    mkdirSync(join(root, "nest"));
    const { vars, root: found } = loadEnvironment(join(root, "nest"), {
      AUTH_ISSUER: "exported",
      AUTH_AUDIENCE: "",
    });
    expect(found).toBe(root);
    expect([vars.AUTH_ISSUER, vars.AUTH_AUDIENCE]).toEqual(["exported", "from-file"]);
  });
});
