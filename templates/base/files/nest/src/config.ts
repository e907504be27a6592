// Typed configuration, read once at start from the environment and the workspace's `.env`.
//
// The same rules as the Rust services' `Env` (crates/core/src/config.rs): an exported variable
// wins over `.env`, an empty value counts as unset, and every bad key is collected so that one
// failed start names them all instead of the first only.
import { existsSync } from "node:fs";
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { parseEnv } from "node:util";

import { SERVICE } from "./service";

export type DatabaseUrl = { kind: "sqlite"; file: string } | { kind: "postgres"; url: string };

export interface Config {
  /** Host and port to listen on (`<PREFIX>_ADDR`). */
  host: string;
  port: number;
  database: DatabaseUrl;
  /** Apply this service's migrations at start (`DATABASE_MIGRATE_ON_START`). */
  migrateOnStart: boolean;
  /** Where the api publishes its public keys (`<PREFIX>_AUTH_JWKS_URL`). */
  jwksUrl: URL;
  /** `iss` and `aud` of the tokens accepted: the api's `AUTH_ISSUER` and `AUTH_AUDIENCE`. */
  issuer: string;
  audience: string;
  /** Sessions unused for this long have ended (`AUTH_SESSION_IDLE_TIMEOUT_SECS`). */
  sessionIdleSecs: number;
  logLevel: string;
}

/** Every key that is missing or malformed, with what is wrong with it. */
export class ConfigError extends Error {
  constructor(readonly problems: [string, string][]) {
    super(
      `invalid configuration:\n${problems.map(([key, problem]) => `  ${key}: ${problem}`).join("\n")}\n` +
        "set these keys in the environment or in the workspace's .env (see .env.example)",
    );
    this.name = "ConfigError";
  }
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/**
 * The variables of `environment` over those of the nearest `.env` in `cwd` or a parent, and the
 * directory that file is in (the workspace root), against which relative SQLite paths resolve:
 * the Rust services run from the workspace root, this one usually from its own directory.
 */
export function loadEnvironment(
  cwd: string = process.cwd(),
  environment: NodeJS.ProcessEnv = process.env,
): { vars: Record<string, string | undefined>; root: string } {
  let directory = resolve(cwd);
  for (;;) {
    const candidate = join(directory, ".env");
    if (existsSync(candidate)) {
      const fromFile = parseEnv(readFileSync(candidate, "utf8"));
      return { vars: { ...fromFile, ...nonEmpty(environment) }, root: directory };
    }
    const parent = dirname(directory);
    if (parent === directory) {
      return { vars: { ...nonEmpty(environment) }, root: resolve(cwd) };
    }
    directory = parent;
  }
}

function nonEmpty(environment: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(
    Object.entries(environment).filter(
      (entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== "",
    ),
  );
}

/** Reads and checks every key; throws a [`ConfigError`] naming each bad one. */
export function readConfig(vars: Record<string, string | undefined>, root: string): Config {
  const problems: [string, string][] = [];
  const get = (key: string): string | undefined => {
    const value = vars[key]?.trim();
    return value === "" ? undefined : value;
  };
  const required = (key: string): string => {
    const value = get(key);
    if (value === undefined) problems.push([key, "is required"]);
    return value ?? "";
  };
  const positive = (key: string, fallback: number): number => {
    const text = get(key);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value <= 0) {
      problems.push([key, `must be a positive whole number, not \`${text}\``]);
    }
    return value;
  };
  const boolean = (key: string, fallback: boolean): boolean => {
    const text = get(key);
    if (text === undefined) return fallback;
    if (text === "true") return true;
    if (text === "false") return false;
    problems.push([key, `must be true or false, not \`${text}\``]);
    return fallback;
  };

  const addrKey = `${SERVICE.envPrefix}_ADDR`;
  const addr = get(addrKey) ?? SERVICE.defaultAddr;
  const [, host = "", portText = ""] = /^(.+):(\d{1,5})$/.exec(addr) ?? [];
  const port = Number(portText);
  if (host === "" || port > 65535) {
    problems.push([
      addrKey,
      `must be host:port, such as 127.0.0.1:${SERVICE.defaultPort}, not \`${addr}\``,
    ]);
  }

  const database = parseDatabaseUrl(required("DATABASE_URL"), root, problems);

  const jwksKey = `${SERVICE.envPrefix}_AUTH_JWKS_URL`;
  // By default the api of this workspace, at the address it is configured to listen on.
  const jwksText =
    get(jwksKey) ?? `http://${get("API_ADDR") ?? "127.0.0.1:3000"}/.well-known/jwks.json`;
  let jwksUrl = new URL("http://invalid");
  try {
    jwksUrl = new URL(jwksText);
    if (jwksUrl.protocol !== "http:" && jwksUrl.protocol !== "https:") {
      problems.push([jwksKey, `must be an http:// or https:// URL, not \`${jwksText}\``]);
    }
  } catch {
    problems.push([jwksKey, `is not a URL: \`${jwksText}\``]);
  }

  const logKey = `${SERVICE.envPrefix}_LOG_LEVEL`;
  const logLevel = get(logKey) ?? "info";
  if (!LOG_LEVELS.includes(logLevel)) {
    problems.push([logKey, `must be one of ${LOG_LEVELS.join(", ")}, not \`${logLevel}\``]);
  }

  const config: Config = {
    // `[::1]:3100` listens on `::1`.
    host: host.replace(/^\[(.*)\]$/, "$1"),
    port,
    database,
    migrateOnStart: boolean("DATABASE_MIGRATE_ON_START", true),
    jwksUrl,
    issuer: required("AUTH_ISSUER"),
    audience: required("AUTH_AUDIENCE"),
    sessionIdleSecs: positive("AUTH_SESSION_IDLE_TIMEOUT_SECS", 7 * 24 * 3600),
    logLevel,
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** The Rust services' `DATABASE_URL` formats: `sqlite://path?mode=rwc` or `postgres://...`. */
function parseDatabaseUrl(text: string, root: string, problems: [string, string][]): DatabaseUrl {
  if (text.startsWith("postgres://") || text.startsWith("postgresql://")) {
    return { kind: "postgres", url: text };
  }
  const sqlite = /^sqlite:(?:\/\/)?([^?]*)(?:\?.*)?$/.exec(text)?.[1];
  if (sqlite !== undefined && sqlite !== "" && sqlite !== ":memory:") {
    const path = decodeURIComponent(sqlite);
    return { kind: "sqlite", file: isAbsolute(path) ? path : join(root, path) };
  }
  if (text !== "") {
    problems.push([
      "DATABASE_URL",
      `must be sqlite://path/to/file.db?mode=rwc or postgres://user:password@host:5432/database, not \`${text}\``,
    ]);
  }
  return { kind: "sqlite", file: "" };
}
