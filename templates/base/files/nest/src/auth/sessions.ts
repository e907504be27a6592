// The session an access token names, looked up in the shared database on every request, with
// the Rust services' conditions (crates/core/src/auth/session.rs): not revoked, not past its
// absolute expiry, used within the idle timeout, a customer-facing session, and its user not
// disabled. So logout, a password change (which ends the other sessions), an admin disabling the
// account and the end of an impersonation take effect here at once, as in the api.
import type { Database, Row } from "../db/database";
import { int } from "../db/database";

/** `last_seen_at` is written at most this often per session (and at most every tenth of the
 *  idle timeout): the same interval as the Rust services, which share the column. */
const TOUCH_INTERVAL_SECS = 60;

/** A user as every service shows it. */
export interface User {
  id: string;
  email: string;
  full_name: string | null;
  role: string;
  email_verified: boolean;
  /** Unix seconds. */
  created_at: number;
}

const SESSION_IN_FORCE = `
  SELECT sessions.id AS session_id, sessions.last_seen_at AS session_last_seen_at,
         users.id, users.email, users.full_name, users.role, users.email_verified_at,
         users.created_at
  FROM sessions JOIN users ON users.id = sessions.user_id
  WHERE sessions.id = $1 AND sessions.revoked_at IS NULL AND sessions.expires_at > $2
    AND sessions.last_seen_at > $3 AND sessions.kind = $4 AND users.disabled_at IS NULL`;

export class Sessions {
  constructor(
    private readonly db: Database,
    private readonly idleSecs: number,
  ) {}

  /** The user of session `sessionId` if the session is in force at `now` (Unix seconds). */
  async user(sessionId: string, now: number): Promise<User | undefined> {
    const row = await this.db.get(SESSION_IN_FORCE, [
      sessionId,
      now,
      now - this.idleSecs,
      "customer",
    ]);
    if (!row) return undefined;
    const lastSeen = int(row.session_last_seen_at);
    if (now - lastSeen >= Math.min(TOUCH_INTERVAL_SECS, Math.floor(this.idleSecs / 10))) {
      await this.db.run("UPDATE sessions SET last_seen_at = $1 WHERE id = $2", [now, sessionId]);
    }
    return userOf(row);
  }
}

function userOf(row: Row): User {
  return {
    id: String(row.id),
    email: String(row.email),
    full_name: typeof row.full_name === "string" ? row.full_name : null,
    role: String(row.role),
    email_verified: row.email_verified_at !== null,
    created_at: int(row.created_at),
  };
}
