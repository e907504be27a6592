//! Passwords: the policy new passwords must meet, and argon2id hashing off the async runtime.

use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, TrySendError};
use std::sync::{Arc, LazyLock, Mutex};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use thread_priority::{ThreadPriority, set_current_thread_priority};
use tokio::sync::oneshot;

use super::AuthError;

/// Shorter passwords are refused: length is what makes a password hard to guess.
pub const MIN_CHARS: usize = 10;

/// Longer passwords are refused, so that hashing one costs a bounded amount of work.
pub const MAX_BYTES: usize = 1024;

/// Why a new password is refused, worded to follow the field name ("password must be ...").
pub fn policy_violation(password: &str) -> Option<String> {
    if password.chars().count() < MIN_CHARS {
        Some(format!("must be at least {MIN_CHARS} characters long"))
    } else if password.len() > MAX_BYTES {
        Some(format!("must be at most {MAX_BYTES} bytes long"))
    } else if is_common(password) {
        Some("is too common; choose one that is harder to guess".to_owned())
    } else {
        None
    }
}

fn is_common(password: &str) -> bool {
    static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
        include_str!("common-passwords.txt")
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect()
    });
    COMMON.contains(password.to_lowercase().as_str())
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The password matches; `rehash` holds a new hash when the stored one was made with other
    /// parameters than today's, to be saved in its place.
    Match {
        rehash: Option<String>,
    },
    Mismatch,
}

/// Hashes and verifies passwords with argon2id at OWASP's minimum parameters (19 MiB of memory,
/// 2 passes, 1 lane), on threads of their own at the lowest CPU priority, behind a bounded queue.
///
/// One hash takes tens of milliseconds of CPU. Run on the async runtime, a handful of concurrent
/// logins would stall every other request; run on Tokio's blocking threads, they would still
/// compete with the runtime for the cores at the same priority, and the requests around them
/// would wait for a scheduler time slice (several milliseconds). On threads at the lowest
/// priority (nice 19), hashing gets the CPU the rest of the API leaves: logins slow down when the
/// service is saturated, and nothing else does.
///
/// The queue in front of the threads is bounded: under a flood of sign-ins (or of password
/// changes), a request that finds it full is refused at once with 503 and `Retry-After`
/// ([`AuthError::Busy`]) rather than waiting behind the flood until it times out, and a job
/// whose request has gone (timed out, or the client left) is dropped unhashed when its turn
/// comes. So the queue holds only work someone still waits for, and drains in a bounded time.
#[derive(Clone)]
pub struct Passwords {
    argon2: Argon2<'static>,
    params: Params,
    threads: Arc<HashingThreads>,
    /// A hash of a random password, verified when a login names an unknown account so that the
    /// answer takes as long as for a wrong password and does not reveal which emails exist.
    dummy_hash: Arc<str>,
}

impl Passwords {
    /// Hashing with at most `queue` jobs waiting for a thread. Fails only when the operating
    /// system cannot provide random bytes.
    pub fn new(queue: usize) -> Result<Self, getrandom::Error> {
        let params = Params::DEFAULT;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut random = [0_u8; 32];
        getrandom::fill(&mut random)?;
        let dummy_hash = argon2
            .hash_password(&random)
            .expect("argon2 hashes 32-byte passwords with its default parameters")
            .to_string();
        Ok(Self {
            argon2,
            params,
            threads: Arc::new(HashingThreads::start(cores(), queue)),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) of `password`, with a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, AuthError> {
        let argon2 = self.argon2.clone();
        self.off_runtime(move || {
            argon2
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|error| AuthError::Internal(error.into()))
        })
        .await
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is no account,
    /// which always ends in [`Verified::Mismatch`] after the same amount of work.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<Verified, AuthError> {
        let argon2 = self.argon2.clone();
        let params = self.params.clone();
        let exists = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        self.off_runtime(move || {
            let hash =
                PasswordHash::new(&stored).map_err(|error| AuthError::Internal(error.into()))?;
            if argon2.verify_password(password.as_bytes(), &hash).is_err() || !exists {
                return Ok(Verified::Mismatch);
            }
            let rehash = if is_current(&params, &hash) {
                None
            } else {
                let new_hash = argon2.hash_password(password.as_bytes());
                Some(
                    new_hash
                        .map_err(|error| AuthError::Internal(error.into()))?
                        .to_string(),
                )
            };
            Ok(Verified::Match { rehash })
        })
        .await
    }

    /// Hashing jobs waiting for a thread (`password_hashing_queue_depth` in the metrics).
    pub fn queue_depth(&self) -> usize {
        self.threads.waiting.load(Ordering::Relaxed)
    }

    async fn off_runtime<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        self.threads
            .submit(work)?
            .await
            .map_err(|_| AuthError::Internal("a password hashing thread failed".into()))?
    }
}

/// How long a client refused for a full queue is asked to wait: about the time the queue takes
/// to drain at its default size.
const RETRY_AFTER_SECS: u64 = 1;

type Job = Box<dyn FnOnce() + Send>;

/// Threads each taking jobs from a shared, bounded queue, at the lowest CPU priority. As many
/// threads as cores: hashing uses every core the API leaves idle, and holds at most one 19 MiB
/// block per core however many people sign in at once (the others wait in the queue).
struct HashingThreads {
    queue: mpsc::SyncSender<Job>,
    /// Jobs queued and not yet taken by a thread: a channel does not say how many it holds.
    waiting: Arc<AtomicUsize>,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl HashingThreads {
    /// `threads` threads behind a queue of at most `queue` jobs.
    fn start(threads: usize, queue: usize) -> Self {
        let (queue, jobs) = mpsc::sync_channel::<Job>(queue);
        let jobs = Arc::new(Mutex::new(jobs));
        let waiting = Arc::new(AtomicUsize::new(0));
        for index in 0..threads {
            let jobs = Arc::clone(&jobs);
            let waiting = Arc::clone(&waiting);
            let spawned = std::thread::Builder::new()
                .name(format!("password-hashing-{index}"))
                .spawn(move || {
                    if let Err(error) = set_current_thread_priority(ThreadPriority::Min) {
                        tracing::warn!(?error, "password hashing runs at normal priority");
                    }
                    loop {
                        // The lock is held while waiting for a job, never while hashing.
                        let next = match jobs.lock() {
                            Ok(jobs) => jobs.recv(),
                            Err(_) => return,
                        };
                        // An error means every `Passwords` is gone: the service is stopping.
                        let Ok(job) = next else { return };
                        waiting.fetch_sub(1, Ordering::Relaxed);
                        // A panic drops the job's reply, which its caller reports as an error;
                        // the thread stays to take the next job.
                        let _ = panic::catch_unwind(AssertUnwindSafe(job));
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password hashing thread");
            }
        }
        Self { queue, waiting }
    }

    /// Queues `work`, whose result the receiver gives. Refused at once when the queue is full.
    fn submit<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<oneshot::Receiver<T>, AuthError> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The receiver is gone when the request was cancelled (its timeout passed, or the
            // client left): nobody wants the result, so the work is not done.
            if !done.is_closed() {
                let _ = done.send(work());
            }
        });
        // Counted before it is sent, so that a thread taking it at once never counts below 0.
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let sent = self.queue.try_send(job);
        if sent.is_err() {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        match sent {
            Ok(()) => Ok(result),
            Err(TrySendError::Full(_)) => Err(AuthError::Busy(RETRY_AFTER_SECS)),
            Err(TrySendError::Disconnected(_)) => Err(AuthError::Internal(
                "no password hashing thread is running".into(),
            )),
        }
    }
}

/// Whether `hash` was made with argon2id, its current version, and the `current` parameters.
fn is_current(current: &Params, hash: &PasswordHash) -> bool {
    hash.algorithm == argon2::ARGON2ID_IDENT
        && hash.version == Some(Version::V0x13.into())
        && Params::try_from(hash).is_ok_and(|params| {
            params.m_cost() == current.m_cost()
                && params.t_cost() == current.t_cost()
                && params.p_cost() == current.p_cost()
        })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[test]
    fn the_policy_wants_long_uncommon_passwords() {
        assert!(policy_violation("correct horse battery staple").is_none());
        assert!(policy_violation("short").unwrap().contains("at least 10"));
        assert!(
            policy_violation("QwertyUiop")
                .unwrap()
                .contains("too common")
        );
        assert!(
            policy_violation("1234567890")
                .unwrap()
                .contains("too common")
        );
        assert!(
            policy_violation(&"x".repeat(MAX_BYTES + 1))
                .unwrap()
                .contains("at most")
        );
        // Characters, not bytes: ten accented letters are ten characters.
        assert!(policy_violation("éàèùâêîôûç").is_none());
    }

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let passwords = Passwords::new(8).unwrap();

        let hash = passwords.hash("correct horse".into()).await.unwrap();

        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            passwords
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap(),
            Verified::Match { rehash: None }
        );
        assert_eq!(
            passwords
                .verify("wrong horse".into(), Some(hash))
                .await
                .unwrap(),
            Verified::Mismatch
        );
        assert_eq!(
            passwords.verify("anything".into(), None).await.unwrap(),
            Verified::Mismatch
        );
    }

    #[tokio::test]
    async fn hashes_with_old_parameters_are_upgraded() {
        let passwords = Passwords::new(8).unwrap();
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        );
        let old_hash = weak.hash_password(b"correct horse").unwrap().to_string();

        let verified = passwords
            .verify("correct horse".into(), Some(old_hash))
            .await
            .unwrap();

        let Verified::Match {
            rehash: Some(new_hash),
        } = verified
        else {
            panic!("expected a rehash, got {verified:?}");
        };
        assert!(new_hash.contains("m=19456,t=2,p=1"), "{new_hash}");
    }

    /// One thread, busy with a job until `release` is sent, and an empty queue of `queue`
    /// places behind it.
    fn held_thread(queue: usize) -> (HashingThreads, mpsc::Sender<()>) {
        let threads = HashingThreads::start(1, queue);
        let (started, has_started) = mpsc::channel::<()>();
        let (release, held) = mpsc::channel::<()>();
        let holding = threads.submit(move || {
            started.send(()).unwrap();
            held.recv()
        });
        assert!(holding.is_ok(), "the queue is empty");
        has_started.recv().unwrap();
        (threads, release)
    }

    #[tokio::test]
    async fn refuses_work_at_once_when_the_queue_is_full() {
        let (threads, release) = held_thread(1);
        let queued = threads.submit(|| 1);
        let refused = threads.submit(|| 2);

        assert!(matches!(refused, Err(AuthError::Busy(1))));
        release.send(()).unwrap();
        assert_eq!(queued.unwrap().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn drops_queued_work_nobody_waits_for() {
        let (threads, release) = held_thread(2);
        let done = Arc::new(AtomicBool::new(false));
        let abandoned = {
            let done = Arc::clone(&done);
            threads.submit(move || done.store(true, Ordering::SeqCst))
        };

        drop(abandoned.unwrap());
        release.send(()).unwrap();
        let after = threads.submit(|| "after").unwrap().await.unwrap();

        assert_eq!(after, "after");
        assert!(!done.load(Ordering::SeqCst));
    }
}
