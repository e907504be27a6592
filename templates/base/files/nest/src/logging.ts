// Structured logs (JSON lines from pino), each request's with the id it came with in
// `X-Request-Id` (a proxy's or another service's), or a new one; the id is sent back in the
// response's `X-Request-Id`, as the Rust services do.
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";

import { RequestMethod } from "@nestjs/common";
import type { Params } from "nestjs-pino";

/** An id from a client is logged as is: it must be short and printable. */
const ACCEPTABLE_ID = /^[\x21-\x7e]{1,128}$/;

export function requestId(request: IncomingMessage, response: ServerResponse): string {
  const given = request.headers["x-request-id"];
  const id = typeof given === "string" && ACCEPTABLE_ID.test(given) ? given : randomUUID();
  response.setHeader("X-Request-Id", id);
  return id;
}

export function loggerOptions(level: string): Params {
  return {
    // Every route, in the path syntax of Express 5 (Nest warns about the default `*`).
    forRoutes: [{ path: "{*path}", method: RequestMethod.ALL }],
    pinoHttp: {
      level,
      genReqId: requestId,
      // On every line logged while handling the request, the guard's and the handlers' too.
      customProps: (request) => ({ request_id: request.id }),
      // The request line without its headers: Authorization carries a bearer token.
      serializers: {
        req: (request: { method: string; url: string }) => ({
          method: request.method,
          url: request.url,
        }),
        res: (response: { statusCode: number }) => ({ status: response.statusCode }),
      },
      // Health checks every few seconds would drown the rest.
      autoLogging: { ignore: (request) => /^\/(healthz|readyz)$/.test(request.url ?? "") },
    },
  };
}
