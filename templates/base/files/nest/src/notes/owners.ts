// Whose notes a request sees and writes. The service's own answer is the signed-in user's; a
// module that changes it (orgs: the active organization's) provides `NoteOwners` after the root
// module's default, at its `providers` marker, and Nest takes the last provider of a token.
import { Injectable } from "@nestjs/common";

import type { Principal } from "../auth/auth.guard";

/**
 * The notes of one owner: the rows whose `columns` hold these values (`null`: no value). Every
 * query filters on all of them, and a new note is written with them.
 */
export interface NoteScope {
  readonly columns: Readonly<Record<string, string | null>>;
}

/** Decides the [`NoteScope`] of a request; throws an `ApiError` to refuse it. */
export abstract class NoteOwners {
  abstract scope(principal: Principal): Promise<NoteScope>;
}

/** Each user owns the notes they wrote. */
@Injectable()
export class UserNoteOwners extends NoteOwners {
  scope(principal: Principal): Promise<NoteScope> {
    return Promise.resolve({ columns: { user_id: principal.user.id } });
  }
}
