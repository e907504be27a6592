// The database connection, opened once and closed when the application shuts down.
import {
  type DynamicModule,
  Global,
  Inject,
  Module,
  type OnApplicationShutdown,
} from "@nestjs/common";

import type { Config } from "../config";
import { type Database, openDatabase } from "./database";

/** The injection token of the [`Database`]. */
export const DATABASE = Symbol("Database");

@Global()
@Module({})
export class DatabaseModule implements OnApplicationShutdown {
  constructor(@Inject(DATABASE) private readonly db: Database) {}

  static forRoot(config: Config): DynamicModule {
    return {
      module: DatabaseModule,
      providers: [{ provide: DATABASE, useFactory: () => openDatabase(config.database) }],
      exports: [DATABASE],
    };
  }

  async onApplicationShutdown(): Promise<void> {
    await this.db.close();
  }
}
