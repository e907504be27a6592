//! The load program of scripts/bench-jobs.sh, on the generated workspace's own queue.
//!
//! - `jobs-load enqueue JOBS BATCH TASKS`: enqueues JOBS no-op jobs, BATCH per transaction
//!   (`jobs::enqueue_all`), from TASKS concurrent tasks; prints `RESULT rate=<jobs/s>`.
//! - `jobs-load trickle JOBS GAP_MS`: enqueues JOBS no-op jobs one per transaction, GAP_MS apart
//!   (the pickup latency run: each job's payload holds the time it was enqueued, about a
//!   millisecond before its commit).
//! - `jobs-load work`: a worker for the no-op kind with the settings of the environment
//!   (`BENCH_JOBS_CONCURRENCY`, `JOBS_BATCH_SIZE`, ...), like a service's, until SIGTERM; then
//!   writes each job's pickup latency (ms, from its enqueueing to its handler's start) to the file
//!   `LATENCY_FILE`, one a line.
//!
//! `DATABASE_URL` says where; the schema must be migrated (the api's start does it).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use shared::config::Env;
use shared::db::{Database, DatabaseConfig};
use shared::jobs::{self, Job, JobContext, JobError, Jobs, JobsConfig, NewJob};

/// A job that does nothing but note how long it waited.
struct Noop {
    latencies: Arc<Mutex<Vec<i64>>>,
}

#[derive(Serialize, Deserialize)]
struct Stamp {
    /// When the job was enqueued, Unix milliseconds.
    at_ms: i64,
}

impl Job for Noop {
    const KIND: &'static str = "bench.noop";
    type Payload = Stamp;

    async fn run(&self, _: &JobContext, stamp: Stamp) -> Result<(), JobError> {
        let waited = jobs::worker::now_ms() - stamp.at_ms;
        self.latencies.lock().unwrap().push(waited);
        Ok(())
    }
}

fn noop(at_ms: i64) -> NewJob {
    NewJob::of::<Noop>(&Stamp { at_ms }).unwrap()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |n: usize| -> usize { args[n].parse().expect("a number") };
    let mut env = Env::load();
    let db_config = DatabaseConfig::from_env(&mut env);
    let jobs_config = JobsConfig::from_env(&mut env, "BENCH");
    env.finish().expect("valid settings");
    let db = Database::connect(&db_config).await.expect("the database answers");
    match args[0].as_str() {
        "enqueue" => {
            let (total, batch, tasks) = (number(1), number(2), number(3));
            let started = Instant::now();
            let mut handles = Vec::new();
            for task in 0..tasks {
                let db = db.clone();
                let share = total / tasks + usize::from(task < total % tasks);
                handles.push(tokio::spawn(async move {
                    let mut left = share;
                    while left > 0 {
                        let now = jobs::worker::now_ms();
                        let all: Vec<NewJob> = (0..batch.min(left)).map(|_| noop(now)).collect();
                        let mut tx = db.begin_write().await.unwrap();
                        jobs::enqueue_all(&mut tx, &all).await.unwrap();
                        tx.commit().await.unwrap();
                        left -= all.len();
                    }
                }));
            }
            for handle in handles {
                handle.await.unwrap();
            }
            let secs = started.elapsed().as_secs_f64();
            println!("RESULT rate={:.0} secs={secs:.2}", total as f64 / secs);
        }
        "trickle" => {
            let (total, gap_ms) = (number(1), number(2));
            for _ in 0..total {
                let mut tx = db.begin_write().await.unwrap();
                jobs::enqueue(&mut tx, &noop(jobs::worker::now_ms()))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(gap_ms as u64)).await;
            }
        }
        "work" => {
            let latencies = Arc::new(Mutex::new(Vec::new()));
            let queue = Jobs::new(db.clone(), jobs_config, "BENCH");
            let handlers = queue.handlers().register(Noop {
                latencies: latencies.clone(),
            });
            queue.run_worker(handlers).await.unwrap();
            let lines: Vec<String> = latencies
                .lock()
                .unwrap()
                .iter()
                .map(|ms| ms.to_string())
                .collect();
            let file = std::env::var("LATENCY_FILE").expect("LATENCY_FILE");
            std::fs::write(file, lines.join("\n")).unwrap();
        }
        other => panic!("unknown command {other}"),
    }
    db.close().await;
}
