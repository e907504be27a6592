//! Where this instance's writers take turns on SQLite: see [`WriteTurns`].

use std::ops::{Deref, DerefMut};

use sqlx::{Any, AnyConnection, Transaction};
use tokio::sync::{Mutex, MutexGuard};

use crate::db::{Backend, Database};

/// Where this instance's transactions that write wait for their turn, on SQLite.
///
/// SQLite lets one transaction write at a time. The others poll its lock with growing sleeps
/// (its busy handler, up to 100 ms each), so that one can lose every round for a second or more
/// while the others get through, and the lock often sits free while they sleep. Here they queue
/// in order on a mutex instead, which wakes the next one as soon as the lock is free. PostgreSQL
/// locks rows, not the database: there, nobody waits here.
#[derive(Debug)]
pub struct WriteTurns {
    sqlite: Option<Mutex<()>>,
}

impl WriteTurns {
    pub fn new(backend: Backend) -> Self {
        Self {
            sqlite: (backend == Backend::Sqlite).then(|| Mutex::new(())),
        }
    }

    /// Waits for this instance's turn to write, on SQLite; hold it until the writes end.
    pub async fn take(&self) -> Option<MutexGuard<'_, ()>> {
        match &self.sqlite {
            Some(turn) => Some(turn.lock().await),
            None => None,
        }
    }

    /// Begins a transaction that writes ([`Database::begin_write`]) in this instance's turn.
    pub async fn begin(&self, db: &Database) -> sqlx::Result<WriteTransaction<'_>> {
        let turn = self.take().await;
        let tx = db.begin_write().await?;
        Ok(WriteTransaction { tx, _turn: turn })
    }
}

/// A transaction that writes, holding this instance's turn on SQLite until it ends. Dereferences
/// to its connection, like [`Transaction`]. Dropped unfinished, it rolls back.
pub struct WriteTransaction<'a> {
    tx: Transaction<'static, Any>,
    // Declared after `tx`, so released after it.
    _turn: Option<MutexGuard<'a, ()>>,
}

impl WriteTransaction<'_> {
    pub async fn commit(self) -> sqlx::Result<()> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> sqlx::Result<()> {
        self.tx.rollback().await
    }
}

impl Deref for WriteTransaction<'_> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for WriteTransaction<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}
