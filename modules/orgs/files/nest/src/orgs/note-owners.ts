// With the orgs module, notes belong to the active organization: the one the access token was
// switched to (`POST /api/orgs/{org}/switch` on the api, the token's `org_id` claim). The
// membership is looked up in the shared database on every request, as the Rust services'
// `Tenant` extractor does, so a member removed since the switch, or a token of an organization
// since deleted, gets 404 at once, never the notes. A token switched to no organization acts as
// the user, on the notes they wrote in none.
import { Inject, Injectable } from "@nestjs/common";

import type { Principal } from "../auth/auth.guard";
import type { Database } from "../db/database";
import { DATABASE } from "../db/database.module";
import { ApiError } from "../errors";
import { NoteOwners, type NoteScope } from "../notes/owners";
import { membership } from "./memberships";

@Injectable()
export class OrganizationNoteOwners extends NoteOwners {
  constructor(@Inject(DATABASE) private readonly db: Database) {
    super();
  }

  async scope(principal: Principal): Promise<NoteScope> {
    const org = principal.organization;
    if (org === undefined) return { columns: { user_id: principal.user.id, org_id: null } };
    // Not a member: the organization is "not found", as on the api, whether it exists or not.
    if ((await membership(this.db, org, principal.user.id)) === undefined) {
      throw ApiError.notFound("organization");
    }
    return { columns: { org_id: org } };
  }
}
