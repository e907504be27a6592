// The notes endpoints: /api/<service>/notes, each request on behalf of the signed-in user, on
// the notes of the owner `NoteOwners` names (src/notes/owners.ts).
import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Inject,
  Param,
  Post,
  Put,
  UseGuards,
} from "@nestjs/common";
import {
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiProperty,
  ApiTags,
  ApiUnauthorizedResponse,
  ApiUnprocessableEntityResponse,
} from "@nestjs/swagger";
import { IsString, MaxLength, MinLength } from "class-validator";

import { AuthGuard, CurrentPrincipal, type Principal } from "../auth/auth.guard";
import { ApiError } from "../errors";
import { type Note, Notes } from "./notes";
import { NoteOwners } from "./owners";

/** A note as written by its owner: what create and update take. */
export class NoteBody {
  @ApiProperty({ minLength: 1, maxLength: 200, example: "Groceries" })
  @IsString({ message: "must be a string" })
  @MinLength(1, { message: "must not be empty" })
  @MaxLength(200, { message: "must be at most 200 characters" })
  title!: string;

  @ApiProperty({ maxLength: 10_000, example: "Eggs, flour, milk" })
  @IsString({ message: "must be a string" })
  @MaxLength(10_000, { message: "must be at most 10000 characters" })
  body!: string;
}

export class NoteView implements Note {
  @ApiProperty({ format: "uuid" }) id!: string;
  @ApiProperty() title!: string;
  @ApiProperty() body!: string;
  @ApiProperty({ description: "Unix seconds" }) created_at!: number;
  @ApiProperty({ description: "Unix seconds" }) updated_at!: number;
}

export class NoteList {
  @ApiProperty({ type: [NoteView] }) notes!: NoteView[];
}

@ApiTags("notes")
@ApiBearerAuth()
@ApiUnauthorizedResponse({ description: "No valid access token, or its session has ended" })
@UseGuards(AuthGuard)
@Controller("notes")
export class NotesController {
  constructor(
    @Inject(Notes) private readonly notes: Notes,
    @Inject(NoteOwners) private readonly owners: NoteOwners,
  ) {}

  @Post()
  @ApiCreatedResponse({ type: NoteView })
  @ApiUnprocessableEntityResponse({ description: "`fields` names each invalid input" })
  async create(@CurrentPrincipal() principal: Principal, @Body() body: NoteBody): Promise<Note> {
    const scope = await this.owners.scope(principal);
    return this.notes.create(scope, principal.user.id, { title: body.title, body: body.body });
  }

  @Get()
  @ApiOkResponse({ type: NoteList })
  async list(@CurrentPrincipal() principal: Principal): Promise<NoteList> {
    return { notes: await this.notes.list(await this.owners.scope(principal)) };
  }

  @Get(":id")
  @ApiOkResponse({ type: NoteView })
  @ApiNotFoundResponse({ description: "No such note of the owner's" })
  async get(@CurrentPrincipal() principal: Principal, @Param("id") id: string): Promise<Note> {
    return found(await this.notes.get(await this.owners.scope(principal), id));
  }

  @Put(":id")
  @ApiOkResponse({ type: NoteView })
  @ApiNotFoundResponse({ description: "No such note of the owner's" })
  async update(
    @CurrentPrincipal() principal: Principal,
    @Param("id") id: string,
    @Body() body: NoteBody,
  ): Promise<Note> {
    const input = { title: body.title, body: body.body };
    return found(await this.notes.update(await this.owners.scope(principal), id, input));
  }

  @Delete(":id")
  @HttpCode(204)
  @ApiNoContentResponse()
  @ApiNotFoundResponse({ description: "No such note of the owner's" })
  async delete(@CurrentPrincipal() principal: Principal, @Param("id") id: string): Promise<void> {
    const scope = await this.owners.scope(principal);
    if (!(await this.notes.delete(scope, id))) throw ApiError.notFound("note");
  }
}

function found(note: Note | undefined): Note {
  if (!note) throw ApiError.notFound("note");
  return note;
}
