//! `SMTP_URL`: which server sends mail, and how.
//!
//! | URL                                        | connection                         | port by default |
//! |--------------------------------------------|------------------------------------|-----------------|
//! | `smtp://user:password@host:port`           | plain text, never upgraded         | 25              |
//! | `smtp://user:password@host:port?tls=required` | STARTTLS, refused without it    | 587             |
//! | `smtp://...?tls=opportunistic`             | STARTTLS when offered, else plain  | 587             |
//! | `smtps://user:password@host:port`          | TLS from the first byte            | 465             |
//!
//! The same forms and defaults as lettre's `from_url`, read here rather than by it: lettre's
//! exists only in builds with a TLS feature, and its errors cannot name the key at fault. The
//! user and password are percent-decoded (write `@` in a password as `%40`); a path, as in
//! `smtp://host:25/mail.acme.example`, is the name the client gives in its `EHLO` greeting.
//! Certificates are checked against the system's roots. TLS needs the `tls` build feature: a build
//! without it refuses such URLs at start instead of sending passwords and mail in plain text.

use std::borrow::Cow;

use lettre::transport::smtp::authentication::Credentials;
#[cfg(feature = "tls")]
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use percent_encoding::percent_decode_str;

use crate::config::Env;

/// How the connection to the server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Plain,
    StartTlsRequired,
    StartTlsOpportunistic,
    ImplicitTls,
}

impl Security {
    fn default_port(self) -> u16 {
        match self {
            Self::Plain => 25,
            Self::StartTlsRequired | Self::StartTlsOpportunistic => 587,
            Self::ImplicitTls => 465,
        }
    }
}

/// A valid `SMTP_URL`. Not `Debug`: it holds the password.
#[derive(Clone)]
pub struct SmtpSettings {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello_name: Option<String>,
    #[cfg(feature = "tls")]
    tls: Option<Tls>,
}

impl SmtpSettings {
    /// The settings of the URL in `key`, `None` when it is unset; a URL that is not valid is
    /// recorded as a problem of `key`.
    pub fn from_env(env: &mut Env, key: &str) -> Option<Self> {
        let url: String = env.optional(key, String::new());
        if url.is_empty() {
            return None;
        }
        Self::parse(&url)
            .map_err(|problem| env.record(key, problem))
            .ok()
    }

    fn parse(text: &str) -> Result<Self, String> {
        const FORMS: &str = "smtp://user:password@host:port, with ?tls=required for STARTTLS, \
                             or smtps://user:password@host:port";
        let url =
            url::Url::parse(text).map_err(|error| format!("is not a URL ({error}): {FORMS}"))?;
        let tls = url
            .query_pairs()
            .find(|(name, _)| name == "tls")
            .map(|(_, value)| value.into_owned());
        let security = match (url.scheme(), tls.as_deref()) {
            ("smtp", None) => Security::Plain,
            ("smtp", Some("required")) => Security::StartTlsRequired,
            ("smtp", Some("opportunistic")) => Security::StartTlsOpportunistic,
            ("smtps", None) => Security::ImplicitTls,
            ("smtp" | "smtps", Some(other)) => {
                return Err(format!(
                    "has tls={other}: `required` or `opportunistic` (smtp:// only) are known"
                ));
            }
            (scheme, _) => return Err(format!("has scheme {scheme}://: {FORMS}")),
        };
        let host = url
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| format!("names no host: {FORMS}"))?
            .to_owned();
        let decode = |part: &str| -> Result<String, String> {
            percent_decode_str(part)
                .decode_utf8()
                .map(Cow::into_owned)
                .map_err(|_| "has a user or password that is not UTF-8 once decoded".to_owned())
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            (user, password) => Some(Credentials::new(
                decode(user)?,
                decode(password.unwrap_or_default())?,
            )),
        };
        // Refused rather than sent in plain text: this build cannot speak TLS.
        #[cfg(not(feature = "tls"))]
        if security != Security::Plain {
            return Err(crate::config::TLS_NOT_BUILT.to_owned());
        }
        let path = url.path().trim_matches('/');
        Ok(Self {
            port: url.port().unwrap_or(security.default_port()),
            hello_name: (!path.is_empty()).then(|| path.to_owned()),
            credentials,
            #[cfg(feature = "tls")]
            tls: tls_of(security, &host)?,
            host,
            security,
        })
    }

    /// `host:port`, for logs.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn security(&self) -> Security {
        self.security
    }

    /// The transport: a pool of connections, opened as messages are sent. Needs the runtime.
    pub(super) fn transport(self) -> AsyncSmtpTransport<Tokio1Executor> {
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host).port(self.port);
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls {
            builder = builder.tls(tls);
        }
        if let Some(credentials) = self.credentials {
            builder = builder.credentials(credentials);
        }
        if let Some(name) = self.hello_name {
            builder = builder.hello_name(ClientId::Domain(name));
        }
        builder.build()
    }
}

/// The TLS of a URL, with the system's root certificates.
#[cfg(feature = "tls")]
fn tls_of(security: Security, host: &str) -> Result<Option<Tls>, String> {
    let parameters = || {
        TlsParameters::new(host.to_owned())
            .map_err(|error| format!("cannot set up TLS for {host}: {error}"))
    };
    Ok(match security {
        Security::Plain => None,
        Security::StartTlsRequired => Some(Tls::Required(parameters()?)),
        Security::StartTlsOpportunistic => Some(Tls::Opportunistic(parameters()?)),
        Security::ImplicitTls => Some(Tls::Wrapper(parameters()?)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_smtp_with_credentials_and_a_greeting_name() {
        let settings =
            SmtpSettings::parse("smtp://mailer:p%40ss@127.0.0.1:2525/mail.acme.example").unwrap();

        assert_eq!(settings.address(), "127.0.0.1:2525");
        assert_eq!(settings.security(), Security::Plain);
        assert_eq!(settings.hello_name.as_deref(), Some("mail.acme.example"));
        let expected = Credentials::new("mailer".into(), "p@ss".into());
        assert_eq!(settings.credentials, Some(expected));
    }

    #[test]
    fn ports_default_by_scheme_and_tls() {
        let port = |url: &str| SmtpSettings::parse(url).map(|settings| settings.port);

        assert_eq!(port("smtp://mail.example.com"), Ok(25));
        if cfg!(feature = "tls") {
            assert_eq!(port("smtp://mail.example.com?tls=required"), Ok(587));
            assert_eq!(port("smtps://mail.example.com"), Ok(465));
        }
    }

    #[test]
    fn tls_urls_need_the_tls_feature() {
        for url in [
            "smtps://mail.example.com",
            "smtp://mail.example.com?tls=required",
        ] {
            let parsed = SmtpSettings::parse(url);
            if cfg!(feature = "tls") {
                assert!(parsed.is_ok(), "{url}");
            } else {
                assert!(parsed.err().unwrap().contains("`tls` feature"), "{url}");
            }
        }
    }

    #[test]
    fn refuses_what_is_not_an_smtp_url() {
        for (url, problem) in [
            ("mail example", "is not a URL"),
            ("http://mail.example.com", "has scheme http://"),
            ("smtp://mail.example.com?tls=always", "has tls=always"),
            ("smtps://mail.example.com?tls=required", "has tls=required"),
        ] {
            let refused = SmtpSettings::parse(url).err().unwrap_or_default();
            assert!(refused.contains(problem), "{url}: {refused}");
        }
    }
}
