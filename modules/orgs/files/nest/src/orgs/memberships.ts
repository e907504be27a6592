// The organizations module's tables, as this service reads them: who is a member of which
// organization (the api writes them; docs/orgs.md in saaskit).
import type { Database } from "../db/database";

/**
 * `userId`'s role in `orgId` (`owner`, `admin` or `member`), or `undefined` when they are not a
 * member: one lookup by primary key, the check of the Rust services' `Tenant` extractor.
 */
export async function membership(
  db: Database,
  orgId: string,
  userId: string,
): Promise<string | undefined> {
  const sql = "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2";
  if (db.kind === "sqlite") {
    const row = await db.get(sql, [orgId, userId]);
    return row && String(row.role);
  }
  // PostgreSQL's row-level security shows a transaction the memberships of the user it names
  // (the orgs module's `orgs_row_level_security` migration): none to a query that names nobody.
  return db.transaction(async (tx) => {
    await tx.get("SELECT set_config('app.user_id', $1, true)", [userId]);
    const row = await tx.get(sql, [orgId, userId]);
    return row && String(row.role);
  });
}
