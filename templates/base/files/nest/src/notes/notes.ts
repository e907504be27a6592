// The example resource: notes owned by the user who wrote them. Domain code: it knows the
// database and its owner, not HTTP. Every query is scoped by owner, so another user's note is
// "not found", never "forbidden": its existence is not disclosed.
import { randomUUID } from "node:crypto";

import { type Database, int, type Row } from "../db/database";

export interface Note {
  id: string;
  title: string;
  body: string;
  /** Unix seconds. */
  created_at: number;
  updated_at: number;
}

export interface NoteInput {
  title: string;
  body: string;
}

const COLUMNS = "id, title, body, created_at, updated_at";

export class Notes {
  constructor(private readonly db: Database) {}

  async create(owner: string, input: NoteInput): Promise<Note> {
    const now = unixNow();
    const note: Note = { id: randomUUID(), ...input, created_at: now, updated_at: now };
    await this.db.run(
      "INSERT INTO notes (id, user_id, title, body, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
      [note.id, owner, note.title, note.body, now, now],
    );
    return note;
  }

  /** The owner's notes, newest first. */
  async list(owner: string): Promise<Note[]> {
    const rows = await this.db.all(
      `SELECT ${COLUMNS} FROM notes WHERE user_id = $1 ORDER BY created_at DESC, id DESC`,
      [owner],
    );
    return rows.map(noteOf);
  }

  async get(owner: string, id: string): Promise<Note | undefined> {
    const row = await this.db.get(`SELECT ${COLUMNS} FROM notes WHERE id = $1 AND user_id = $2`, [
      id,
      owner,
    ]);
    return row && noteOf(row);
  }

  /** Replaces the note's title and body; `undefined` when the owner has no such note. */
  async update(owner: string, id: string, input: NoteInput): Promise<Note | undefined> {
    const changed = await this.db.run(
      "UPDATE notes SET title = $1, body = $2, updated_at = $3 WHERE id = $4 AND user_id = $5",
      [input.title, input.body, unixNow(), id, owner],
    );
    return changed > 0 ? this.get(owner, id) : undefined;
  }

  /** Whether the owner had such a note. */
  async delete(owner: string, id: string): Promise<boolean> {
    return (await this.db.run("DELETE FROM notes WHERE id = $1 AND user_id = $2", [id, owner])) > 0;
  }
}

function noteOf(row: Row): Note {
  return {
    id: String(row.id),
    title: String(row.title),
    body: String(row.body),
    created_at: int(row.created_at),
    updated_at: int(row.updated_at),
  };
}

function unixNow(): number {
  return Math.floor(Date.now() / 1000);
}
