//! An HTTP client for the services of the default workspace: an [`Instance`] is a running
//! service with a client, a [`Call`] a request being built, a [`Reply`] its response.
//!
//! Every response is checked for a password hash (`argon2`), whatever the request.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Barrier;
use std::time::Duration;

use serde_json::Value;
use ureq::http;

use crate::support::{Database, Service};

/// A service of the default workspace running on a database, with an HTTP client for it;
/// prints the service's log when dropped during a panic.
pub(crate) struct Instance<'db> {
    name: &'static str,
    pub(crate) service: Service,
    pub(crate) db: &'db Database,
    /// `http://127.0.0.1:<port>`, also the api's own origin.
    pub(crate) base: String,
    agent: ureq::Agent,
}

impl<'db> Instance<'db> {
    /// Starts service `name` on `db` with `env` (see [`Service::start`]).
    pub(crate) fn launch(name: &'static str, db: &'db Database, env: &[(&str, &str)]) -> Self {
        Instance::with(name, db, Service::start(name, env))
    }

    /// Service `name` of the workspace at `root`, from `binary`, on `db` with `env`.
    pub(crate) fn launch_in(
        root: &Path,
        binary: &Path,
        name: &'static str,
        db: &'db Database,
        env: &[(&str, &str)],
    ) -> Self {
        Instance::with(name, db, Service::start_in(root, binary, env))
    }

    fn with(name: &'static str, db: &'db Database, service: Service) -> Self {
        // A connection per request: the server may close a connection after answering without
        // reading the request body (a 403 or a 429), which a reused connection would not survive.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Redirects are part of what the tests check (the panel's forms answer 303).
            .max_redirects(0)
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        Instance {
            name,
            base: format!("http://127.0.0.1:{}", service.port),
            service,
            db,
            agent,
        }
    }

    /// The service's name: `api`, `admin`, `webhooks`.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn get(&self, path: &str) -> Call<'_> {
        self.call("GET", path)
    }

    pub(crate) fn post(&self, path: &str) -> Call<'_> {
        self.call("POST", path)
    }

    pub(crate) fn put(&self, path: &str) -> Call<'_> {
        self.call("PUT", path)
    }

    pub(crate) fn delete(&self, path: &str) -> Call<'_> {
        self.call("DELETE", path)
    }

    pub(crate) fn call(&self, method: &'static str, path: &str) -> Call<'_> {
        Call {
            api: self,
            method,
            path: path.to_string(),
            headers: Vec::new(),
            body: None,
            source: None,
        }
    }
}

impl Drop for Instance<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.service.logs();
            let lines: Vec<&str> = logs.lines().collect();
            eprintln!(
                "--- the {} on {} ({}) logged, last 80 lines:\n{}",
                self.name,
                self.db.kind(),
                self.base,
                lines[lines.len().saturating_sub(80)..].join("\n")
            );
        }
    }
}

/// A request being built.
pub(crate) struct Call<'a> {
    api: &'a Instance<'a>,
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    /// The address the request is sent from, when not the default one.
    source: Option<Ipv4Addr>,
}

impl Call<'_> {
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub(crate) fn headers(self, headers: &[(&str, &str)]) -> Self {
        headers
            .iter()
            .fold(self, |call, (name, value)| call.header(name, value))
    }

    pub(crate) fn bearer(self, token: &str) -> Self {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    /// `cookie` is `name=value`.
    pub(crate) fn cookie(self, cookie: &str) -> Self {
        self.header("Cookie", cookie)
    }

    /// A body sent as is (with no `Content-Type` of its own).
    pub(crate) fn raw_body(mut self, body: &str) -> Self {
        self.body = Some(body.to_string());
        self
    }

    pub(crate) fn json(mut self, body: Value) -> Self {
        self.body = Some(body.to_string());
        self.header("Content-Type", "application/json")
    }

    /// Sends the request from `source`, a loopback address (Linux answers on the whole of
    /// 127.0.0.0/8), so that the service sees another client at its peer address.
    pub(crate) fn from(mut self, source: Ipv4Addr) -> Self {
        self.source = Some(source);
        self
    }

    pub(crate) fn send(self) -> Reply {
        let request = format!("{} {}", self.method, self.path);
        if let Some(source) = self.source {
            let (status, headers, body) = self.exchange_from(source);
            return checked(Reply {
                request,
                status,
                headers,
                body,
            });
        }
        let mut builder = http::Request::builder()
            .method(self.method)
            .uri(format!("{}{}", self.api.base, self.path));
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let result = match (self.body, self.method) {
            (Some(body), _) => self.api.agent.run(builder.body(body).unwrap()),
            // An empty body as browsers send it, `Content-Length: 0` (ureq would send an empty
            // chunked body).
            (None, "POST" | "PUT") => self.api.agent.run(builder.body(String::new()).unwrap()),
            (None, _) => self.api.agent.run(builder.body(()).unwrap()),
        };
        let mut response = result.unwrap_or_else(|e| panic!("{request}: {e}"));
        let body = response
            .body_mut()
            .read_to_string()
            .unwrap_or_else(|e| panic!("{request}: reading the body: {e}"));
        checked(Reply {
            request,
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body,
        })
    }

    /// The request over a connection from `source`, written and read by hand: ureq cannot
    /// choose the address it connects from. `Connection: close`, so the response ends with the
    /// connection.
    fn exchange_from(self, source: Ipv4Addr) -> (u16, http::HeaderMap, String) {
        use socket2::{Domain, Socket, Type};

        let request = format!("{} {} from {source}", self.method, self.path);
        let fail =
            |what: &str, error: &dyn fmt::Display| -> ! { panic!("{request}: {what}: {error}") };
        let target: SocketAddr = self.api.base["http://".len()..].parse().unwrap();
        let socket =
            Socket::new(Domain::IPV4, Type::STREAM, None).unwrap_or_else(|e| fail("socket", &e));
        socket
            .bind(&SocketAddr::from((source, 0)).into())
            .unwrap_or_else(|e| fail("binding", &e));
        socket
            .connect(&target.into())
            .unwrap_or_else(|e| fail("connecting", &e));
        let mut stream = TcpStream::from(socket);
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let body = self.body.unwrap_or_default();
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.method,
            self.path,
            body.len()
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream
            .write_all(format!("{head}{body}").as_bytes())
            .unwrap_or_else(|e| fail("sending", &e));
        let mut raw = String::new();
        stream
            .read_to_string(&mut raw)
            .unwrap_or_else(|e| fail("reading", &e));

        let (head, body) = raw
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| fail("no end of headers", &raw));
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| fail("no status", &status_line));
        let mut headers = http::HeaderMap::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| fail("a header without a colon", &line));
            headers.append(
                http::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                http::HeaderValue::from_str(value.trim()).unwrap(),
            );
        }
        // The services send their bodies whole, with a Content-Length.
        assert!(
            !headers.contains_key("transfer-encoding"),
            "{request}: a chunked response, which this client does not read"
        );
        (status, headers, body.to_string())
    }
}

/// `reply`, once checked for a password hash.
fn checked(reply: Reply) -> Reply {
    let everything = format!("{:?}{}", reply.headers, reply.body).to_lowercase();
    assert!(
        !everything.contains("argon2"),
        "a response shows a password hash: {reply}"
    );
    reply
}

/// A response, with the request it answers (for messages).
pub(crate) struct Reply {
    pub(crate) request: String,
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: String,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} answered {}: {}",
            self.request, self.status, self.body
        )
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} answered {}", self.request, self.status)?;
        for (name, value) in &self.headers {
            write!(f, "\n  {name}: {}", value.to_str().unwrap_or("<binary>"))?;
        }
        write!(f, "\n  {}", self.body)
    }
}

impl Reply {
    pub(crate) fn check(&self, status: u16) {
        assert_eq!(self.status, status, "{self}");
    }

    pub(crate) fn expect(self, status: u16) -> Reply {
        self.check(status);
        self
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self}"))
    }

    pub(crate) fn expect_json(self, status: u16) -> Value {
        self.check(status);
        self.json()
    }

    /// Checks the status and the error's shape and code; returns the `error` object.
    pub(crate) fn check_error(&self, status: u16, code: &str) -> Value {
        self.check(status);
        let body = self.json();
        assert_keys(&body, &["error"]);
        let error = &body["error"];
        assert_eq!(error["code"], code, "{self}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "an error has a message: {self}"
        );
        let mut expected = set(["code", "message"]);
        if error.get("fields").is_some() {
            expected.insert("fields");
        }
        assert_eq!(keys(error), expected, "{self}");
        error.clone()
    }

    pub(crate) fn expect_error(self, status: u16, code: &str) -> Value {
        self.check_error(status, code)
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// A header holding a whole number of seconds or requests.
    pub(crate) fn number_header(&self, name: &str) -> u64 {
        self.header(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} is missing or not a number: {self}"))
    }

    /// The raw `Set-Cookie` header that sets cookie `name`, if any.
    pub(crate) fn find_set_cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|v| v.split_once('=').is_some_and(|(n, _)| n.trim() == name))
    }

    pub(crate) fn set_cookie(&self, name: &str) -> &str {
        self.find_set_cookie(name)
            .unwrap_or_else(|| panic!("no Set-Cookie for {name}: {self}"))
    }
}

pub(crate) fn set<const N: usize>(items: [&str; N]) -> BTreeSet<&str> {
    items.into_iter().collect()
}

pub(crate) fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

pub(crate) fn assert_keys(value: &Value, expected: &[&str]) {
    assert_eq!(
        keys(value),
        expected.iter().copied().collect(),
        "the fields of {value}"
    );
}

/// The replies to `count` requests sent at the same moment, from a thread each; `send` is given
/// the request's number.
pub(crate) fn at_once(count: usize, send: impl Fn(usize) -> Reply + Sync) -> Vec<Reply> {
    let barrier = Barrier::new(count);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..count)
            .map(|n| {
                let (barrier, send) = (&barrier, &send);
                scope.spawn(move || {
                    barrier.wait();
                    send(n)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}
