//! The SQL database every service shares: SQLite (embedded, the default) or PostgreSQL, chosen
//! at start-up by the scheme of `DATABASE_URL`.
//!
//! # Queries
//!
//! Queries go through sqlx's `Any` driver, so each is written once and runs on both backends:
//!
//! ```no_run
//! # async fn example(db: &saas_starter_core::db::Database, id: i64) -> Result<(), sqlx::Error> {
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
//! they become (`User::from_row`). The `idna_adapter` dependency and the `libsqlite3-sys` profile
//! of the workspace's Cargo.toml are there to shorten the build too.

pub mod turns;

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use rusqlite::OpenFlags;
use rusqlite::config::DbConfig;
use rusqlite::types::{ToSqlOutput, ValueRef};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, AnyConnection, AnyPool, AssertSqlSafe, Connection, Row, SqlSafeStr, Transaction};

use crate::config::{Env, TLS_NOT_BUILT};
use crate::error::{ApiError, BoxError};
use crate::http::ReadinessCheck;
use crate::metrics::Metrics;

// `SQLITE_MIGRATIONS` and `POSTGRES_MIGRATIONS`: `(version, name, sql)` of every migration, in
// version order, read from `migrations/` by `build.rs`.
include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// How long a query waits for a free connection before failing, and how long start-up waits for
/// the database: long enough for a busy moment, short enough to fail while a client still waits.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection idle for longer than this is checked (a round trip) before a query gets it: one
/// the server or the network dropped in the meantime is replaced instead of failing the query.
/// sqlx's default checks every connection at every acquisition, which on PostgreSQL is a second
/// round trip for each query (and on SQLite two more hand-offs between threads); a connection
/// in steady use was just seen to work.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

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

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

/// A pool of connections to the database, cheap to clone and share between tasks.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    /// The SQLite database file, to lock around migrations; `None` on PostgreSQL and for an
    /// in-memory SQLite database, which no other process can reach.
    sqlite_file: Option<PathBuf>,
    /// The read-only connections of [`Database::read_row`], on a SQLite file.
    readers: Option<Arc<SqliteReaders>>,
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
                .test_before_acquire(false)
                .before_acquire(|connection, meta| {
                    Box::pin(async move {
                        if meta.idle_for > PING_IF_IDLE_FOR {
                            connection.ping().await?;
                        }
                        Ok(true)
                    })
                })
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
            let readers = sqlite_file.clone().map(SqliteReaders::new).map(Arc::new);
            Ok(Self {
                pool,
                backend,
                sqlite_file,
                readers,
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

    /// Runs `sql`, a read of at most one row, and turns the row into a `T` with `map`: for the
    /// reads every request makes (the session behind a token or a cookie).
    ///
    /// On a SQLite file the statement runs on the calling thread, on one of this process's
    /// read-only connections, with its prepared statement cached, instead of on the thread
    /// sqlx gives each of its connections: the two hand-offs between threads (about six context
    /// switches) cost more than the read itself. The database is in WAL mode, so readers never
    /// wait for writers, and each statement sees every transaction committed before it began,
    /// by this process or another: what was written through [`Database::pool`] (a revoked
    /// session) is seen by the next read. The statement blocks its thread while it runs, so
    /// keep this to lookups by an index. On PostgreSQL, and on an in-memory SQLite database,
    /// which other connections cannot see, it goes through the pool like any query.
    pub fn read_row<'a, T: Send + 'a>(
        &'a self,
        sql: &'static str,
        params: &'a [Param<'a>],
        map: fn(&dyn Columns) -> Result<T, sqlx::Error>,
    ) -> BoxFuture<'a, Result<Option<T>, sqlx::Error>> {
        Box::pin(async move {
            if let Some(readers) = &self.readers {
                match readers.read_row(sql, params, map) {
                    // Another connection holds SQLite's exclusive lock for a moment (recovery
                    // after a crash, a journal mode change): wait on the pool, not this thread.
                    Err(ReadError::Busy) => {}
                    Err(ReadError::Sqlite(error)) => return Err(sqlite_error(error)),
                    Err(ReadError::Map(error)) => return Err(error),
                    Ok(value) => return Ok(value),
                }
            }
            let mut query = sqlx::query(sql);
            for param in params {
                query = match *param {
                    Param::Text(text) => query.bind(text),
                    Param::Int(int) => query.bind(int),
                };
            }
            match query.fetch_optional(&self.pool).await? {
                Some(row) => map(&row).map(Some),
                None => Ok(None),
            }
        })
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

    /// Adds the pool's connections to `metrics`, read at each scrape: `db_pool_connections`
    /// by state (`idle`, `in_use`). sqlx keeps no count of the time spent waiting for a
    /// connection; a pool too small shows as `idle` at 0 with `in_use` at the maximum.
    pub fn register_metrics(&self, metrics: &Metrics) {
        let connections = Family::<PoolLabels, Gauge>::default();
        metrics.register(
            "db_pool_connections",
            "Connections the database pool holds, by state (idle or in_use)",
            connections.clone(),
        );
        let pool = self.pool.clone();
        metrics.refresh_on_scrape(move || {
            let size = i64::from(pool.size());
            let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
            connections
                .get_or_create(&PoolLabels { state: "idle" })
                .set(idle);
            connections
                .get_or_create(&PoolLabels { state: "in_use" })
                .set(size.saturating_sub(idle));
            Box::pin(std::future::ready(()))
        });
    }

    /// Waits for the connections in use to be returned, then closes them all.
    pub fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(readers) = &self.readers {
                readers.close();
            }
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

/// A value bound to a placeholder of [`Database::read_row`]'s statement.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Text(&'a str),
    Int(i64),
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Self::Text(text) => ValueRef::Text(text.as_bytes()),
            Self::Int(int) => ValueRef::Integer(int),
        }))
    }
}

/// The columns of a row, read by name (see the module's documentation): what
/// [`Database::read_row`] hands its `map`, whichever connection read the row.
pub trait Columns {
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn optional_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn optional_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
}

impl Columns for AnyRow {
    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.try_get(column)
    }

    fn optional_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(column)
    }

    fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
        self.try_get(column)
    }

    fn optional_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(column)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.get(column).map_err(sqlite_error)
    }

    fn optional_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        self.get(column).map_err(sqlite_error)
    }

    fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
        self.get(column).map_err(sqlite_error)
    }

    fn optional_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        self.get(column).map_err(sqlite_error)
    }
}

/// The read-only connections [`Database::read_row`] uses on a SQLite file, opened as needed:
/// a connection is taken for one statement and put back, so there are as many as threads that
/// ever read at the same moment (the runtime's workers), each with its statement cache.
///
/// rusqlite rather than sqlx for these: sqlx runs every SQLite connection on a thread of its
/// own, which is the cost this avoids. It links the same `libsqlite3-sys`, so one SQLite library
/// serves both.
#[derive(Debug)]
struct SqliteReaders {
    file: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

/// Why a read on a [`SqliteReaders`] connection failed.
enum ReadError {
    /// The database is locked for a moment: worth running the statement another way.
    Busy,
    Sqlite(rusqlite::Error),
    /// The caller's `map` refused the row.
    Map(sqlx::Error),
}

impl From<rusqlite::Error> for ReadError {
    fn from(error: rusqlite::Error) -> Self {
        if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) {
            Self::Busy
        } else {
            Self::Sqlite(error)
        }
    }
}

impl SqliteReaders {
    fn new(file: PathBuf) -> Self {
        Self {
            file,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn read_row<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        map: fn(&dyn Columns) -> Result<T, sqlx::Error>,
    ) -> Result<Option<T>, ReadError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let connection = match idle {
            Some(connection) => connection,
            None => self.open()?,
        };
        let result = Self::query(&connection, sql, params, map);
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(connection);
        result
    }

    fn query<T>(
        connection: &rusqlite::Connection,
        sql: &str,
        params: &[Param<'_>],
        map: fn(&dyn Columns) -> Result<T, sqlx::Error>,
    ) -> Result<Option<T>, ReadError> {
        let mut statement = connection.prepare_cached(sql)?;
        // Dropping `rows` resets the statement, which ends its read transaction: a statement
        // left open would keep reading the snapshot it started with, revoked sessions and all.
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        match rows.next()? {
            Some(row) => map(row).map(Some).map_err(ReadError::Map),
            None => Ok(None),
        }
    }

    fn open(&self) -> Result<rusqlite::Connection, ReadError> {
        // No mutex in SQLite: a connection is used by one thread at a time (`idle` hands it
        // over).
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = rusqlite::Connection::open_with_flags(&self.file, flags)?;
        // Fail at once when locked rather than block a thread of the runtime: `read_row` then
        // goes through the pool.
        connection.busy_timeout(Duration::ZERO)?;
        // One plan per statement, whatever the values bound: otherwise SQLite (built with STAT4)
        // prepares the cached statement again at every step after new values are bound, which
        // profiles showed as most of a read's time. These reads are lookups by a unique key,
        // whose plan no value changes.
        connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        Ok(connection)
    }

    fn close(&self) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// An error of the SQLite read connections, as the `sqlx::Error` the queries' callers handle.
fn sqlite_error(error: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Io(io::Error::other(error))
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
        // PostgreSQL's text cannot hold the NUL character (SQLite's can): a JSON string with
        // `\u0000` reaches the database intact and is refused there, a client's mistake.
        if let sqlx::Error::Database(db) = &error
            && db.code().as_deref() == Some(NUL_IN_TEXT)
        {
            return Self::BadRequest("text cannot contain the NUL character (\\u0000)".into());
        }
        Self::internal(error)
    }
}

/// PostgreSQL's `character_not_in_repertoire`: what it answers to a NUL character in text.
const NUL_IN_TEXT: &str = "22021";

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

    /// The configuration of a SQLite file at `file` (its directories created at connection).
    fn sqlite_config(file: &Path) -> DatabaseConfig {
        let url = format!("sqlite://{}?mode=rwc", file.display());
        let mut env = Env::from_vars([("DATABASE_URL", url)]);
        let config = DatabaseConfig::from_env(&mut env);
        env.finish().unwrap();
        config
    }

    #[tokio::test]
    async fn migrates_a_new_sqlite_file_and_answers_queries() {
        let dir = std::env::temp_dir().join(format!("shared-db-test-{}", std::process::id()));
        let config = sqlite_config(&dir.join("nested/test.db"));

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

    /// Two services on one SQLite file: what one commits, the other's next `read_row` sees, on
    /// a read-only connection it already used (whose cached statement must not keep an old
    /// snapshot).
    #[tokio::test]
    async fn read_row_sees_what_another_connection_committed_before_it() {
        let dir = std::env::temp_dir().join(format!("shared-db-read-{}", std::process::id()));
        let config = sqlite_config(&dir.join("test.db"));
        let writer = Database::connect(&config).await.unwrap();
        let reader = Database::connect(&config).await.unwrap();
        sqlx::query("CREATE TABLE sessions (id TEXT PRIMARY KEY, revoked_at BIGINT)")
            .execute(writer.pool())
            .await
            .unwrap();
        sqlx::query("INSERT INTO sessions (id) VALUES ('s1')")
            .execute(writer.pool())
            .await
            .unwrap();
        let in_force = || async {
            let params = [Param::Text("s1")];
            reader
                .read_row(
                    "SELECT id FROM sessions WHERE id = $1 AND revoked_at IS NULL",
                    &params,
                    |row| row.text("id"),
                )
                .await
                .unwrap()
        };

        let before = in_force().await;
        sqlx::query("UPDATE sessions SET revoked_at = 1 WHERE id = 's1'")
            .execute(writer.pool())
            .await
            .unwrap();
        let after = in_force().await;
        let readers = reader.readers.as_ref().map(|readers| {
            readers
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len()
        });
        writer.close().await;
        reader.close().await;
        std::fs::remove_dir_all(dir).unwrap();

        assert_eq!(before.as_deref(), Some("s1"));
        assert_eq!(after, None);
        assert_eq!(readers, Some(1), "both reads on one read-only connection");
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
