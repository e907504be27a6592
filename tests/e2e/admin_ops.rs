//! The admin service's operations modules, black box (docs/admin-operations.md): `admin/billing`
//! (subscriptions, active subscriptions and MRR, a user's subscriptions, the customer page's
//! section) and `admin/webhooks` (the webhooks service's event log, dead letters replayed one by
//! one or all at once, audited), with their permissions, over JSON and over the panel's pages
//! and forms.
//!
//! Each scenario runs against a fresh SQLite file and a fresh PostgreSQL database, with the api,
//! the webhooks service and the admin service on the same database: Stripe events signed here
//! are stored and processed by the webhooks service, and the admin service reads and replays
//! them. Events whose handler fails for good are checkouts paid by an email no account has
//! (yet): they are dead-lettered after two attempts, and processed once the account exists and
//! they are replayed.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::admin::{PanelSession, Stack, StaffMember};
use crate::api::{int_of, launch_with_test_settings, now, on_each_database, register, str_of};
use crate::client::{Instance, Reply, assert_keys};
use crate::support::Database;
use crate::webhooks::{self, event_body, outcomes, sorted};

/// The endpoint secret the test signs events with.
const SECRET: &str = "whsec_e2e_admin_operations";
/// How long an event may take to reach a status before a test gives up.
const PATIENCE: Duration = Duration::from_secs(30);
/// A well-formed id of nothing.
const UNKNOWN_UUID: &str = "0193b3c4-0000-7000-8000-000000000000";

// ---------------------------------------------------------------------------------------------
// The scenarios, each on SQLite and on PostgreSQL

#[test]
fn subscriptions_active_count_and_mrr_per_currency_come_from_the_webhooks_state() {
    on_each_database(with_ops(subscriptions_and_metrics));
}

#[test]
fn dead_lettered_events_are_replayed_through_the_admin_service_and_audited() {
    on_each_database(with_ops(replays));
}

#[test]
fn operations_refuse_anonymous_and_customers_and_support_only_reads() {
    on_each_database(with_ops(permission_matrix));
}

#[test]
fn the_panel_pages_filter_page_and_replay_events_with_their_forms() {
    on_each_database(with_ops(panel));
}

// ---------------------------------------------------------------------------------------------
// Scenarios

fn subscriptions_and_metrics(s: &Ops) {
    let customer_id = s.customer_id();
    deliver(
        s,
        &checkout(
            "evt_sub_checkout",
            "cus_1",
            Some(&customer_id),
            "x@example.com",
        ),
    );
    wait_for_status(s, "evt_sub_checkout", "processed");
    let t = now() - 100;
    // (event, subscription, customer, status, price: amount, currency, interval, count, quantity)
    let subscriptions = [
        (
            "evt_sub_1",
            "sub_1",
            "cus_1",
            "active",
            2_900,
            "usd",
            "month",
            1,
            1,
        ),
        (
            "evt_sub_2",
            "sub_2",
            "cus_2",
            "active",
            12_000,
            "usd",
            "year",
            1,
            2,
        ),
        (
            "evt_sub_3",
            "sub_3",
            "cus_3",
            "past_due",
            1_000,
            "eur",
            "week",
            1,
            1,
        ),
        (
            "evt_sub_4",
            "sub_4",
            "cus_4",
            "trialing",
            5_000,
            "usd",
            "month",
            1,
            1,
        ),
        (
            "evt_sub_5",
            "sub_5",
            "cus_1",
            "canceled",
            900,
            "usd",
            "month",
            3,
            1,
        ),
    ];
    for (n, (event, id, customer, status, amount, currency, interval, count, quantity)) in
        subscriptions.into_iter().enumerate()
    {
        let price = Price {
            amount,
            currency,
            interval,
            count,
            quantity,
        };
        let created = t + i64::try_from(n).unwrap();
        deliver(
            s,
            &subscription_event(event, created, id, customer, status, &price),
        );
    }
    for n in 1..=5 {
        wait_for_status(s, &format!("evt_sub_{n}"), "processed");
    }

    // Every subscription, most recently changed first, with its account when it has one.
    let all = s.read("/api/admin/subscriptions");
    assert_eq!(
        (all["page"].clone(), all["has_more"].clone()),
        (json!(1), json!(false))
    );
    let items = all["items"].as_array().unwrap();
    assert_eq!(ids(items).len(), 5, "{all}");
    let first = items.iter().find(|item| item["id"] == "sub_1").unwrap();
    assert_keys(
        first,
        &[
            "id",
            "customer_id",
            "status",
            "price_id",
            "product_id",
            "unit_amount",
            "currency",
            "interval",
            "interval_count",
            "quantity",
            "current_period_end",
            "cancel_at_period_end",
            "canceled_at",
            "user_id",
            "user_email",
            "monthly_amount",
            "updated_at",
        ],
    );
    assert_eq!(first["user_id"], customer_id.as_str());
    assert_eq!(first["user_email"], "customer@example.com");
    assert_eq!(first["monthly_amount"], 2_900);
    let yearly = items.iter().find(|item| item["id"] == "sub_2").unwrap();
    assert_eq!(
        (yearly["user_id"].clone(), yearly["monthly_amount"].clone()),
        (Value::Null, json!(2_000)),
        "unlinked, and 2 × 120.00 a year is 20.00 a month: {yearly}"
    );

    // Filtered by status, and paged.
    let active = s.read("/api/admin/subscriptions?status=active");
    assert_eq!(
        sorted(ids(active["items"].as_array().unwrap())),
        ["sub_1", "sub_2"]
    );
    let past_due = s.read("/api/admin/subscriptions?status=past_due");
    assert_eq!(ids(past_due["items"].as_array().unwrap()), ["sub_3"]);
    let mut paged = Vec::new();
    for page in 1..=3 {
        let reply = s.read(&format!("/api/admin/subscriptions?per_page=2&page={page}"));
        assert_eq!(reply["has_more"], page < 3, "{reply}");
        paged.extend(ids(reply["items"].as_array().unwrap()));
    }
    assert_eq!(paged, ids(items), "pages split the same order");
    let invalid = s
        .admin
        .get("/api/admin/subscriptions?status=live")
        .bearer(&s.root.access)
        .send()
        .expect_error(422, "validation_failed");
    assert!(invalid["fields"]["status"].is_string(), "{invalid}");

    // The dashboard's figures: active and trialing count; MRR of active and past-due, per
    // currency (29.00 + 2 × 120.00 / 12 in dollars; 10.00 × 52 / 12 in euros).
    let metrics = s.read("/api/admin/metrics");
    let metric = |key: &str| metric(&metrics, key);
    assert_eq!(metric("subscriptions_active")["value"], 3);
    let usd = metric("mrr_usd");
    assert_eq!(
        (
            usd["label"].clone(),
            usd["value"].clone(),
            usd["display"].clone()
        ),
        (json!("MRR (USD)"), json!(4_900), json!("$49.00"))
    );
    let eur = metric("mrr_eur");
    assert_eq!(
        (eur["value"].clone(), eur["display"].clone()),
        (json!(4_333), json!("€43.33"))
    );
    assert!(
        metrics["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["key"] != "mrr"),
        "no zero MRR beside real ones: {metrics}"
    );

    // One user's subscriptions: the running one first.
    let own = s.read(&format!("/api/admin/users/{customer_id}/subscriptions"));
    assert_eq!(
        ids(own["subscriptions"].as_array().unwrap()),
        ["sub_1", "sub_5"]
    );
    let root_id = str_of(&s.root.user["id"]).to_string();
    let none = s.read(&format!("/api/admin/users/{root_id}/subscriptions"));
    assert_eq!(none, json!({"subscriptions": []}));
    s.admin
        .get(&format!("/api/admin/users/{UNKNOWN_UUID}/subscriptions"))
        .bearer(&s.root.access)
        .send()
        .expect_error(404, "not_found");

    // The panel: the customer page's section and the dashboard's cards.
    let page = s.page(&format!("/admin/customers/{customer_id}"), &s.support);
    let section = page
        .split("<h2>Subscription</h2>")
        .nth(1)
        .unwrap_or_else(|| {
            panic!("no Subscription section: {page}");
        });
    for shown in [
        "sub_1",
        "sub_5",
        "$29.00 / month",
        "$9.00 / 3 months",
        "prod_price_1",
    ] {
        assert!(section.contains(shown), "{shown} in {section}");
    }
    let dashboard = s.page("/admin", &s.support);
    for shown in [
        r#"id="metric-subscriptions_active""#,
        r#"id="metric-mrr_usd""#,
        "$49.00",
        "€43.33",
    ] {
        assert!(dashboard.contains(shown), "{shown} in {dashboard}");
    }
}

fn replays(s: &Ops) {
    // One event out of attempts: the dashboard counts it, the log finds it.
    deliver(
        s,
        &checkout("evt_dead", "cus_dead", None, "late@example.com"),
    );
    let dead = wait_for_status(s, "evt_dead", "dead_letter");
    assert_eq!(outcomes(&dead), ["failed", "failed"], "{dead}");
    for attempt in dead["attempt_history"].as_array().unwrap() {
        assert!(
            str_of(&attempt["error"]).contains("late@example.com"),
            "{attempt}"
        );
        assert!(int_of(&attempt["finished_at_ms"]) >= int_of(&attempt["started_at_ms"]));
    }
    let metrics = s.read("/api/admin/metrics");
    let dead_letter = metric(&metrics, "webhooks_dead_letter");
    assert_eq!(dead_letter["value"], 1, "{metrics}");
    assert_eq!(dead_letter["link"], "/admin/webhooks?status=dead_letter");
    assert_eq!(metric(&metrics, "webhooks_retrying")["value"], 0);
    let failing = s.read("/api/admin/webhooks/events?status=dead_letter");
    assert_eq!(ids(failing["events"].as_array().unwrap()), ["evt_dead"]);
    assert_eq!(failing["next_cursor"], Value::Null);

    // Replayed once the account exists: processed, with the replay on record.
    register(&s.api, "late@example.com");
    let reply = s
        .admin
        .post("/api/admin/webhooks/events/evt_dead/replay")
        .bearer(&s.root.access)
        .send()
        .expect_json(202);
    assert_eq!(reply, json!({"status": "queued", "replays": 1}));
    let replayed = wait_for_status(s, "evt_dead", "processed");
    assert_eq!(outcomes(&replayed), ["failed", "failed", "succeeded"]);
    let root_id = str_of(&s.root.user["id"]).to_string();
    assert_eq!(
        replayed["replay_history"][0]["requested_by"],
        format!("root@example.com ({root_id})")
    );
    s.admin
        .post("/api/admin/webhooks/events/evt_nothing/replay")
        .bearer(&s.root.access)
        .send()
        .expect_error(404, "not_found");

    // Every dead-lettered event at once, and only those.
    for (id, email) in [
        ("evt_bulk_1", "bulk1@example.com"),
        ("evt_bulk_2", "bulk2@example.com"),
    ] {
        deliver(s, &checkout(id, &format!("cus_{id}"), None, email));
    }
    wait_for_status(s, "evt_bulk_1", "dead_letter");
    wait_for_status(s, "evt_bulk_2", "dead_letter");
    for status in ["processed", ""] {
        s.admin
            .post(&format!("/api/admin/webhooks/replay?status={status}"))
            .bearer(&s.root.access)
            .send()
            .expect_error(422, "validation_failed");
    }
    register(&s.api, "bulk1@example.com");
    register(&s.api, "bulk2@example.com");
    let bulk = s
        .admin
        .post("/api/admin/webhooks/replay?status=dead_letter")
        .bearer(&s.root.access)
        .send()
        .expect_json(202);
    assert_eq!(bulk, json!({"queued": 2}));
    wait_for_status(s, "evt_bulk_1", "processed");
    wait_for_status(s, "evt_bulk_2", "processed");
    let metrics = s.read("/api/admin/metrics");
    assert_eq!(metric(&metrics, "webhooks_dead_letter")["value"], 0);

    // The audit log has both replays, newest first; the refused ones are not there.
    let audit = s.read("/api/admin/audit?action=webhook.");
    let entries = audit["items"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                str_of(&e["action"]),
                str_of(&e["target_id"]),
                str_of(&e["actor_email"]),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("webhook.replay_all", "dead_letter", "root@example.com"),
            ("webhook.replay", "evt_dead", "root@example.com"),
        ],
        "{audit}"
    );
    assert!(entries.iter().all(|e| e["target_type"] == "webhook_event"));
    let details =
        |entry: &Value| -> Value { serde_json::from_str(str_of(&entry["details"])).unwrap() };
    assert_eq!(
        details(&entries[0]),
        json!({"status": "dead_letter", "queued": 2})
    );
    assert_eq!(details(&entries[1]), json!({"replays": 1}));
}

fn permission_matrix(s: &Ops) {
    deliver(s, &ping("evt_perm", "ping.test"));
    wait_for_status(s, "evt_perm", "ignored");
    let customer_id = s.customer_id();
    let impersonation = s
        .admin
        .post(&format!("/api/admin/users/{customer_id}/impersonate"))
        .bearer(&s.root.access)
        .json(json!({"reason": "checking the permission matrix"}))
        .send()
        .expect_json(201);
    let impersonating = str_of(&impersonation["access_token"]).to_string();

    let reads = [
        "/api/admin/webhooks/events".to_string(),
        "/api/admin/webhooks/events?status=ignored&type=ping.test&limit=1".to_string(),
        "/api/admin/webhooks/events/evt_perm".to_string(),
        "/api/admin/subscriptions".to_string(),
        format!("/api/admin/users/{customer_id}/subscriptions"),
    ];
    let writes = [
        "/api/admin/webhooks/events/evt_perm/replay",
        "/api/admin/webhooks/replay?status=dead_letter",
    ];
    let call = |method: &'static str, path: &str, token: Option<&str>| -> Reply {
        let call = s.admin.call(method, path);
        match token {
            Some(token) => call.bearer(token).send(),
            None => call.send(),
        }
    };
    for path in &reads {
        call("GET", path, None).check_error(401, "unauthorized");
        call("GET", path, Some(&s.customer.access)).check_error(403, "staff_token_required");
        call("GET", path, Some(&impersonating)).check_error(403, "staff_token_required");
        call("GET", path, Some(&s.support.api.access)).check_error(403, "staff_token_required");
        call("GET", path, Some(&s.support.access)).check(200);
        call("GET", path, Some(&s.root.access)).check(200);
    }
    for path in writes {
        call("POST", path, None).check_error(401, "unauthorized");
        call("POST", path, Some(&s.customer.access)).check_error(403, "staff_token_required");
        call("POST", path, Some(&impersonating)).check_error(403, "staff_token_required");
        call("POST", path, Some(&s.root.api.access)).check_error(403, "staff_token_required");
        call("POST", path, Some(&s.support.access)).check_error(403, "forbidden");
    }
    // The pages: the sign-in form for nobody, 403 for customers, and the replay button for
    // admins only.
    let list = s.admin.get("/admin/webhooks").send().expect(401);
    assert!(list.body.contains(r#"name="password""#), "{list}");
    s.admin
        .get("/admin/webhooks/events/evt_perm")
        .bearer(&s.customer.access)
        .send()
        .check(403);
    let support_page = s.page("/admin/webhooks/events/evt_perm", &s.support);
    assert!(!support_page.contains(r#"id="replay""#), "{support_page}");
    let root_page = s.page("/admin/webhooks/events/evt_perm", &s.root);
    assert!(root_page.contains(r#"id="replay""#), "{root_page}");

    // Admins replay; nothing was dead-lettered, which the audit log says too.
    for path in writes {
        call("POST", path, Some(&s.root.access)).check(202);
    }
    let audit = s.read("/api/admin/audit?action=webhook.");
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| str_of(&entry["action"]))
        .collect();
    assert_eq!(actions, ["webhook.replay_all", "webhook.replay"], "{audit}");
    let details: Value = serde_json::from_str(str_of(&audit["items"][0]["details"])).unwrap();
    assert_eq!(details, json!({"status": "dead_letter", "queued": 0}));
    // The replayed event is processed again (it is still ignored: no handler for its type).
    let detail = wait_until(s, "evt_perm", |e| {
        e["status"] == "ignored" && e["attempts"] == 2
    });
    assert_eq!(detail["replays"], 1);
}

fn panel(s: &Ops) {
    let admin = &s.admin;
    let root = PanelSession::sign_in(admin, "root@example.com");
    let support = PanelSession::sign_in(admin, "support@example.com");
    deliver(
        s,
        &checkout("evt_panel_dead", "cus_panel", None, "panel@example.com"),
    );
    for (n, kind) in ["ping.even", "ping.odd", "ping.even", "ping.odd"]
        .iter()
        .enumerate()
    {
        deliver(s, &ping(&format!("evt_panel_{n}"), kind));
    }
    wait_for_status(s, "evt_panel_dead", "dead_letter");
    for n in 0..4 {
        wait_for_status(s, &format!("evt_panel_{n}"), "ignored");
    }

    // The dashboard links to the dead letters, the navigation to the events.
    let dashboard = root.get(admin, "/admin").expect(200).body;
    assert!(
        dashboard.contains(r#"href="/admin/webhooks""#),
        "{dashboard}"
    );
    assert!(
        dashboard.contains(r#"href="/admin/webhooks?status=dead_letter""#),
        "{dashboard}"
    );

    // The list: every event, the status filter, the type filter.
    let all = root.get(admin, "/admin/webhooks").expect(200).body;
    for shown in [
        r#"id="status""#,
        r#"id="type""#,
        r#"id="replay-dead-letter""#,
        "evt_panel_3",
    ] {
        assert!(all.contains(shown), "{shown} in {all}");
    }
    let dead = root
        .get(admin, "/admin/webhooks?status=dead_letter")
        .expect(200)
        .body;
    assert!(
        dead.contains(r#"<option value="dead_letter" selected>"#),
        "{dead}"
    );
    assert!(
        dead.contains("evt_panel_dead") && !dead.contains("evt_panel_1"),
        "{dead}"
    );
    let odd = root
        .get(admin, "/admin/webhooks?type=ping.odd")
        .expect(200)
        .body;
    assert!(
        odd.contains("evt_panel_1") && odd.contains("evt_panel_3"),
        "{odd}"
    );
    assert!(
        !odd.contains("evt_panel_0") && !odd.contains("evt_panel_dead"),
        "{odd}"
    );
    root.get(admin, "/admin/webhooks?status=lost").check(422);
    // Support staff see the list without the replay button.
    let support_list = support.get(admin, "/admin/webhooks").expect(200).body;
    assert!(!support_list.contains(r#"id="replay-dead-letter""#));

    // Paging by cursor: one event a page, newest first, following the links.
    let mut seen = Vec::new();
    let mut path = "/admin/webhooks?type=ping.even&limit=1".to_string();
    loop {
        let page = root.get(admin, &path).expect(200).body;
        seen.extend(
            ["evt_panel_0", "evt_panel_2"]
                .into_iter()
                .filter(|id| page.contains(id)),
        );
        if seen.len() > 1 {
            assert!(page.contains(r#"id="newest""#), "{page}");
        }
        match link(&page, "older") {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(seen, ["evt_panel_2", "evt_panel_0"]);

    // An event's page: status, attempts with their errors, the payload indented.
    let event = root
        .get(admin, "/admin/webhooks/events/evt_panel_dead")
        .expect(200)
        .body;
    assert!(event.contains(r#"id="replay""#), "{event}");
    assert_eq!(
        event.matches(">failed<").count(),
        2,
        "two failed attempts: {event}"
    );
    assert!(event.contains("panel@example.com"), "{event}");
    assert!(
        event.contains("\n  &#34;data&#34;: {") || event.contains("\n  \"data\": {"),
        "the payload is pretty-printed: {event}"
    );
    root.get(admin, "/admin/webhooks/events/evt_none")
        .check(404);

    // Replaying with the form: not without the session's token, not as support.
    let replay = "/admin/webhooks/events/evt_panel_dead/replay";
    root.post(admin, replay, "").check(403);
    support
        .post(admin, replay, &format!("csrf={}", support.csrf))
        .check(403);
    register(&s.api, "panel@example.com");
    let done = root.post(admin, replay, &format!("csrf={}", root.csrf));
    done.check(303);
    assert_eq!(
        done.header("location"),
        Some("/admin/webhooks/events/evt_panel_dead?notice=queued")
    );
    wait_for_status(s, "evt_panel_dead", "processed");
    let event = root
        .get(admin, "/admin/webhooks/events/evt_panel_dead?notice=queued")
        .expect(200)
        .body;
    assert!(event.contains("Queued for processing."), "{event}");
    assert!(
        event.contains("root@example.com"),
        "the replay is listed: {event}"
    );

    // Every dead letter at once.
    deliver(
        s,
        &checkout("evt_panel_bulk", "cus_panel_bulk", None, "bulk@example.com"),
    );
    wait_for_status(s, "evt_panel_bulk", "dead_letter");
    register(&s.api, "bulk@example.com");
    let bulk = "/admin/webhooks/replay-dead-letter";
    support
        .post(admin, bulk, &format!("csrf={}", support.csrf))
        .check(403);
    let done = root.post(admin, bulk, &format!("csrf={}", root.csrf));
    done.check(303);
    assert_eq!(
        done.header("location"),
        Some("/admin/webhooks?status=pending&notice=queued")
    );
    wait_for_status(s, "evt_panel_bulk", "processed");
    let audit = root
        .get(admin, "/admin/audit?action=webhook.")
        .expect(200)
        .body;
    assert!(
        audit.contains("webhook.replay_all") && audit.contains("evt_panel_dead"),
        "{audit}"
    );
}

// ---------------------------------------------------------------------------------------------
// The services and the accounts

/// The api, the admin service and the webhooks service on one database, with a customer, a
/// support member and an admin (see [`Stack`]).
pub(crate) struct Ops<'db> {
    stack: Stack<'db>,
    pub(crate) hooks: Instance<'db>,
}

impl<'db> std::ops::Deref for Ops<'db> {
    type Target = Stack<'db>;

    fn deref(&self) -> &Stack<'db> {
        &self.stack
    }
}

fn with_ops(scenario: fn(&Ops)) -> impl Fn(&Database) {
    move |db| scenario(&Ops::start(db))
}

impl<'db> Ops<'db> {
    pub(crate) fn start(db: &'db Database) -> Ops<'db> {
        // The api first: it creates the database and applies the migrations.
        let stack = Stack::start(db);
        let hooks = launch_with_test_settings(
            "webhooks",
            db,
            &[
                ("STRIPE_WEBHOOK_SECRETS", SECRET),
                ("WEBHOOKS_MAX_ATTEMPTS", "2"),
                ("WEBHOOKS_RETRY_BASE_MS", "300"),
                ("WEBHOOKS_RETRY_MAX_MS", "600"),
                ("JOBS_POLL_INTERVAL_MS", "100"),
            ],
        );
        Ops { stack, hooks }
    }
}

impl Ops<'_> {
    fn customer_id(&self) -> String {
        str_of(&self.customer.user["id"]).to_string()
    }

    /// `GET path` of the admin service's JSON API as the admin.
    fn read(&self, path: &str) -> Value {
        self.admin
            .get(path)
            .bearer(&self.root.access)
            .send()
            .expect_json(200)
    }

    /// A panel page as `staff` sees it (with their access token: the panel takes it too).
    fn page(&self, path: &str, staff: &StaffMember) -> String {
        self.admin
            .get(path)
            .bearer(&staff.access)
            .send()
            .expect(200)
            .body
    }
}

/// The target of the link with `id` on an HTML page, unescaped.
fn link(html: &str, id: &str) -> Option<String> {
    let anchor = html.split(&format!(r#"id="{id}""#)).next()?;
    if anchor.len() == html.len() {
        return None;
    }
    let href = anchor.rsplit(r#"href=""#).next()?.split('"').next()?;
    Some(href.replace("&amp;", "&").replace("&#38;", "&"))
}

// ---------------------------------------------------------------------------------------------
// Events

/// Posts `body` to the webhooks service, signed now; it must be stored.
pub(crate) fn deliver(s: &Ops, body: &str) {
    let t = now();
    let reply = s
        .hooks
        .post("/api/webhooks/stripe")
        .header("Content-Type", "application/json")
        .header("Stripe-Signature", &webhooks::header(SECRET, t, body))
        .raw_body(body)
        .send()
        .expect_json(200);
    assert_eq!(reply, json!({"status": "received"}));
}

/// The event's detail, read through the admin service, once `done` holds; panics after
/// [`PATIENCE`].
fn wait_until(s: &Ops, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let reply = s
            .admin
            .get(&format!("/api/admin/webhooks/events/{id}"))
            .bearer(&s.support.access)
            .send();
        if reply.status == 200 && done(&reply.json()) {
            return reply.json();
        }
        assert!(Instant::now() < deadline, "{id} never got there: {reply}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn wait_for_status(s: &Ops, id: &str, status: &str) -> Value {
    wait_until(s, id, |event| event["status"] == status)
}

/// The metric `key` of `GET /api/admin/metrics`.
fn metric<'a>(metrics: &'a Value, key: &str) -> &'a Value {
    metrics["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|metric| metric["key"] == key)
        .unwrap_or_else(|| panic!("no metric {key}: {metrics}"))
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| str_of(&item["id"]).to_string())
        .collect()
}

/// An event of a type nothing handles: it is `ignored`.
fn ping(id: &str, kind: &str) -> String {
    event_body(id, kind, now(), json!({"id": format!("obj_{id}")}))
}

/// A completed checkout of Stripe customer `customer` by user `user_id`, else by `email`, now: it
/// fails until an account matches.
pub(crate) fn checkout(id: &str, customer: &str, user_id: Option<&str>, email: &str) -> String {
    webhooks::checkout(id, customer, user_id, email, now())
}

/// The price of a subscription's one item.
struct Price<'a> {
    amount: i64,
    currency: &'a str,
    interval: &'a str,
    count: i64,
    quantity: i64,
}

/// `customer.subscription.created` of `subscription`, its price and product named after its id.
fn subscription_event(
    id: &str,
    created: i64,
    subscription: &str,
    customer: &str,
    status: &str,
    price: &Price,
) -> String {
    let n = subscription.trim_start_matches("sub_");
    let object = json!({
        "id": subscription,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "cancel_at_period_end": false,
        "canceled_at": if status == "canceled" { Some(created) } else { None },
        "items": {"data": [{
            "price": {
                "id": format!("price_{n}"),
                "product": format!("prod_price_{n}"),
                "unit_amount": price.amount,
                "currency": price.currency,
                "recurring": {"interval": price.interval, "interval_count": price.count},
            },
            "quantity": price.quantity,
            "current_period_end": created + 30 * 24 * 3600,
        }]},
    });
    event_body(id, "customer.subscription.created", created, object)
}
