// The HTTP application around the root module, as main.ts serves it and the tests drive it.
import { type INestApplication, ValidationPipe } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { DocumentBuilder, SwaggerModule } from "@nestjs/swagger";
import { Logger } from "nestjs-pino";

import { type AppOptions, AppModule } from "./app.module";
import { ErrorEnvelopeFilter, validationFailed } from "./errors";
import { SERVICE } from "./service";

export async function createApp(options: AppOptions): Promise<INestApplication> {
  const app = await NestFactory.create(AppModule.forRoot(options), { bufferLogs: true });
  app.useLogger(app.get(Logger));
  // Nothing tells clients which framework answers, as with the Rust services.
  (app.getHttpAdapter().getInstance() as { disable(setting: string): void }).disable(
    "x-powered-by",
  );
  // Every route but the probes under /api/<service>, as the Rust services' routes are.
  app.setGlobalPrefix(`api/${SERVICE.name}`, { exclude: ["healthz", "readyz"] });
  app.useGlobalFilters(new ErrorEnvelopeFilter());
  app.useGlobalPipes(
    new ValidationPipe({
      whitelist: true,
      forbidUnknownValues: true,
      exceptionFactory: validationFailed,
    }),
  );
  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle(`${SERVICE.workspace} ${SERVICE.name}`)
      .setDescription(
        'Errors have the shape {"error": {"code", "message", "fields"?}}. ' +
          "Authenticate with the api's access token: Authorization: Bearer <token>.",
      )
      .setVersion("0.1.0")
      .addBearerAuth()
      .build(),
  );
  SwaggerModule.setup("docs", app, document, { jsonDocumentUrl: "openapi.json" });
  return app;
}
