//! The panel's Outbox pages: the messages the services kept in the development outbox (no
//! `SMTP_URL`; see `saaskit_core::email::outbox`), newest first (`/admin/outbox`), and one message with
//! its text and the source of its HTML (`/admin/outbox/{id}`). Staff with the view permission.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;

use saaskit_core::ApiError;
use saaskit_core::admin::Permission;
use saaskit_core::db::Database;
use saaskit_core::email;
use saaskit_core::email::outbox::{self, OutboxMessage};

use crate::panel::{Frame, PanelError, Viewer, html, when};
use crate::state::AppState;

/// The most messages the list shows.
const LIST_LIMIT: i64 = 100;

pub fn routes(state: AppState) -> OpenApiRouter {
    // HTML pages, not JSON operations: they stay out of the OpenAPI document.
    OpenApiRouter::from(
        Router::new()
            .route("/admin/outbox", get(list))
            .route("/admin/outbox/{id}", get(show))
            .with_state(state),
    )
}

/// A message as the pages show it.
struct MessageRow {
    href: String,
    to: String,
    from: String,
    subject: String,
    link: String,
    text: String,
    html: String,
    created: String,
}

impl From<OutboxMessage> for MessageRow {
    fn from(message: OutboxMessage) -> Self {
        let link = email::first_link(&message.text)
            .unwrap_or_default()
            .to_owned();
        Self {
            href: format!("/admin/outbox/{}", message.id),
            created: when(message.created_at),
            to: message.to,
            from: message.from,
            subject: message.subject,
            link,
            text: message.text,
            html: message.html,
        }
    }
}

#[derive(Template)]
#[template(path = "outbox.html")]
struct ListPage {
    frame: Frame,
    messages: Vec<MessageRow>,
}

async fn list(State(db): State<Database>, viewer: Viewer) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let messages = outbox::latest(&db, LIST_LIMIT).await?;
    Ok(html(&ListPage {
        messages: messages.into_iter().map(MessageRow::from).collect(),
        frame: viewer.frame,
    }))
}

#[derive(Template)]
#[template(path = "outbox_message.html")]
struct MessagePage {
    frame: Frame,
    message: MessageRow,
}

async fn show(
    State(db): State<Database>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let message = outbox::find(&db, &id)
        .await?
        .ok_or(PanelError(ApiError::NotFound("message")))?;
    Ok(html(&MessagePage {
        message: MessageRow::from(message),
        frame: viewer.frame,
    }))
}
