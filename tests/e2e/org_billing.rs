//! Billing per organization (module `billing/orgs`, docs/orgs.md "Billing"), black box over HTTP
//! on SQLite and PostgreSQL, with the api and the webhooks service on one database: an
//! organization's subscription is its members' to read (404 to anyone else, removed members
//! included), signed webhooks for its customer change it, its seats follow its membership, and
//! a single user's personal organization makes all of it invisible. Also: registrations racing
//! for the same personal-organization slug.

use serde_json::{Value, json};

use crate::admin::{create_staff, staff_token, start_admin};
use crate::api::{Api, PASSWORD, Session, now, on_each_database, register, str_of};
use crate::client::{Instance, Reply, assert_keys, at_once};
use crate::email::{Smtp, start};
use crate::orgs::{
    assert_not_found, create, first_org_of_kind, join, remove, switched, user_id, verified,
};
use crate::support::Database;
use crate::webhooks::{event_body, send, start_webhooks, subscription_event, wait_for_status};

#[test]
fn an_organizations_subscription_is_for_its_members_and_follows_its_customers_events() {
    on_each_database(organization_subscription);
}

#[test]
fn a_single_users_personal_organization_pays_as_the_user_did() {
    on_each_database(personal_billing);
}

#[test]
fn registrations_racing_for_one_personal_slug_all_succeed_with_distinct_slugs() {
    on_each_database(slug_race);
}

// ---------------------------------------------------------------------------------------------
// Scenarios

fn organization_subscription(db: &Database) {
    let smtp = Smtp::start();
    let api = start(db, &smtp, &[]);
    // Only the api sends mail (through the test's SMTP server): the webhooks service's worker
    // would otherwise take account emails from the shared queue to its own outbox.
    let hooks = start_webhooks(db, &[("WEBHOOKS_JOBS_KINDS", "webhooks.process")]);
    // Team A: ada (owner), amy (member); bob outside it.
    let ada = verified(&api, &smtp, "ada@example.com");
    let a = create(&api, &ada, "Alpha Works");
    let amy = join(&api, &smtp, &ada, &a, "amy@example.com", "member");
    let bob = verified(&api, &smtp, "bob@example.com");
    let b = create(&api, &bob, "Bravo");

    let nothing = org_billing(&api, &amy, &a).expect_json(200);
    assert_eq!(nothing, json!({"subscription": null, "seats": 2}));

    // The product creates the checkout for A (metadata `org_id`), paid by ada.
    let t = now() - 100;
    let ada_id = user_id(&ada);
    subscribe(&hooks, "a", Some(&ada_id), Some(&a), t);

    // Every member reads it, with its plan and seats.
    for member in [&ada, &amy] {
        let billing = org_billing(&api, member, &a).expect_json(200);
        assert_eq!(billing["seats"], 2, "{billing}");
        let subscription = &billing["subscription"];
        assert_eq!(subscription["id"], "sub_a", "{billing}");
        assert_eq!(subscription["customer_id"], "cus_a");
        assert_eq!(subscription["status"], "active");
        assert_eq!(subscription["plan"], "pro");
    }
    // Nobody else: another organization's owner, with or without a token switched to theirs.
    let secrets = [a.as_str(), "sub_a", "cus_a", "Alpha Works"];
    let bob_in_b = switched(&api, &bob.access, &b);
    for (who, token) in [
        ("bob", bob.access.as_str()),
        ("bob in B", bob_in_b.as_str()),
    ] {
        let reply = org_billing_with(&api, token, &a);
        assert_not_found(&reply, &secrets, who);
    }
    // A's subscription is not ada's personal one; it is hers once she switches to A.
    assert_eq!(account_subscription(&api, &ada.access), Value::Null);
    let ada_in_a = switched(&api, &ada.access, &a);
    assert_eq!(account_subscription(&api, &ada_in_a)["id"], "sub_a");
    // B has nothing of A's.
    let b_billing = org_billing(&api, &bob, &b).expect_json(200);
    assert_eq!(b_billing, json!({"subscription": null, "seats": 1}));

    staff_read(db, &api, &a, &ada);

    // Seats follow the membership: a member joins, one is removed (and reads nothing more).
    let cleo = join(&api, &smtp, &ada, &a, "cleo@example.com", "admin");
    assert_eq!(org_billing(&api, &ada, &a).expect_json(200)["seats"], 3);
    remove(&api, &ada.access, &a, &user_id(&amy)).expect(204);
    assert_not_found(&org_billing(&api, &amy, &a), &secrets, "removed amy");
    assert_eq!(org_billing(&api, &cleo, &a).expect_json(200)["seats"], 2);

    // A signed event for A's customer changes A's subscription.
    let cancelled = subscription_event(
        "evt_a_cancel",
        "customer.subscription.updated",
        t + 2,
        "sub_a",
        "cus_a",
        "active",
        true,
    );
    send(&hooks, &cancelled).expect_json(200);
    wait_for_status(&hooks, "evt_a_cancel", "processed");
    let billing = org_billing(&api, &cleo, &a).expect_json(200);
    assert_eq!(
        billing["subscription"]["cancel_at_period_end"], true,
        "{billing}"
    );

    // B pays through a customer the product created for it (`customer.created` with
    // `metadata[org_id]`): its subscription's events may come first; nothing is lost meanwhile.
    let early = subscription_event(
        "evt_b_sub",
        "customer.subscription.created",
        t + 3,
        "sub_b",
        "cus_b",
        "trialing",
        false,
    );
    send(&hooks, &early).expect_json(200);
    wait_for_status(&hooks, "evt_b_sub", "processed");
    assert_eq!(
        org_billing(&api, &bob, &b).expect_json(200)["subscription"],
        Value::Null
    );
    let customer = event_body(
        "evt_b_customer",
        "customer.created",
        t + 4,
        json!({"id": "cus_b", "object": "customer", "email": "billing@bravo.example",
               "metadata": {"org_id": b}}),
    );
    send(&hooks, &customer).expect_json(200);
    wait_for_status(&hooks, "evt_b_customer", "processed");
    let billing = org_billing(&api, &bob, &b).expect_json(200);
    assert_eq!(billing["subscription"]["id"], "sub_b", "{billing}");
    assert_eq!(billing["subscription"]["status"], "trialing");
    // ...and A still has only its own.
    let billing = org_billing(&api, &ada, &a).expect_json(200);
    assert_eq!(billing["subscription"]["id"], "sub_a", "{billing}");

    // A checkout whose `client_reference_id` is the organization's id (no metadata) links it too.
    let by_reference = checkout_for("evt_b_checkout", "cus_b2", Some(&b), None, t + 5);
    send(&hooks, &by_reference).expect_json(200);
    wait_for_status(&hooks, "evt_b_checkout", "processed");

    // An organization that does not exist: retried, then dead-lettered, recorded for a replay.
    let ghost = "0192e0a0-0000-7000-8000-00000000dead";
    let lost = checkout_for("evt_ghost", "cus_ghost", None, Some(ghost), t + 6);
    send(&hooks, &lost).expect_json(200);
    let dead = wait_for_status(&hooks, "evt_ghost", "dead_letter");
    let error = str_of(&dead["attempt_history"][0]["error"]);
    assert!(error.contains(ghost), "{dead}");
}

fn personal_billing(db: &Database) {
    let api = Api::start(db, &[]);
    let hooks = start_webhooks(db, &[]);
    let pat = register(&api, "pat@example.com");
    let personal = first_org_of_kind(&api, &pat.access, "personal");
    // The checkout names the user only, as a product without teams creates it.
    subscribe(&hooks, "p", Some(&user_id(&pat)), None, now() - 100);
    assert_eq!(account_subscription(&api, &pat.access)["id"], "sub_p");
    let billing = org_billing(&api, &pat, &personal).expect_json(200);
    assert_eq!(billing["subscription"]["id"], "sub_p", "{billing}");
    assert_eq!(billing["seats"], 1);
}

fn slug_race(db: &Database) {
    const RACERS: usize = 8;
    let api = Api::start(db, &[]);
    // Eight accounts whose personal organizations all derive the slug `sam`, at once.
    let replies = at_once(RACERS, |n| sign_up(&api, &format!("sam@host{n}.example")));
    let mut slugs: Vec<String> = replies
        .into_iter()
        .map(|reply| personal_slug(&api, reply))
        .collect();
    slugs.sort();
    let before = slugs.len();
    slugs.dedup();
    assert_eq!(slugs.len(), before, "every slug is distinct: {slugs:?}");
    assert!(slugs.iter().any(|slug| slug == "sam"), "{slugs:?}");
    let suffixed = slugs.iter().filter(|slug| slug.starts_with("sam-")).count();
    assert_eq!(suffixed, RACERS - 1, "{slugs:?}");

    // The same race, made certain: password hashing, one at a time, spaces real registrations
    // out, so the one above may not overlap. Another transaction has inserted `sal` and not
    // committed yet while `sal@...` registers: the registration's insert waits for it, then
    // finds the slug taken, inside its own transaction (on PostgreSQL, a statement that failed
    // there would have aborted it: the 500 this used to be).
    if let Database::Postgres(_) = db {
        let hold = "BEGIN; INSERT INTO organizations (id, name, slug, kind, created_at, updated_at) \
                    VALUES ('held-by-the-test', 'Sal', 'sal', 'team', 0, 0); \
                    SELECT pg_sleep(4); COMMIT;";
        let reply = std::thread::scope(|scope| {
            let holder = scope.spawn(|| db.execute(hold));
            std::thread::sleep(std::time::Duration::from_secs(1));
            let reply = sign_up(&api, "sal@example.com");
            holder.join().unwrap();
            reply
        });
        let slug = personal_slug(&api, reply);
        assert!(slug.starts_with("sal-"), "{slug}");
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// `POST /api/auth/register` for `email`.
fn sign_up(api: &Api, email: &str) -> Reply {
    let body = json!({"email": email, "password": crate::api::PASSWORD});
    api.post("/api/auth/register").json(body).send()
}

/// The slug of the personal organization of the account a registration's `reply` made.
fn personal_slug(api: &Api, reply: Reply) -> String {
    let session = Session::from_reply(reply.expect(201));
    let mine = api
        .get("/api/orgs")
        .bearer(&session.access)
        .send()
        .expect_json(200);
    str_of(&mine[0]["slug"]).to_owned()
}

/// A paid checkout (`evt_<tag>_checkout`, customer `cus_<tag>`; see [`checkout_for`]) at `t`,
/// then its subscription `sub_<tag>`, active, at `t + 1`, each processed before it returns.
fn subscribe(hooks: &Instance, tag: &str, reference: Option<&str>, org: Option<&str>, t: i64) {
    let (checkout, customer) = (format!("evt_{tag}_checkout"), format!("cus_{tag}"));
    send(
        hooks,
        &checkout_for(&checkout, &customer, reference, org, t),
    )
    .expect_json(200);
    wait_for_status(hooks, &checkout, "processed");
    let (event, subscription) = (format!("evt_{tag}_sub"), format!("sub_{tag}"));
    let created = subscription_event(
        &event,
        "customer.subscription.created",
        t + 1,
        &subscription,
        &customer,
        "active",
        false,
    );
    send(hooks, &created).expect_json(200);
    wait_for_status(hooks, &event, "processed");
}

/// The back office's JSON of organization `org` (module admin/org-billing),
/// `GET /api/admin/orgs/{id}/subscription`: the subscription and seats its member `member` reads
/// at the api, for staff who may view; 404 for an organization that does not exist, and nothing
/// for a customer's token.
fn staff_read(db: &Database, api: &Api, org: &str, member: &Session) {
    let admin = start_admin(db, &[]);
    create_staff(db, "support@example.com", "support").expect("support is created");
    let support = staff_token(&admin, "support@example.com", PASSWORD).expect_json(201);
    let support = str_of(&support["access_token"]);
    let path = format!("/api/admin/orgs/{org}/subscription");

    let shown = admin.get(&path).bearer(support).send().expect_json(200);
    assert_keys(&shown, &["subscription", "seats"]);
    assert_eq!(shown["seats"], 2, "{shown}");
    let subscription = &shown["subscription"];
    assert_eq!(subscription["id"], "sub_a", "{shown}");
    assert_eq!(subscription["status"], "active", "{shown}");
    assert_eq!(subscription["product_id"], "prod_pro", "the plan: {shown}");
    assert_eq!(subscription["price_id"], "price_pro_monthly", "{shown}");
    assert_eq!(subscription["unit_amount"], 2900, "{shown}");
    assert_eq!(subscription["quantity"], 1, "{shown}");
    // What the organization's members read, field for field, but for the api's `plan`: the name
    // the api's plans configuration gives the price (the back office, as its page, shows the
    // product).
    let mut members_view = org_billing(api, member, org).expect_json(200);
    let plan = members_view["subscription"]
        .as_object_mut()
        .unwrap()
        .remove("plan");
    assert_eq!(plan, Some(json!("pro")));
    assert_eq!(shown, members_view);

    admin
        .get("/api/admin/orgs/00000000-0000-7000-8000-000000000000/subscription")
        .bearer(support)
        .send()
        .expect_error(404, "not_found");
    admin.get(&path).send().expect_error(401, "unauthorized");
    let refused = admin.get(&path).bearer(&member.access).send();
    refused.expect_error(403, "staff_token_required");
}

/// `GET /api/orgs/{org}/billing/subscription` as `who`.
fn org_billing(api: &Api, who: &Session, org: &str) -> Reply {
    org_billing_with(api, &who.access, org)
}

fn org_billing_with(api: &Api, access: &str, org: &str) -> Reply {
    api.get(&format!("/api/orgs/{org}/billing/subscription"))
        .bearer(access)
        .send()
}

/// What `GET /api/billing/subscription` shows the holder of `access`.
fn account_subscription(api: &Api, access: &str) -> Value {
    let reply = api.get("/api/billing/subscription").bearer(access).send();
    reply.expect_json(200)["subscription"].clone()
}

/// A `checkout.session.completed` for `customer`: `reference` as `client_reference_id`, and
/// `org` as `metadata[org_id]` when given.
fn checkout_for(
    id: &str,
    customer: &str,
    reference: Option<&str>,
    org: Option<&str>,
    created: i64,
) -> String {
    let metadata = org.map_or_else(|| json!({}), |org| json!({ "org_id": org }));
    let object = json!({
        "id": format!("cs_{id}"),
        "object": "checkout.session",
        "customer": customer,
        "client_reference_id": reference,
        "customer_details": {"email": "payer@example.com"},
        "metadata": metadata,
        "mode": "subscription",
    });
    event_body(id, "checkout.session.completed", created, object)
}
