//! Transactional email: messages rendered from templates, sent by a job.
//!
//! - A message is an [`Email`]: a recipient, a subject, a text body and an HTML body, rendered
//!   from a pair of askama templates under `crates/core/templates/` (yours to edit; the HTML
//!   ones extend `email/layout.html`) by a type implementing [`Message`].
//! - Nothing is sent during a request: code enqueues an [`SendEmail`] job (kind `email.send`) in
//!   its own transaction with [`enqueue`], and a worker delivers it. A delivery that fails for a
//!   reason worth retrying (the server is down, answers 4xx) is retried with the queue's backoff;
//!   one the server refuses for good (5xx) or the last attempt ends the job dead, with the SMTP
//!   error in the admin panel's Jobs page.
//! - Where mail goes is the [`Mailer`]'s business, from `SMTP_URL` ([`smtp`]); without it (in
//!   development only: production refuses to start) into the outbox table ([`outbox`]), listed by
//!   the admin panel and printed by `saaskit dev`.
//!
//! Delivery is at least once. Each message carries a Message-ID derived from its job, the same at
//! every attempt, and the outbox stores a message once per Message-ID; an SMTP server cannot be
//! told "this one again", so a worker that dies after the server accepted a message and before
//! it recorded the success sends it once more when the job runs again (mail clients that
//! de-duplicate by Message-ID show it once).

pub mod outbox;
pub mod smtp;

use std::sync::Arc;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use crate::config::Env;
use crate::db::Database;
use crate::jobs::{self, Job, JobContext, JobError, NewJob};

/// What messages say about the product: its name and where it is used.
#[derive(Debug, Clone)]
pub struct Branding {
    /// `APP_NAME`.
    pub app_name: String,
    /// `APP_BASE_URL`, without a trailing slash.
    pub base_url: String,
}

impl Branding {
    /// The product's page at `path` (which starts with `/`, and may carry a query).
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

/// The `SMTP_URL`, `EMAIL_FROM`, `APP_NAME` and `APP_BASE_URL` settings.
pub struct EmailConfig {
    /// `None` without `SMTP_URL`: the outbox.
    smtp: Option<smtp::SmtpSettings>,
    /// `None` only when `EMAIL_FROM` is invalid, which [`Env::finish`] reports first.
    from: Option<Mailbox>,
    branding: Branding,
}

impl EmailConfig {
    pub fn from_env(env: &mut Env) -> Self {
        let app_name: String = env.required("APP_NAME").unwrap_or_default();
        let smtp = smtp::SmtpSettings::from_env(env, "SMTP_URL");
        if smtp.is_none() && env.is_production() {
            env.record(
                "SMTP_URL",
                "is not set: a production service (APP_ENV=production, the default when it is \
                 unset) sends mail through an SMTP server, e.g. \
                 smtps://user:password@smtp.example.com:465; the outbox without SMTP_URL is for \
                 development (APP_ENV=development)",
            );
        }
        let from = env.required::<String>("EMAIL_FROM").and_then(|from| {
            sender(&from, &app_name)
                .map_err(|error| {
                    env.record(
                        "EMAIL_FROM",
                        format!(
                            "is not an address, or a name and an address \
                             ('Acme <no-reply@acme.example>'): {error}"
                        ),
                    );
                })
                .ok()
        });
        let base_url = base_url(env, "APP_BASE_URL");
        Self {
            smtp,
            from,
            branding: Branding { app_name, base_url },
        }
    }
}

/// `EMAIL_FROM` as a mailbox: named `app_name` when it is a bare address.
fn sender(from: &str, app_name: &str) -> Result<Mailbox, lettre::address::AddressError> {
    let mailbox: Mailbox = from.trim().parse()?;
    Ok(match mailbox.name {
        Some(_) => mailbox,
        None => Mailbox::new(Some(app_name.to_owned()), mailbox.email),
    })
}

/// `APP_BASE_URL`, an absolute http(s) URL, without its trailing slash.
fn base_url(env: &mut Env, key: &str) -> String {
    let Some(text) = env.required::<String>(key) else {
        return String::new();
    };
    match url::Url::parse(&text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
            text.trim_end_matches('/').to_owned()
        }
        _ => {
            env.record(
                key,
                "is not an http:// or https:// URL, e.g. https://app.acme.example",
            );
            String::new()
        }
    }
}

/// A message ready to send. It is a job's payload, stored until the job is purged: put no
/// secret in it (a message that carries one, like a password reset link, is rendered and sent
/// by the job that mints the secret, as the auth module's account emails are).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A kind of message: its subject and its two bodies, from templates.
pub trait Message {
    fn subject(&self) -> String;
    fn text(&self) -> askama::Result<String>;
    fn html(&self) -> askama::Result<String>;
}

/// Implements [`Message`] for `$data`, a struct whose fields its two templates use by name: the
/// text template `$text` and the HTML one `$html` (paths under `crates/core/templates/`; the
/// HTML one extends `email/layout.html`, so `$data` has a `brand` field), with the subject
/// `$subject`, computed from the message `$m`:
///
/// ```ignore
/// pub struct Welcome { pub brand: Branding, pub link: String }
///
/// saaskit_core::email_message!(Welcome, text = "welcome.txt", html = "welcome.html",
///     subject = |m| format!("Welcome to {}", m.brand.app_name));
/// ```
#[macro_export]
macro_rules! email_message {
    ($data:ty, text = $text:tt, html = $html:tt, subject = |$m:ident| $subject:expr $(,)?) => {
        impl $crate::email::Message for $data {
            fn subject(&self) -> String {
                let $m = self;
                $subject
            }

            fn text(&self) -> askama::Result<String> {
                #[derive(askama::Template)]
                #[template(path = $text)]
                struct Text<'a> {
                    message: &'a $data,
                }
                // The template reads the message's fields as its own.
                impl std::ops::Deref for Text<'_> {
                    type Target = $data;
                    fn deref(&self) -> &$data {
                        self.message
                    }
                }
                askama::Template::render(&Text { message: self })
            }

            fn html(&self) -> askama::Result<String> {
                #[derive(askama::Template)]
                #[template(path = $html)]
                struct Html<'a> {
                    message: &'a $data,
                }
                impl std::ops::Deref for Html<'_> {
                    type Target = $data;
                    fn deref(&self) -> &$data {
                        self.message
                    }
                }
                askama::Template::render(&Html { message: self })
            }
        }
    };
}

impl Email {
    /// `message` rendered for `to`.
    pub fn render(to: &str, message: &impl Message) -> askama::Result<Self> {
        Ok(Self {
            to: to.to_owned(),
            subject: message.subject(),
            text: message.text()?,
            html: message.html()?,
        })
    }

    /// The first link of the text body, the one the message is about.
    pub fn link(&self) -> Option<&str> {
        first_link(&self.text)
    }
}

/// The first http(s) URL of a text body.
pub fn first_link(text: &str) -> Option<&str> {
    text.split_whitespace()
        .find(|word| word.starts_with("https://") || word.starts_with("http://"))
}

/// Enqueues `email` on `conn`, the caller's transaction: it is sent once, and only if, that
/// transaction commits.
pub async fn enqueue(conn: &mut AnyConnection, email: &Email) -> Result<(), EmailError> {
    let job = NewJob::of::<SendEmail>(email).map_err(|error| EmailError::Invalid(error.into()))?;
    jobs::enqueue(conn, &job).await?;
    Ok(())
}

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The message cannot be sent as it is (a malformed address): trying again will not help.
    #[error("the message cannot be sent: {0}")]
    Invalid(crate::error::BoxError),
    /// The SMTP server refused the message for good (a 5xx reply).
    #[error("the SMTP server refused the message: {0}")]
    Refused(lettre::transport::smtp::Error),
    /// The SMTP server could not be reached, or asked to try again later (a 4xx reply).
    #[error("the SMTP server did not take the message: {0}")]
    Unavailable(lettre::transport::smtp::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<EmailError> for JobError {
    fn from(error: EmailError) -> Self {
        match error {
            EmailError::Invalid(_) | EmailError::Refused(_) => JobError::permanent(error),
            EmailError::Unavailable(_) | EmailError::Database(_) => JobError::retry(error),
        }
    }
}

/// Why the mailer could not be prepared at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("the email configuration is invalid: check `Env::finish` before `Mailer::new`")]
    InvalidConfig,
}

/// Where messages go: the SMTP server of `SMTP_URL`, or the outbox. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    from: Mailbox,
    branding: Branding,
}

enum Transport {
    /// A pool of connections to the server, opened when a message is sent.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox,
}

impl Mailer {
    /// The mailer `config` describes. Connects to nothing yet: a server that is down at start
    /// delays messages, it does not keep the service from starting.
    pub fn new(config: EmailConfig) -> Result<Self, SetupError> {
        let from = config.from.ok_or(SetupError::InvalidConfig)?;
        let transport = match config.smtp {
            Some(settings) => {
                tracing::info!(server = %settings.address(), "mail is sent through SMTP");
                Transport::Smtp(settings.transport())
            }
            None => {
                tracing::info!("no SMTP_URL: mail goes to the development outbox");
                Transport::Outbox
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                transport,
                from,
                branding: config.branding,
            }),
        })
    }

    pub fn branding(&self) -> &Branding {
        &self.inner.branding
    }

    /// Sends `email` now, as the message `id` (unique per message, the same for each attempt
    /// at it; the local part of its Message-ID).
    pub async fn deliver(&self, db: &Database, email: &Email, id: &str) -> Result<(), EmailError> {
        let inner = &*self.inner;
        match &inner.transport {
            Transport::Smtp(transport) => {
                let message = self.message(email, id)?;
                transport.send(message).await.map_err(|error| {
                    if error.is_permanent() {
                        EmailError::Refused(error)
                    } else {
                        EmailError::Unavailable(error)
                    }
                })?;
                tracing::info!(message = id, "email sent");
                Ok(())
            }
            Transport::Outbox => {
                let from = inner.from.to_string();
                outbox::store(db, id, &from, email).await?;
                Ok(())
            }
        }
    }

    /// The MIME message: text and HTML as alternatives.
    fn message(&self, email: &Email, id: &str) -> Result<lettre::Message, EmailError> {
        let from = &self.inner.from;
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|error: lettre::address::AddressError| EmailError::Invalid(error.into()))?;
        lettre::Message::builder()
            .from(from.clone())
            .to(to)
            .subject(&email.subject)
            .message_id(Some(format!("<{id}@{}>", from.email.domain())))
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|error| EmailError::Invalid(error.into()))
    }
}

/// The `email.send` job: delivers the [`Email`] it carries.
pub struct SendEmail {
    mailer: Mailer,
}

impl SendEmail {
    pub fn new(mailer: Mailer) -> Self {
        Self { mailer }
    }
}

impl Job for SendEmail {
    const KIND: &'static str = "email.send";
    type Payload = Email;

    async fn run(&self, ctx: &JobContext, email: Email) -> Result<(), JobError> {
        let id = format!("job-{}", ctx.id());
        Ok(self.mailer.deliver(ctx.db(), &email, &id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        let defaults = [
            ("APP_NAME", "Acme"),
            ("APP_BASE_URL", "https://app.acme.example/"),
            ("EMAIL_FROM", "no-reply@acme.example"),
        ];
        Env::from_vars(defaults.iter().chain(vars).copied())
    }

    #[test]
    fn a_bare_sender_address_is_named_after_the_product() {
        let mut env = env(&[("APP_ENV", "development")]);
        let config = EmailConfig::from_env(&mut env);
        env.finish().unwrap();

        assert_eq!(
            config.from.unwrap().to_string(),
            "Acme <no-reply@acme.example>"
        );
        assert_eq!(config.branding.base_url, "https://app.acme.example");
        assert!(config.smtp.is_none());
    }

    #[test]
    fn a_named_sender_keeps_its_name() {
        let mailbox = sender("Acme Support <help@acme.example>", "Acme").unwrap();

        assert_eq!(mailbox.to_string(), "Acme Support <help@acme.example>");
    }

    #[test]
    fn production_needs_an_smtp_server() {
        let mut env = env(&[("APP_ENV", "production")]);
        EmailConfig::from_env(&mut env);

        let message = env.finish().unwrap_err().to_string();
        assert!(message.contains("SMTP_URL is not set"), "{message}");
    }

    #[test]
    fn bad_values_are_named_by_their_keys() {
        let mut env = env(&[
            ("APP_ENV", "development"),
            ("EMAIL_FROM", "not an address"),
            ("APP_BASE_URL", "app.acme.example"),
        ]);
        EmailConfig::from_env(&mut env);

        let message = env.finish().unwrap_err().to_string();
        assert!(
            message.contains("EMAIL_FROM is not an address"),
            "{message}"
        );
        assert!(message.contains("APP_BASE_URL is not an http"), "{message}");
    }

    #[test]
    fn the_link_of_a_message_is_its_first_url() {
        let email = Email {
            to: "ada@example.com".into(),
            subject: "Reset".into(),
            text: "Hello,\n\nopen https://app.acme.example/reset?token=abc within 30 minutes.\n\
                   Or see https://app.acme.example/help"
                .into(),
            html: String::new(),
        };

        assert_eq!(
            email.link(),
            Some("https://app.acme.example/reset?token=abc")
        );
    }
}
