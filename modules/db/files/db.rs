//! The SQL database every service shares: SQLite (embedded, the default) or PostgreSQL, chosen
//! at start-up by the scheme of `DATABASE_URL`.
//!
//! # Queries
//!
//! Queries go through sqlx's `Any` driver, so each is written once and runs on both backends:
//!
//! ```no_run
//! # async fn example(db: &shared::db::Database, id: i64) -> Result<(), sqlx::Error> {
//! let email: Option<String> = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
//!     .bind(id)
//!     .fetch_optional(db.pool())
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! - Placeholders are `$1`, `$2`, ...: PostgreSQL's syntax, which SQLite understands as well.
//! - Values are `bool`, `i16`, `i32`, `i64`, `f32`, `f64`, `String` and `Vec<u8>`, or `Option`s
//!   of them. Store timestamps as `BIGINT` Unix times and UUIDs as `TEXT`, and declare booleans
//!   `BOOLEAN` in both dialects (SQLite otherwise hands back integers).
//! - Stick to the SQL both speak (`RETURNING`, `ON CONFLICT ... DO`, `LIMIT`/`OFFSET`, ...); where a
//!   statement must differ, branch on [`Database::backend`].
//! - Handlers can use `?` on `sqlx::Error`: it becomes an internal [`ApiError`]. Look rows up with
//!   `fetch_optional` and turn `None` into [`ApiError::NotFound`] where a 404 is meant.
//!
//! # Migrations
//!
//! Each schema change is a pair of files, `migrations/sqlite/<version>_<name>.sql` and
//! `migrations/postgres/<version>_<name>.sql`, embedded in the binary at compile time and applied
//! in version order by [`Database::migrate`] for the backend in use. Every service migrates at
//! start; on PostgreSQL a lock keeps services starting together from applying one twice.
//!
//! # TLS
//!
//! Connections to PostgreSQL are not encrypted: add a TLS feature to sqlx in `Cargo.toml`
//! (`tls-rustls`) and `?sslmode=require` to the URL before reaching a server across a network.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyConnection, AnyPool, Connection};

use crate::config::Env;
use crate::error::{ApiError, BoxError};
use crate::http::ReadinessCheck;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a query waits for a free connection before failing, and how long start-up waits for
/// the database: long enough for a busy moment, short enough to fail while a client still waits.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which database `DATABASE_URL` points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        })
    }
}

/// Where the database is and how many connections to keep. Not `Debug`: the URL may hold a
/// password.
pub struct DatabaseConfig {
    url: String,
    backend: Backend,
    max_connections: u32,
}

impl DatabaseConfig {
    /// Reads `DATABASE_URL` and `DATABASE_MAX_CONNECTIONS`.
    pub fn from_env(env: &mut Env) -> Self {
        let url: String = env.required("DATABASE_URL").unwrap_or_default();
        let backend = Backend::of_url(&url).unwrap_or_else(|| {
            if !url.is_empty() {
                env.record("DATABASE_URL", "must start with sqlite: or postgres://");
            }
            // A placeholder: `Env::finish` stops start-up before it is used.
            Backend::Sqlite
        });
        let max_connections = env.optional("DATABASE_MAX_CONNECTIONS", 10);
        if max_connections == 0 {
            env.record("DATABASE_MAX_CONNECTIONS", "must be at least 1");
        }
        Self {
            url,
            backend,
            max_connections,
        }
    }
}

/// A pool of connections to the database, cheap to clone and share between tasks.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
}

impl Database {
    /// Connects, creating the SQLite file (and its directory) when it does not exist yet.
    pub async fn connect(config: &DatabaseConfig) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = config.backend;
        if backend == Backend::Sqlite {
            create_sqlite_dir(&config.url)?;
        }
        let pool = match AnyPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(&config.url)
            .await
        {
            Ok(pool) => pool,
            Err(error) => {
                // The pool retries until its timeout and then reports only that; one direct
                // attempt tells why ("connection refused", "password authentication failed").
                let cause = AnyConnection::connect(&config.url).await.err();
                return Err(DbError::Connect(backend, cause.unwrap_or(error)));
            }
        };
        if backend == Backend::Sqlite {
            // Lets readers proceed while another connection, or another service, writes. The
            // mode is stored in the database file, so setting it once per start is enough.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .map_err(|error| DbError::Connect(backend, error))?;
        }
        tracing::info!(%backend, "connected to the database");
        Ok(Self { pool, backend })
    }

    /// Applies the migrations this database has not seen yet.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await.map_err(DbError::Migrate)
    }

    /// The pool to run queries on.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Waits for the connections in use to be returned, then closes them all.
    pub async fn close(&self) {
        self.pool.close().await;
        tracing::info!("closed the database connections");
    }
}

impl ReadinessCheck for Database {
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + '_>> {
        Box::pin(async move {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
    }
}

/// Why the database could not be used at start-up.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create {} for the SQLite database", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot connect to the {0} database")]
    Connect(Backend, #[source] sqlx::Error),
    #[error("cannot apply the database migrations")]
    Migrate(#[source] MigrateError),
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        Self::internal(error)
    }
}

/// SQLite creates a missing database file (with `mode=rwc`) but not its directory.
fn create_sqlite_dir(url: &str) -> Result<(), DbError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|error| DbError::Connect(Backend::Sqlite, error))?;
    match options.get_filename().parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                dir: dir.to_owned(),
                source,
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrates_a_new_sqlite_file_and_answers_queries() {
        let dir = std::env::temp_dir().join(format!("shared-db-test-{}", std::process::id()));
        let url = format!("sqlite://{}/nested/test.db?mode=rwc", dir.display());
        let mut env = Env::from_vars([("DATABASE_URL", url)]);
        let config = DatabaseConfig::from_env(&mut env);
        env.finish().unwrap();

        let db = Database::connect(&config).await.unwrap();
        db.migrate().await.unwrap();
        let answer: i64 = sqlx::query_scalar("SELECT $1 + 1")
            .bind(41_i64)
            .fetch_one(db.pool())
            .await
            .unwrap();
        db.check().await.unwrap();
        db.close().await;
        std::fs::remove_dir_all(dir).unwrap();

        assert_eq!(answer, 42);
    }

    #[test]
    fn rejects_unknown_schemes() {
        let mut env = Env::from_vars([("DATABASE_URL", "mysql://localhost/app")]);
        DatabaseConfig::from_env(&mut env);

        let message = env.finish().unwrap_err().to_string();
        assert!(
            message.contains("DATABASE_URL must start with"),
            "{message}"
        );
    }
}
