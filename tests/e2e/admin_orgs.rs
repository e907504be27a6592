//! Organizations in the back office (module `admin/orgs`, docs/admin.md), black box over HTTP on
//! SQLite and PostgreSQL: the list and an organization's page as JSON and as panel pages, the
//! permission matrix (anonymous, the api's tokens, support, admins), the staff actions (remove a
//! member, never the last owner; revoke an invitation) as the api then sees them, their audit
//! entries written with their effect and none for a refused action, and the panel's forms with
//! their CSRF check. A browser test opens the organization page in Chromium, as `panel.rs` does
//! the customer page.

use serde_json::{Value, json};

use crate::admin::{PanelSession, Stack, with_stack};
use crate::api::{Session, now, on_each_database, register, str_of};
use crate::browser::Browser;
use crate::client::assert_keys;
use crate::support::Database;

#[test]
fn staff_list_and_open_organizations_and_admins_remove_members_and_revoke_invitations_audited() {
    on_each_database(with_stack(json_api));
}

#[test]
fn the_organization_pages_render_for_staff_only_and_their_forms_check_csrf() {
    on_each_database(with_stack(panel));
}

#[test]
fn a_staff_member_opens_an_organization_and_revokes_an_invitation_in_a_browser() {
    let db = Database::sqlite();
    let s = Stack::start(&db);
    browser(&s);
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/// An organization of the customer's with a second member and a pending invitation.
struct Team {
    id: String,
    member: Session,
    invitation: String,
}

/// The customer (owner) creates "Acme Rockets", `ben@example.com` joins it as a member (made a
/// member in the database: the invitation flow is tests/e2e/orgs.rs's subject), and
/// `carol@example.com` is invited.
fn team(s: &Stack) -> Team {
    let created = s
        .api
        .post("/api/orgs")
        .bearer(&s.customer.access)
        .json(json!({"name": "Acme Rockets", "slug": "acme-rockets"}))
        .send()
        .expect_json(201);
    let id = str_of(&created["id"]).to_string();
    let member = register(&s.api, "ben@example.com");
    join(s.db, &id, str_of(&member.user["id"]), "member");
    let invitation = s
        .api
        .post(&format!("/api/orgs/{id}/invitations"))
        .bearer(&s.customer.access)
        .json(json!({"email": "carol@example.com", "role": "admin"}))
        .send()
        .expect_json(201);
    Team {
        id,
        member,
        invitation: str_of(&invitation["id"]).to_string(),
    }
}

/// Makes `user_id` a member of `org_id` with `role`, straight in the database (test set-up; the
/// invitation flow is tests/e2e/orgs.rs's subject).
pub(crate) fn join(db: &Database, org_id: &str, user_id: &str, role: &str) {
    let now = now();
    db.execute(&format!(
        "INSERT INTO memberships (org_id, user_id, role, created_at, updated_at) \
         VALUES ('{org_id}', '{user_id}', '{role}', {now}, {now})"
    ));
}

fn json_api(s: &Stack) {
    let team = team(s);
    let admin = &s.admin;
    let support = &s.support.access;
    let root = &s.root.access;
    let org_path = format!("/api/admin/orgs/{}", team.id);

    // The list: every organization (the personal ones of registration too), newest first,
    // searched by a part of the name or of the slug, ignoring case, a page at a time.
    let all = admin
        .get("/api/admin/orgs")
        .bearer(support)
        .send()
        .expect_json(200);
    assert_keys(&all, &["items", "page", "per_page", "has_more"]);
    let items = all["items"].as_array().unwrap();
    // The personal organizations of the customer, ben, and the staff's api accounts.
    assert!(items.len() >= 3, "{all}");
    let first = &items[0];
    assert_keys(
        first,
        &["id", "name", "slug", "kind", "created_at", "members"],
    );
    let found = |q: &str| -> Vec<Value> {
        let page = admin
            .get(&format!("/api/admin/orgs?q={q}"))
            .bearer(support)
            .send()
            .expect_json(200);
        page["items"].as_array().unwrap().clone()
    };
    for q in ["rocket", "ACME", "acme-rock"] {
        let hits = found(q);
        assert_eq!(hits.len(), 1, "{q}: {hits:?}");
        assert_eq!(hits[0]["id"], team.id.as_str());
        assert_eq!(hits[0]["members"], 2);
        assert_eq!(hits[0]["kind"], "team");
    }
    assert!(found("nothing-like-it").is_empty());
    // Wildcards are text.
    assert!(found("%25").is_empty());
    let paged = admin
        .get("/api/admin/orgs?per_page=1&page=2")
        .bearer(support)
        .send()
        .expect_json(200);
    assert_eq!(paged["items"].as_array().unwrap().len(), 1);
    assert_eq!(paged["page"], 2);
    assert_eq!(paged["has_more"], true);

    // An organization: members (owners first) with their roles, and invitations.
    let detail = admin.get(&org_path).bearer(support).send().expect_json(200);
    assert_keys(&detail, &["organization", "members", "invitations"]);
    assert_eq!(detail["organization"]["name"], "Acme Rockets");
    let roles: Vec<(&str, &str)> = detail["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (str_of(&m["email"]), str_of(&m["role"])))
        .collect();
    assert_eq!(
        roles,
        [
            ("customer@example.com", "owner"),
            ("ben@example.com", "member")
        ]
    );
    let invitations = detail["invitations"].as_array().unwrap();
    assert_eq!(invitations.len(), 1);
    assert_eq!(invitations[0]["id"], team.invitation.as_str());
    assert_eq!(invitations[0]["email"], "carol@example.com");
    assert_eq!(invitations[0]["state"], "pending");
    admin
        .get("/api/admin/orgs/0193b3c4-0000-7000-8000-000000000000")
        .bearer(support)
        .send()
        .expect_error(404, "not_found");

    // Who may: anonymous 401; the api's tokens (a customer's, a staff member's own) 403; support
    // reads and may not act; nothing changed by the refusals.
    let owner_id = str_of(&s.customer.user["id"]).to_string();
    let member_id = str_of(&team.member.user["id"]).to_string();
    let remove = |user_id: &str| format!("{org_path}/members/{user_id}/remove");
    let revoke = format!("{org_path}/invitations/{}/revoke", team.invitation);
    for path in ["/api/admin/orgs", org_path.as_str()] {
        admin.get(path).send().expect_error(401, "unauthorized");
        for api_token in [&s.customer.access, &s.root.api.access] {
            admin
                .get(path)
                .bearer(api_token)
                .send()
                .expect_error(403, "staff_token_required");
        }
    }
    for path in [remove(&member_id), revoke.clone()] {
        admin
            .post(&path)
            .json(json!({}))
            .send()
            .expect_error(401, "unauthorized");
        admin
            .post(&path)
            .bearer(&s.customer.access)
            .json(json!({}))
            .send()
            .expect_error(403, "staff_token_required");
        admin
            .post(&path)
            .bearer(support)
            .json(json!({}))
            .send()
            .expect_error(403, "forbidden");
    }

    // The last owner stays (409), and the refusal writes no audit entry.
    admin
        .post(&remove(&owner_id))
        .bearer(root)
        .json(json!({"reason": "asked by mail"}))
        .send()
        .expect_error(409, "conflict");
    assert!(trail(s, &team.id).is_empty(), "refusals are not audited");
    admin
        .post(&remove("no-such-user"))
        .bearer(root)
        .json(json!({}))
        .send()
        .expect_error(404, "not_found");

    // An admin removes the member: the api then answers them 404 for the organization.
    let removed = admin
        .post(&remove(&member_id))
        .bearer(root)
        .json(json!({"reason": "left the company"}))
        .send()
        .expect_json(200);
    assert_eq!(removed["email"], "ben@example.com");
    assert_eq!(removed["role"], "member");
    s.api
        .get(&format!("/api/orgs/{}", team.id))
        .bearer(&team.member.access)
        .send()
        .expect_error(404, "not_found");
    admin
        .post(&remove(&member_id))
        .bearer(root)
        .json(json!({}))
        .send()
        .expect_error(404, "not_found");

    // An admin revokes the invitation: once; the owner sees it revoked.
    let revoked = admin
        .post(&revoke)
        .bearer(root)
        .json(json!({}))
        .send()
        .expect_json(200);
    assert_eq!(revoked["state"], "revoked");
    admin
        .post(&revoke)
        .bearer(root)
        .json(json!({}))
        .send()
        .expect_error(404, "not_found");
    assert_eq!(invitation_state(s, &team), "revoked");

    let detail = admin.get(&org_path).bearer(support).send().expect_json(200);
    assert_eq!(detail["organization"]["members"], 1);
    assert_eq!(detail["members"].as_array().unwrap().len(), 1);

    // The trail: one entry per action, by whom, why, with what was removed.
    let entries = trail(s, &team.id);
    let actions: Vec<&str> = entries.iter().map(|e| str_of(&e["action"])).collect();
    assert_eq!(actions, ["org.revoke_invitation", "org.remove_member"]);
    for entry in &entries {
        assert_eq!(entry["actor_email"], "root@example.com", "{entry}");
        assert_eq!(entry["target_type"], "organization", "{entry}");
    }
    assert_eq!(entries[1]["reason"], "left the company");
    let details =
        |entry: &Value| -> Value { serde_json::from_str(str_of(&entry["details"])).unwrap() };
    assert_eq!(
        details(&entries[1]),
        json!({"user_id": member_id, "email": "ben@example.com", "role": "member"})
    );
    assert_eq!(
        details(&entries[0]),
        json!({"invitation_id": team.invitation, "email": "carol@example.com", "role": "admin"})
    );
}

/// The state of the team's invitation as its owner sees it through the api.
fn invitation_state(s: &Stack, team: &Team) -> String {
    let listed = s
        .api
        .get(&format!("/api/orgs/{}/invitations", team.id))
        .bearer(&s.customer.access)
        .send()
        .expect_json(200);
    let invitation = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|invitation| invitation["id"] == team.invitation.as_str())
        .unwrap_or_else(|| panic!("the invitation is listed: {listed}"));
    str_of(&invitation["state"]).to_string()
}

/// The organization's audit entries, newest first, as support reads them.
fn trail(s: &Stack, org_id: &str) -> Vec<Value> {
    let page = s
        .admin
        .get(&format!("/api/admin/audit?target={org_id}&per_page=100"))
        .bearer(&s.support.access)
        .send()
        .expect_json(200);
    page["items"].as_array().unwrap().clone()
}

fn panel(s: &Stack) {
    let team = team(s);
    let admin = &s.admin;
    let page = format!("/admin/orgs/{}", team.id);
    let member_id = str_of(&team.member.user["id"]).to_string();

    // Without a staff session: the sign-in form, 401.
    for path in ["/admin/orgs", page.as_str()] {
        let refused = admin.get(path).send().expect(401);
        assert!(refused.body.contains(r#"id="password""#), "{refused}");
    }

    // Support sees the list (with the navigation link) and the page, without the forms.
    let support = PanelSession::sign_in(admin, "support@example.com");
    let list = support.get(admin, "/admin/orgs?q=Rockets").expect(200);
    assert!(list.body.contains(r#"href="/admin/orgs""#), "{list}");
    assert!(list.body.contains("Acme Rockets"), "{list}");
    assert!(list.body.contains(&page), "{list}");
    assert!(
        list.header("content-security-policy")
            .is_some_and(|csp| csp.contains("default-src 'none'")),
        "{list}"
    );
    let shown = support.get(admin, &page).expect(200);
    for text in [
        "Acme Rockets",
        "acme-rockets",
        "customer@example.com",
        "ben@example.com",
        "carol@example.com",
        "Audit trail",
        r#"id="seats">2<"#,
    ] {
        assert!(shown.body.contains(text), "{text}: {shown}");
    }
    // The subscription section (module admin/org-billing): no checkout yet, two seats.
    assert!(shown.body.contains(r#"id="org-seats">2<"#), "{shown}");
    assert!(
        shown
            .body
            .contains("the organization has not completed a checkout"),
        "{shown}"
    );
    assert!(!shown.body.contains("remove-member-"), "{shown}");
    assert!(!shown.body.contains("revoke-invitation-"), "{shown}");
    support
        .submit(admin, &format!("{page}/members/{member_id}/remove"), &[])
        .check(403);
    // A page whose organization does not exist.
    support.get(admin, "/admin/orgs/nope").check(404);

    // An admin sees the forms; a form without the session's CSRF token is refused.
    let root = PanelSession::sign_in(admin, "root@example.com");
    let shown = root.get(admin, &page).expect(200);
    assert!(
        shown
            .body
            .contains(&format!(r#"id="remove-member-{member_id}""#)),
        "{shown}"
    );
    assert!(
        shown
            .body
            .contains(&format!(r#"id="revoke-invitation-{}""#, team.invitation)),
        "{shown}"
    );
    let remove = format!("{page}/members/{member_id}/remove");
    root.post(admin, &remove, "reason=x").check(403);
    root.post(admin, &remove, "csrf=forged&reason=x").check(403);
    assert!(trail(s, &team.id).is_empty());

    // The last owner stays: a 409 page.
    let owner_id = str_of(&s.customer.user["id"]).to_string();
    let last = root.submit(admin, &format!("{page}/members/{owner_id}/remove"), &[]);
    last.check(409);
    assert!(last.body.contains("at least one owner"), "{last}");

    // Removing and revoking come back to the page with a notice.
    let removed = root.submit(admin, &remove, &[("reason", "duplicate account")]);
    removed.check(303);
    let back = format!("{page}?notice=member-removed");
    assert_eq!(removed.header("location"), Some(back.as_str()));
    let after = root.get(admin, &back).expect(200);
    assert!(after.body.contains("The member is removed"), "{after}");
    assert!(!after.body.contains("ben@example.com"), "{after}");
    assert!(after.body.contains("org.remove_member"), "{after}");
    assert!(after.body.contains("duplicate account"), "{after}");

    let revoked = root.submit(
        admin,
        &format!("{page}/invitations/{}/revoke", team.invitation),
        &[],
    );
    revoked.check(303);
    let back = format!("{page}?notice=invitation-revoked");
    assert_eq!(revoked.header("location"), Some(back.as_str()));
    let after = root.get(admin, &back).expect(200);
    assert!(after.body.contains("No pending invitation."), "{after}");
    assert!(after.body.contains("org.revoke_invitation"), "{after}");

    let actions: Vec<String> = trail(s, &team.id)
        .iter()
        .map(|e| str_of(&e["action"]).to_string())
        .collect();
    assert_eq!(actions, ["org.revoke_invitation", "org.remove_member"]);
}

fn browser(s: &Stack) {
    let team = team(s);
    let browser = Browser::launch();
    let panel = &s.admin.base;
    crate::panel::sign_in(&browser, &format!("{panel}/admin/orgs"), "root@example.com");

    browser.fill("#q", "rockets");
    browser.click_to_load("#search");
    browser.wait_until("the search result", |b| {
        b.page_source().contains("Acme Rockets")
    });
    browser.screenshot("panel-orgs");
    browser.click_to_load("#orgs a[href^='/admin/orgs/']");
    browser.wait_until("the organization page", |b| {
        b.page_source().contains(r#"id="members""#)
    });
    assert_eq!(browser.text("#seats"), "2");
    assert!(browser.text("#members").contains("ben@example.com"));
    assert!(browser.text("#invitations").contains("carol@example.com"));
    browser.screenshot("panel-org");

    browser.click_to_load(&format!("#revoke-invitation-{}", team.invitation));
    browser.wait_until("the notice", |b| {
        b.page_source().contains("The invitation is revoked")
    });
    assert!(browser.text("#trail").contains("org.revoke_invitation"));
    // The owner sees it revoked through the api.
    assert_eq!(invitation_state(s, &team), "revoked");
}
