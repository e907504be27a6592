// The root module: what the service is made of. saaskit splices the modules it adds into the
// marked places.
import { type DynamicModule, Module } from "@nestjs/common";
import { LoggerModule } from "nestjs-pino";

import { AuthGuard } from "./auth/auth.guard";
import { Sessions } from "./auth/sessions";
import { TokenVerifier } from "./auth/tokens";
import type { Config } from "./config";
import type { Database } from "./db/database";
import { DATABASE, DatabaseModule } from "./db/database.module";
import { HealthController } from "./health.controller";
import { loggerOptions } from "./logging";
import { MeController } from "./me.controller";
import { Notes } from "./notes/notes";
import { NotesController } from "./notes/notes.controller";
import { NoteOwners, UserNoteOwners } from "./notes/owners";
// saaskit adds the imports of the modules it installs after the next line: keep it.
// <<<inject:imports>>>

export interface AppOptions {
  config: Config;
  /** How tokens are verified: by default with the api's JWKS (`config.jwksUrl`). */
  verifier?: TokenVerifier;
}

@Module({})
export class AppModule {
  static forRoot({ config, verifier }: AppOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [
        LoggerModule.forRoot(loggerOptions(config.logLevel)),
        DatabaseModule.forRoot(config),
        // saaskit adds the modules it installs after the next line: keep it.
        // <<<inject:routes>>>
      ],
      controllers: [HealthController, MeController, NotesController],
      providers: [
        {
          provide: TokenVerifier,
          useFactory: () =>
            verifier ?? TokenVerifier.remote(config.jwksUrl, config.issuer, config.audience),
        },
        {
          provide: Sessions,
          inject: [DATABASE],
          useFactory: (db: Database) => new Sessions(db, config.sessionIdleSecs),
        },
        { provide: Notes, inject: [DATABASE], useFactory: (db: Database) => new Notes(db) },
        AuthGuard,
        { provide: NoteOwners, useClass: UserNoteOwners },
        // saaskit adds the providers of the modules it installs after the next line: keep it. A
        // provider there replaces one above of the same token (Nest keeps the last).
        // <<<inject:providers>>>
      ],
    };
  }
}
