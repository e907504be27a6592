// GET /api/<service>/me: the signed-in user, as the api's /api/auth/me shows them.
import { Controller, Get, UseGuards } from "@nestjs/common";
import { ApiBearerAuth, ApiOkResponse, ApiTags, ApiUnauthorizedResponse } from "@nestjs/swagger";

import { AuthGuard, CurrentPrincipal, type Principal } from "./auth/auth.guard";
import type { User } from "./auth/sessions";

type Me = User & { impersonated_by?: { id: string; email: string } };

@ApiTags("account")
@ApiBearerAuth()
@UseGuards(AuthGuard)
@Controller()
export class MeController {
  @Get("me")
  @ApiOkResponse({ description: "The user, with `impersonated_by` during an impersonation" })
  @ApiUnauthorizedResponse({ description: "No valid access token, or its session has ended" })
  me(@CurrentPrincipal() principal: Principal): Me {
    const me: Me = { ...principal.user };
    if (principal.impersonator) me.impersonated_by = principal.impersonator;
    return me;
  }
}
