// Liveness and readiness, as the Rust services answer them: /healthz says the process serves
// requests; /readyz that it can reach the database too (503 naming it otherwise).
import { Controller, Get, Inject } from "@nestjs/common";
import { ApiExcludeController } from "@nestjs/swagger";

import { DATABASE } from "./db/database.module";
import type { Database } from "./db/database";
import { ApiError } from "./errors";

@ApiExcludeController()
@Controller()
export class HealthController {
  constructor(@Inject(DATABASE) private readonly db: Database) {}

  @Get("healthz")
  healthz(): { status: string } {
    return { status: "ok" };
  }

  @Get("readyz")
  async readyz(): Promise<{ status: string }> {
    try {
      await this.db.get("SELECT 1 AS one");
    } catch {
      throw ApiError.unavailable({ database: "unreachable" });
    }
    return { status: "ok" };
  }
}
