//! Counts kept in Redis ([`RedisStore`]), shared by every instance of every service that points
//! at the same Redis: what a deployment of several instances behind a load balancer needs, since
//! each instance's own [`InMemoryStore`](super::InMemoryStore) would let a client make the limit
//! once per instance.
//!
//! Each count is one Lua script on the server, which keeps the [`RateLimitStore`] contract:
//! Redis runs scripts one at a time, so checking and counting are one atomic step, and the
//! script reads the server's clock, so instances whose clocks disagree still count alike. The
//! script is written here rather than taken from redis-cell (`CL.THROTTLE`, the same algorithm):
//! that is a server module, which managed Redis services seldom let you load. Needs Redis 5 or
//! later (scripts that read the clock before writing). Remembered keys are plain keys that
//! expire (`SET key 1 PX <ttl>`, `EXISTS key`).

use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, RedisResult, Script};

use super::store::{Decision, Quota, RateLimitStore};
use crate::error::BoxError;

/// Put before every key, so that the counts are easy to find (and to tell from other data) in a
/// Redis shared with other uses. Workspaces that share one Redis use a database each
/// (`redis://host:6379/1`).
const KEY_PREFIX: &str = "rate-limit:";

/// GCRA (see [`RateLimitStore`]) on the server. `KEYS[1]`: the key; `ARGV[1]` and `ARGV[2]`: the
/// quota's interval and period in microseconds. The key holds the theoretical arrival time in
/// microseconds since the epoch (exact in Lua's doubles until the year 2255) and expires when it
/// has passed. Returns `{allowed (1 or 0), how far that time was ahead of now}`.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
local wait = math.max(tat - now, 0)
if wait + interval > period then
  return {0, wait}
end
redis.call('SET', KEYS[1], string.format('%d', now + wait + interval),
  'PX', math.ceil((wait + interval) / 1000))
return {1, wait}
";

/// How long a request may wait for Redis before it goes on without a count, whether Redis is
/// slow to answer or the connection is being re-established: a Redis in trouble must not stall
/// sign-ins.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts after a failed connection, 0.1 s apart and then doubling with jitter: about 1.5 s
/// of trying, at start-up and whenever the connection is lost.
const CONNECTION_RETRIES: usize = 4;

/// Rate-limit counts in Redis, over one multiplexed connection that reconnects by itself.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    gcra: Script,
}

impl RedisStore {
    /// Connects to the Redis of `client`, trying a few times before giving up.
    pub async fn connect(client: Client) -> Result<Self, RedisError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(CONNECTION_RETRIES);
        let connection = client.get_connection_manager_with_config(config).await?;
        Ok(Self {
            connection,
            gcra: Script::new(GCRA),
        })
    }
}

/// `answer`, or an error when Redis takes longer than [`RESPONSE_TIMEOUT`] to give it.
async fn within_timeout<T>(answer: impl Future<Output = RedisResult<T>>) -> Result<T, BoxError> {
    let answer = tokio::time::timeout(RESPONSE_TIMEOUT, answer)
        .await
        .map_err(|_| "Redis did not answer in time")??;
    Ok(answer)
}

impl RateLimitStore for RedisStore {
    fn hit<'a>(&'a self, key: &'a str, quota: Quota) -> BoxFuture<'a, Result<Decision, BoxError>> {
        Box::pin(async move {
            // A clone shares the connection: requests are pipelined on it.
            let mut connection = self.connection.clone();
            let mut script = self.gcra.key(format!("{KEY_PREFIX}{key}"));
            script
                .arg(micros(quota.interval()))
                .arg(micros(quota.period));
            let (allowed, wait_micros) =
                within_timeout(script.invoke_async::<(u8, u64)>(&mut connection)).await?;
            let wait = Duration::from_micros(wait_micros);
            Ok(Decision::from_wait(quota, wait, allowed == 1))
        })
    }

    fn remember<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let mut set = redis::cmd("SET");
            set.arg(format!("{KEY_PREFIX}{key}"))
                .arg(1)
                .arg("PX")
                .arg(millis);
            within_timeout(set.query_async::<()>(&mut connection)).await
        })
    }

    fn remembers<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let mut exists = redis::cmd("EXISTS");
            exists.arg(format!("{KEY_PREFIX}{key}"));
            within_timeout(exists.query_async::<bool>(&mut connection)).await
        })
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
