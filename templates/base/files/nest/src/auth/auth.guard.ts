// Authentication of every route that needs it: `Authorization: Bearer <access token>` only.
// Session cookies are not accepted here: a cookie comes with cross-site requests too, and this
// service does not implement the api's CSRF rule.
import {
  type CanActivate,
  createParamDecorator,
  type ExecutionContext,
  Inject,
  Injectable,
  Logger,
} from "@nestjs/common";
import type { Request } from "express";

import { ApiError } from "../errors";
import { type AccessClaims, InvalidToken, KeysUnavailable, TokenVerifier } from "./tokens";
import { Sessions, type User } from "./sessions";

/** Who a request is authenticated as. */
export interface Principal {
  user: User;
  sessionId: string;
  /** The staff member impersonating the user, when the token is an impersonation's. */
  impersonator?: { id: string; email: string };
  /**
   * The organization the token was switched to (its `org_id` claim, with the orgs module): not
   * checked here; what acts in it checks the membership.
   */
  organization?: string;
}

type AuthenticatedRequest = Request & { principal?: Principal };

@Injectable()
export class AuthGuard implements CanActivate {
  private readonly logger = new Logger("auth");

  constructor(
    @Inject(TokenVerifier) private readonly verifier: TokenVerifier,
    @Inject(Sessions) private readonly sessions: Sessions,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    const token = /^Bearer ([^\s]+)$/i.exec(request.headers.authorization ?? "")?.[1];
    if (token === undefined) throw ApiError.unauthorized();
    let claims: AccessClaims;
    try {
      claims = await this.verifier.verify(token);
    } catch (error) {
      if (error instanceof KeysUnavailable) {
        this.logger.warn(error.message);
        throw ApiError.unavailable({ jwks: "the api's keys cannot be fetched" });
      }
      if (error instanceof InvalidToken) {
        this.logger.debug(`token refused: ${error.message}`);
        throw ApiError.unauthorized();
      }
      throw error;
    }
    const user = await this.sessions.user(claims.sid, Math.floor(Date.now() / 1000));
    if (!user || user.id !== claims.sub) throw ApiError.unauthorized();
    request.principal = {
      user,
      sessionId: claims.sid,
      impersonator: claims.act && { id: claims.act.sub, email: claims.act.email },
      organization: claims.org_id,
    };
    return true;
  }
}

/** The [`Principal`] of a request the guard let through. */
export const CurrentPrincipal = createParamDecorator(
  (_: unknown, context: ExecutionContext): Principal => {
    const principal = context.switchToHttp().getRequest<AuthenticatedRequest>().principal;
    // Only reachable on a route without the guard: a programming error, not a client's.
    if (!principal) throw new Error("CurrentPrincipal used on a route without AuthGuard");
    return principal;
  },
);
