// The two languages checked against each other: an access token and the JWKS of a Rust api
// (minted by the generated api's own code: saaskit's end-to-end suite logs in to a running api
// and writes them to test/fixtures/api-token.json), verified here by the service's verifier.
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { createLocalJWKSet, type JSONWebKeySet } from "jose";
import { describe, expect, it } from "vitest";

import { InvalidToken, TokenVerifier } from "../src/auth/tokens";

interface ApiFixture {
  /** What the api's `/.well-known/jwks.json` answered. */
  jwks: JSONWebKeySet;
  /** The access token its `POST /api/auth/login` returned, and the claims the api put in it. */
  access_token: string;
  issuer: string;
  audience: string;
  user_id: string;
  /** When the token was minted (Unix seconds): it is verified as of then. */
  minted_at: number;
}

const fixture = JSON.parse(
  readFileSync(join(__dirname, "fixtures", "api-token.json"), "utf8"),
) as ApiFixture;
const at = new Date(fixture.minted_at * 1000);
const verifier = new TokenVerifier(
  createLocalJWKSet(fixture.jwks),
  fixture.issuer,
  fixture.audience,
);

describe("a token minted by the Rust api", () => {
  it("verifies with the api's JWKS", async () => {
    const claims = await verifier.verify(fixture.access_token, at);
    expect(claims.sub).toBe(fixture.user_id);
    expect(claims.sid).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("is refused once a byte of it changes, or for another audience, or once expired", async () => {
    const [head, payload, signature] = fixture.access_token.split(".") as [string, string, string];
    const flipped = Buffer.from(signature, "base64url");
    flipped[10] = (flipped[10] ?? 0) ^ 1;
    await expect(
      verifier.verify(`${head}.${payload}.${flipped.toString("base64url")}`, at),
    ).rejects.toBeInstanceOf(InvalidToken);
    const elsewhere = new TokenVerifier(createLocalJWKSet(fixture.jwks), fixture.issuer, "other");
    await expect(elsewhere.verify(fixture.access_token, at)).rejects.toBeInstanceOf(InvalidToken);
    const later = new Date((fixture.minted_at + 24 * 3600) * 1000);
    await expect(verifier.verify(fixture.access_token, later)).rejects.toBeInstanceOf(InvalidToken);
  });
});
