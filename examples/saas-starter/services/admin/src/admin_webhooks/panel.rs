//! The panel's webhook pages: the event log (`/admin/webhooks`, newest first, filtered by status
//! and type, paged by cursor) and an event's page (`/admin/webhooks/events/{id}`: payload,
//! attempts, replays), with the replay forms for admins.

use std::fmt::Write as _;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use saas_starter_core::ApiError;
use saas_starter_core::admin::Permission;
use saas_starter_core::admin_webhooks;
use saas_starter_core::db::Database;
use saas_starter_core::webhooks::store::{AttemptView, EventSummary, ReplayView};
use saas_starter_core::webhooks::{LogFilter, LogQuery, Status, store};

use crate::panel::{Frame, NoFields, PanelError, PanelForm, Viewer, done, html, when};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/webhooks", get(list))
        .route("/admin/webhooks/events/{id}", get(show))
        .route("/admin/webhooks/events/{id}/replay", post(replay))
        .route(
            "/admin/webhooks/replay-dead-letter",
            post(replay_dead_letter),
        )
}

/// Every status, as the filter offers them.
const STATUSES: [Status; 5] = [
    Status::Pending,
    Status::Retrying,
    Status::Processed,
    Status::Ignored,
    Status::DeadLetter,
];

/// The longest error a row of the list shows; the event's page shows it whole.
const ERROR_PREVIEW_CHARS: usize = 120;

/// A status of the filter's list.
struct StatusOption {
    value: &'static str,
    selected: bool,
}

/// An event as the list and its page show it.
struct EventRow {
    id: String,
    /// The event's page.
    href: String,
    event_type: String,
    status: String,
    /// Retrying or dead-lettered: shown in red.
    failing: bool,
    received: String,
    attempts: i64,
    replays: i64,
    last_error: String,
}

impl EventRow {
    fn new(summary: &EventSummary, error_chars: usize) -> Self {
        let last_error = summary.last_error.as_deref().unwrap_or_default();
        Self {
            id: summary.id.clone(),
            href: event_path(&summary.id),
            event_type: summary.event_type.clone(),
            status: summary.status.clone(),
            failing: [Status::Retrying, Status::DeadLetter]
                .iter()
                .any(|status| status.as_str() == summary.status),
            received: when(summary.received_at),
            attempts: summary.attempts,
            replays: summary.replays,
            last_error: preview(last_error, error_chars),
        }
    }
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct ListPage {
    frame: Frame,
    statuses: Vec<StatusOption>,
    event_type: String,
    events: Vec<EventRow>,
    /// The first page, when this one is not.
    newest: Option<String>,
    next: Option<String>,
    may_manage: bool,
    dead_letter: i64,
}

async fn list(
    State(db): State<Database>,
    viewer: Viewer,
    Query(query): Query<LogQuery>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let filter = LogFilter::from_query(&query)?;
    let page = store::logs(&db, &filter).await?;
    let failing = admin_webhooks::failing(&db).await?;
    let event_type = filter.event_type.clone().unwrap_or_default();
    let link = |cursor: Option<&str>| {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(status) = filter.status {
            pairs.push(("status", status.as_str().to_owned()));
        }
        if !event_type.is_empty() {
            pairs.push(("type", event_type.clone()));
        }
        if let Some(limit) = query.limit {
            pairs.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = cursor {
            pairs.push(("cursor", cursor.to_owned()));
        }
        let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
        if query.is_empty() {
            "/admin/webhooks".to_owned()
        } else {
            format!("/admin/webhooks?{query}")
        }
    };
    let newest = filter.cursor.is_some().then(|| link(None));
    let next = page.next_cursor.as_deref().map(|cursor| link(Some(cursor)));
    Ok(html(&ListPage {
        statuses: STATUSES
            .iter()
            .map(|status| StatusOption {
                value: status.as_str(),
                selected: filter.status == Some(*status),
            })
            .collect(),
        events: page
            .events
            .iter()
            .map(|summary| EventRow::new(summary, ERROR_PREVIEW_CHARS))
            .collect(),
        event_type,
        newest,
        next,
        may_manage: viewer.staff.may(Permission::Manage),
        dead_letter: failing.dead_letter,
        frame: viewer.frame,
    }))
}

/// An attempt as the event's page shows it.
struct AttemptRow {
    number: i64,
    started: String,
    duration_ms: i64,
    worker: String,
    outcome: String,
    failed: bool,
    error: String,
}

impl From<AttemptView> for AttemptRow {
    fn from(attempt: AttemptView) -> Self {
        Self {
            number: attempt.number,
            started: when_ms(attempt.started_at_ms),
            duration_ms: attempt.finished_at_ms - attempt.started_at_ms,
            worker: attempt.worker,
            failed: attempt.outcome != "succeeded",
            outcome: attempt.outcome,
            error: attempt.error.unwrap_or_default(),
        }
    }
}

struct ReplayRow {
    requested_by: String,
    requested: String,
}

impl From<ReplayView> for ReplayRow {
    fn from(replay: ReplayView) -> Self {
        Self {
            requested_by: replay.requested_by,
            requested: when(replay.requested_at),
        }
    }
}

#[derive(Template)]
#[template(path = "webhook_event.html")]
struct EventPage {
    frame: Frame,
    event: EventRow,
    /// The list of the events of this type.
    type_href: String,
    created: String,
    livemode: bool,
    processed: Option<String>,
    attempts: Vec<AttemptRow>,
    replays: Vec<ReplayRow>,
    /// The payload as received, indented.
    payload: String,
    may_manage: bool,
    /// Whether the event waits for a worker already: a replay would be refused (409).
    queued: bool,
}

async fn show(
    State(db): State<Database>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let event = store::event(&db, &id)
        .await?
        .ok_or(PanelError(ApiError::NotFound("event")))?;
    let summary = &event.summary;
    let queued = [Status::Pending, Status::Retrying]
        .iter()
        .any(|status| status.as_str() == summary.status);
    let type_query =
        serde_urlencoded::to_string([("type", &summary.event_type)]).unwrap_or_default();
    Ok(html(&EventPage {
        event: EventRow::new(summary, usize::MAX),
        type_href: format!("/admin/webhooks?{type_query}"),
        created: when(summary.created),
        livemode: summary.livemode,
        processed: summary.processed_at.map(when),
        payload: serde_json::to_string_pretty(&event.payload).unwrap_or_default(),
        attempts: event
            .attempt_history
            .into_iter()
            .map(AttemptRow::from)
            .collect(),
        replays: event
            .replay_history
            .into_iter()
            .map(ReplayRow::from)
            .collect(),
        may_manage: viewer.staff.may(Permission::Manage),
        queued,
        frame: viewer.frame,
    }))
}

async fn replay(
    State(db): State<Database>,
    viewer: Viewer,
    Path(id): Path<String>,
    PanelForm(NoFields {}): PanelForm<NoFields>,
) -> Result<Response, PanelError> {
    admin_webhooks::replay(&db, &viewer.staff, &id).await?;
    Ok(done(&event_path(&id), "queued").into_response())
}

async fn replay_dead_letter(
    State(db): State<Database>,
    viewer: Viewer,
    PanelForm(NoFields {}): PanelForm<NoFields>,
) -> Result<Response, PanelError> {
    admin_webhooks::replay_dead_letter(&db, &viewer.staff).await?;
    // The replayed events wait for the webhooks service's worker: show them.
    Ok(Redirect::to("/admin/webhooks?status=pending&notice=queued").into_response())
}

/// The page of event `id`. Stripe's ids are letters, digits and `_`, but an id is whatever a
/// signed event said: it is percent-encoded as a path segment.
fn event_path(id: &str) -> String {
    format!("/admin/webhooks/events/{}", encode_segment(id))
}

/// `text` as a URL path segment: unreserved characters (RFC 3986) as they are, every other byte
/// percent-encoded.
fn encode_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

/// At most `chars` characters of `text`, with an ellipsis when some were cut.
fn preview(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Unix milliseconds as [`when`] shows times, with the seconds: attempts are seconds apart.
fn when_ms(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let minute = when(secs);
    match minute.strip_suffix(" UTC") {
        Some(minute) => format!("{minute}:{:02} UTC", secs.rem_euclid(60)),
        None => minute,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_encoded_as_one_path_segment() {
        assert_eq!(event_path("evt_1Abc"), "/admin/webhooks/events/evt_1Abc");
        assert_eq!(
            event_path("a/b?c d#é"),
            "/admin/webhooks/events/a%2Fb%3Fc%20d%23%C3%A9"
        );
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        assert_eq!(preview("short", 10), "short");
        assert_eq!(preview("éééé", 2), "éé…");
        assert_eq!(preview("", 0), "");
    }

    #[test]
    fn attempt_times_show_seconds() {
        assert_eq!(when_ms(1_795_528_807_250), "2026-11-24 14:00:07 UTC");
        assert_eq!(when_ms(-1), "1969-12-31 23:59:59 UTC");
    }
}
