//! The SQL database every service shares: SQLite (embedded, the default) or PostgreSQL, chosen
//! at start-up by the scheme of `DATABASE_URL`.
//!
//! # Queries
//!
//! Queries go through sqlx's `Any` driver, so each is written once and runs on both backends:
//!
//! ```no_run
//! # async fn example(db: &saaskit_core::db::Database, id: i64) -> Result<(), sqlx::Error> {
//! let email: Option<String> = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
//!     .bind(id)
//!     .fetch_optional(db.pool())
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! - Placeholders are `$1`, `$2`, ...: PostgreSQL's syntax, which SQLite understands as well.
//! - Columns are read and written as `i64`, `f64`, `String` or `Vec<u8>` (or `Option`s of them),
//!   which means declaring them `BIGINT`, `DOUBLE PRECISION`, `TEXT` or `BLOB`/`BYTEA`. Booleans
//!   are `BIGINT` 0 or 1 (`i64::from(flag)`, `value != 0`), timestamps `BIGINT` Unix times and
//!   UUIDs `TEXT`: the `Any` driver cannot read SQLite's `BOOLEAN` or `DATETIME` columns, nor
//!   PostgreSQL's `BOOLEAN`, `TIMESTAMPTZ`, `UUID`, `NUMERIC` or `JSONB`.
//! - Read a row's columns by name (`row.try_get("email")?`), never by position: a column added
//!   to or moved in the `SELECT` then cannot shift the others. The name is the column's, without
//!   its table (`users.email` comes back as `email`); give expressions (`count(*) AS total`) and
//!   the same name from two joined tables (`sessions.id AS session_id`) an alias, in lower case:
//!   PostgreSQL folds unquoted aliases to lower case, SQLite keeps them as written.
//! - Stick to the SQL both speak (`RETURNING`, `ON CONFLICT ... DO`, `LIMIT`/`OFFSET`, ...). A
//!   boolean expression such as `EXISTS (...)` comes back typed differently: fetch a row with
//!   `fetch_optional` or a `COUNT(*)` instead. Where a statement must differ, branch on
//!   [`Database::backend`].
//! - Handlers can use `?` on `sqlx::Error`: it becomes an internal [`ApiError`]. Look rows up with
//!   `fetch_optional` and turn `None` into [`ApiError::NotFound`] where a 404 is meant.
//!
//! # Migrations
//!
//! Each schema change is a pair of files, `migrations/sqlite/<version>_<name>.sql` and
//! `migrations/postgres/<version>_<name>.sql`, embedded in the binary at compile time and applied
//! in version order by [`Database::migrate`] for the backend in use. Migrations of a module
//! removed with `saaskit remove` are no longer in the binary; the database keeps their tables,
//! and start-up ignores that it applied them.
//!
//! Every service migrates at start, unless `DATABASE_MIGRATE_ON_START=false`; each binary also
//! takes `migrate` (`cargo run -p api -- migrate`), which applies the migrations and exits, for
//! deployments that run them as a job of their own before starting the services.
//!
//! Services started at the same moment on a database that lacks migrations (as systemd, compose
//! or Kubernetes start them) take turns: one applies the migrations while the others wait, then
//! find nothing left to do. On PostgreSQL, sqlx's migrator holds an advisory lock (taken through
//! the `Any` driver by PostgreSQL's own implementation) for the whole run. SQLite has no such
//! lock, so [`Database::migrate`] first takes an exclusive lock on a file next to the database,
//! `<database file>.migrations.lock`: an OS file lock (`flock` on Unix, `LockFileEx` on Windows),
//! released by the OS if its holder dies, and which never blocks SQLite's own locking, since it
//! is on another file. The lock file stays: deleting it could let two services each lock a
//! different file of the same name. [`Database::connect`] holds the same lock while it opens a
//! new file and switches it to WAL, which takes SQLite's exclusive lock: a service connecting
//! at that moment would otherwise fail with "database is locked".
//!
//! # TLS
//!
//! The default build has no TLS: connections to PostgreSQL are plain text, fine on one host or
//! a private network. Across any other network, build with the `tls` feature (`cargo build
//! --release --features tls`, rustls with the system's root certificates) and add
//! `sslmode=verify-full` to `DATABASE_URL`, which checks the server's certificate and name;
//! `sslrootcert=/path/to/ca.pem` trusts a private CA as well. A build without the feature refuses
//! `sslmode=require`, `verify-ca` and `verify-full` at start rather than connecting in plain text.
//!
//! # Build time
//!
//! sqlx's macros (`query!`, `migrate!`, `#[derive(FromRow)]`) are left out: they would compile
//! both database drivers a second time, for the compiler's own use. `build.rs` embeds the
//! migrations instead; read rows by column name with `Row::try_get`, in a function of the type
//! they become (`User::from_row`). The `idna_adapter` dependency and `.cargo/config.toml` are there to
//! shorten the build too.

pub mod turns;

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, AnyConnection, AnyPool, AssertSqlSafe, Connection, SqlSafeStr, Transaction};

use crate::config::{Env, TLS_NOT_BUILT};
use crate::error::{ApiError, BoxError};
use crate::http::ReadinessCheck;

// `SQLITE_MIGRATIONS` and `POSTGRES_MIGRATIONS`: `(version, name, sql)` of every migration, in
// version order, read from `migrations/` by `build.rs`.
include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

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
    migrate_on_start: bool,
}

impl DatabaseConfig {
    /// Reads `DATABASE_URL`, `DATABASE_MAX_CONNECTIONS` and `DATABASE_MIGRATE_ON_START`.
    pub fn from_env(env: &mut Env) -> Self {
        let url: String = env.required("DATABASE_URL").unwrap_or_default();
        let backend = Backend::of_url(&url).unwrap_or_else(|| {
            if !url.is_empty() {
                env.record("DATABASE_URL", "must start with sqlite: or postgres://");
            }
            // A placeholder: `Env::finish` stops start-up before it is used.
            Backend::Sqlite
        });
        if backend == Backend::Postgres && requires_tls(&url) && cfg!(not(feature = "tls")) {
            env.record("DATABASE_URL", TLS_NOT_BUILT);
        }
        let max_connections = env.optional("DATABASE_MAX_CONNECTIONS", 10);
        if max_connections == 0 {
            env.record("DATABASE_MAX_CONNECTIONS", "must be at least 1");
        }
        Self {
            url,
            backend,
            max_connections,
            migrate_on_start: env.optional("DATABASE_MIGRATE_ON_START", true),
        }
    }
}

/// Whether a PostgreSQL URL's `sslmode` makes TLS mandatory (`prefer`, the default, falls back to
/// plain text by design).
fn requires_tls(url: &str) -> bool {
    let query = url.split_once('?').map_or("", |(_, query)| query);
    query.split('&').any(|pair| {
        matches!(
            pair.strip_prefix("sslmode=")
                .or_else(|| pair.strip_prefix("ssl-mode=")),
            Some("require" | "verify-ca" | "verify-full")
        )
    })
}

/// A pool of connections to the database, cheap to clone and share between tasks.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    /// The SQLite database file, to lock around migrations; `None` on PostgreSQL and for an
    /// in-memory SQLite database, which no other process can reach.
    sqlite_file: Option<PathBuf>,
    /// Where this instance's writers take turns on SQLite: one queue for all of them (the job
    /// queue's worker, webhook ingestion), shared by the clones.
    turns: Arc<turns::WriteTurns>,
}

// The async methods return boxed futures so that what they drive (sqlx's pool and drivers) is
// compiled once, in this crate, rather than again in every service binary that awaits them.
impl Database {
    /// Connects, creating the SQLite file (and its directory) when it does not exist yet.
    pub fn connect(config: &DatabaseConfig) -> BoxFuture<'_, Result<Self, DbError>> {
        Box::pin(async move {
            sqlx::any::install_default_drivers();
            let backend = config.backend;
            let sqlite_file = match backend {
                Backend::Sqlite => sqlite_file(&config.url)?,
                Backend::Postgres => None,
            };
            // Services starting together take turns to create the file and set its journal
            // mode, as they do for the migrations; released at the end of this block.
            let _lock = match &sqlite_file {
                Some(file) => Some(lock_migrations(file).await?),
                None => None,
            };
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
            Ok(Self {
                pool,
                backend,
                sqlite_file,
                turns: Arc::new(turns::WriteTurns::new(backend)),
            })
        })
    }

    /// At start-up: applies the migrations, unless the configuration leaves them to the
    /// `migrate` command (`DATABASE_MIGRATE_ON_START=false`).
    pub fn migrate_on_start(&self, config: &DatabaseConfig) -> BoxFuture<'_, Result<(), DbError>> {
        let migrate = config.migrate_on_start;
        Box::pin(async move {
            if migrate {
                self.migrate().await
            } else {
                tracing::info!(
                    "migrations left to the `migrate` command (DATABASE_MIGRATE_ON_START)"
                );
                Ok(())
            }
        })
    }

    /// Applies the migrations this database has not seen yet, waiting for another process that
    /// is applying them to finish first (see the module's documentation).
    pub fn migrate(&self) -> BoxFuture<'_, Result<(), DbError>> {
        let migrations = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let migrations = migrations.iter().map(|&(version, name, sql)| {
            // The marker `sqlx::migrate!` and sqlx-cli honour too.
            let no_transaction = sql.starts_with("-- no-transaction");
            let sql = AssertSqlSafe(sql).into_sql_str();
            Migration::new(
                version,
                name.into(),
                MigrationType::Simple,
                sql,
                no_transaction,
            )
        });
        let mut migrator = Migrator::with_migrations(migrations.collect());
        // A migration the database has applied but the binary no longer has belongs to a module
        // that was removed (`saaskit remove`): its tables stay, and start-up goes on.
        migrator.set_ignore_missing(true);
        Box::pin(async move {
            // Held until the migrator is done; dropping the file releases the lock.
            let _lock = match &self.sqlite_file {
                Some(file) => Some(lock_migrations(file).await?),
                None => None,
            };
            migrator.run(&self.pool).await.map_err(DbError::Migrate)?;
            tracing::info!("the database schema is up to date");
            Ok(())
        })
    }

    /// The pool to run queries on.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// This instance's turns to write on SQLite ([`turns::WriteTurns`]), shared by every clone.
    pub fn turns(&self) -> &turns::WriteTurns {
        &self.turns
    }

    /// Begins a transaction that writes. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a transaction that reads first and writes later cannot wait for another
    /// writer, and would fail with "database is locked" where this one waits its turn.
    pub fn begin_write(&self) -> BoxFuture<'_, Result<Transaction<'static, Any>, sqlx::Error>> {
        Box::pin(async move {
            match self.backend {
                Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
                Backend::Postgres => self.pool.begin().await,
            }
        })
    }

    /// Waits for the connections in use to be returned, then closes them all.
    pub fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.pool.close().await;
            tracing::info!("closed the database connections");
        })
    }
}

impl ReadinessCheck for Database {
    fn check(&self) -> BoxFuture<'_, Result<(), BoxError>> {
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
    #[error("cannot lock {}, which services starting together take turns on", path.display())]
    LockMigrations {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        Self::internal(error)
    }
}

/// The file of the SQLite database at `url` (`None` when it is in memory), once its directory
/// exists: SQLite creates a missing database file (with `mode=rwc`) but not its directory.
fn sqlite_file(url: &str) -> Result<Option<PathBuf>, DbError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|error| DbError::Connect(Backend::Sqlite, error))?;
    let file = options.get_filename();
    if file.as_os_str() == ":memory:" || url.contains("mode=memory") {
        return Ok(None);
    }
    if let Some(dir) = file.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
            dir: dir.to_owned(),
            source,
        })?;
    }
    Ok(Some(file.to_owned()))
}

/// Takes the exclusive lock on `<database>.migrations.lock`, waiting for the process holding
/// it (another service applying the migrations) to release it. The lock lasts as long as the
/// returned file is open.
async fn lock_migrations(database: &Path) -> Result<File, DbError> {
    let mut name = database.as_os_str().to_owned();
    name.push(".migrations.lock");
    let path = PathBuf::from(name);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| DbError::LockMigrations {
            path: path.clone(),
            source,
        })?;
    // Waiting blocks a thread: not one of the runtime's, which serve requests.
    let locked = tokio::task::spawn_blocking(move || file.lock().map(|()| file)).await;
    match locked {
        Ok(Ok(file)) => Ok(file),
        Ok(Err(source)) => Err(DbError::LockMigrations { path, source }),
        Err(join) => Err(DbError::LockMigrations {
            path,
            source: io::Error::other(join),
        }),
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
    fn tls_is_required_by_the_strict_ssl_modes_only() {
        assert!(requires_tls("postgres://db/app?sslmode=verify-full"));
        assert!(requires_tls(
            "postgres://db/app?connect_timeout=5&ssl-mode=require"
        ));
        assert!(!requires_tls("postgres://db/app?sslmode=prefer"));
        assert!(!requires_tls("postgres://db/app"));
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
