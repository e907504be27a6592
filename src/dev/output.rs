//! The services' log lines, each prefixed with its service's name (`api      | ...`) in a colour
//! of its own, written whole to stdout so that lines of different services never mix.

use std::io::Write;

/// ANSI foreground colours, in the order services get them: readable on dark and light
/// terminals, and none of them red, which stays for errors.
const PALETTE: [&str; 6] = [
    "36", // cyan
    "35", // magenta
    "33", // yellow
    "32", // green
    "34", // blue
    "96", // bright cyan
];

/// Whether to colour the prefixes: only on a terminal, and never when `NO_COLOR` is set to
/// anything but the empty string (<https://no-color.org>).
pub fn use_colour(stdout_is_terminal: bool, no_colour: Option<&str>) -> bool {
    stdout_is_terminal && no_colour.is_none_or(str::is_empty)
}

/// The colour of the service at `index` in the manifest's order.
pub fn colour_of(index: usize) -> &'static str {
    PALETTE[index % PALETTE.len()]
}

/// `api      | `: the name padded to `width`, in the colour when there is one.
pub fn prefix(name: &str, width: usize, colour: Option<&str>) -> String {
    match colour {
        Some(code) => format!("\x1b[{code}m{name:<width$} |\x1b[0m "),
        None => format!("{name:<width$} | "),
    }
}

/// Writes lines of one service, each behind its prefix. Cheap to clone into reader threads.
#[derive(Debug, Clone)]
pub struct Prefixed {
    prefix: String,
    /// Lines are only kept (by the caller), not written: for unit tests.
    discard: bool,
}

impl Prefixed {
    pub fn new(prefix: String) -> Prefixed {
        Prefixed {
            prefix,
            discard: false,
        }
    }

    #[cfg(test)]
    pub fn discard() -> Prefixed {
        Prefixed {
            prefix: String::new(),
            discard: true,
        }
    }

    /// One line (without its line break) as one write to stdout, so that it stays whole.
    /// A closed stdout is not an error worth stopping the services for: the line is dropped.
    pub fn line(&self, line: &str) {
        if self.discard {
            return;
        }
        let text = format!("{}{}\n", self.prefix, line.trim_end_matches(['\r', '\n']));
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }
}

/// A message of `saaskit dev` itself, on stderr beside cargo's, so that stdout holds only the
/// services' lines and the status table.
pub fn note(message: impl std::fmt::Display) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "dev: {message}");
}

/// The line `saaskit dev` shows for a message of a service's development outbox, `mail to
/// <to>: <subject> <link>`, from the line the service logs for it; `None` for any other line.
///
/// The `email` module's services log each message they keep in their outbox (no `SMTP_URL`) at
/// info with the target `outbox`, the subject as the message and the fields `to` and `link`
/// (`crates/shared/src/email/outbox.rs`), as text:
/// `<time>  INFO outbox: <subject> to=<to> link=<link>`, or as JSON with `LOG_FORMAT=json`.
pub fn outbox_line(line: &str) -> Option<String> {
    let (subject, to, link) = if line.trim_start().starts_with('{') {
        let event: serde_json::Value = serde_json::from_str(line).ok()?;
        if event["target"] != "outbox" {
            return None;
        }
        let field = |name: &str| event["fields"][name].as_str().map(str::to_owned);
        (field("message")?, field("to")?, field("link")?)
    } else {
        let (_, rest) = line.split_once(" INFO outbox: ")?;
        let (rest, link) = rest.rsplit_once(" link=")?;
        let (subject, to) = rest.rsplit_once(" to=")?;
        (subject.to_owned(), to.to_owned(), link.to_owned())
    };
    Some(format!("mail to {to}: {subject} {link}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_messages_become_one_line_with_their_link() {
        let text = "2026-12-06T16:47:12.123456Z  INFO outbox: Reset your Acme password \
                    to=ada@example.com link=http://localhost:3000/reset-password?token=abc";
        let json = r#"{"timestamp":"2026-12-06T16:47:12.123456Z","level":"INFO","fields":{"message":"Reset your Acme password","to":"ada@example.com","link":"http://localhost:3000/reset-password?token=abc"},"target":"outbox"}"#;
        let expected = "mail to ada@example.com: Reset your Acme password \
                        http://localhost:3000/reset-password?token=abc";

        assert_eq!(outbox_line(text).as_deref(), Some(expected));
        assert_eq!(outbox_line(json).as_deref(), Some(expected));
    }

    #[test]
    fn other_lines_are_left_alone() {
        for line in [
            "2026-12-06T16:47:12.123456Z  INFO api: listening on 127.0.0.1:8080",
            "2026-12-06T16:47:12.123456Z  INFO outbox: no fields",
            r#"{"level":"INFO","fields":{"message":"hi"},"target":"api"}"#,
            "{not json",
        ] {
            assert_eq!(outbox_line(line), None, "{line}");
        }
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some("")));
        assert!(!use_colour(true, Some("1")));
        assert!(!use_colour(false, None));
    }

    #[test]
    fn services_get_distinct_colours_until_the_palette_wraps() {
        let colours: Vec<&str> = (0..PALETTE.len()).map(colour_of).collect();
        let mut unique = colours.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), colours.len());
        assert_eq!(colour_of(PALETTE.len()), colour_of(0));
    }

    #[test]
    fn prefixes_are_padded_to_the_longest_name() {
        assert_eq!(prefix("api", 8, None), "api      | ");
        assert_eq!(prefix("webhooks", 8, None), "webhooks | ");
        assert_eq!(prefix("api", 3, Some("36")), "\x1b[36mapi |\x1b[0m ");
    }
}
