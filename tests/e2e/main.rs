//! End-to-end tests of the generated workspace, in one test binary so that the default workspace
//! is generated, linted and built once (see `support::default_workspace`):
//!
//! - `health`: the workspace is fmt- and clippy-clean, builds, passes its own tests, and every
//!   service starts against SQLite and PostgreSQL, answers `/healthz` and `/readyz`, and stops
//!   gracefully;
//! - `api`: the api's accounts and authentication contract (docs/auth.md) over HTTP, against a
//!   fresh SQLite file and a fresh PostgreSQL database;
//! - `webhooks`: the webhooks service's ingestion, processing and operations contract
//!   (docs/webhooks.md), with the api beside it, on both databases;
//! - `admin`: the admin service's JSON API, permissions, impersonation, audit log and the
//!   panel's sign-in and CSRF protection over HTTP (docs/admin.md), on both databases;
//! - `ops`: what deployments rely on: services started together on a new database, the
//!   `migrate` and `healthcheck` commands, slow clients disconnected, start-up errors without
//!   backtraces;
//! - `config`: each service's own CORS origins, and production start-up refusing secrets
//!   anyone can know and TLS settings the build cannot honour;
//! - `jobs`: the job queue's workers on both databases (one run per job across instances, a
//!   recurring job once per period, retries, dead jobs retried and discarded by admins, a
//!   killed worker's job run again after its lease, the `worker` command);
//! - `email`: the account emails (verification, password reset, email change) through a real
//!   SMTP server the test starts, its outage, and a worker killed mid-delivery;
//! - `deploy`: the `deploy/vps` module's systemd units verified with the binaries in place,
//!   its nginx site in front of the services over HTTPS, and a restart on a socket held as
//!   systemd holds it (socket activation) that loses no request;
//! - `openapi`: each service's OpenAPI document covers its routes, and Schemathesis fuzzing
//!   against it finds no 5xx and no answer outside it, on both databases;
//! - `order`: a workspace whose modules were added in another order than the default one
//!   behaves the same (layers that apply to a whole service cover every module's routes);
//! - `nest`: the NestJS service (docs/nest.md) generated, installed with `npm ci`, linted, built
//!   and tested, then run beside the api and the admin service on both databases: it accepts the
//!   api's tokens and nothing else, sessions ended anywhere end there at once, a key rotation
//!   needs no restart of it, and its notes are each user's own;
//! - `observability`: JSON logs with request ids and no secret over a whole flow, and `/metrics`
//!   on its own listener read by the Prometheus project's parser (docs/observability.md);
//! - `orgs`: organizations (docs/orgs.md): isolation between them endpoint by endpoint, the
//!   invitations through a real SMTP server, the owner rules, switched tokens, on both databases;
//! - `panel`: the admin panel driven in headless Chromium (`browser`), with screenshots.
//! - `handlers`: a job and an email made by `saaskit generate job|email`, clippy-clean, the job
//!   run by the api's worker and the email delivered to a real SMTP server, on both databases.
//!
//! All generated workspaces share one Cargo target directory (`target/generated-workspaces`), so
//! their dependencies are compiled once per machine.

#[path = "../common/mod.rs"]
mod common;

mod admin;
mod admin_ops;
mod admin_orgs;
mod api;
mod browser;
mod client;
mod config;
mod deploy;
mod email;
mod flags;
mod handlers;
mod health;
mod jobs;
mod nest;
mod observability;
mod openapi;
mod ops;
mod order;
mod org_billing;
mod orgs;
mod panel;
mod resources;
mod support;
mod traces;
mod webhooks;
