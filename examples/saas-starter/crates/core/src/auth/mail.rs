//! The account emails: what they say (templates under `crates/core/templates/auth/`, one text
//! and one HTML file per message) and the job that sends those carrying a token.
//!
//! Messages with a link that acts on the account (verify an address, reset a password, confirm
//! an email change) are sent by the `auth.account_email` job ([`AccountEmails`]), which mints the
//! token as it sends, so the token is never stored anywhere but in the email: not in the job's
//! payload, which the admin panel shows and which is kept after the job. Notices without a token
//! (password changed, email change requested, someone registering with an address) are rendered
//! by the request and sent as `email.send` jobs.
//!
//! Each attempt of an `auth.account_email` job mints its own token, which replaces the previous
//! one of its kind: a token is in exactly one message. When a worker dies after the SMTP server
//! accepted a message and before the job's success was recorded, the job runs again and the
//! owner gets a second message, whose link is the one that works (SMTP has no way to ask the
//! server whether it already has a message).

use serde::{Deserialize, Serialize};

use super::tokens::{self, Purpose};
use super::{accounts, now};
use crate::email::{Branding, Email, Mailer};
use crate::email_message;
use crate::jobs::{Job, JobContext, JobError};

/// The product's pages the links point to (under `APP_BASE_URL`), each taking `?token=`.
pub const VERIFY_EMAIL_PAGE: &str = "/verify-email";
pub const RESET_PASSWORD_PAGE: &str = "/reset-password";
pub const CONFIRM_EMAIL_PAGE: &str = "/confirm-email";
/// Where someone who does not know their password asks for a reset link.
pub const FORGOT_PASSWORD_PAGE: &str = "/forgot-password";

/// "Confirm your address": sent at registration and on request.
pub struct VerifyEmail {
    pub brand: Branding,
    pub link: String,
    /// How long the link works, in words.
    pub valid_for: String,
}

email_message!(
    VerifyEmail,
    text = "auth/verify_email.txt",
    html = "auth/verify_email.html",
    subject = |m| format!("Confirm your email address for {}", m.brand.app_name),
);

/// "Reset your password".
pub struct ResetPassword {
    pub brand: Branding,
    pub link: String,
    pub valid_for: String,
}

email_message!(
    ResetPassword,
    text = "auth/reset_password.txt",
    html = "auth/reset_password.html",
    subject = |m| format!("Reset your {} password", m.brand.app_name),
);

/// "Confirm your new address": sent to the new address of an email change.
pub struct ConfirmEmailChange {
    pub brand: Branding,
    pub link: String,
    pub new_email: String,
    pub valid_for: String,
}

email_message!(
    ConfirmEmailChange,
    text = "auth/confirm_email_change.txt",
    html = "auth/confirm_email_change.html",
    subject = |m| format!("Confirm your new email address for {}", m.brand.app_name),
);

/// "Someone asked to move your account to another address": sent to the current address.
pub struct EmailChangeRequested {
    pub brand: Branding,
    pub new_email: String,
    /// Where to reset the password, should the request not be the owner's.
    pub forgot_link: String,
}

email_message!(
    EmailChangeRequested,
    text = "auth/email_change_requested.txt",
    html = "auth/email_change_requested.html",
    subject = |m| format!("Your {} email address is about to change", m.brand.app_name),
);

/// "Your password was changed".
pub struct PasswordChanged {
    pub brand: Branding,
    pub forgot_link: String,
}

email_message!(
    PasswordChanged,
    text = "auth/password_changed.txt",
    html = "auth/password_changed.html",
    subject = |m| format!("Your {} password was changed", m.brand.app_name),
);

/// "Someone tried to register with your address": sent, when registration does not tell which
/// addresses have accounts (`AUTH_REQUIRE_VERIFIED_EMAIL`), to the owner instead of an error to
/// whoever tried.
pub struct RegistrationAttempt {
    pub brand: Branding,
    pub forgot_link: String,
}

email_message!(
    RegistrationAttempt,
    text = "auth/registration_attempt.txt",
    html = "auth/registration_attempt.html",
    subject = |m| format!(
        "Someone tried to register with your address at {}",
        m.brand.app_name
    ),
);

/// An email with a token to send: the payload of `auth.account_email` jobs. It names the account
/// (or the address), never a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "send", rename_all = "snake_case")]
pub enum AccountEmail {
    /// A verification link to the account's address, unless it is verified by then.
    Verification { user_id: String },
    /// A password reset link to `email`, if an account has it.
    PasswordReset { email: String },
    /// A link to `new_email` that moves the account there.
    EmailChange { user_id: String, new_email: String },
}

/// How long each kind of token works, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct TokenLifetimes {
    pub verify_email: i64,
    pub reset_password: i64,
    pub change_email: i64,
}

/// The `auth.account_email` job: mints the token and sends the message.
pub struct AccountEmails {
    pub(super) mailer: Mailer,
    pub(super) lifetimes: TokenLifetimes,
}

impl Job for AccountEmails {
    const KIND: &'static str = "auth.account_email";
    type Payload = AccountEmail;

    async fn run(&self, ctx: &JobContext, payload: AccountEmail) -> Result<(), JobError> {
        let db = ctx.db();
        let lifetimes = self.lifetimes;
        // Who gets which token; nothing to send when the account is gone, disabled, or (for a
        // verification) verified already.
        let (user_id, to, purpose, ttl) = match &payload {
            AccountEmail::Verification { user_id } => {
                let Some(account) = accounts::find_by_id(db, user_id).await? else {
                    return Ok(());
                };
                if account.disabled || account.user.email_verified {
                    return Ok(());
                }
                let to = account.user.email;
                (
                    account.user.id,
                    to,
                    Purpose::VerifyEmail,
                    lifetimes.verify_email,
                )
            }
            AccountEmail::PasswordReset { email } => {
                let Some(account) = accounts::find_by_email(db, email).await? else {
                    return Ok(());
                };
                if account.disabled {
                    return Ok(());
                }
                let to = account.user.email;
                (
                    account.user.id,
                    to,
                    Purpose::ResetPassword,
                    lifetimes.reset_password,
                )
            }
            AccountEmail::EmailChange { user_id, new_email } => {
                let Some(account) = accounts::find_by_id(db, user_id).await? else {
                    return Ok(());
                };
                if account.disabled {
                    return Ok(());
                }
                let to = new_email.clone();
                (
                    account.user.id,
                    to,
                    Purpose::ChangeEmail,
                    lifetimes.change_email,
                )
            }
        };
        let mut tx = db.begin_write().await?;
        let token = tokens::mint(&mut tx, &user_id, purpose, &to, now(), ttl)
            .await
            .map_err(JobError::retry)?;
        let email = self.render(&payload, &to, &token, ttl)?;
        tx.commit().await?;
        // Each attempt's message is another (another token): its own Message-ID.
        let id = format!("job-{}-{}", ctx.id(), ctx.attempt());
        self.mailer.deliver(db, &email, &id).await?;
        tracing::info!(user = %user_id, kind = ?purpose, "account email sent");
        Ok(())
    }
}

impl AccountEmails {
    fn render(
        &self,
        payload: &AccountEmail,
        to: &str,
        token: &str,
        ttl: i64,
    ) -> Result<Email, JobError> {
        let brand = self.mailer.branding().clone();
        let valid_for = in_words(ttl);
        let link = |page: &str| brand.link(&format!("{page}?token={token}"));
        let rendered = match payload {
            AccountEmail::Verification { .. } => Email::render(
                to,
                &VerifyEmail {
                    link: link(VERIFY_EMAIL_PAGE),
                    brand: brand.clone(),
                    valid_for,
                },
            ),
            AccountEmail::PasswordReset { .. } => Email::render(
                to,
                &ResetPassword {
                    link: link(RESET_PASSWORD_PAGE),
                    brand: brand.clone(),
                    valid_for,
                },
            ),
            AccountEmail::EmailChange { new_email, .. } => Email::render(
                to,
                &ConfirmEmailChange {
                    link: link(CONFIRM_EMAIL_PAGE),
                    new_email: new_email.clone(),
                    brand: brand.clone(),
                    valid_for,
                },
            ),
        };
        // A template that does not render never will.
        rendered.map_err(JobError::permanent)
    }
}

/// `secs` as people say it: "30 minutes", "48 hours", "7 days".
pub fn in_words(secs: i64) -> String {
    let (amount, unit) = match secs {
        s if s % 86_400 == 0 && s >= 3 * 86_400 => (s / 86_400, "day"),
        s if s % 3_600 == 0 => (s / 3_600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    let plural = if amount == 1 { "" } else { "s" };
    format!("{amount} {unit}{plural}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brand() -> Branding {
        Branding {
            app_name: "Acme".into(),
            base_url: "https://app.acme.example".into(),
        }
    }

    #[test]
    fn lifetimes_in_words() {
        assert_eq!(in_words(1800), "30 minutes");
        assert_eq!(in_words(48 * 3600), "48 hours");
        assert_eq!(in_words(3600), "1 hour");
        assert_eq!(in_words(7 * 86_400), "7 days");
        assert_eq!(in_words(90), "90 seconds");
    }

    #[test]
    fn a_reset_email_has_its_link_in_both_bodies() {
        let message = ResetPassword {
            brand: brand(),
            link: "https://app.acme.example/reset-password?token=abc&x=<1>".into(),
            valid_for: "30 minutes".into(),
        };

        let email = Email::render("ada@example.com", &message).unwrap();

        assert_eq!(email.subject, "Reset your Acme password");
        assert_eq!(email.link(), Some(message.link.as_str()));
        assert!(
            email.html.contains("token=abc&#38;x=&#60;1&#62;"),
            "{}",
            email.html
        );
        assert!(email.text.contains("30 minutes"));
    }

    #[test]
    fn every_message_renders() {
        let brand = brand();
        let link = "https://app.acme.example/page?token=t".to_owned();
        let forgot_link = brand.link(FORGOT_PASSWORD_PAGE);
        let to = "ada@example.com";
        let rendered = [
            Email::render(
                to,
                &VerifyEmail {
                    brand: brand.clone(),
                    link: link.clone(),
                    valid_for: "48 hours".into(),
                },
            ),
            Email::render(
                to,
                &ConfirmEmailChange {
                    brand: brand.clone(),
                    link: link.clone(),
                    new_email: "ada@new.example".into(),
                    valid_for: "48 hours".into(),
                },
            ),
            Email::render(
                to,
                &EmailChangeRequested {
                    brand: brand.clone(),
                    new_email: "ada@new.example".into(),
                    forgot_link: forgot_link.clone(),
                },
            ),
            Email::render(
                to,
                &PasswordChanged {
                    brand: brand.clone(),
                    forgot_link: forgot_link.clone(),
                },
            ),
            Email::render(
                to,
                &RegistrationAttempt {
                    brand: brand.clone(),
                    forgot_link,
                },
            ),
        ];

        for email in rendered {
            let email = email.unwrap();
            assert!(email.subject.contains("Acme"), "{}", email.subject);
            assert!(email.link().is_some(), "{}", email.text);
            assert!(
                email.html.contains("https://app.acme.example"),
                "{}",
                email.html
            );
        }
    }
}
