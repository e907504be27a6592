// The HTTP contract, driven through the whole application with supertest.
import { describe, expect, it } from "vitest";
import request from "supertest";

import { SERVICE } from "../src/service";
import { now, useFixture } from "./support";

/** Where the service's routes are. */
const API = `/api/${SERVICE.name}`;

const running = useFixture();

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

function codeOf(response: request.Response): string {
  return (response.body as { error: { code: string } }).error.code;
}

function expectUnauthorized(response: request.Response) {
  expect(response.status).toBe(401);
  expect(response.body).toEqual({
    error: { code: "unauthorized", message: "authentication is required" },
  });
}

describe("probes", () => {
  it("answers /healthz and /readyz", async () => {
    await request(running.http).get("/healthz").expect(200, { status: "ok" });
    await request(running.http).get("/readyz").expect(200, { status: "ok" });
  });

  it("sends back the request id it was given, or a new one", async () => {
    const given = await request(running.http).get("/healthz").set("X-Request-Id", "abc-123");
    expect(given.headers["x-request-id"]).toBe("abc-123");
    const fresh = await request(running.http).get("/healthz");
    expect(fresh.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("GET /api/<service>/me", () => {
  it("shows the user of a valid token", async () => {
    const ada = await running.fixture.signIn("ada@example.com");
    const response = await request(running.http)
      .get(`${API}/me`)
      .set("Authorization", `Bearer ${ada.token}`)
      .expect(200);
    expect(response.body).toEqual({
      id: ada.user,
      email: "ada@example.com",
      full_name: null,
      role: "customer",
      email_verified: false,
      created_at: expect.any(Number) as number,
    });
  });

  it("names the impersonator of an impersonation's token", async () => {
    const ada = await running.fixture.signIn("ada.imp@example.com");
    const token = await running.fixture.token({
      sub: ada.user,
      sid: ada.session,
      act: { sub: "staff-1", email: "staff@example.com" },
    });
    const response = await request(running.http)
      .get(`${API}/me`)
      .set("Authorization", `Bearer ${token}`)
      .expect(200);
    expect((response.body as { impersonated_by: unknown }).impersonated_by).toEqual({
      id: "staff-1",
      email: "staff@example.com",
    });
  });

  it("refuses forged, foreign and expired tokens", async () => {
    const ada = await running.fixture.signIn("ada.forged@example.com");
    const [head, payload, signature] = ada.token.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as Record<
      string,
      unknown
    >;
    const refused = {
      "no header": undefined,
      "not bearer": `Basic ${ada.token}`,
      "alg none": `${b64({ alg: "none" })}.${payload}.`,
      "alg HS256": `${b64({ alg: "HS256", typ: "JWT" })}.${payload}.${signature}`,
      tampered: `${head}.${b64({ ...claims, sub: "someone-else" })}.${signature}`,
      "unknown kid": await running.fixture.token(
        { sub: ada.user, sid: ada.session },
        { kid: "nope" },
      ),
      "another audience": await running.fixture.token({
        sub: ada.user,
        sid: ada.session,
        aud: "other",
      }),
      "another issuer": await running.fixture.token({
        sub: ada.user,
        sid: ada.session,
        iss: "other",
      }),
      "not an access token": await running.fixture.token({
        sub: ada.user,
        sid: ada.session,
        typ: "refresh",
      }),
      expired: await running.fixture.token({ sub: ada.user, sid: ada.session, exp: now() - 120 }),
      "another user's session": await running.fixture.token({
        sub: "someone-else",
        sid: ada.session,
      }),
      "unknown session": await running.fixture.token({ sub: ada.user, sid: "no-such-session" }),
    };
    for (const [name, authorization] of Object.entries(refused)) {
      const call = request(running.http).get(`${API}/me`);
      const response = await (authorization ? call.set("Authorization", authorization) : call);
      expect(response.status, name).toBe(401);
      expectUnauthorized(response);
    }
    // The same claims, well signed, within the 60 s leeway: accepted (the forging above is right).
    const lenient = await running.fixture.token({
      sub: ada.user,
      sid: ada.session,
      exp: now() - 20,
    });
    await request(running.http)
      .get(`${API}/me`)
      .set("Authorization", `Bearer ${lenient}`)
      .expect(200);
  });

  it("refuses the token of an ended session, a disabled user or a staff session at once", async () => {
    const ended = await running.fixture.signIn("ended@example.com");
    const disabled = await running.fixture.signIn("disabled@example.com");
    const idle = await running.fixture.signIn("idle@example.com");
    const staff = await running.fixture.signIn("staff@example.com", "staff");
    for (const { token } of [ended, disabled, idle]) {
      await request(running.http)
        .get(`${API}/me`)
        .set("Authorization", `Bearer ${token}`)
        .expect(200);
    }
    running.fixture.sql
      .prepare("UPDATE sessions SET revoked_at = ? WHERE id = ?")
      .run(now(), ended.session);
    running.fixture.sql
      .prepare("UPDATE users SET disabled_at = ? WHERE id = ?")
      .run(now(), disabled.user);
    running.fixture.sql
      .prepare("UPDATE sessions SET last_seen_at = ? WHERE id = ?")
      .run(now() - 3601, idle.session);
    for (const { token } of [ended, disabled, idle, staff]) {
      expectUnauthorized(
        await request(running.http).get(`${API}/me`).set("Authorization", `Bearer ${token}`),
      );
    }
  });

  it("notes that a session was used, as the api does", async () => {
    const ada = await running.fixture.signIn("touched@example.com");
    running.fixture.sql
      .prepare("UPDATE sessions SET last_seen_at = ? WHERE id = ?")
      .run(now() - 600, ada.session);
    await request(running.http)
      .get(`${API}/me`)
      .set("Authorization", `Bearer ${ada.token}`)
      .expect(200);
    const row = running.fixture.sql
      .prepare("SELECT last_seen_at FROM sessions WHERE id = ?")
      .get(ada.session) as {
      last_seen_at: number;
    };
    expect(row.last_seen_at).toBeGreaterThanOrEqual(now() - 5);
  });
});

describe("notes", () => {
  it("are created, listed, read, updated and deleted by their owner only", async () => {
    const ada = await running.fixture.signIn("ada.notes@example.com");
    const bob = await running.fixture.signIn("bob.notes@example.com");
    const as = (who: { token: string }) => ({ Authorization: `Bearer ${who.token}` });

    const created = await request(running.http)
      .post(`${API}/notes`)
      .set(as(ada))
      .send({ title: "Groceries", body: "Eggs" })
      .expect(201);
    const note = created.body as { id: string; title: string };
    expect(note).toMatchObject({ title: "Groceries", body: "Eggs" });

    const listed = await request(running.http).get(`${API}/notes`).set(as(ada)).expect(200);
    expect(listed.body).toEqual({ notes: [note] });
    await request(running.http).get(`${API}/notes/${note.id}`).set(as(ada)).expect(200, note);

    // Bob sees none of it, and cannot tell it exists.
    await request(running.http).get(`${API}/notes`).set(as(bob)).expect(200, { notes: [] });
    for (const call of [
      request(running.http).get(`${API}/notes/${note.id}`),
      request(running.http).put(`${API}/notes/${note.id}`).send({ title: "Mine", body: "" }),
      request(running.http).delete(`${API}/notes/${note.id}`),
    ]) {
      const response = await call.set(as(bob));
      expect(response.status).toBe(404);
      expect(response.body).toEqual({ error: { code: "not_found", message: "note not found" } });
    }

    const updated = await request(running.http)
      .put(`${API}/notes/${note.id}`)
      .set(as(ada))
      .send({ title: "Groceries", body: "Eggs, milk" })
      .expect(200);
    expect(updated.body).toMatchObject({ id: note.id, body: "Eggs, milk" });
    await request(running.http).delete(`${API}/notes/${note.id}`).set(as(ada)).expect(204);
    await request(running.http).get(`${API}/notes/${note.id}`).set(as(ada)).expect(404);
  });

  it("name every invalid field", async () => {
    const ada = await running.fixture.signIn("ada.invalid@example.com");
    const response = await request(running.http)
      .post(`${API}/notes`)
      .set("Authorization", `Bearer ${ada.token}`)
      .send({ title: "", body: 3 })
      .expect(422);
    expect(response.body).toEqual({
      error: {
        code: "validation_failed",
        message: "the request has invalid fields",
        fields: { title: "must not be empty", body: "must be a string" },
      },
    });
  });

  it("need a token", async () => {
    expectUnauthorized(await request(running.http).get(`${API}/notes`));
  });
});

describe("errors and documentation", () => {
  it("answers unknown routes and malformed JSON with the envelope", async () => {
    const missing = await request(running.http).get(`${API}/nowhere`).expect(404);
    expect(codeOf(missing)).toBe("not_found");
    const ada = await running.fixture.signIn("ada.json@example.com");
    const malformed = await request(running.http)
      .post(`${API}/notes`)
      .set("Authorization", `Bearer ${ada.token}`)
      .set("Content-Type", "application/json")
      .send("{not json")
      .expect(400);
    expect(codeOf(malformed)).toBe("bad_request");
  });

  it("publishes its OpenAPI document and a page for it", async () => {
    const spec = await request(running.http).get("/openapi.json").expect(200);
    expect(Object.keys((spec.body as { paths: object }).paths)).toEqual(
      expect.arrayContaining([`${API}/me`, `${API}/notes`, `${API}/notes/{id}`]),
    );
    const page = await request(running.http).get("/docs").expect(200);
    expect(page.text).toContain("swagger");
  });
});
