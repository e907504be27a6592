//! The admin panel in a real browser (headless Chromium through WebDriver, see `browser.rs`):
//! what a staff member does with it, page by page, checked through the api as a customer sees
//! it. Screenshots of the main pages are written to the screenshot folder (docs/testing.md).
//!
//! On SQLite only: the HTTP tests of `admin.rs` cover both databases; these are about the pages.

use crate::admin::Stack;
use crate::admin_ops::{Ops, checkout, deliver, wait_for_status};
use crate::api::{PASSWORD, register};
use crate::browser::Browser;
use crate::support::Database;

#[test]
fn a_staff_member_signs_in_finds_a_customer_disables_and_impersonates_in_a_browser() {
    let db = Database::sqlite();
    let s = Stack::start(&db);
    let browser = Browser::launch();
    let panel = &s.admin.base;

    // Not signed in: the sign-in form, whatever page was asked for, then back to that page.
    sign_in(
        &browser,
        &format!("{panel}/admin/customers"),
        "root@example.com",
    );

    browser.goto(&format!("{panel}/admin"));
    let customers = browser.text("#metric-users_total .value");
    assert_eq!(customers, "1");
    browser.screenshot("panel-dashboard");

    // Find the customer registered through the api.
    browser.goto(&format!("{panel}/admin/customers"));
    browser.fill("#q", "CUSTOMER@example");
    browser.click_to_load("#search");
    browser.wait_until("the search result", |b| {
        b.page_source().contains("customer@example.com")
    });
    browser.screenshot("panel-customers");
    browser.click_to_load("table a[href^='/admin/customers/']");
    browser.wait_until("the customer page", |b| {
        b.page_source().contains(r#"id="status""#)
    });
    assert!(browser.text("#status").contains("active"));
    browser.screenshot("panel-customer");

    // A form whose CSRF token was removed is refused, and changes nothing.
    browser.execute(
        "document.querySelector(\"form[action$='/disable'] input[name=csrf]\").remove()",
        &[],
    );
    browser.click_to_load("#disable");
    browser.wait_until("the refusal", |b| b.page_source().contains("403"));
    assert!(
        browser
            .page_source()
            .contains("out of date or was not sent from the panel")
    );
    s.api
        .get("/api/auth/me")
        .bearer(&s.customer.access)
        .send()
        .expect(200);
    browser.back();
    browser.refresh();

    // Disable: the customer's api token is refused at once.
    browser.fill(
        "form[action$='/disable'] input[name=reason]",
        "card testing",
    );
    browser.click_to_load("#disable");
    browser.wait_until("the notice", |b| {
        b.page_source().contains("The account is disabled")
    });
    assert!(browser.text("#status").contains("disabled"));
    s.api
        .get("/api/auth/me")
        .bearer(&s.customer.access)
        .send()
        .expect_error(401, "unauthorized");

    // Enable again, then impersonate with a reason: the banner names the customer.
    browser.click_to_load("#enable");
    browser.wait_until("the notice", |b| {
        b.page_source().contains("The account is enabled")
    });
    browser.fill("#impersonation-reason", "reproduce ticket 4711");
    browser.click_to_load("#impersonate");
    browser.wait_until("the impersonation page", |b| {
        b.page_source().contains(r#"id="access-token""#)
    });
    let banner = browser.text(".impersonating");
    assert!(banner.contains("customer@example.com"), "{banner}");
    let token = browser.text("#access-token");
    browser.screenshot("panel-impersonation");
    let me = s
        .api
        .get("/api/auth/me")
        .bearer(&token)
        .send()
        .expect_json(200);
    assert_eq!(me["email"], "customer@example.com");
    assert_eq!(me["impersonated_by"]["email"], "root@example.com");

    // The audit log shows the row, with the reason.
    browser.goto(&format!("{panel}/admin/audit"));
    let log = browser.text("table.audit");
    assert!(log.contains("impersonation.start"), "{log}");
    assert!(log.contains("reproduce ticket 4711"), "{log}");
    assert!(log.contains("customer.disable"), "{log}");
    browser.screenshot("panel-audit-log");

    // End it from the banner: the token stops working.
    browser.click_to_load(".end-impersonation");
    browser.wait_until("the notice", |b| {
        b.page_source().contains("impersonation has ended")
    });
    assert!(browser.find_all(".impersonating").is_empty());
    s.api
        .get("/api/auth/me")
        .bearer(&token)
        .send()
        .expect_error(401, "unauthorized");

    // Sign out: the panel asks to sign in again.
    browser.click_to_load("#sign-out");
    browser.wait_until("the sign-in form", |b| {
        b.page_source().contains(r#"id="password""#)
    });
    browser.goto(&format!("{panel}/admin"));
    browser.find("#password");
}

#[test]
fn a_flag_toggled_and_a_dead_letter_replayed_in_the_panel_reach_the_api_and_the_worker() {
    let db = Database::sqlite();
    let s = Ops::start(&db);
    let browser = Browser::launch();
    let panel = &s.admin.base;
    sign_in(
        &browser,
        &format!("{panel}/admin/flags"),
        "root@example.com",
    );

    // A new flag, off: the customer's `/api/flags` says so; switched on in the panel, it
    // follows.
    browser.fill("#flag-key", "new-checkout");
    browser.fill("#flag-description", "The redesigned checkout");
    browser.fill("#flag-rollout", "100");
    if browser.find("#flag-enabled").is_selected() {
        browser.click("#flag-enabled");
    }
    browser.click_to_load("#create-flag");
    browser.wait_until("the flag's page", |b| {
        b.current_url().contains("/admin/flags/new-checkout")
    });
    let flags_of_customer = || {
        s.api
            .get("/api/flags")
            .bearer(&s.customer.access)
            .send()
            .expect_json(200)["flags"]["new-checkout"]
            .clone()
    };
    assert_eq!(flags_of_customer(), false);
    assert!(!browser.find("#flag-enabled").is_selected());
    browser.click("#flag-enabled");
    browser.click_to_load("#save-flag");
    browser.wait_until("the notice", |b| b.page_source().contains("Saved."));
    assert!(browser.find("#flag-enabled").is_selected());
    assert_eq!(flags_of_customer(), true);
    browser.screenshot("panel-flag");

    // A checkout by an email no account has fails until it is dead-lettered; once the
    // account exists, a replay from the event's page processes it.
    deliver(
        &s,
        &checkout("evt_browser", "cus_browser", None, "late@example.com"),
    );
    wait_for_status(&s, "evt_browser", "dead_letter");
    register(&s.api, "late@example.com");
    browser.goto(&format!("{panel}/admin"));
    browser.click_to_load("#metric-webhooks_dead_letter a");
    browser.wait_until("the dead letters", |b| {
        b.page_source().contains("evt_browser")
    });
    browser.screenshot("panel-webhooks");
    browser.click_to_load("a[href='/admin/webhooks/events/evt_browser']");
    browser.wait_until("the event's page", |b| {
        b.page_source().contains(r#"id="replay""#)
    });
    browser.click_to_load("#replay");
    browser.wait_until("the notice", |b| {
        b.page_source().contains("Queued for processing.")
    });
    wait_for_status(&s, "evt_browser", "processed");
    browser.refresh();
    assert!(browser.text("#event-status").contains("processed"));
    browser.screenshot("panel-webhook-event");
}

/// Opens `url` in `browser`, which shows the sign-in form, and signs in as `email` (password
/// [`PASSWORD`]); the panel then shows the page asked for.
pub(crate) fn sign_in(browser: &Browser, url: &str, email: &str) {
    browser.goto(url);
    browser.find("#password");
    browser.screenshot("panel-sign-in");
    browser.fill("#email", email);
    browser.fill("#password", PASSWORD);
    browser.click_to_load("#sign-in");
    let path = url
        .split_once("/admin")
        .map(|(_, path)| format!("/admin{path}"))
        .unwrap();
    browser.wait_until("the page asked for", |b| b.current_url().ends_with(&path));
}
