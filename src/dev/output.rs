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

#[cfg(test)]
mod tests {
    use super::*;

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
