//! Sends signed Stripe events to `POST /api/webhooks/stripe` and reports how many the service
//! acknowledged per second, with latencies. See `--help` and scripts/bench-webhooks.sh.
//!
//! Every body and its `Stripe-Signature` are built before the clock starts, so that the
//! measured time is the service's (and the HTTP client's). A signature older than
//! [`RESIGN_AFTER_SECS`] when its request is sent is made again with the current time: the
//! service refuses timestamps further than its tolerance (300 s by default) from now, and a
//! long run on a slow backend could otherwise outlive its first signatures.
//!
//! Each connection is one keep-alive HTTP/1.1 connection sending its next request as soon as
//! the previous answer is in; the connections share one queue of requests. The exit status is
//! 0 only when every request was answered 200 and the service stored each event exactly once
//! (`received` once per event id, `duplicate` for every copy).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use tokio::net::TcpStream;

/// A request whose signature is older than this is signed again just before it is sent.
const RESIGN_AFTER_SECS: u64 = 120;

/// How long one request may take, connection included, before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Answers that were not 200 printed in full (the rest are only counted).
const SHOWN_FAILURES: usize = 5;

const USAGE: &str = "\
webhook-load: sends signed Stripe events to the generated webhooks service

Usage: webhook-load --url URL --secret SECRET [options]

  --url URL            the endpoint, http://HOST:PORT/api/webhooks/stripe
  --secret SECRET      the signing secret (the service's STRIPE_WEBHOOK_SECRETS, or one of them)
  --events N           distinct events to send (default 50000)
  --connections N      keep-alive connections, each with one request in flight (default 64)
  --kind KIND          ignored: an event type no handler takes (payment_intent.created), which
                       the worker marks `ignored`; subscription: customer.subscription.updated,
                       one subscription per event, which the worker upserts into
                       `subscriptions` and marks `processed`; mix: half of each, alternating
                       (default ignored)
  --duplicates SHARE   also send this share of the events a second time (0 to 1, default 0),
                       each copy a little after its original: the service must answer them 200
                       `duplicate` and store nothing
  --id-prefix PREFIX   event ids are PREFIX_<number> (default evt_load_<unix ms>)
  --threads N          tokio worker threads; 1 runs everything on the calling thread (default 1)

Prints the figures and a last line `RESULT key=value ...` for scripts. Exit status: 0 when
every request was answered 200 and each event was stored exactly once, 1 otherwise, 2 for a
usage error.
";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ignored,
    Subscription,
    Mix,
}

struct Options {
    host: String,
    port: u16,
    path: String,
    secret: String,
    events: usize,
    connections: usize,
    kind: Kind,
    duplicates: f64,
    id_prefix: String,
    threads: usize,
}

fn parse_options() -> Result<Options, String> {
    let mut url = None;
    let mut secret = None;
    let mut events = 50_000;
    let mut connections = 64;
    let mut kind = Kind::Ignored;
    let mut duplicates = 0.0;
    let mut id_prefix = format!("evt_load_{}", unix_ms());
    let mut threads = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            print!("{USAGE}");
            std::process::exit(0);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let number = |text: String| {
            text.parse::<usize>()
                .map_err(|_| format!("{name}: not a number: {text}"))
        };
        match name.as_str() {
            "--url" => url = Some(value()?),
            "--secret" => secret = Some(value()?),
            "--events" => events = number(value()?)?,
            "--connections" => connections = number(value()?)?,
            "--threads" => threads = number(value()?)?,
            "--id-prefix" => id_prefix = value()?,
            "--kind" => {
                kind = match value()?.as_str() {
                    "ignored" => Kind::Ignored,
                    "subscription" => Kind::Subscription,
                    "mix" => Kind::Mix,
                    other => return Err(format!("--kind: ignored, subscription or mix, not {other}")),
                }
            }
            "--duplicates" => {
                let text = value()?;
                duplicates = text
                    .parse::<f64>()
                    .ok()
                    .filter(|share| (0.0..=1.0).contains(share))
                    .ok_or_else(|| format!("--duplicates: a share from 0 to 1, not {text}"))?;
            }
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let secret = secret.ok_or("--secret is required")?;
    if events == 0 || connections == 0 || threads == 0 {
        return Err("--events, --connections and --threads must be at least 1".into());
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--url must start with http://, not {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse()
                .map_err(|_| format!("--url: not a port: {port}"))?,
        ),
        None => (authority, 80),
    };
    Ok(Options {
        host: host.to_owned(),
        port,
        path: path.to_owned(),
        secret,
        events,
        connections,
        kind,
        duplicates,
        id_prefix,
        threads,
    })
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis())
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`, as Stripe signs.
fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The body of event `number`.
fn body(options: &Options, number: usize, created: u64) -> String {
    let id = format!("{}_{number}", options.id_prefix);
    let subscription = match options.kind {
        Kind::Ignored => false,
        Kind::Subscription => true,
        Kind::Mix => number % 2 == 1,
    };
    if subscription {
        // The shape of a real customer.subscription.updated event (API version 2025-03-31 and
        // later: the period end on the item), one subscription and customer per event.
        format!(
            r#"{{"id":"{id}","object":"event","type":"customer.subscription.updated","created":{created},"livemode":false,"data":{{"object":{{"id":"sub_{id}","object":"subscription","customer":"cus_{id}","status":"active","cancel_at_period_end":false,"canceled_at":null,"items":{{"data":[{{"price":{{"id":"price_pro_monthly","product":"prod_pro","unit_amount":2900,"currency":"usd","recurring":{{"interval":"month","interval_count":1}}}},"quantity":1,"current_period_end":{period_end}}}]}}}}}}}}"#,
            period_end = created + 30 * 86_400,
        )
    } else {
        format!(
            r#"{{"id":"{id}","object":"event","type":"payment_intent.created","created":{created},"livemode":false,"data":{{"object":{{"id":"pi_{id}","object":"payment_intent","amount":2900,"currency":"usd","status":"requires_payment_method"}}}}}}"#
        )
    }
}

/// One request, built before the run.
struct Prepared {
    body: Bytes,
    signed_at: u64,
    signature: String,
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    received: usize,
    duplicate: usize,
    /// 200 with a body that is neither `received` nor `duplicate`.
    other_ok: usize,
    not_ok: usize,
    errors: usize,
    resigned: usize,
    latencies_us: Vec<u32>,
    failures: Vec<String>,
}

struct Shared {
    options: Options,
    requests: Vec<Prepared>,
    next: AtomicUsize,
}

async fn connect(shared: &Shared) -> Result<SendRequest<Full<Bytes>>, String> {
    let options = &shared.options;
    let stream = TcpStream::connect((options.host.as_str(), options.port))
        .await
        .map_err(|error| format!("cannot connect to {}:{}: {error}", options.host, options.port))?;
    stream.set_nodelay(true).map_err(|error| error.to_string())?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| error.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends requests from the shared queue, one at a time on one connection, until it is empty.
async fn run_connection(shared: Arc<Shared>) -> Tally {
    let options = &shared.options;
    let host = format!("{}:{}", options.host, options.port);
    let mut tally = Tally {
        latencies_us: Vec::with_capacity(shared.requests.len() / options.connections + 1),
        ..Tally::default()
    };
    let mut sender = None;
    loop {
        let index = shared.next.fetch_add(1, Ordering::Relaxed);
        let Some(prepared) = shared.requests.get(index) else {
            break;
        };
        let now = unix_secs();
        let signature = if now.saturating_sub(prepared.signed_at) > RESIGN_AFTER_SECS {
            tally.resigned += 1;
            sign(options.secret.as_bytes(), now, &prepared.body)
        } else {
            prepared.signature.clone()
        };
        let request = Request::post(options.path.as_str())
            .header("host", host.as_str())
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(Full::new(prepared.body.clone()))
            .expect("a valid request");
        let started = Instant::now();
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            if sender.is_none() {
                sender = Some(connect(&shared).await?);
            }
            let send = sender.as_mut().expect("connected");
            send.ready().await.map_err(|error| error.to_string())?;
            let response = send
                .send_request(request)
                .await
                .map_err(|error| error.to_string())?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|error| error.to_string())?
                .to_bytes();
            Ok::<_, String>((status, body))
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())));
        let elapsed = started.elapsed();
        match answer {
            Ok((status, body)) if status == 200 => {
                tally
                    .latencies_us
                    .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
                if contains(&body, b"\"received\"") {
                    tally.received += 1;
                } else if contains(&body, b"\"duplicate\"") {
                    tally.duplicate += 1;
                } else {
                    tally.other_ok += 1;
                    note(&mut tally.failures, format!("200 {}", String::from_utf8_lossy(&body)));
                }
            }
            Ok((status, body)) => {
                tally.not_ok += 1;
                note(&mut tally.failures, format!("{status} {}", String::from_utf8_lossy(&body)));
            }
            Err(error) => {
                tally.errors += 1;
                note(&mut tally.failures, error);
                // The connection may be half-way through an answer: start a new one, after a
                // pause so that a dead server does not spin this loop.
                sender = None;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tally
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

fn note(failures: &mut Vec<String>, failure: String) {
    if failures.len() < SHOWN_FAILURES {
        failures.push(failure);
    }
}

/// The `share` percentile of sorted latencies, in milliseconds.
fn percentile(sorted_us: &[u32], share: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_us.len() as f64) * share).ceil() as usize;
    f64::from(sorted_us[rank.clamp(1, sorted_us.len()) - 1]) / 1000.0
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("webhook-load: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    // Originals in order, each copy placed `lag` requests after its original: far enough that
    // the original is usually stored when the copy arrives (a few rounds of all connections),
    // near enough that copies are spread over the whole run.
    let started_building = Instant::now();
    let now = unix_secs();
    let copies = (options.events as f64 * options.duplicates).round() as usize;
    let lag = 4 * options.connections;
    let mut order: Vec<(usize, usize)> = (0..options.events).map(|i| (2 * i, i)).collect();
    for copy in 0..copies {
        let original = copy * options.events / copies.max(1);
        order.push((2 * (original + lag) + 1, original));
    }
    order.sort_unstable();
    let bodies: Vec<Bytes> = (0..options.events)
        .map(|number| Bytes::from(body(&options, number, now)))
        .collect();
    let requests = order
        .into_iter()
        .map(|(_, number)| {
            let body = bodies[number].clone();
            Prepared {
                signature: sign(options.secret.as_bytes(), now, &body),
                signed_at: now,
                body,
            }
        })
        .collect::<Vec<_>>();
    let body_bytes: usize = bodies.iter().map(Bytes::len).sum();
    eprintln!(
        "prepared {} requests ({} events, {} copies, {} bytes per body on average) in {:.2} s",
        requests.len(),
        options.events,
        copies,
        body_bytes / bodies.len(),
        started_building.elapsed().as_secs_f64()
    );

    let runtime = if options.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(options.threads);
        builder
    }
    .enable_all()
    .build()
    .expect("a tokio runtime");

    let connections = options.connections;
    let events = options.events;
    let total = requests.len();
    let shared = Arc::new(Shared {
        options,
        requests,
        next: AtomicUsize::new(0),
    });
    let started_ms = unix_ms();
    let (tallies, elapsed) = runtime.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(run_connection(shared.clone())))
            .collect();
        let mut tallies = Vec::new();
        for task in tasks {
            tallies.push(task.await.expect("a connection task panicked"));
        }
        (tallies, started.elapsed())
    });

    let mut all = Tally::default();
    for tally in tallies {
        all.received += tally.received;
        all.duplicate += tally.duplicate;
        all.other_ok += tally.other_ok;
        all.not_ok += tally.not_ok;
        all.errors += tally.errors;
        all.resigned += tally.resigned;
        all.latencies_us.extend(tally.latencies_us);
        for failure in tally.failures {
            note(&mut all.failures, failure);
        }
    }
    all.latencies_us.sort_unstable();
    let ok = all.latencies_us.len();
    let seconds = elapsed.as_secs_f64();
    let rate = ok as f64 / seconds;
    let (p50, p99) = (
        percentile(&all.latencies_us, 0.50),
        percentile(&all.latencies_us, 0.99),
    );
    let max = percentile(&all.latencies_us, 1.0);

    println!(
        "{total} requests ({events} events + {copies} copies) over {connections} connections in {seconds:.2} s"
    );
    println!(
        "  200: {ok} ({} received, {} duplicate{}); other status: {}; errors: {}",
        all.received,
        all.duplicate,
        if all.other_ok > 0 {
            format!(", {} unexpected body", all.other_ok)
        } else {
            String::new()
        },
        all.not_ok,
        all.errors
    );
    println!("  accepted: {rate:.1} events/s");
    println!("  latency: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
    if all.resigned > 0 {
        println!("  {} signatures made again with a fresh timestamp", all.resigned);
    }
    for failure in &all.failures {
        eprintln!("  failed: {failure}");
    }
    println!(
        "RESULT requests={total} events={events} copies={copies} ok={ok} received={} \
         duplicate={} unexpected={} not_ok={} errors={} seconds={seconds:.3} rate={rate:.1} \
         p50_ms={p50:.2} p99_ms={p99:.2} max_ms={max:.2} started_ms={started_ms}",
        all.received, all.duplicate, all.other_ok, all.not_ok, all.errors
    );

    let complete = ok == total && all.received == events && all.duplicate == copies;
    if complete {
        ExitCode::SUCCESS
    } else {
        if ok == total {
            eprintln!(
                "every request was answered 200, but {} events were stored for {events} distinct ids",
                all.received
            );
        }
        ExitCode::FAILURE
    }
}
