// The example resource: notes, each written by a user and owned by a [`NoteScope`] (the user by
// default; src/notes/owners.ts). Domain code: it knows the database and the owner, not HTTP.
// Every query is scoped by owner, so another owner's note is "not found", never "forbidden": its
// existence is not disclosed.
import { randomUUID } from "node:crypto";

import { type Database, int, type Row, type Value } from "../db/database";
import type { NoteScope } from "./owners";
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

  /** A note by `author`, owned by `scope`. */
  async create(scope: NoteScope, author: string, input: NoteInput): Promise<Note> {
    const now = unixNow();
    const note: Note = { id: randomUUID(), ...input, created_at: now, updated_at: now };
    const owner = Object.entries({ user_id: author, ...scope.columns });
    const columns = ["id", "title", "body", "created_at", "updated_at", ...owner.map(([c]) => c)];
    const values = [note.id, note.title, note.body, now, now, ...owner.map(([, v]) => v)];
    await this.db.run(
      `INSERT INTO notes (${columns.map(column).join(", ")}) VALUES (${values.map((_, i) => `$${i + 1}`).join(", ")})`,
      values,
    );
    return note;
  }

  /** The owner's notes, newest first. */
  async list(scope: NoteScope): Promise<Note[]> {
    const [where, params] = owned(scope, 1);
    const rows = await this.db.all(
      `SELECT ${COLUMNS} FROM notes WHERE ${where} ORDER BY created_at DESC, id DESC`,
      params,
    );
    return rows.map(noteOf);
  }

  async get(scope: NoteScope, id: string): Promise<Note | undefined> {
    const [where, params] = owned(scope, 2);
    const row = await this.db.get(`SELECT ${COLUMNS} FROM notes WHERE id = $1 AND ${where}`, [
      id,
      ...params,
    ]);
    return row && noteOf(row);
  }

  /** Replaces the note's title and body; `undefined` when the owner has no such note. */
  async update(scope: NoteScope, id: string, input: NoteInput): Promise<Note | undefined> {
    const [where, params] = owned(scope, 5);
    const changed = await this.db.run(
      `UPDATE notes SET title = $1, body = $2, updated_at = $3 WHERE id = $4 AND ${where}`,
      [input.title, input.body, unixNow(), id, ...params],
    );
    return changed > 0 ? this.get(scope, id) : undefined;
  }

  /** Whether the owner had such a note. */
  async delete(scope: NoteScope, id: string): Promise<boolean> {
    const [where, params] = owned(scope, 2);
    return (await this.db.run(`DELETE FROM notes WHERE id = $1 AND ${where}`, [id, ...params])) > 0;
  }
}

/** The condition on `scope`'s columns, its parameters numbered from `$first`. */
function owned(scope: NoteScope, first: number): [string, Value[]] {
  const params: Value[] = [];
  const conditions = Object.entries(scope.columns).map(([name, value]) => {
    if (value === null) return `${column(name)} IS NULL`;
    params.push(value);
    return `${column(name)} = $${first + params.length - 1}`;
  });
  // No condition would be every owner's notes.
  if (conditions.length === 0) throw new Error("a note scope names no owner");
  return [conditions.join(" AND "), params];
}

/** A column name from code, never from a request; checked all the same, as it goes into SQL. */
function column(name: string): string {
  if (!/^[a-z_]+$/.test(name)) throw new Error(`not a column name: ${name}`);
  return name;
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
