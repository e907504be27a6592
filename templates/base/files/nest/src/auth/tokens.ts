// Verification of the api's access tokens: compact JWS signed with Ed25519 (docs/auth.md in
// saaskit, crates/core/src/auth/token.rs here). `jose` does the JOSE part: it fetches the api's
// JWKS, caches it, and fetches it again when a token names a key it does not know, so that a
// key rotation on the api needs no restart here. This service holds no signing key.
import { createRemoteJWKSet, errors, type JWTPayload, jwtVerify } from "jose";

/** How far `exp` may be in the past: the Rust services' leeway for clock skew. */
const LEEWAY_SECS = 60;

/**
 * The shortest time between two fetches of the JWKS caused by unknown key ids: tokens naming
 * made-up keys cost the api at most one request per period.
 */
const JWKS_COOLDOWN_MS = 5_000;

/** The claims of an access token (crates/core/src/auth/token.rs's `Claims`). */
export interface AccessClaims {
  sub: string;
  sid: string;
  exp: number;
  /** The staff member impersonating `sub`, if any (RFC 8693's actor claim). */
  act?: { sub: string; email: string };
  /** The organization the token was switched to (the orgs module), if any. */
  org_id?: string;
}

/** Why a token was refused; every reason becomes the same 401 for the client. */
export class InvalidToken extends Error {
  override name = "InvalidToken";
}

/** The api's keys could not be fetched: tokens cannot be checked for now (503, not 401). */
export class KeysUnavailable extends Error {
  override name = "KeysUnavailable";
}

export type KeySource = Parameters<typeof jwtVerify>[1];

export class TokenVerifier {
  constructor(
    private readonly keys: KeySource,
    private readonly issuer: string,
    private readonly audience: string,
  ) {}

  /** A verifier with the JWKS published at `url` (fetched on first use, then cached). */
  static remote(url: URL, issuer: string, audience: string): TokenVerifier {
    const keys = createRemoteJWKSet(url, {
      cooldownDuration: JWKS_COOLDOWN_MS,
      timeoutDuration: 5_000,
    });
    return new TokenVerifier(keys, issuer, audience);
  }

  /** The claims of `token` if it is a valid access token for this audience at `now`. */
  async verify(token: string, now: Date = new Date()): Promise<AccessClaims> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keys, {
        // Only EdDSA: `none`, HS256 keyed with the public key and every other algorithm
        // confusion fail before any key is looked at.
        algorithms: ["EdDSA"],
        issuer: this.issuer,
        audience: this.audience,
        requiredClaims: ["exp", "sub"],
        clockTolerance: LEEWAY_SECS,
        currentDate: now,
      }));
    } catch (error) {
      if (
        error instanceof errors.JWKSTimeout ||
        error instanceof errors.JWKSInvalid ||
        // A JWKS response that is not 200 OK.
        (error instanceof errors.JOSEError && error.code === "ERR_JOSE_GENERIC") ||
        (error instanceof Error && !(error instanceof errors.JOSEError))
      ) {
        // The api did not answer (or answered garbage), not a bad token.
        throw new KeysUnavailable(`the api's keys cannot be fetched: ${String(error)}`);
      }
      throw new InvalidToken(error instanceof Error ? error.message : String(error));
    }
    // The Rust services' checks beyond JOSE's: the token is an access token (not another kind
    // the api might sign one day) and names its session.
    if (payload.typ !== "access") throw new InvalidToken("not an access token");
    if (typeof payload.sid !== "string" || typeof payload.sub !== "string") {
      throw new InvalidToken("no session");
    }
    const act = payload.act as { sub?: unknown; email?: unknown } | undefined;
    return {
      sub: payload.sub,
      sid: payload.sid,
      exp: payload.exp ?? 0,
      act:
        act && typeof act.sub === "string" && typeof act.email === "string"
          ? { sub: act.sub, email: act.email }
          : undefined,
      org_id: typeof payload.org_id === "string" ? payload.org_id : undefined,
    };
  }
}
