//! A small browser-test harness: headless Chromium driven over the W3C WebDriver protocol through
//! `chromedriver` (Debian: `apt-get install chromium chromium-driver`), for the tests of web
//! pages such as the admin panel.
//!
//! Each test launches its own [`Browser`] (a `chromedriver` on a free port and one Chromium with
//! a fresh profile: under half a second on a quiet machine); dropping it ends the session and
//! stops both. Every method panics with a message naming what it did, as test helpers here do.
//!
//! Screenshots ([`Browser::screenshot`], and one taken automatically when a test panics with a
//! browser open) go to `$SAASKIT_SCREENSHOTS`, else `target/screenshots`; each path written is
//! printed on stderr.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::support::free_port;

/// The key of an element reference in WebDriver's JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
const CHROMIUM: &str = "/usr/bin/chromium";
const INSTALL_HINT: &str = "install them with `apt-get install chromium chromium-driver` \
                            (.ci/run does when chromedriver is missing)";
/// How long [`Browser::find`], [`Browser::wait_until`] and the clicks that load a page wait by
/// default. Generous: waiting only costs when a test is failing anyway, and a page behind a
/// password check can take seconds on a busy machine (hashing runs at the lowest priority).
const DEFAULT_WAIT: Duration = Duration::from_secs(20);

/// A headless Chromium with its `chromedriver`; both are stopped when this is dropped.
pub struct Browser {
    driver: Child,
    /// `http://127.0.0.1:<port>/session/<id>`.
    session: String,
    agent: ureq::Agent,
    wait: Duration,
    /// Holds the Chromium profile and `chromedriver.log`; last, so it is removed after the
    /// processes are stopped.
    dir: tempfile::TempDir,
}

/// An error WebDriver answered with.
#[derive(Debug)]
struct WebDriverError {
    /// `no such element`, `stale element reference`, `invalid selector`, ...
    error: String,
    message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

impl Browser {
    /// Starts `chromedriver` on a free port and opens a session with a headless Chromium.
    pub fn launch() -> Browser {
        let driver_binary = chromedriver().unwrap_or_else(|| {
            panic!("browser tests need chromedriver, which is not on PATH: {INSTALL_HINT}")
        });
        assert!(
            Path::new(CHROMIUM).exists(),
            "browser tests need Chromium at {CHROMIUM}: {INSTALL_HINT}"
        );
        let dir = tempfile::Builder::new()
            .prefix("saaskit-browser-")
            .tempdir()
            .expect("a temporary directory for the browser");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        // The port is free when chosen but may be taken before chromedriver binds it: try again.
        let mut attempts = 3;
        let (driver, base) = loop {
            let port = free_port();
            let log = File::create(dir.path().join("chromedriver.log")).unwrap();
            let mut driver = Command::new(&driver_binary)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("{} does not start: {e}", driver_binary.display()));
            let base = format!("http://127.0.0.1:{port}");
            match wait_until_ready(&agent, &base, &mut driver) {
                Ok(()) => break (driver, base),
                Err(problem) => {
                    let _ = driver.kill();
                    let _ = driver.wait();
                    attempts -= 1;
                    assert!(
                        attempts > 0,
                        "chromedriver on port {port} {problem}:\n{}",
                        log_tail(dir.path())
                    );
                }
            }
        };
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": { "implicit": 0, "pageLoad": 30_000, "script": 30_000 },
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": [
                            "--headless",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            "--no-first-run",
                            "--window-size=1280,900",
                            format!("--user-data-dir={}", dir.path().join("profile").display()),
                        ],
                    },
                },
            },
        });
        let mut browser = Browser {
            driver,
            session: String::new(),
            agent,
            wait: DEFAULT_WAIT,
            dir,
        };
        match browser.request("POST", &format!("{base}/session"), Some(capabilities)) {
            Ok(value) => {
                let id = value["sessionId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a new session without an id: {value}"));
                browser.session = format!("{base}/session/{id}");
                browser
            }
            Err(error) => panic!(
                "chromedriver could not start Chromium ({error}):\n{}",
                log_tail(browser.dir.path())
            ),
        }
    }

    /// How long [`Browser::find`], [`Element::find`] and [`Browser::wait_until`] wait (20 s
    /// unless changed).
    pub fn set_wait(&mut self, wait: Duration) {
        self.wait = wait;
    }

    /// Opens `url` and waits until the page has loaded.
    pub fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    pub fn back(&self) {
        self.post("/back", json!({}));
    }

    pub fn refresh(&self) {
        self.post("/refresh", json!({}));
    }

    pub fn current_url(&self) -> String {
        string(self.get("/url"))
    }

    pub fn title(&self) -> String {
        string(self.get("/title"))
    }

    /// The page's current HTML (as the DOM is now, not as it was served).
    pub fn page_source(&self) -> String {
        string(self.get("/source"))
    }

    /// The first element matching CSS selector `css`, waiting for one to appear; panics with
    /// the page's URL and a part of its source when none does.
    pub fn find(&self, css: &str) -> Element<'_> {
        self.try_find(css).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Browser::find`], with its message as an error instead of a panic.
    pub fn try_find(&self, css: &str) -> Result<Element<'_>, String> {
        self.find_from("", css)
    }

    /// Every element matching `css` now (no waiting: an empty list is an answer).
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let found = self.post("/elements", by_css(css));
        self.elements(&found, css)
    }

    /// Fills the field matching `css` with `text`, replacing what it held.
    pub fn fill(&self, css: &str, text: &str) {
        let field = self.find(css);
        field.clear();
        field.type_text(text);
    }

    /// Clicks the element matching `css`.
    pub fn click(&self, css: &str) {
        self.find(css).click();
    }

    /// Clicks the element matching `css`, which loads another page (a link, a form's submit
    /// button), and waits until that page has loaded. A check made right after a plain click
    /// may still read the page the click leaves, which can already hold what the check looks
    /// for (the same notice, say).
    pub fn click_to_load(&self, css: &str) {
        self.find(css).click_to_load();
    }

    /// The visible text of the element matching `css`.
    pub fn text(&self, css: &str) -> String {
        self.find(css).text()
    }

    /// Waits until `condition` holds, checking every 50 ms; panics naming `what` and the page
    /// when it does not within the wait (see [`Browser::set_wait`]).
    pub fn wait_until(&self, what: &str, mut condition: impl FnMut(&Browser) -> bool) {
        let deadline = Instant::now() + self.wait;
        while !condition(self) {
            if Instant::now() > deadline {
                panic!(
                    "waited {:?} for {what} on {}:\n{}",
                    self.wait,
                    self.current_url(),
                    self.source_snippet()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `script` (a function body: `return` gives the result, `arguments[i]` are `args`;
    /// pass an element with [`Element::as_arg`]) and returns its result.
    pub fn execute(&self, script: &str, args: &[Value]) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
    }

    /// Writes a PNG of the viewport to `<screenshot folder>/<name>.png` and returns its path.
    /// Prefix `name` with the test's name: tests running at the same time share the folder.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        self.try_screenshot(name)
            .unwrap_or_else(|e| panic!("screenshot {name}: {e}"))
    }

    fn try_screenshot(&self, name: &str) -> Result<PathBuf, String> {
        let encoded = self
            .request("GET", &format!("{}/screenshot", self.session), None)
            .map_err(|e| e.to_string())?;
        let png = STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .map_err(|e| format!("not base64: {e}"))?;
        let folder = screenshot_dir();
        std::fs::create_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        let mut file: String = name
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
                _ => '-',
            })
            .collect();
        if !file.ends_with(".png") {
            file.push_str(".png");
        }
        let path = folder.join(file);
        std::fs::write(&path, png).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("screenshot: {}", path.display());
        Ok(path)
    }

    /// The cookies the page can see, as WebDriver gives them (`name`, `value`, `path`,
    /// `domain`, `httpOnly`, `secure`, `sameSite`, `expiry`).
    pub fn cookies(&self) -> Vec<Value> {
        match self.get("/cookie") {
            Value::Array(cookies) => cookies,
            other => panic!("cookies are not a list: {other}"),
        }
    }

    /// The value of cookie `name`, if the page has it.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies()
            .into_iter()
            .find(|c| c["name"] == name)
            .map(|c| string(c["value"].clone()))
    }

    /// Deletes every cookie of the current page's domain (logging the browser out).
    pub fn delete_cookies(&self) {
        self.command("DELETE", "/cookie", None);
    }

    /// The Chromium profile directory (in a temporary directory removed on drop).
    pub fn profile_dir(&self) -> PathBuf {
        self.dir.path().join("profile")
    }

    fn get(&self, path: &str) -> Value {
        self.command("GET", path, None)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.command("POST", path, Some(body))
    }

    /// A command of the session; panics with the command and WebDriver's error.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.session);
        self.request(method, &url, body.clone())
            .unwrap_or_else(|e| match body {
                Some(body) => panic!("WebDriver {method} {path} {body}: {e}"),
                None => panic!("WebDriver {method} {path}: {e}"),
            })
    }

    /// A WebDriver request: the `value` of its answer, or the error it reports.
    fn request(
        &self,
        method: &str,
        url: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        request(&self.agent, method, url, body)
    }

    /// The first element matching `css` under the element with WebDriver path `scope` ("" for
    /// the document), waiting for one to appear.
    fn find_from(&self, scope: &str, css: &str) -> Result<Element<'_>, String> {
        let deadline = Instant::now() + self.wait;
        loop {
            match self.request(
                "POST",
                &format!("{}{scope}/element", self.session),
                Some(by_css(css)),
            ) {
                Ok(found) => return Ok(self.element(&found, css)),
                Err(error) if error.error == "no such element" && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(error) if error.error == "no such element" => {
                    return Err(format!(
                        "no element matches `{css}` after {:?} on {}:\n{}",
                        self.wait,
                        self.current_url(),
                        self.source_snippet()
                    ));
                }
                Err(error) => return Err(format!("finding `{css}`: {error}")),
            }
        }
    }

    fn element(&self, reference: &Value, selector: &str) -> Element<'_> {
        let id = reference[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("not an element reference: {reference}"));
        Element {
            browser: self,
            id: id.to_string(),
            selector: selector.to_string(),
        }
    }

    fn elements(&self, references: &Value, selector: &str) -> Vec<Element<'_>> {
        let references = references
            .as_array()
            .unwrap_or_else(|| panic!("not a list of elements: {references}"));
        references
            .iter()
            .map(|reference| self.element(reference, selector))
            .collect()
    }

    /// The page's body (or source), whitespace collapsed and cut to about 1500 characters.
    fn source_snippet(&self) -> String {
        let source = match self.request("GET", &format!("{}/source", self.session), None) {
            Ok(source) => string(source),
            Err(error) => return format!("(no page source: {error})"),
        };
        let body = source.find("<body").map_or(&source[..], |i| &source[i..]);
        let collapsed = body.split_whitespace().collect::<Vec<_>>().join(" ");
        match collapsed.char_indices().nth(1500) {
            Some((cut, _)) => format!("{}…", &collapsed[..cut]),
            None => collapsed,
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            if std::thread::panicking() {
                // What the page looked like when the test failed (the thread is named after it).
                let test = std::thread::current()
                    .name()
                    .unwrap_or("browser")
                    .replace("::", "-");
                if let Err(error) = self.try_screenshot(&format!("{test}-failed")) {
                    eprintln!("no screenshot of the failed test's page: {error}");
                }
            }
            // chromedriver stops Chromium when its session ends.
            if let Err(error) = self.request("DELETE", &self.session.clone(), None) {
                eprintln!("ending the browser session: {error}");
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An element of the page a [`Browser`] shows.
pub struct Element<'b> {
    browser: &'b Browser,
    id: String,
    /// The selector that found it, for messages.
    selector: String,
}

impl<'b> Element<'b> {
    /// The element's visible text.
    pub fn text(&self) -> String {
        string(self.get("/text"))
    }

    /// Attribute `name` as written in the HTML, if present.
    pub fn attr(&self, name: &str) -> Option<String> {
        self.get(&format!("/attribute/{name}"))
            .as_str()
            .map(str::to_string)
    }

    /// DOM property `name` (for instance `value` or `checked`, which change as the user acts).
    pub fn prop(&self, name: &str) -> Value {
        self.get(&format!("/property/{name}"))
    }

    /// The current value of an input, textarea or select.
    pub fn value(&self) -> String {
        string(self.prop("value"))
    }

    /// Whether a checkbox, radio button or option is selected.
    pub fn is_selected(&self) -> bool {
        self.get("/selected") == true
    }

    /// Clicks the element, which loads another page, and waits until that page has loaded
    /// (see [`Browser::click_to_load`]).
    pub fn click_to_load(&self) {
        let browser = self.browser;
        let page_left = browser.find("html");
        self.click();
        // While Chromium swaps documents, chromedriver may answer a command with a passing
        // error ("cannot determine loading status", ...): those mean "not yet".
        let mut last_error = None;
        let deadline = Instant::now() + browser.wait;
        loop {
            match page_left.is_gone().and_then(|gone| {
                let script = json!({ "script": "return document.readyState", "args": [] });
                let url = format!("{}/execute/sync", browser.session);
                Ok(gone && browser.request("POST", &url, Some(script))? == "complete")
            }) {
                Ok(true) => return,
                Ok(false) => {}
                Err(error) => last_error = Some(error),
            }
            if Instant::now() > deadline {
                let error = last_error.map_or(String::new(), |e| format!(" (last error: {e})"));
                panic!(
                    "waited {:?} for the page `{}` loads{error} on {}:\n{}",
                    browser.wait,
                    self.selector,
                    browser.current_url(),
                    browser.source_snippet()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the element's document has been replaced: WebDriver calls it stale, or, once
    /// the new document's element store is in use, unknown.
    fn is_gone(&self) -> Result<bool, WebDriverError> {
        let url = format!("{}/element/{}/name", self.browser.session, self.id);
        match self.browser.request("GET", &url, None) {
            Ok(_) => Ok(false),
            Err(error)
                if error.error == "stale element reference" || error.error == "no such element" =>
            {
                Ok(true)
            }
            Err(error) => Err(error),
        }
    }

    /// Clicks the element (scrolled into view). Use [`Element::click_to_load`] when the click
    /// loads another page.
    pub fn click(&self) {
        self.post("/click", json!({}));
    }

    /// Empties an input or textarea.
    pub fn clear(&self) {
        self.post("/clear", json!({}));
    }

    /// Types `text` into the element, key by key, after what it holds.
    pub fn type_text(&self, text: &str) {
        self.post("/value", json!({ "text": text }));
    }

    /// Submits the form this element is in (or is) by clicking its submit button, as a person
    /// would (so the browser's validation and the form's handlers run), and waits until the
    /// answer has loaded.
    pub fn submit(&self) {
        let script = "const form = arguments[0].form || arguments[0].closest('form');\n\
                      return form && form.querySelector(\
                      'button[type=submit], input[type=submit], button:not([type])');";
        let button = self.browser.execute(script, &[self.as_arg()]);
        assert!(
            !button.is_null(),
            "`{}` is in no form with a submit button on {}",
            self.selector,
            self.browser.current_url()
        );
        self.browser
            .element(&button, "submit button")
            .click_to_load();
    }

    /// Chooses the option of this `<select>` whose text or value is `option`.
    pub fn select_option(&self, option: &str) {
        let options = self.post("/elements", by_css("option"));
        let options = self.browser.elements(&options, "option");
        let mut seen = Vec::new();
        for candidate in options {
            let text = candidate.text();
            if text.trim() == option || candidate.attr("value").as_deref() == Some(option) {
                if !candidate.is_selected() {
                    candidate.click();
                }
                return;
            }
            seen.push(text);
        }
        panic!(
            "`{}` has no option `{option}`; its options: {seen:?}",
            self.selector
        );
    }

    /// The first element matching `css` inside this one, waiting for one to appear.
    pub fn find(&self, css: &str) -> Element<'b> {
        self.browser
            .find_from(&format!("/element/{}", self.id), css)
            .unwrap_or_else(|e| panic!("inside `{}`: {e}", self.selector))
    }

    /// The element as an argument of [`Browser::execute`].
    pub fn as_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    fn get(&self, path: &str) -> Value {
        self.command("GET", path, None)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.command("POST", path, Some(body))
    }

    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/element/{}{path}", self.browser.session, self.id);
        self.browser
            .request(method, &url, body)
            .unwrap_or_else(|e| panic!("`{}`: WebDriver {method} {path}: {e}", self.selector))
    }
}

/// Where screenshots go: `$SAASKIT_SCREENSHOTS`, else `screenshots` in the Cargo target directory.
pub fn screenshot_dir() -> PathBuf {
    match std::env::var_os("SAASKIT_SCREENSHOTS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("CARGO_TARGET_TMPDIR is inside the target directory")
            .join("screenshots"),
    }
}

/// `chromedriver` on PATH, else Debian's.
fn chromedriver() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("chromedriver"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/bin/chromedriver")])
        .find(|path| path.is_file())
}

/// Waits until chromedriver at `base` reports ready, or says why not.
fn wait_until_ready(agent: &ureq::Agent, base: &str, driver: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(status) = driver.try_wait().unwrap() {
            return Err(format!("exited with {status}"));
        }
        if let Ok(status) = request(agent, "GET", &format!("{base}/status"), None) {
            if status["ready"] == true {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err("was not ready within 20 s".to_string())
}

/// A WebDriver request: the `value` of its answer, or the error it reports.
fn request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> Result<Value, WebDriverError> {
    let transport = |e: ureq::Error| WebDriverError {
        error: "no answer".to_string(),
        message: format!("{method} {url}: {e}"),
    };
    let mut response = match (method, body) {
        ("POST", body) => agent.post(url).send_json(body.unwrap_or_else(|| json!({}))),
        ("DELETE", _) => agent.delete(url).call(),
        _ => agent.get(url).call(),
    }
    .map_err(transport)?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(256 * 1024 * 1024)
        .read_to_string()
        .map_err(transport)?;
    let mut answer: Value = serde_json::from_str(&text).map_err(|e| WebDriverError {
        error: "not JSON".to_string(),
        message: format!("{method} {url} answered {status} ({e}): {text}"),
    })?;
    let value = answer["value"].take();
    match value["error"].as_str() {
        Some(error) => Err(WebDriverError {
            error: error.to_string(),
            message: value["message"].as_str().unwrap_or_default().to_string(),
        }),
        None if status >= 400 => Err(WebDriverError {
            error: format!("status {status}"),
            message: text,
        }),
        None => Ok(value),
    }
}

fn by_css(css: &str) -> Value {
    json!({ "using": "css selector", "value": css })
}

fn string(value: Value) -> String {
    match value {
        Value::String(text) => text,
        other => panic!("WebDriver answered {other} where a string was expected"),
    }
}

/// The last 40 lines of what chromedriver (and Chromium through it) wrote.
fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("chromedriver.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

// The test: the harness against a tiny website of its own.
/// A tiny website on 127.0.0.1: `GET /` is a form (and sets cookie `visited`), `POST /greet`
/// a page echoing the posted fields. Each request is recorded as `METHOD path body`.
struct Site {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

const FORM: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Greeter</title></head>
<body>
<h1>Say hello</h1>
<form method="post" action="/greet">
  <label>Name <input id="name" name="name" value="someone" required></label>
  <label>Colour <select id="colour" name="colour">
<option value="r">Red</option><option value="g">Green</option><option value="b">Blue</option>
  </select></label>
  <button type="submit">Greet</button>
</form>
<ul><li class="item">one</li><li class="item">two</li><li class="item">three</li></ul>
</body></html>"#;

impl Site {
    fn start() -> Site {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (recorded, stopped) = (Arc::clone(&requests), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let recorded = Arc::clone(&recorded);
                // A thread per connection: Chromium opens connections it may never use.
                std::thread::spawn(move || {
                    let _ = answer(stream, &recorded);
                });
            }
        });
        Site {
            base,
            requests,
            stop,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread up so that it sees `stop`.
        let _ = TcpStream::connect(self.base.trim_start_matches("http://"));
    }
}

/// Reads one request from `stream` and answers it (then closes the connection).
fn answer(stream: TcpStream, requests: &Mutex<Vec<String>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(()); // a connection opened in advance and closed unused
    }
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    requests
        .lock()
        .unwrap()
        .push(format!("{method} {path} {body}"));
    let (status, headers, page) = match (method, path) {
        ("GET", "/") => (
            "200 OK",
            "Set-Cookie: visited=yes; Path=/\r\n",
            FORM.to_string(),
        ),
        ("POST", "/greet") => {
            let field = |name: &str| {
                body.split('&')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| escape_html(&url_decode(value)))
                    .unwrap_or_default()
            };
            let page = format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>Greeting</title>\
                 </head><body><p id=\"greeting\">Hello, {}!</p><p id=\"colour\">{}</p>\
                 </body></html>",
                field("name"),
                field("colour")
            );
            ("200 OK", "", page)
        }
        _ => ("404 Not Found", "", "not found".to_string()),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n{headers}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
        page.len()
    )?;
    stream.flush()
}

/// Decodes a value of an `application/x-www-form-urlencoded` body.
fn url_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut decoded = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        decoded.push(byte);
                        i += 2;
                    }
                    Err(_) => decoded.push(b'%'),
                }
            }
            byte => decoded.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Processes whose command line mentions `needle` (Chromium's take its profile directory).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(needle))
        .collect()
}

#[test]
fn fills_and_submits_a_form() {
    let site = Site::start();
    let started = Instant::now();
    let mut browser = Browser::launch();
    eprintln!("launching the browser took {:?}", started.elapsed());
    let profile = browser.profile_dir().display().to_string();

    browser.goto(&format!("{}/", site.base));
    assert_eq!(browser.title(), "Greeter");
    assert_eq!(browser.current_url(), format!("{}/", site.base));
    assert_eq!(browser.text("h1"), "Say hello");
    let items: Vec<String> = browser
        .find_all("li.item")
        .iter()
        .map(Element::text)
        .collect();
    assert_eq!(items, ["one", "two", "three"]);
    assert!(browser.find_all("table").is_empty());
    assert_eq!(browser.cookie("visited").as_deref(), Some("yes"));

    let name = browser.find("#name");
    assert_eq!(name.attr("name").as_deref(), Some("name"));
    assert_eq!(name.attr("placeholder"), None);
    assert_eq!(name.value(), "someone");
    name.clear();
    name.type_text("Ada Lovelace & <Co>");
    assert_eq!(name.value(), "Ada Lovelace & <Co>");
    let colour = browser.find("form").find("#colour");
    colour.select_option("Green");
    assert_eq!(colour.value(), "g");
    name.submit();

    assert_eq!(
        browser.text("#greeting"),
        "Hello, Ada Lovelace & <Co>!",
        "the page echoes the posted name"
    );
    assert_eq!(browser.text("#colour"), "g");
    assert_eq!(browser.title(), "Greeting");
    assert_eq!(browser.current_url(), format!("{}/greet", site.base));
    assert!(
        site.requests()
            .contains(&"POST /greet name=Ada+Lovelace+%26+%3CCo%3E&colour=g".to_string()),
        "the form was posted as a browser posts it: {:?}",
        site.requests()
    );
    assert_eq!(
        browser.execute(
            "return document.querySelectorAll(arguments[0]).length + ' ' + arguments[1].id",
            &[json!("p"), browser.find("p").as_arg()],
        ),
        "2 greeting"
    );

    browser.delete_cookies();
    assert!(browser.cookies().is_empty(), "{:?}", browser.cookies());

    browser.set_wait(Duration::from_millis(300));
    let missing = browser.try_find("#missing").err().expect("no #missing");
    assert!(
        missing.contains("`#missing`")
            && missing.contains(&format!("{}/greet", site.base))
            && missing.contains("Hello, Ada Lovelace"),
        "the message names the selector, the page and shows its source: {missing}"
    );

    let path = browser.screenshot("browser-fills_and_submits_a_form");
    let png = std::fs::read(&path).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
        "{} is a PNG",
        path.display()
    );
    // The image is as wide as the window (IHDR: width, then height, big-endian).
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(width, 1280, "the screenshot's width");

    drop(browser);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_mentioning(&profile);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "processes outlive the browser: {left:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
