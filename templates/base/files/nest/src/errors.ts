// The JSON error envelope every service of the workspace answers with (crates/core/src/error.rs):
//
//   {"error": {"code": "validation_failed", "message": "the request has invalid fields",
//              "fields": {"title": "must not be empty"}}}
//
// `code` is stable and meant for programs, `message` for people; `fields` only when specific
// inputs (or, for 503, dependencies) are at fault. Internal errors are logged with their cause,
// and clients only learn that something failed.
import {
  type ArgumentsHost,
  Catch,
  type ExceptionFilter,
  HttpException,
  HttpStatus,
  Logger,
} from "@nestjs/common";
import type { ValidationError } from "class-validator";
import type { Response } from "express";

export type FieldErrors = Record<string, string>;

/** An error a handler throws; the filter below turns it into the envelope. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: FieldErrors = {},
  ) {
    super(message);
    this.name = "ApiError";
  }

  static unauthorized(): ApiError {
    return new ApiError(401, "unauthorized", "authentication is required");
  }

  static notFound(what: string): ApiError {
    return new ApiError(404, "not_found", `${what} not found`);
  }

  static validation(fields: FieldErrors): ApiError {
    return new ApiError(422, "validation_failed", "the request has invalid fields", fields);
  }

  static unavailable(fields: FieldErrors): ApiError {
    return new ApiError(503, "unavailable", "the service is not ready", fields);
  }
}

/** class-validator's findings as the envelope's `fields`: the first problem of each property. */
export function validationFailed(errors: ValidationError[]): ApiError {
  const fields: FieldErrors = {};
  const collect = (list: ValidationError[], prefix: string) => {
    for (const error of list) {
      const name = prefix + error.property;
      // class-validator records a property's decorators bottom up: the last constraint is the
      // one written first, the most basic (a string at all before its length).
      const first = Object.values(error.constraints ?? {}).at(-1);
      if (first !== undefined) fields[name] = first;
      collect(error.children ?? [], `${name}.`);
    }
  };
  collect(errors, "");
  return ApiError.validation(fields);
}

/** The `code`s of the statuses Nest itself answers with (unknown route, malformed JSON...). */
const CODES: Record<number, [string, string]> = {
  [HttpStatus.BAD_REQUEST]: ["bad_request", "the request is malformed"],
  [HttpStatus.UNAUTHORIZED]: ["unauthorized", "authentication is required"],
  [HttpStatus.FORBIDDEN]: ["forbidden", "permission denied"],
  [HttpStatus.NOT_FOUND]: ["not_found", "route not found"],
  [HttpStatus.METHOD_NOT_ALLOWED]: ["method_not_allowed", "method not allowed"],
  [HttpStatus.PAYLOAD_TOO_LARGE]: ["payload_too_large", "the request body is too large"],
  [HttpStatus.UNSUPPORTED_MEDIA_TYPE]: ["unsupported_media_type", "the body must be JSON"],
};

@Catch()
export class ErrorEnvelopeFilter implements ExceptionFilter {
  private readonly logger = new Logger("errors");

  catch(exception: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<Response>();
    const error = this.toApiError(exception);
    const body: { code: string; message: string; fields?: FieldErrors } = {
      code: error.code,
      message: error.message,
    };
    if (Object.keys(error.fields).length > 0) body.fields = error.fields;
    response.status(error.status).json({ error: body });
  }

  private toApiError(exception: unknown): ApiError {
    if (exception instanceof ApiError) return exception;
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const known = CODES[status];
      if (known) {
        // Body-parser's errors say what was wrong with the body; Nest's own say little.
        const message = status === 400 ? exception.message : known[1];
        return new ApiError(status, known[0], message);
      }
      if (status < 500) return new ApiError(status, "bad_request", exception.message);
    }
    // express's body parser throws plain errors with a status (too large, bad JSON).
    const status = (exception as { status?: unknown } | null)?.status;
    if (typeof status === "number" && CODES[status] && status < 500) {
      const [code, message] = CODES[status];
      return new ApiError(status, code, status === 400 ? "the body is not valid JSON" : message);
    }
    this.logger.error({ err: exception }, "internal error");
    return new ApiError(500, "internal", "internal error");
  }
}
