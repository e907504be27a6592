//! Rust: formats module snippets with prettyplease and explains why a snippet or a file does
//! not parse.

use super::terminated;

/// Name of the function a Rust snippet is wrapped in to be parsed and formatted.
const SNIPPET_WRAPPER: &str = "__saaskit_snippet";

/// A module snippet that is not valid Rust. Positions are 1-based and relative to the snippet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "snippet is not valid Rust at line {line}, column {column}: {message}; \
     fix the module's snippet so that it is a sequence of items or statements"
)]
pub struct SnippetError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Formats a rendered Rust snippet (items and/or statements) with prettyplease.
///
/// Returns the snippet's lines without indentation, each ending with `'\n'` (an empty snippet
/// gives `""`). Plain `//` comments are dropped by parsing; doc comments are kept. Lines inside
/// multi-line string literals get de-indented and later indented like code, so snippets should
/// write such strings with `\n` escapes.
pub fn format_rust_snippet(code: &str) -> Result<String, SnippetError> {
    let function = format!("fn {SNIPPET_WRAPPER}() {{\n{code}\n}}");
    let file = match syn::parse_file(&function) {
        // One item, the wrapper: the snippet stayed inside it. A snippet that closes the wrapper
        // (`} fn other() {`) makes more items or fails to parse.
        Ok(file) if file.items.len() == 1 => file,
        _ => return Err(snippet_parse_error(code)),
    };
    let printed = prettyplease::unparse(&file);
    // The first and last printed lines are the wrapper's signature and closing brace.
    let lines: Vec<&str> = printed.lines().collect();
    let body = lines
        .get(1..lines.len().saturating_sub(1))
        .unwrap_or_default();
    Ok(terminated(
        body.iter()
            .map(|line| line.strip_prefix("    ").unwrap_or(line)),
    ))
}

/// The first of `sources` (by index) that does not parse as a Rust file, if any.
pub fn first_unparsable(sources: &[&str]) -> Option<usize> {
    sources.iter().position(|source| !file_parses(source))
}

/// Whether `source` parses as a Rust file ([`parse_error`] without the error).
pub fn file_parses(source: &str) -> bool {
    parse_error(source).is_none()
}

/// Why `source` does not parse as a Rust file, or `None` when it does.
///
/// rust-analyzer's parser answers first: it only lexes and walks the grammar, without building
/// syn's token buffer and syntax tree, and needs a quarter of syn's instructions on the files
/// `saaskit new` splices into. A file it rejects goes to syn, whose verdict stands and whose
/// error is the one reported, so nothing syn accepts is refused. rust-analyzer leaves a few
/// rules to a later validation pass that syn applies while parsing (no chained comparisons, say);
/// the snippets spliced in were each parsed by syn already ([`format_rust_snippet`]), so what
/// this check is for, a snippet in a place where its kind of code cannot go, is caught by both.
pub(super) fn parse_error(source: &str) -> Option<syn::Error> {
    if rust_analyzer_parses(source) {
        return None;
    }
    syn::parse_file(source).err()
}

/// rust-analyzer's verdict: no lexer error and no error in the parser's output.
fn rust_analyzer_parses(source: &str) -> bool {
    use ra_ap_parser::{Edition, LexedStr, Step, TopEntryPoint};
    // The generated crates are on edition 2024 (the workspace's Cargo.toml).
    let edition = Edition::Edition2024;
    let lexed = LexedStr::new(edition, source);
    if lexed.errors().next().is_some() {
        return false;
    }
    let output = TopEntryPoint::SourceFile.parse(&lexed.to_input(edition), edition);
    !output.iter().any(|step| matches!(step, Step::Error { .. }))
}

/// 1-based line and column of a parse error in `text`, and its message.
pub(super) fn describe_error(err: &syn::Error, text: &str) -> (usize, usize, String) {
    let start = err.span().start();
    // Tokenizer failures only say "cannot parse string into token stream"; say what it means.
    let message = if text.parse::<proc_macro2::TokenStream>().is_err() {
        "unbalanced `(`, `[` or `{`, or an invalid token such as an unterminated string".to_string()
    } else {
        err.to_string()
    };
    (start.line, start.column + 1, message)
}

/// Why `code` is not a snippet: parsed as a bare block first, which rejects a snippet that
/// escapes the wrapper function, then as the wrapper's body; positions shifted back by the single
/// line each wrapper adds.
fn snippet_parse_error(code: &str) -> SnippetError {
    let block = format!("{{\n{code}\n}}");
    if let Err(err) = syn::parse_str::<syn::Block>(&block) {
        return snippet_error(&err, &block, code);
    }
    let function = format!("fn {SNIPPET_WRAPPER}() {{\n{code}\n}}");
    match syn::parse_file(&function) {
        Err(err) => snippet_error(&err, &function, code),
        Ok(_) => SnippetError {
            line: 1,
            column: 1,
            message: "the snippet closes the function it is formatted in".to_string(),
        },
    }
}

/// Maps a parse error in a wrapped snippet (one wrapper line above it, one below) back to the
/// snippet; positions on the wrapper's own lines are clamped to the snippet's first/last line.
fn snippet_error(err: &syn::Error, wrapped: &str, code: &str) -> SnippetError {
    let (line, column, message) = describe_error(err, wrapped);
    let snippet_lines: Vec<&str> = code.lines().collect();
    let (line, column) = match line.checked_sub(1) {
        None | Some(0) => (1, 1),
        Some(line) if line <= snippet_lines.len() => (line, column),
        Some(_) => {
            let last = snippet_lines.last().map_or(0, |text| text.chars().count());
            (snippet_lines.len().max(1), last + 1)
        }
    };
    SnippetError {
        line,
        column,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the whole-file check is for: code spliced where its kind of code cannot go.
    #[test]
    fn both_parsers_reject_code_in_the_wrong_place() {
        for misplaced in [
            "let x = 1;\n",
            "fn main() {}\nstart();\n",
            "impl Config { let a = 1; }\n",
            "fn f() { a() let b = 2; }\n",
            "struct S { a: u8, let b = 1; }\n",
            "fn f() { (\n}\n",
            "fn f() { let s = \"open; }\n",
        ] {
            assert!(!rust_analyzer_parses(misplaced), "{misplaced}");
            let error = parse_error(misplaced).expect(misplaced);
            assert!(!error.to_string().is_empty());
        }
        assert!(rust_analyzer_parses(
            "pub(crate) async fn f<T: Send>(t: T) -> u8 where T: Sync { 'a: loop { break 'a 1; } }\n"
        ));
    }

    /// A token rustc and syn read as a lifetime, where rust-analyzer's lexer sees an unclosed
    /// character: syn's word stands, so the check never refuses what it accepted before.
    #[test]
    fn what_rust_analyzer_rejects_and_syn_accepts_parses() {
        let source = "fn f() { tracing::info!(j'ob = 1); }\n";
        assert!(!rust_analyzer_parses(source));
        assert!(syn::parse_file(source).is_ok());
        assert!(parse_error(source).is_none());
        assert_eq!(first_unparsable(&[source, "let x = 1;"]), Some(1));
    }

    #[test]
    fn formats_statements() {
        let formatted =
            format_rust_snippet("let db=acme_core::db::Database::connect(&db_config).await?;")
                .unwrap();
        assert_eq!(
            formatted,
            "let db = acme_core::db::Database::connect(&db_config).await?;\n"
        );
    }

    #[test]
    fn formats_items() {
        let formatted = format_rust_snippet("pub mod db;\nuse crate::db::{Pool,Database};\n#[derive(Debug)] struct Config { url: String, max: u32 }").unwrap();
        assert_eq!(
            formatted,
            "\
pub mod db;
use crate::db::{Pool, Database};
#[derive(Debug)]
struct Config {
    url: String,
    max: u32,
}
"
        );
    }

    #[test]
    fn formats_items_and_statements_together() {
        let formatted = format_rust_snippet(
            "/// Shared pool.\nstatic POOL: u8 = 1;\nlet x = f()?;\nif x { g(); }",
        )
        .unwrap();
        assert_eq!(
            formatted,
            "/// Shared pool.\nstatic POOL: u8 = 1;\nlet x = f()?;\nif x {\n    g();\n}\n"
        );
    }

    #[test]
    fn formats_empty_snippet_as_empty() {
        assert_eq!(format_rust_snippet("").unwrap(), "");
        assert_eq!(format_rust_snippet("  \n").unwrap(), "");
    }

    #[test]
    fn snippet_error_is_relative_to_the_snippet() {
        let err = format_rust_snippet("let a = 1;\nlet b = ;\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 9), "{err:?}");
        assert!(err.to_string().contains("line 2, column 9"), "{err}");
    }

    #[test]
    fn snippet_error_on_missing_input_points_at_the_end() {
        let err = format_rust_snippet("let a = 1;\nlet b =").unwrap_err();
        assert_eq!((err.line, err.column), (2, 8), "{err:?}");
    }

    #[test]
    fn snippet_cannot_escape_the_wrapper() {
        let err = format_rust_snippet("} fn other() {").unwrap_err();
        assert_eq!(err.line, 1, "{err:?}");
    }
}
