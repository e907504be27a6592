//! The webhooks service, black box: Stripe's signatures, durable idempotent ingestion, the
//! worker's retries, dead-letter and replay, recovery from `kill -9`, several instances on one
//! database, subscription state under out-of-order delivery, and the operations API's
//! permissions (docs/webhooks.md).
//!
//! Each scenario runs against a fresh SQLite file and a fresh PostgreSQL database, with the api
//! beside the webhooks service on the same database (it registers the users events refer to,
//! and shows their subscriptions). Signatures are computed here, with an HMAC written from its
//! definition, and by Stripe's own Python and Node libraries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::admin::{StaffMember, start_admin};
use crate::api::{Api, KEY, Session, int_of, now, on_each_database, register, seed, str_of};
use crate::client::{Instance, Reply, assert_keys};
use crate::support::Database;

/// The endpoint secret Stripe signs with now, and the one before it: both are configured, as
/// while a secret is rolled.
pub(crate) const SECRET: &str = "whsec_e2e_current_secret";
const OLD_SECRET: &str = "whsec_e2e_previous_secret";
const WRONG_SECRET: &str = "whsec_e2e_unknown_secret";
/// `WEBHOOKS_OPERATIONS_API_KEY` of every instance.
const OPS_KEY: &str = "e2e-operations-key-0123456789abcdefghij";
/// How long an event may take to reach a status before a test gives up.
const PATIENCE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The scenarios, each on SQLite and on PostgreSQL

#[test]
fn signatures_are_checked_against_the_raw_body_with_a_reason_for_each_refusal() {
    on_each_database(with_stack(signatures));
}

#[test]
fn headers_made_by_stripes_python_and_node_libraries_verify() {
    on_each_database(with_stack(official_libraries));
}

#[test]
fn a_repeated_event_is_stored_and_processed_once_even_when_twenty_copies_race() {
    on_each_database(with_stack(duplicates));
}

#[test]
fn failing_handlers_are_retried_then_dead_lettered_and_replays_process_them() {
    on_each_database(with_stack(retries_and_replays));
}

#[test]
fn subscription_state_keeps_the_newest_event_whatever_the_delivery_order() {
    on_each_database(with_stack(out_of_order));
}

#[test]
fn the_operations_api_is_for_the_api_key_and_staff_and_replays_for_admins() {
    on_each_database(with_stack(permissions));
}

#[test]
fn replays_through_the_operations_api_land_in_the_audit_log() {
    on_each_database(audited_replays);
}

#[test]
fn the_event_log_pages_newest_first_and_filters_by_status_and_type() {
    on_each_database(with_stack(event_log));
}

#[test]
fn a_worker_killed_mid_job_loses_nothing_and_applies_each_event_once() {
    on_each_database(kill_nine);
}

#[test]
fn a_service_killed_mid_load_loses_no_acknowledged_event_and_applies_each_once() {
    on_each_database(kill_nine_at_receipt);
}

#[test]
fn several_instances_on_one_database_process_each_event_exactly_once() {
    on_each_database(several_instances);
}

// ---------------------------------------------------------------------------------------------
// Scenarios

fn signatures(stack: &Stack) {
    let hooks = &stack.webhooks;
    let t = now();
    let body = event_body("evt_sig_ok", "ping.test", t, json!({}));
    deliver(hooks, &body, Some(&header(SECRET, t, &body))).expect_json(200);

    // Several v1 signatures, one of which matches; and a v0 that is ignored.
    let body = event_body("evt_sig_many", "ping.test", t, json!({}));
    let good = signature(SECRET, t, &body);
    let bad = signature(WRONG_SECRET, t, &body);
    let several = format!("t={t},v1={bad},v0={good},v1={good}");
    deliver(hooks, &body, Some(&several)).expect_json(200);

    // The previous secret still verifies while it is configured.
    let body = event_body("evt_sig_old", "ping.test", t, json!({}));
    deliver(hooks, &body, Some(&header(OLD_SECRET, t, &body))).expect_json(200);

    let unstored = event_body("evt_sig_refused", "ping.test", t, json!({}));
    let refused = [
        (
            "expired",
            header(SECRET, t - 301, &unstored),
            "signature_expired",
        ),
        // A minute beyond the tolerance rather than a second: the server's clock may have
        // ticked past `t` by the time this request arrives, which would bring `t + 301` within.
        (
            "future",
            header(SECRET, t + 360, &unstored),
            "signature_from_the_future",
        ),
        (
            "wrong secret",
            header(WRONG_SECRET, t, &unstored),
            "signature_mismatch",
        ),
        (
            "v0 only",
            format!("t={t},v0={}", signature(SECRET, t, &unstored)),
            "signature_v1_missing",
        ),
        (
            "no timestamp",
            format!("v1={}", signature(SECRET, t, &unstored)),
            "signature_timestamp_missing",
        ),
        ("empty", String::new(), "signature_header_missing"),
    ];
    for (case, value, code) in &refused {
        let reply = deliver(hooks, &unstored, Some(value));
        let error = reply.check_error(400, code);
        assert!(!str_of(&error["message"]).is_empty(), "{case}");
    }
    deliver(hooks, &unstored, None).expect_error(400, "signature_header_missing");
    // Signed for one body, sent with another: the signature covers the raw bytes.
    let tampered = unstored.replace("ping.test", "ping.tampered");
    deliver(hooks, &tampered, Some(&header(SECRET, t, &unstored)))
        .expect_error(400, "signature_mismatch");
    // The same JSON, serialised differently, is another body.
    let reformatted = unstored.replace(',', ", ");
    deliver(hooks, &reformatted, Some(&header(SECRET, t, &unstored)))
        .expect_error(400, "signature_mismatch");

    let stored: Vec<String> = all_events(hooks)
        .iter()
        .map(|e| str_of(&e["id"]).to_string())
        .collect();
    assert_eq!(
        sorted(stored),
        ["evt_sig_many", "evt_sig_ok", "evt_sig_old"],
        "only verified events are stored"
    );
    // A verified body that is not an event is refused without being stored.
    let garbage = r#"{"hello":"world"}"#;
    deliver(hooks, garbage, Some(&header(SECRET, t, garbage))).expect_error(400, "bad_request");
}

fn official_libraries(stack: &Stack) {
    let hooks = &stack.webhooks;
    let sdks = stripe_sdks();
    let python_body = event_body("evt_sdk_python", "ping.test", now(), json!({"n": "é"}));
    let python_header = run_output(
        Command::new("python3")
            .env("PYTHONPATH", sdks.join("python"))
            .args([
                "-c",
                "import stripe, sys; \
                 print(stripe.WebhookSignature.generate_signature_header(sys.argv[1], sys.argv[2]))",
                &python_body,
                SECRET,
            ]),
    );
    deliver(hooks, &python_body, Some(python_header.trim())).expect_json(200);

    let node_body = event_body("evt_sdk_node", "ping.test", now(), json!({"n": "ü"}));
    let script = "const stripe = require('stripe')('sk_test_unused'); \
                  console.log(stripe.webhooks.generateTestHeaderString( \
                      {payload: process.argv[1], secret: process.argv[2]}))";
    let node_header = run_output(
        Command::new("node")
            .env("NODE_PATH", sdks.join("node/node_modules"))
            .args(["-e", script, &node_body, SECRET]),
    );
    deliver(hooks, &node_body, Some(node_header.trim())).expect_json(200);

    for (id, body) in [
        ("evt_sdk_python", &python_body),
        ("evt_sdk_node", &node_body),
    ] {
        let detail = wait_for_status(hooks, id, "ignored");
        let sent: Value = serde_json::from_str(body).unwrap();
        assert_eq!(detail["payload"], sent, "the payload reads back as sent");
    }
}

fn duplicates(stack: &Stack) {
    let hooks = &stack.webhooks;
    let body = event_body("evt_dup_serial", "ping.test", now(), json!({}));
    assert_eq!(
        send(hooks, &body).expect_json(200),
        json!({"status": "received"})
    );
    assert_eq!(
        send(hooks, &body).expect_json(200),
        json!({"status": "duplicate"})
    );

    let body = event_body("evt_dup_racing", "ping.test", now(), json!({}));
    let signed = header(SECRET, now(), &body);
    let barrier = Barrier::new(20);
    let statuses: Vec<Value> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..20)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    deliver(hooks, &body, Some(&signed)).expect_json(200)["status"].clone()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let received = statuses.iter().filter(|s| *s == "received").count();
    let duplicate = statuses.iter().filter(|s| *s == "duplicate").count();
    assert_eq!((received, duplicate), (1, 19), "{statuses:?}");

    for id in ["evt_dup_serial", "evt_dup_racing"] {
        let detail = wait_for_status(hooks, id, "ignored");
        assert_eq!(detail["attempts"], 1, "{detail}");
        assert_eq!(
            detail["attempt_history"].as_array().unwrap().len(),
            1,
            "{detail}"
        );
    }
    let ids: Vec<String> = all_events(hooks)
        .iter()
        .map(|e| str_of(&e["id"]).to_string())
        .collect();
    assert_eq!(sorted(ids), ["evt_dup_racing", "evt_dup_serial"]);
}

fn retries_and_replays(stack: &Stack) {
    let hooks = &stack.webhooks;

    // Transient: the payment's user registers after the first attempt failed.
    let late = "late@example.com";
    send(
        hooks,
        &checkout("evt_transient", "cus_transient", None, late, now()),
    )
    .expect_json(200);
    let first = wait_for_status(hooks, "evt_transient", "retrying");
    let error = str_of(&first["last_error"]);
    assert!(
        error.contains(late),
        "the error names what is missing: {first}"
    );
    let customer = register(&stack.api, late);
    let processed = wait_for_status(hooks, "evt_transient", "processed");
    // The first retry comes 0.5 to 1 s after the failure: on a busy machine it may come before
    // the registration is through, and fail too. Failures, then one success, is the contract.
    let attempts = outcomes(&processed);
    let (last, before) = attempts.split_last().unwrap();
    assert_eq!(last, "succeeded", "{processed}");
    assert!(
        !before.is_empty() && before.iter().all(|outcome| outcome == "failed"),
        "{processed}"
    );
    assert_eq!(processed["last_error"], Value::Null, "{processed}");
    // The customer is linked: a subscription of theirs shows in the api.
    send(
        hooks,
        &subscription_event(
            "evt_transient_sub",
            "customer.subscription.created",
            now(),
            "sub_transient",
            "cus_transient",
            "active",
            false,
        ),
    )
    .expect_json(200);
    wait_for_status(hooks, "evt_transient_sub", "processed");
    assert_eq!(subscription_of(stack, &customer)["id"], "sub_transient");

    // Permanent: out of attempts, dead-lettered; replayed once the fault is gone.
    let never = "never@example.com";
    send(hooks, &checkout("evt_dead", "cus_dead", None, never, now())).expect_json(200);
    let dead = wait_for_status(hooks, "evt_dead", "dead_letter");
    assert_eq!(outcomes(&dead), ["failed", "failed", "failed"], "{dead}");
    for attempt in dead["attempt_history"].as_array().unwrap() {
        assert!(str_of(&attempt["error"]).contains(never), "{attempt}");
        assert!(int_of(&attempt["finished_at_ms"]) >= int_of(&attempt["started_at_ms"]));
    }
    let failing = ops_get(hooks, "/api/webhooks/logs?status=dead_letter");
    assert_eq!(failing["events"][0]["id"], "evt_dead", "{failing}");

    let customer = register(&stack.api, never);
    let reply = ops_post(hooks, "/api/webhooks/replay/evt_dead").expect_json(202);
    assert_eq!(reply, json!({"status": "queued", "replays": 1}));
    let replayed = wait_for_status(hooks, "evt_dead", "processed");
    assert_eq!(replayed["replays"], 1);
    assert_eq!(
        outcomes(&replayed),
        ["failed", "failed", "failed", "succeeded"]
    );
    assert_eq!(
        replayed["replay_history"][0]["requested_by"],
        "API key internal-tools"
    );
    send(
        hooks,
        &subscription_event(
            "evt_dead_sub",
            "customer.subscription.created",
            now(),
            "sub_dead",
            "cus_dead",
            "trialing",
            false,
        ),
    )
    .expect_json(200);
    wait_for_status(hooks, "evt_dead_sub", "processed");
    assert_eq!(subscription_of(stack, &customer)["status"], "trialing");

    // Replaying an unknown event is a 404; a queued one, a 409 (checked while it waits).
    ops_post(hooks, "/api/webhooks/replay/evt_nothing").expect_error(404, "not_found");

    // Bulk: every dead-lettered event at once, and only with status=dead_letter.
    for (id, email) in [
        ("evt_bulk_1", "bulk1@example.com"),
        ("evt_bulk_2", "bulk2@example.com"),
    ] {
        send(
            hooks,
            &checkout(id, &format!("cus_{id}"), None, email, now()),
        )
        .expect_json(200);
    }
    wait_for_status(hooks, "evt_bulk_1", "dead_letter");
    wait_for_status(hooks, "evt_bulk_2", "dead_letter");
    ops_post(hooks, "/api/webhooks/replay?status=processed").expect_error(422, "validation_failed");
    register(&stack.api, "bulk1@example.com");
    register(&stack.api, "bulk2@example.com");
    let bulk = ops_post(hooks, "/api/webhooks/replay?status=dead_letter").expect_json(202);
    assert_eq!(bulk, json!({"queued": 2}));
    wait_for_status(hooks, "evt_bulk_1", "processed");
    wait_for_status(hooks, "evt_bulk_2", "processed");
}

fn out_of_order(stack: &Stack) {
    let hooks = &stack.webhooks;
    let customer = register(&stack.api, "order@example.com");
    let user_id = str_of(&customer.user["id"]).to_string();
    let t = now() - 100;
    send(
        hooks,
        &checkout(
            "evt_o_checkout",
            "cus_o",
            Some(&user_id),
            "other@example.com",
            t,
        ),
    )
    .expect_json(200);
    wait_for_status(hooks, "evt_o_checkout", "processed");

    let sub = |id: &str, kind: &str, at: i64, status: &str, cancel: bool| {
        subscription_event(id, kind, at, "sub_o", "cus_o", status, cancel)
    };
    // Happened in this order: created (incomplete), paid (active), cancel at period end,
    // deleted. Delivered shuffled.
    let created = sub(
        "evt_o_1",
        "customer.subscription.created",
        t + 1,
        "incomplete",
        false,
    );
    let activated = sub(
        "evt_o_2",
        "customer.subscription.updated",
        t + 2,
        "active",
        false,
    );
    let cancelling = sub(
        "evt_o_3",
        "customer.subscription.updated",
        t + 3,
        "active",
        true,
    );
    let deleted = sub(
        "evt_o_4",
        "customer.subscription.deleted",
        t + 4,
        "canceled",
        true,
    );
    for (id, body) in [
        ("evt_o_3", &cancelling),
        ("evt_o_1", &created),
        ("evt_o_2", &activated),
    ] {
        send(hooks, body).expect_json(200);
        wait_for_status(hooks, id, "processed");
    }
    let state = subscription_of(stack, &customer);
    assert_eq!(
        (
            state["status"].clone(),
            state["cancel_at_period_end"].clone()
        ),
        (json!("active"), json!(true)),
        "the newest event so far (cancel at period end) wins: {state}"
    );
    assert_eq!(state["plan"], "pro", "{state}");
    assert_eq!(state["current_period_end"], 1_702_600_000, "{state}");

    send(hooks, &deleted).expect_json(200);
    wait_for_status(hooks, "evt_o_4", "processed");
    // Later deliveries of older news change nothing: a replay of the creation, a payment
    // failure and a paid invoice from before the deletion.
    ops_post(hooks, "/api/webhooks/replay/evt_o_1").expect_json(202);
    wait_for_status(hooks, "evt_o_1", "processed");
    send(
        hooks,
        &invoice("evt_o_failed", "invoice.payment_failed", t + 3, "sub_o"),
    )
    .expect_json(200);
    wait_for_status(hooks, "evt_o_failed", "processed");
    // The same second as the deletion: the end of the subscription's life still wins.
    let same_second = sub(
        "evt_o_5",
        "customer.subscription.updated",
        t + 4,
        "active",
        false,
    );
    send(hooks, &same_second).expect_json(200);
    wait_for_status(hooks, "evt_o_5", "processed");
    let state = subscription_of(stack, &customer);
    assert_eq!(state["status"], "canceled", "{state}");

    // A newer invoice moves a past-due subscription back to active.
    let customer = register(&stack.api, "dunning@example.com");
    let user_id = str_of(&customer.user["id"]).to_string();
    send(
        hooks,
        &checkout("evt_d_checkout", "cus_d", Some(&user_id), "", t),
    )
    .expect_json(200);
    for (id, body) in [
        (
            "evt_d_1",
            subscription_event(
                "evt_d_1",
                "customer.subscription.created",
                t + 1,
                "sub_d",
                "cus_d",
                "active",
                false,
            ),
        ),
        (
            "evt_d_2",
            invoice("evt_d_2", "invoice.payment_failed", t + 2, "sub_d"),
        ),
    ] {
        send(hooks, &body).expect_json(200);
        wait_for_status(hooks, id, "processed");
    }
    assert_eq!(subscription_of(stack, &customer)["status"], "past_due");
    send(hooks, &invoice("evt_d_3", "invoice.paid", t + 3, "sub_d")).expect_json(200);
    wait_for_status(hooks, "evt_d_3", "processed");
    let state = subscription_of(stack, &customer);
    assert_eq!(state["status"], "active", "{state}");
    assert_eq!(
        state["current_period_end"],
        t + 3 + 30 * 24 * 3600,
        "{state}"
    );

    // An invoice carries a payment, not the whole subscription: a plan change created before a
    // paid invoice but delivered after it still applies.
    let customer = register(&stack.api, "downgrade@example.com");
    let user_id = str_of(&customer.user["id"]).to_string();
    send(
        hooks,
        &checkout("evt_p_checkout", "cus_p", Some(&user_id), "", t),
    )
    .expect_json(200);
    let created = subscription_event(
        "evt_p_1",
        "customer.subscription.created",
        t + 1,
        "sub_p",
        "cus_p",
        "active",
        false,
    );
    let downgraded = on_starter_plan(&subscription_event(
        "evt_p_2",
        "customer.subscription.updated",
        t + 2,
        "sub_p",
        "cus_p",
        "active",
        true,
    ));
    for (id, body) in [
        ("evt_p_1", created),
        (
            "evt_p_3",
            invoice("evt_p_3", "invoice.paid", t + 3, "sub_p"),
        ),
        ("evt_p_2", downgraded),
    ] {
        send(hooks, &body).expect_json(200);
        wait_for_status(hooks, id, "processed");
    }
    let state = subscription_of(stack, &customer);
    assert_eq!(
        (state["plan"].clone(), state["cancel_at_period_end"].clone()),
        (json!("starter"), json!(true)),
        "the plan change (created before the paid invoice) applies: {state}"
    );
    assert_eq!(state["status"], "active", "{state}");
    assert_eq!(
        state["current_period_end"],
        t + 3 + 30 * 24 * 3600,
        "the paid invoice, newer than the plan change, still decides the period end: {state}"
    );
}

fn permissions(stack: &Stack) {
    let hooks = &stack.webhooks;
    send(
        hooks,
        &event_body("evt_perm", "ping.test", now(), json!({})),
    )
    .expect_json(200);
    wait_for_status(hooks, "evt_perm", "ignored");
    let reads = ["/api/webhooks/logs", "/api/webhooks/events/evt_perm"];
    let writes = [
        "/api/webhooks/replay/evt_perm",
        "/api/webhooks/replay?status=dead_letter",
    ];

    let customer = register(&stack.api, "customer@example.com");
    register(&stack.api, "support@example.com");
    register(&stack.api, "admin@example.com");
    let db = stack.api.db;
    db.execute("UPDATE users SET role = 'support' WHERE email = 'support@example.com'");
    db.execute("UPDATE users SET role = 'admin' WHERE email = 'admin@example.com'");
    // Staff sign in at the admin service for staff tokens; their api tokens are refused.
    let back_office = start_admin(db, &[]);
    let support = StaffMember::sign_in(&stack.api, &back_office, "support@example.com");
    let admin = StaffMember::sign_in(&stack.api, &back_office, "admin@example.com");

    for path in reads {
        hooks.get(path).send().expect_error(401, "unauthorized");
        hooks
            .get(path)
            .bearer("not-the-key")
            .send()
            .expect_error(401, "unauthorized");
        for api_token in [&customer.access, &support.api.access, &admin.api.access] {
            hooks
                .get(path)
                .bearer(api_token)
                .send()
                .expect_error(403, "staff_token_required");
        }
        hooks.get(path).bearer(&support.access).send().expect(200);
        hooks.get(path).bearer(&admin.access).send().expect(200);
        hooks.get(path).bearer(OPS_KEY).send().expect(200);
    }
    for path in writes {
        hooks.post(path).send().expect_error(401, "unauthorized");
        for api_token in [&customer.access, &admin.api.access] {
            hooks
                .post(path)
                .bearer(api_token)
                .send()
                .expect_error(403, "staff_token_required");
        }
        hooks
            .post(path)
            .bearer(&support.access)
            .send()
            .expect_error(403, "forbidden");
    }
    hooks
        .post(writes[0])
        .bearer(&admin.access)
        .send()
        .expect(202);
    let detail = wait_for_status(hooks, "evt_perm", "ignored");
    let requested_by = str_of(&detail["replay_history"][0]["requested_by"]);
    assert!(requested_by.contains("admin@example.com"), "{detail}");
    hooks.post(writes[1]).bearer(OPS_KEY).send().expect(202);

    // The api's billing endpoints: the plans are public, a subscription is one's own.
    let plans = stack.api.get("/api/billing/plans").send().expect_json(200);
    let ids: Vec<&str> = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| str_of(&p["id"]))
        .collect();
    assert_eq!(ids, ["starter", "pro"], "{plans}");
    assert_keys(
        &plans["plans"][1],
        &[
            "id", "name", "price_id", "amount", "currency", "interval", "features",
        ],
    );
    stack
        .api
        .get("/api/billing/subscription")
        .send()
        .expect_error(401, "unauthorized");
    let none = stack
        .api
        .get("/api/billing/subscription")
        .bearer(&customer.access)
        .send()
        .expect_json(200);
    assert_eq!(none, json!({"subscription": null}));
}

/// A replay by an admin's token names the admin, one by the internal key names the key by its
/// configured name (`WEBHOOKS_OPERATIONS_API_KEY_NAME`), as the panel's replays do.
fn audited_replays(db: &Database) {
    let api = Api::start(db, &[]);
    let hooks = start_webhooks(db, &[("WEBHOOKS_OPERATIONS_API_KEY_NAME", "billing-tool")]);
    send(
        &hooks,
        &event_body("evt_audited", "ping.test", now(), json!({})),
    )
    .expect_json(200);
    wait_for_status(&hooks, "evt_audited", "ignored");
    register(&api, "auditor@example.com");
    db.execute("UPDATE users SET role = 'admin' WHERE email = 'auditor@example.com'");
    let back_office = start_admin(db, &[]);
    let admin = StaffMember::sign_in(&api, &back_office, "auditor@example.com");

    hooks
        .post("/api/webhooks/replay/evt_audited")
        .bearer(&admin.access)
        .send()
        .expect(202);
    wait_for_replays(&hooks, "evt_audited", 1, "ignored");
    ops_post(&hooks, "/api/webhooks/replay/evt_audited").expect(202);
    ops_post(&hooks, "/api/webhooks/replay?status=dead_letter").expect(202);
    // Refused replays are not audited.
    ops_post(&hooks, "/api/webhooks/replay/evt_unknown").expect_error(404, "not_found");

    let entries = |condition: &str| {
        db.query_value(&format!("SELECT count(*) FROM audit_log WHERE {condition}"))
    };
    let by_admin = "action = 'webhook.replay' AND target_type = 'webhook_event' \
                    AND target_id = 'evt_audited' AND actor_email = 'auditor@example.com'";
    assert_eq!(entries(by_admin), "1", "{}", db.kind());
    let by_key = "action = 'webhook.replay' AND target_id = 'evt_audited' \
                  AND actor_id = 'api-key:billing-tool'";
    assert_eq!(entries(by_key), "1", "{}", db.kind());
    let bulk = "action = 'webhook.replay_all' AND target_id = 'dead_letter' \
                AND actor_id = 'api-key:billing-tool'";
    assert_eq!(entries(bulk), "1", "{}", db.kind());
    assert_eq!(entries("target_id = 'evt_unknown'"), "0");
}

/// Waits until event `id` has been replayed `replays` times and is `status` again.
fn wait_for_replays(hooks: &Instance, id: &str, replays: i64, status: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let detail = ops_get(hooks, &format!("/api/webhooks/events/{id}"));
        if int_of(&detail["replays"]) == replays && detail["status"] == status {
            return;
        }
        assert!(Instant::now() < deadline, "{detail}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn event_log(stack: &Stack) {
    let hooks = &stack.webhooks;
    for n in 0..5 {
        let kind = if n % 2 == 0 { "ping.even" } else { "ping.odd" };
        send(
            hooks,
            &event_body(&format!("evt_log_{n}"), kind, now(), json!({})),
        )
        .expect_json(200);
        wait_for_status(hooks, &format!("evt_log_{n}"), "ignored");
        // Whole seconds apart for two of them, so that the order is by time and by id.
        if n == 1 || n == 3 {
            std::thread::sleep(Duration::from_millis(1_100));
        }
    }
    let mut seen = Vec::new();
    let mut path = "/api/webhooks/logs?limit=2".to_string();
    loop {
        let page = ops_get(hooks, &path);
        assert_keys(&page, &["events", "next_cursor"]);
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 2, "{page}");
        seen.extend(events.iter().map(|e| str_of(&e["id"]).to_string()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/webhooks/logs?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "evt_log_4",
            "evt_log_3",
            "evt_log_2",
            "evt_log_1",
            "evt_log_0"
        ]
    );
    let odd = ops_get(hooks, "/api/webhooks/logs?type=ping.odd");
    let odd: Vec<&str> = odd["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| str_of(&e["id"]))
        .collect();
    assert_eq!(odd, ["evt_log_3", "evt_log_1"]);
    let pending = ops_get(hooks, "/api/webhooks/logs?status=pending");
    assert_eq!(pending["events"], json!([]));
    let summary = &ops_get(hooks, "/api/webhooks/logs?limit=1")["events"][0];
    assert_keys(
        summary,
        &[
            "id",
            "type",
            "status",
            "created",
            "livemode",
            "received_at",
            "attempts",
            "replays",
            "processed_at",
            "last_error",
        ],
    );
    let error = hooks
        .get("/api/webhooks/logs?status=lost&limit=0&cursor=zz")
        .bearer(OPS_KEY)
        .send()
        .expect_error(422, "validation_failed");
    assert_eq!(
        error["fields"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["cursor", "limit", "status"]
    );
    hooks
        .get("/api/webhooks/events/evt_none")
        .bearer(OPS_KEY)
        .send()
        .expect_error(404, "not_found");
}

/// Events queued and in flight when the service is killed with SIGKILL: after a restart every
/// one is processed, and exactly one attempt of each succeeded (its effects committed once).
/// The jobs the dead worker had leased are taken over when their lease (2 s) expires. The
/// events go through the queue (processing at receipt off), whose jobs the kill interrupts;
/// [`kill_nine_at_receipt`] kills the default, which processes them as it stores them.
fn kill_nine(db: &Database) {
    const EVENTS: usize = 600;
    const SENDERS: usize = 8;
    let _api = Api::start(db, &[]);
    let mut sent = 0;
    let mut left_at_kill = false;
    // One worker loop against eight senders: most events are still queued at the kill, and the
    // loop holds the lease of a batch. Should the worker have kept up after all (a fast
    // machine), another instance takes a bigger burst, so that a kill always finds work left.
    for round in 0..3 {
        // Short leases, so that the instance started after the kill takes the jobs over soon.
        let hooks = start_webhooks(
            db,
            &[
                ("WEBHOOKS_JOBS_CONCURRENCY", "1"),
                ("JOBS_LEASE_SECS", "2"),
                ("WEBHOOKS_PROCESS_ON_RECEIPT", "false"),
            ],
        );
        let burst = EVENTS << round;
        send_subscriptions(&hooks, "k", sent..sent + burst, SENDERS);
        sent += burst;
        // Dropping the instance sends SIGKILL and waits for the process to end; the database
        // then shows what it left.
        drop(hooks);
        let processed =
            db.query_value("SELECT COUNT(*) FROM webhook_events WHERE status = 'processed'");
        if processed.parse::<usize>().unwrap() < sent {
            left_at_kill = true;
            break;
        }
    }
    assert!(
        left_at_kill,
        "the worker processed each of three bursts ({sent} events) before the kill"
    );
    let hooks = start_webhooks(db, &[]);
    wait_until_processed(&hooks, sent, PATIENCE * 2);
    for n in 0..sent {
        let detail = ops_get(&hooks, &format!("/api/webhooks/events/evt_k_{n}"));
        let succeeded = outcomes(&detail)
            .iter()
            .filter(|o| *o == "succeeded")
            .count();
        assert_eq!(succeeded, 1, "{detail}");
    }
}

/// The service killed with SIGKILL while eight senders are in the middle of a load, with the
/// defaults (events processed at receipt): every event answered before the kill was already
/// processed, and after a restart, the senders delivering every event again as Stripe does
/// (the unanswered ones, and copies of the answered), each event is processed with exactly one
/// succeeded attempt: nothing lost, nothing applied twice.
fn kill_nine_at_receipt(db: &Database) {
    const EVENTS: usize = 3_000;
    const SENDERS: usize = 8;
    let _api = Api::start(db, &[]);
    let bodies: Vec<String> = (0..EVENTS)
        .map(|n| subscription_body("r", n, "customer.subscription.created"))
        .collect();
    let hooks = start_webhooks(db, &[]);
    let url = format!("{}/api/webhooks/stripe", hooks.base);
    let answered = std::sync::Mutex::new(Vec::new());
    let answers = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for first in 0..SENDERS {
            let (url, bodies, answered, answers) = (&url, &bodies, &answered, &answers);
            scope.spawn(move || {
                // A client of its own: the instance goes away under it.
                let agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(10)))
                    .build()
                    .new_agent();
                for n in (first..EVENTS).step_by(SENDERS) {
                    let body = &bodies[n];
                    let reply = agent
                        .post(url)
                        .header("Stripe-Signature", header(SECRET, now(), body))
                        .send(body.as_str());
                    match reply {
                        Ok(reply) if reply.status() == 200 => {
                            answered.lock().unwrap().push(n);
                            answers.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        Ok(reply) => panic!("event {n} answered {}", reply.status()),
                        // The service is gone: the rest is delivered after the restart.
                        Err(_) => return,
                    }
                }
            });
        }
        // Killed a third of the way in: requests in flight, batches being written.
        let deadline = Instant::now() + PATIENCE * 2;
        while answers.load(std::sync::atomic::Ordering::SeqCst) < EVENTS / 3 {
            assert!(
                Instant::now() < deadline,
                "the load did not get a third of the way"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Dropping the instance sends SIGKILL and waits for the process to end.
        drop(hooks);
    });
    let answered = answered.into_inner().unwrap();
    assert!(
        answered.len() < EVENTS,
        "every event was answered before the kill"
    );
    // One query for them all: a process per query is slow.
    let ids: Vec<String> = answered.iter().map(|n| format!("'evt_r_{n}'")).collect();
    let processed = db.query_value(&format!(
        "SELECT COUNT(*) FROM webhook_events WHERE status = 'processed' AND id IN ({})",
        ids.join(", ")
    ));
    assert_eq!(
        processed,
        answered.len().to_string(),
        "every event answered before the kill was processed"
    );

    let hooks = start_webhooks(db, &[]);
    std::thread::scope(|scope| {
        for first in 0..SENDERS {
            let (hooks, bodies) = (&hooks, &bodies);
            scope.spawn(move || {
                for body in bodies.iter().skip(first).step_by(SENDERS) {
                    send(hooks, body).expect_json(200);
                }
            });
        }
    });
    wait_until_processed(&hooks, EVENTS, PATIENCE * 2);
    // A first attempt that succeeded at receipt is in the event's row, the others in
    // `webhook_attempts`.
    let succeeded_attempts = "SELECT event_id FROM webhook_attempts \
         WHERE outcome = 'succeeded' AND event_id LIKE 'evt_r_%' \
         UNION ALL SELECT id FROM webhook_events \
         WHERE receipt_worker IS NOT NULL AND id LIKE 'evt_r_%'";
    let succeeded = db.query_value(&format!(
        "SELECT COUNT(*) FROM ({succeeded_attempts}) AS attempts"
    ));
    assert_eq!(
        succeeded,
        EVENTS.to_string(),
        "one succeeded attempt per event"
    );
    let events_with_one = db.query_value(&format!(
        "SELECT COUNT(DISTINCT event_id) FROM ({succeeded_attempts}) AS attempts"
    ));
    assert_eq!(events_with_one, EVENTS.to_string());
}

/// A `customer.subscription.*` event `evt_<tag>_<n>` of subscription `sub_<tag>_<n>`, created
/// now, for customer `cus_<tag>`.
fn subscription_body(tag: &str, n: usize, kind: &str) -> String {
    subscription_event(
        &format!("evt_{tag}_{n}"),
        kind,
        now(),
        &format!("sub_{tag}_{n}"),
        &format!("cus_{tag}"),
        "active",
        false,
    )
}

/// Sends `customer.subscription.created` events `evt_<tag>_<n>` for each `n` of `range`, from
/// `senders` threads at once.
fn send_subscriptions(hooks: &Instance, tag: &str, range: std::ops::Range<usize>, senders: usize) {
    std::thread::scope(|scope| {
        for first in 0..senders {
            let range = range.clone();
            scope.spawn(move || {
                for n in range.skip(first).step_by(senders) {
                    let body = subscription_body(tag, n, "customer.subscription.created");
                    send(hooks, &body).expect_json(200);
                }
            });
        }
    });
}

fn wait_until_processed(hooks: &Instance, events: usize, patience: Duration) {
    let deadline = Instant::now() + patience;
    loop {
        let processed = count_with_status(hooks, "processed");
        if processed == events {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{processed} of {events} events processed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Two instances of the service on one database share the work and never both run a job.
fn several_instances(db: &Database) {
    const EVENTS: usize = 200;
    let _api = Api::start(db, &[]);
    let first = start_webhooks(db, &[]);
    let second = start_webhooks(db, &[]);
    std::thread::scope(|scope| {
        scope.spawn(|| send_subscriptions(&first, "m", 0..EVENTS / 2, 2));
        scope.spawn(|| send_subscriptions(&second, "m", EVENTS / 2..EVENTS, 2));
    });
    wait_until_processed(&first, EVENTS, PATIENCE);
    let mut workers = BTreeMap::new();
    for n in 0..EVENTS {
        let detail = ops_get(&first, &format!("/api/webhooks/events/evt_m_{n}"));
        assert_eq!(
            detail["attempts"], 1,
            "one attempt, by one worker: {detail}"
        );
        let worker = str_of(&detail["attempt_history"][0]["worker"]);
        let process = worker.split('-').next().unwrap().to_string();
        *workers.entry(process).or_insert(0) += 1;
    }
    assert_eq!(workers.len(), 2, "both instances took jobs: {workers:?}");
}

// ---------------------------------------------------------------------------------------------
// Instances

/// The api and the webhooks service on one database.
struct Stack<'db> {
    api: Api<'db>,
    webhooks: Instance<'db>,
}

fn with_stack(scenario: fn(&Stack)) -> impl Fn(&Database) {
    move |db| {
        // The api first: it creates the database and applies the migrations.
        let api = Api::start(db, &[]);
        let webhooks = start_webhooks(db, &[]);
        scenario(&Stack { api, webhooks });
    }
}

/// The webhooks service on `db`: both test secrets, the test API key, the api's signing key,
/// retries a second apart and three attempts, quick polls; changed by `env`. Leases keep their
/// default (30 s): a shorter one could run out under a busy machine's stalls and let a second
/// worker attempt a job the tests expect to be attempted once.
pub(crate) fn start_webhooks<'db>(db: &'db Database, env: &[(&str, &str)]) -> Instance<'db> {
    let url = db.url();
    let key = seed(KEY);
    let secrets = format!("{SECRET},{OLD_SECRET}");
    let mut all = vec![
        ("DATABASE_URL", url.as_str()),
        ("AUTH_SIGNING_KEY", key.as_str()),
        ("STRIPE_WEBHOOK_SECRETS", secrets.as_str()),
        ("WEBHOOKS_OPERATIONS_API_KEY", OPS_KEY),
        ("WEBHOOKS_RETRY_BASE_MS", "1000"),
        ("WEBHOOKS_RETRY_MAX_MS", "2000"),
        ("WEBHOOKS_MAX_ATTEMPTS", "3"),
        ("JOBS_POLL_INTERVAL_MS", "100"),
    ];
    all.extend_from_slice(env);
    Instance::launch("webhooks", db, &all)
}

// ---------------------------------------------------------------------------------------------
// Requests

/// `POST /api/webhooks/stripe` with `body` and, if given, a `Stripe-Signature` header.
fn deliver(hooks: &Instance, body: &str, signature_header: Option<&str>) -> Reply {
    let call = hooks
        .post("/api/webhooks/stripe")
        .header("Content-Type", "application/json");
    let call = match signature_header {
        Some(value) => call.header("Stripe-Signature", value),
        None => call,
    };
    call.raw_body(body).send()
}

/// Delivers `body` signed now with the current secret.
pub(crate) fn send(hooks: &Instance, body: &str) -> Reply {
    deliver(hooks, body, Some(&header(SECRET, now(), body)))
}

fn ops_get(hooks: &Instance, path: &str) -> Value {
    hooks.get(path).bearer(OPS_KEY).send().expect_json(200)
}

fn ops_post(hooks: &Instance, path: &str) -> Reply {
    hooks.post(path).bearer(OPS_KEY).send()
}

/// Every stored event (the log is paged 200 at a time).
fn all_events(hooks: &Instance) -> Vec<Value> {
    let mut events = Vec::new();
    let mut path = "/api/webhooks/logs?limit=200".to_string();
    loop {
        let page = ops_get(hooks, &path);
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/webhooks/logs?limit=200&cursor={cursor}"),
            None => return events,
        }
    }
}

fn count_with_status(hooks: &Instance, status: &str) -> usize {
    all_events(hooks)
        .iter()
        .filter(|e| e["status"] == status)
        .count()
}

/// The event's detail once it has `status`; panics after [`PATIENCE`].
pub(crate) fn wait_for_status(hooks: &Instance, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let reply = hooks
            .get(&format!("/api/webhooks/events/{id}"))
            .bearer(OPS_KEY)
            .send();
        if reply.status == 200 {
            let detail = reply.json();
            if detail["status"] == status {
                return detail;
            }
            assert!(
                Instant::now() < deadline,
                "{id} never became {status}: {detail}"
            );
        } else {
            assert!(
                Instant::now() < deadline,
                "{id} never became {status}: {reply}"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The outcome of each attempt of an event's detail, in order.
pub(crate) fn outcomes(detail: &Value) -> Vec<String> {
    detail["attempt_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attempt| str_of(&attempt["outcome"]).to_string())
        .collect()
}

/// The subscription the api shows `customer`.
fn subscription_of(stack: &Stack, customer: &Session) -> Value {
    let reply = stack
        .api
        .get("/api/billing/subscription")
        .bearer(&customer.access)
        .send();
    reply.expect_json(200)["subscription"].clone()
}

// ---------------------------------------------------------------------------------------------
// Events and signatures

/// An event as Stripe sends it: compact JSON, the envelope's fields first.
pub(crate) fn event_body(id: &str, kind: &str, created: i64, object: Value) -> String {
    json!({
        "id": id,
        "object": "event",
        "type": kind,
        "created": created,
        "livemode": false,
        "api_version": "2025-03-31.basil",
        "data": {"object": object},
    })
    .to_string()
}

pub(crate) fn checkout(
    id: &str,
    customer: &str,
    user_id: Option<&str>,
    email: &str,
    created: i64,
) -> String {
    let object = json!({
        "id": format!("cs_{id}"),
        "object": "checkout.session",
        "customer": customer,
        "client_reference_id": user_id,
        "customer_details": {"email": email},
        "mode": "subscription",
    });
    event_body(id, "checkout.session.completed", created, object)
}

/// A subscription on the `pro` plan's price, its period ending at a fixed time.
pub(crate) fn subscription_event(
    id: &str,
    kind: &str,
    created: i64,
    subscription: &str,
    customer: &str,
    status: &str,
    cancel_at_period_end: bool,
) -> String {
    let object = json!({
        "id": subscription,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": if status == "canceled" { Some(created) } else { None },
        "items": {"data": [{
            "price": {
                "id": "price_pro_monthly",
                "product": "prod_pro",
                "unit_amount": 2900,
                "currency": "usd",
                "recurring": {"interval": "month", "interval_count": 1},
            },
            "quantity": 1,
            "current_period_end": 1_702_600_000,
        }]},
    });
    event_body(id, kind, created, object)
}

/// `event`, a [`subscription_event`], on the `starter` plan's price instead of `pro`'s.
fn on_starter_plan(event: &str) -> String {
    let mut event: Value = serde_json::from_str(event).unwrap();
    event["data"]["object"]["items"]["data"][0]["price"] = json!({
        "id": "price_starter_monthly",
        "product": "prod_starter",
        "unit_amount": 900,
        "currency": "usd",
        "recurring": {"interval": "month", "interval_count": 1},
    });
    event.to_string()
}

/// An invoice of `subscription` (in the shape of API versions since 2025-03-31), for a period
/// of 30 days from `created`.
fn invoice(id: &str, kind: &str, created: i64, subscription: &str) -> String {
    let object = json!({
        "id": format!("in_{id}"),
        "object": "invoice",
        "parent": {"subscription_details": {"subscription": subscription}},
        "lines": {"data": [{"period": {"start": created, "end": created + 30 * 24 * 3600}}]},
    });
    event_body(id, kind, created, object)
}

/// `t=<timestamp>,v1=<signature>`.
pub(crate) fn header(secret: &str, timestamp: i64, body: &str) -> String {
    format!("t={timestamp},v1={}", signature(secret, timestamp, body))
}

/// The hex HMAC-SHA256 of `"<timestamp>.<body>"` keyed by `secret`.
fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mac = hmac_sha256(secret.as_bytes(), format!("{timestamp}.{body}").as_bytes());
    mac.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// HMAC (RFC 2104) over SHA-256, from its definition: independent of the service's `hmac` crate.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0_u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|k| k ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

// ---------------------------------------------------------------------------------------------
// Stripe's libraries

/// A directory holding Stripe's Python library (`python/`) and Node library (`node/`), installed
/// from PyPI and npm once per target directory, at pinned versions.
fn stripe_sdks() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("stripe-sdks");
        let python = dir.join("python");
        if !python.join("stripe").exists() {
            run_output(
                Command::new("python3")
                    .args(["-m", "pip", "install", "--quiet", "--target"])
                    .arg(&python)
                    .arg("stripe==16.1.0"),
            );
        }
        let node = dir.join("node");
        if !node.join("node_modules/stripe").exists() {
            std::fs::create_dir_all(&node).unwrap();
            run_output(
                Command::new("npm")
                    .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                    .arg(&node)
                    .arg("stripe@23.1.0"),
            );
        }
        dir
    })
}

/// Runs `command`, panicking with its output unless it succeeds; returns its stdout.
fn run_output(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} does not run: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub(crate) fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}
