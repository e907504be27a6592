// The orgs module's part of the service: notes belong to the active organization of the token,
// whose membership is checked in the shared database on every request. The fixture's database
// has the module's tables (`organizations`, `memberships`: its snippet in test/support.ts).
import { describe, expect, it } from "vitest";
import request from "supertest";

import { SERVICE } from "../src/service";
import { now, useFixture } from "./support";

const API = `/api/${SERVICE.name}`;

const running = useFixture();

interface Member {
  user: string;
  session: string;
  /** The member's token switched to no organization. */
  token: string;
}

function organization(slug: string): string {
  const id = crypto.randomUUID();
  const t = now();
  running.fixture.sql
    .prepare(
      "INSERT INTO organizations (id, name, slug, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
    )
    .run(id, slug, slug, t, t);
  return id;
}

function join(member: Member, org: string, role = "member"): void {
  const t = now();
  running.fixture.sql
    .prepare(
      "INSERT INTO memberships (org_id, user_id, role, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
    )
    .run(org, member.user, role, t, t);
}

/** `member`'s token switched to `org`, as the api's `POST /api/orgs/{org}/switch` signs it. */
function switched(member: Member, org: string): Promise<string> {
  return running.fixture.token({
    sub: member.user,
    sid: member.session,
    org_id: org,
    org_role: "member",
  });
}

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

async function write(token: string, title: string): Promise<{ id: string }> {
  const response = await request(running.http)
    .post(`${API}/notes`)
    .set(bearer(token))
    .send({ title, body: "" })
    .expect(201);
  return response.body as { id: string };
}

async function titles(token: string): Promise<string[]> {
  const response = await request(running.http).get(`${API}/notes`).set(bearer(token)).expect(200);
  return (response.body as { notes: { title: string }[] }).notes.map((note) => note.title);
}

/** Every way `token` could reach note `id`: each answers 404 with `message`. */
async function expectHidden(token: string, id: string, message: string): Promise<void> {
  for (const call of [
    request(running.http).get(`${API}/notes/${id}`),
    request(running.http).put(`${API}/notes/${id}`).send({ title: "Mine", body: "" }),
    request(running.http).delete(`${API}/notes/${id}`),
  ]) {
    const response = await call.set(bearer(token));
    expect(response.status).toBe(404);
    expect(response.body).toEqual({ error: { code: "not_found", message } });
  }
}

describe("notes with organizations", () => {
  it("belong to the active organization, shared by its members and hidden from others", async () => {
    const ada = await running.fixture.signIn("ada.orgs@example.com");
    const carl = await running.fixture.signIn("carl.orgs@example.com");
    const bob = await running.fixture.signIn("bob.orgs@example.com");
    const a = organization("org-a");
    const b = organization("org-b");
    join(ada, a, "owner");
    join(carl, a);
    join(bob, b, "owner");
    const adaInA = await switched(ada, a);

    const plan = await write(adaInA, "A's plan");
    // Another member of A sees it and may change it: it is the organization's.
    const carlInA = await switched(carl, a);
    expect(await titles(carlInA)).toEqual(["A's plan"]);
    await request(running.http)
      .put(`${API}/notes/${plan.id}`)
      .set(bearer(carlInA))
      .send({ title: "A's plan", body: "Revised" })
      .expect(200);

    // B's member, switched to B or to no organization, sees nothing of it.
    const bobInB = await switched(bob, b);
    expect(await titles(bobInB)).toEqual([]);
    expect(await titles(bob.token)).toEqual([]);
    await expectHidden(bobInB, plan.id, "note not found");
    await expectHidden(bob.token, plan.id, "note not found");
    // A token naming A for someone who is not A's member: the organization is "not found".
    const bobClaimingA = await switched(bob, a);
    const listed = await request(running.http).get(`${API}/notes`).set(bearer(bobClaimingA));
    expect(listed.status).toBe(404);
    expect(listed.body).toEqual({
      error: { code: "not_found", message: "organization not found" },
    });
    await expectHidden(bobClaimingA, plan.id, "organization not found");

    // Ada's own notes (no organization) and A's are apart.
    await write(ada.token, "Ada's own");
    expect(await titles(ada.token)).toEqual(["Ada's own"]);
    expect(await titles(adaInA)).toEqual(["A's plan"]);
    await expectHidden(ada.token, plan.id, "note not found");
  });

  it("are out of reach of a removed member at once, switched token or not", async () => {
    const ada = await running.fixture.signIn("ada.removed@example.com");
    const carl = await running.fixture.signIn("carl.removed@example.com");
    const a = organization("org-removed");
    join(ada, a, "owner");
    join(carl, a);
    const carlInA = await switched(carl, a);
    const note = await write(await switched(ada, a), "Secret");
    expect(await titles(carlInA)).toEqual(["Secret"]);

    running.fixture.sql
      .prepare("DELETE FROM memberships WHERE org_id = ? AND user_id = ?")
      .run(a, carl.user);
    await expectHidden(carlInA, note.id, "organization not found");
    expect((await request(running.http).get(`${API}/notes`).set(bearer(carlInA))).status).toBe(404);
    expect(await titles(carl.token)).toEqual([]);
  });

  it("go with their organization", async () => {
    const ada = await running.fixture.signIn("ada.deleted@example.com");
    const a = organization("org-deleted");
    join(ada, a, "owner");
    const adaInA = await switched(ada, a);
    const note = await write(adaInA, "Doomed");
    running.fixture.sql.pragma("foreign_keys = ON");
    running.fixture.sql.prepare("DELETE FROM organizations WHERE id = ?").run(a);
    expect(
      running.fixture.sql.prepare("SELECT id FROM notes WHERE id = ?").get(note.id),
    ).toBeUndefined();
    await expectHidden(adaInA, note.id, "organization not found");
  });
});
