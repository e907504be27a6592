//! Splicing: inserts, replaces, removes and reads the fenced block of one module at one marker,
//! byte-exact outside that block.

use super::rust::describe_error;
use super::scan::{
    FencedBlock, Line, Problem, Scan, is_valid_marker, is_valid_module, join_lines,
    parse_directive, run_end, scan_lines, split_lines,
};
use super::{CommentStyle, is_reverse_order, terminated};

/// Why a block could not be inserted, replaced, removed or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    #[error("`{marker}` is not a valid marker name; use lowercase letters, digits, `-` and `_`")]
    InvalidMarkerName { marker: String },
    #[error("`{module}` is not a valid module id; use lowercase letters, digits, `-`, `_` and `/`")]
    InvalidModuleId { module: String },
    #[error(
        "snippet line {line} (`{text}`) is an injection marker or fence comment; snippets \
         cannot contain `<<<inject:`, `<<<begin:` or `<<<end:` comment lines"
    )]
    FenceInBody { line: usize, text: String },
    #[error(
        "injection marker `<<<inject:{marker}>>>` not found; restore the marker comment line \
         where module code belongs"
    )]
    MissingMarker { marker: String },
    #[error(
        "injection marker `<<<inject:{marker}>>>` appears {} times (lines {}); keep exactly one",
        .lines.len(),
        join_lines(.lines)
    )]
    DuplicateMarker { marker: String, lines: Vec<usize> },
    #[error("malformed injection fences: {0}")]
    MalformedFence(Problem),
    #[error(
        "the file is not valid Rust even before injecting (line {line}, column {column}: \
         {message}); fix the file first"
    )]
    UnparsableSource {
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "inserting the block of `{module}` at marker `{marker}` leaves invalid Rust at line \
         {line}, column {column}: {message}; fix the module's snippet or the code around the marker"
    )]
    ParseAfterSplice {
        module: String,
        marker: String,
        line: usize,
        column: usize,
        message: String,
    },
}

/// Inserts `body` as the block of (`module`, `marker`), or replaces the body of that block in
/// place if it already exists anywhere in the file. A new block goes after the run of blocks
/// directly following the marker line, so blocks keep install order; at a marker of
/// [`REVERSE_ORDER_MARKERS`] it goes directly after the marker line instead, before that run.
/// A Rust file must still parse afterwards.
pub fn insert_block(
    source: &str,
    style: CommentStyle,
    marker: &str,
    module: &str,
    body: &str,
) -> Result<String, InjectError> {
    let out = splice_block(source, style, marker, module, body)?;
    if style == CommentStyle::Rust {
        check_rust(source, &out, marker, module)?;
    }
    Ok(out)
}

/// [`insert_block`] without parsing the result: for a caller that splices several blocks into
/// one file and checks it once at the end ([`parses`]), which is most of what `saaskit new`
/// would otherwise spend its time on.
pub fn splice_block(
    source: &str,
    style: CommentStyle,
    marker: &str,
    module: &str,
    body: &str,
) -> Result<String, InjectError> {
    let parsed = Parsed::new(source, style, marker, module)?;
    let body_lines: Vec<&str> = body.lines().collect();
    if let Some((index, text)) = body_lines
        .iter()
        .enumerate()
        .find(|(_, line)| parse_directive(line, style).is_some())
    {
        return Err(InjectError::FenceInBody {
            line: index + 1,
            text: text.trim().to_string(),
        });
    }
    let lines = &parsed.lines;
    let mut out = String::with_capacity(source.len() + body.len() + 128);
    match parsed.target_block(marker, module)? {
        Some(block) => {
            // Keep both fences byte for byte and rewrite only the lines between them.
            let begin = &lines[block.begin_line - 1];
            let indent = leading_whitespace(begin.content);
            push_raw(&mut out, &lines[..block.begin_line]);
            for text in &body_lines {
                push_indented(&mut out, indent, text);
                out.push_str(begin.eol);
            }
            push_raw(&mut out, &lines[block.end_line - 1..]);
        }
        None => {
            let marker_index = parsed.unique_marker(marker)?;
            let indent = leading_whitespace(lines[marker_index].content);
            let anchor = if is_reverse_order(marker) {
                marker_index
            } else {
                run_end(&parsed.scan.blocks, marker_index, marker)
            };
            let anchor_line = &lines[anchor];
            push_raw(&mut out, &lines[..=anchor]);
            let eol = if anchor_line.eol.is_empty() {
                // The anchor is the last line and has no newline: terminate it so the block
                // starts on a line of its own, and leave the block's last line unterminated.
                // `remove_block` strips exactly this terminator again.
                let eol = first_eol(&lines[..anchor]);
                out.push_str(eol);
                eol
            } else {
                anchor_line.eol
            };
            let comment = style.comment();
            let begin = format!("{comment} <<<begin:{module}@{marker}>>>");
            let end = format!("{comment} <<<end:{module}@{marker}>>>");
            push_indented(&mut out, indent, &begin);
            out.push_str(eol);
            for text in &body_lines {
                push_indented(&mut out, indent, text);
                out.push_str(eol);
            }
            push_indented(&mut out, indent, &end);
            out.push_str(anchor_line.eol);
            push_raw(&mut out, &lines[anchor + 1..]);
        }
    }
    Ok(out)
}

/// Removes the block of (`module`, `marker`): its begin line, body and end line, nothing else.
/// `Ok(None)` when the file has no such block.
pub fn remove_block(
    source: &str,
    style: CommentStyle,
    marker: &str,
    module: &str,
) -> Result<Option<String>, InjectError> {
    let parsed = Parsed::new(source, style, marker, module)?;
    let Some(block) = parsed.target_block(marker, module)? else {
        return Ok(None);
    };
    let lines = &parsed.lines;
    let (begin, end) = (block.begin_line - 1, block.end_line - 1);
    let mut out = String::with_capacity(source.len());
    match begin.checked_sub(1) {
        // The block ends the file without a final newline: `insert_block` terminated the line
        // before it with the first line ending found above that line, so take that off again.
        Some(previous) if lines[end].eol.is_empty() => {
            push_raw(&mut out, &lines[..previous]);
            let line = &lines[previous];
            let added = first_eol(&lines[..previous]);
            out.push_str(line.raw.strip_suffix(added).unwrap_or(line.content));
        }
        _ => push_raw(&mut out, &lines[..begin]),
    }
    push_raw(&mut out, &lines[end + 1..]);
    Ok(Some(out))
}

/// The current body of the block of (`module`, `marker`), de-indented by its fence's indentation
/// and with `'\n'` line endings (so it equals the body given to [`insert_block`] until someone
/// edits it), with the 1-based line of its begin fence. `None` when there is no such block.
pub fn block_body(
    source: &str,
    style: CommentStyle,
    marker: &str,
    module: &str,
) -> Result<Option<(String, usize)>, InjectError> {
    let parsed = Parsed::new(source, style, marker, module)?;
    let Some(block) = parsed.target_block(marker, module)? else {
        return Ok(None);
    };
    let lines = &parsed.lines[block.begin_line - 1..block.end_line];
    let indent = leading_whitespace(lines[0].content);
    let body = terminated(
        lines[1..lines.len() - 1]
            .iter()
            .map(|line| dedent(line.content, indent)),
    );
    Ok(Some((body, block.begin_line)))
}

/// The terminator of the first terminated line, `"\n"` if there is none.
fn first_eol<'a>(lines: &[Line<'a>]) -> &'a str {
    lines
        .iter()
        .map(|line| line.eol)
        .find(|eol| !eol.is_empty())
        .unwrap_or("\n")
}

fn push_raw(out: &mut String, lines: &[Line<'_>]) {
    for line in lines {
        out.push_str(line.raw);
    }
}

/// Pushes `text` prefixed with `indent`; empty lines stay empty (no trailing whitespace).
fn push_indented(out: &mut String, indent: &str, text: &str) {
    if !text.is_empty() {
        out.push_str(indent);
        out.push_str(text);
    }
}

fn leading_whitespace(text: &str) -> &str {
    &text[..text.len() - text.trim_start().len()]
}

/// Strips `indent` from `line`, or as much of it as the line starts with (a hand-edited line).
fn dedent<'a>(line: &'a str, indent: &str) -> &'a str {
    let common: usize = line
        .chars()
        .zip(indent.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .sum();
    &line[common..]
}

/// A source file split into lines and scanned, checked for edits of one block.
struct Parsed<'a> {
    lines: Vec<Line<'a>>,
    scan: Scan,
}

impl<'a> Parsed<'a> {
    /// Validates the names and refuses files whose fences cannot be trusted.
    fn new(
        source: &'a str,
        style: CommentStyle,
        marker: &str,
        module: &str,
    ) -> Result<Self, InjectError> {
        if !is_valid_marker(marker) {
            return Err(InjectError::InvalidMarkerName {
                marker: marker.to_string(),
            });
        }
        if !is_valid_module(module) {
            return Err(InjectError::InvalidModuleId {
                module: module.to_string(),
            });
        }
        let lines = split_lines(source);
        let scan = scan_lines(&lines, style);
        if let Some(problem) = scan.problems.iter().find(|p| p.is_structural()) {
            return Err(InjectError::MalformedFence(problem.clone()));
        }
        Ok(Self { lines, scan })
    }

    /// The block of (`module`, `marker`), if any; an error if there are several.
    fn target_block(
        &self,
        marker: &str,
        module: &str,
    ) -> Result<Option<&FencedBlock>, InjectError> {
        let mut found = self
            .scan
            .blocks
            .iter()
            .filter(|block| block.module == module && block.marker == marker);
        let first = found.next();
        let rest: Vec<&FencedBlock> = found.collect();
        if rest.is_empty() {
            return Ok(first);
        }
        Err(InjectError::MalformedFence(Problem::DuplicateBlock {
            module: module.to_string(),
            marker: marker.to_string(),
            lines: first
                .into_iter()
                .chain(rest)
                .map(|block| block.begin_line)
                .collect(),
        }))
    }

    /// 0-based index of the one marker line named `marker`.
    fn unique_marker(&self, marker: &str) -> Result<usize, InjectError> {
        let lines: Vec<usize> = self
            .scan
            .markers
            .iter()
            .filter(|found| found.name == marker)
            .map(|found| found.line)
            .collect();
        match lines.as_slice() {
            [] => Err(InjectError::MissingMarker {
                marker: marker.to_string(),
            }),
            [line] => Ok(line - 1),
            _ => Err(InjectError::DuplicateMarker {
                marker: marker.to_string(),
                lines,
            }),
        }
    }
}

/// Checks that a spliced Rust file still parses, blaming the file itself if it did not parse
/// before the splice either.
fn check_rust(
    original: &str,
    spliced: &str,
    marker: &str,
    module: &str,
) -> Result<(), InjectError> {
    let Err(err) = syn::parse_file(spliced) else {
        return Ok(());
    };
    if let Err(before) = syn::parse_file(original) {
        let (line, column, message) = describe_error(&before, original);
        return Err(InjectError::UnparsableSource {
            line,
            column,
            message,
        });
    }
    let (line, column, message) = describe_error(&err, spliced);
    Err(InjectError::ParseAfterSplice {
        module: module.to_string(),
        marker: marker.to_string(),
        line,
        column,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::inject::{format_rust_snippet, scan};

    const RUST_MAIN: &str = "\
async fn main() -> anyhow::Result<()> {
    // <<<inject:startup>>>
    Ok(())
}
";

    fn insert_rust(source: &str, module: &str, body: &str) -> String {
        insert_block(source, CommentStyle::Rust, "startup", module, body).unwrap()
    }

    #[test]
    fn inserts_after_marker_with_its_indent() {
        let out = insert_rust(RUST_MAIN, "db", "let db = connect().await?;\n");
        assert_eq!(
            out,
            "\
async fn main() -> anyhow::Result<()> {
    // <<<inject:startup>>>
    // <<<begin:db@startup>>>
    let db = connect().await?;
    // <<<end:db@startup>>>
    Ok(())
}
"
        );
    }

    #[test]
    fn several_modules_keep_install_order() {
        let out = insert_rust(RUST_MAIN, "db", "let db = connect().await?;\n");
        let out = insert_rust(&out, "auth/core", "let keys = KeySet::load()?;\n");
        let out = insert_rust(&out, "mail", "let mail = Mailer::new();\n");
        assert_eq!(
            out,
            "\
async fn main() -> anyhow::Result<()> {
    // <<<inject:startup>>>
    // <<<begin:db@startup>>>
    let db = connect().await?;
    // <<<end:db@startup>>>
    // <<<begin:auth/core@startup>>>
    let keys = KeySet::load()?;
    // <<<end:auth/core@startup>>>
    // <<<begin:mail@startup>>>
    let mail = Mailer::new();
    // <<<end:mail@startup>>>
    Ok(())
}
"
        );
        let scanned = scan(&out, CommentStyle::Rust);
        assert!(scanned.problems.is_empty(), "{:?}", scanned.problems);
        let modules: Vec<&str> = scanned.blocks.iter().map(|b| b.module.as_str()).collect();
        assert_eq!(modules, ["db", "auth/core", "mail"]);
    }

    const SHUTDOWN_MAIN: &str = "\
async fn main() -> anyhow::Result<()> {
    serve().await?;
    // <<<inject:shutdown>>>
    Ok(())
}
";

    fn insert_shutdown(source: &str, module: &str, body: &str) -> String {
        insert_block(source, CommentStyle::Rust, "shutdown", module, body).unwrap()
    }

    #[test]
    fn shutdown_blocks_go_first_so_teardown_runs_in_reverse_install_order() {
        assert!(is_reverse_order("shutdown"));
        assert!(!is_reverse_order("startup"));
        let out = insert_shutdown(SHUTDOWN_MAIN, "db", "db.close().await;\n");
        let out = insert_shutdown(&out, "jobs", "jobs.drain().await;\n");
        let out = insert_shutdown(&out, "mail", "mail.flush().await;\n");
        assert_eq!(
            out,
            "\
async fn main() -> anyhow::Result<()> {
    serve().await?;
    // <<<inject:shutdown>>>
    // <<<begin:mail@shutdown>>>
    mail.flush().await;
    // <<<end:mail@shutdown>>>
    // <<<begin:jobs@shutdown>>>
    jobs.drain().await;
    // <<<end:jobs@shutdown>>>
    // <<<begin:db@shutdown>>>
    db.close().await;
    // <<<end:db@shutdown>>>
    Ok(())
}
"
        );
        let scanned = scan(&out, CommentStyle::Rust);
        assert!(scanned.problems.is_empty(), "{:?}", scanned.problems);
        // Replacing a block keeps its place: only a new block goes first.
        let replaced = insert_shutdown(&out, "jobs", "jobs.stop().await;\n");
        assert_eq!(replaced, out.replace("jobs.drain()", "jobs.stop()"));
    }

    #[test]
    fn removing_and_re_adding_the_newest_shutdown_block_gives_the_file_back() {
        let db = insert_shutdown(SHUTDOWN_MAIN, "db", "db.close().await;\n");
        let both = insert_shutdown(&db, "jobs", "jobs.drain().await;\n");
        let without_jobs = remove_block(&both, CommentStyle::Rust, "shutdown", "jobs")
            .unwrap()
            .unwrap();
        assert_eq!(without_jobs, db);
        assert_eq!(
            insert_shutdown(&without_jobs, "jobs", "jobs.drain().await;\n"),
            both
        );
        // Removing the older block leaves what installing only the newer one gives.
        let without_db = remove_block(&both, CommentStyle::Rust, "shutdown", "db")
            .unwrap()
            .unwrap();
        assert_eq!(
            without_db,
            insert_shutdown(SHUTDOWN_MAIN, "jobs", "jobs.drain().await;\n")
        );
    }

    #[test]
    fn reverse_order_marker_on_last_line_without_newline() {
        let source = "A=1\n# <<<inject:shutdown>>>";
        let db = insert_block(source, CommentStyle::Hash, "shutdown", "db", "DB=1").unwrap();
        let both = insert_block(&db, CommentStyle::Hash, "shutdown", "jobs", "JOBS=1").unwrap();
        assert_eq!(
            both,
            "A=1\n# <<<inject:shutdown>>>\n# <<<begin:jobs@shutdown>>>\nJOBS=1\n\
             # <<<end:jobs@shutdown>>>\n# <<<begin:db@shutdown>>>\nDB=1\n# <<<end:db@shutdown>>>"
        );
        let without_db = remove_block(&both, CommentStyle::Hash, "shutdown", "db")
            .unwrap()
            .unwrap();
        assert_eq!(
            without_db,
            insert_block(source, CommentStyle::Hash, "shutdown", "jobs", "JOBS=1").unwrap()
        );
        let back = remove_block(&without_db, CommentStyle::Hash, "shutdown", "jobs").unwrap();
        assert_eq!(back.as_deref(), Some(source));
    }

    #[test]
    fn replaces_in_place_and_is_idempotent() {
        let first = insert_rust(RUST_MAIN, "db", "let db = connect().await?;\n");
        let both = insert_rust(&first, "auth", "let keys = load()?;\n");
        assert_eq!(
            insert_rust(&both, "db", "let db = connect().await?;\n"),
            both
        );
        let replaced = insert_rust(
            &both,
            "db",
            "let db = connect_with(opts).await?;\nlet x = 1;",
        );
        assert_eq!(
            replaced,
            both.replace(
                "    let db = connect().await?;\n",
                "    let db = connect_with(opts).await?;\n    let x = 1;\n"
            )
        );
    }

    #[test]
    fn replaces_a_block_that_moved_away_from_its_marker() {
        let source = "\
# <<<inject:env>>>

# <<<begin:db@env>>>
DATABASE_URL=old
# <<<end:db@env>>>
";
        let out = insert_block(
            source,
            CommentStyle::Hash,
            "env",
            "db",
            "DATABASE_URL=new\n",
        );
        assert_eq!(out.unwrap(), source.replace("old", "new"));
    }

    #[test]
    fn body_with_or_without_final_newline_is_the_same() {
        assert_eq!(
            insert_rust(RUST_MAIN, "db", "let a = 1;"),
            insert_rust(RUST_MAIN, "db", "let a = 1;\n")
        );
    }

    #[test]
    fn blank_body_lines_have_no_trailing_whitespace() {
        let out = insert_rust(RUST_MAIN, "db", "let a = 1;\n\nlet b = 2;\n");
        assert!(out.contains("    let a = 1;\n\n    let b = 2;\n"), "{out}");
    }

    #[test]
    fn keeps_trailing_text_after_the_marker_token() {
        let source = "fn main() {\n    // <<<inject:routes>>> modules mount routes here\n}\n";
        let out = insert_block(source, CommentStyle::Rust, "routes", "web", "let r = 1;").unwrap();
        assert_eq!(
            out,
            "fn main() {\n    // <<<inject:routes>>> modules mount routes here\n    \
             // <<<begin:web@routes>>>\n    let r = 1;\n    // <<<end:web@routes>>>\n}\n"
        );
    }

    #[test]
    fn keeps_crlf_line_endings() {
        let source = RUST_MAIN.replace('\n', "\r\n");
        let out = insert_rust(&source, "db", "let a = 1;\n\nlet b = 2;\n");
        assert_eq!(
            out,
            insert_rust(RUST_MAIN, "db", "let a = 1;\n\nlet b = 2;\n").replace('\n', "\r\n")
        );
        assert_eq!(
            block_body(&out, CommentStyle::Rust, "startup", "db").unwrap(),
            Some(("let a = 1;\n\nlet b = 2;\n".to_string(), 3))
        );
        assert_eq!(
            remove_block(&out, CommentStyle::Rust, "startup", "db").unwrap(),
            Some(source)
        );
    }

    #[test]
    fn marker_on_last_line_without_newline() {
        let source = "A=1\r\n# <<<inject:env>>>";
        let out = insert_block(source, CommentStyle::Hash, "env", "db", "DB=1\n").unwrap();
        assert_eq!(
            out,
            "A=1\r\n# <<<inject:env>>>\r\n# <<<begin:db@env>>>\r\nDB=1\r\n# <<<end:db@env>>>"
        );
        let both = insert_block(&out, CommentStyle::Hash, "env", "mail", "SMTP=x").unwrap();
        assert!(both.ends_with(
            "# <<<end:db@env>>>\r\n# <<<begin:mail@env>>>\r\nSMTP=x\r\n# <<<end:mail@env>>>"
        ));
        let without_db = remove_block(&both, CommentStyle::Hash, "env", "db")
            .unwrap()
            .unwrap();
        let back = remove_block(&without_db, CommentStyle::Hash, "env", "mail").unwrap();
        assert_eq!(back.as_deref(), Some(source));
    }

    #[test]
    fn marker_alone_without_newline() {
        let source = "  # <<<inject:env>>>";
        let out = insert_block(source, CommentStyle::Hash, "env", "db", "DB=1").unwrap();
        assert_eq!(
            out,
            "  # <<<inject:env>>>\n  # <<<begin:db@env>>>\n  DB=1\n  # <<<end:db@env>>>"
        );
        let back = remove_block(&out, CommentStyle::Hash, "env", "db").unwrap();
        assert_eq!(back.as_deref(), Some(source));
    }

    #[test]
    fn remove_is_the_inverse_of_insert() {
        let once = insert_rust(RUST_MAIN, "db", "let a = 1;\n");
        let twice = insert_rust(&once, "auth", "let b = 2;\n");
        let without_db = remove_block(&twice, CommentStyle::Rust, "startup", "db")
            .unwrap()
            .unwrap();
        assert_eq!(without_db, insert_rust(RUST_MAIN, "auth", "let b = 2;\n"));
        assert_eq!(
            remove_block(&once, CommentStyle::Rust, "startup", "db")
                .unwrap()
                .as_deref(),
            Some(RUST_MAIN)
        );
    }

    #[test]
    fn remove_missing_block_is_none() {
        assert_eq!(
            remove_block(RUST_MAIN, CommentStyle::Rust, "startup", "db"),
            Ok(None)
        );
        assert_eq!(remove_block("", CommentStyle::Hash, "env", "db"), Ok(None));
    }

    #[test]
    fn block_body_reports_body_and_begin_line() {
        let out = insert_rust(RUST_MAIN, "db", "let a = 1;\nif a {\n    b();\n}\n");
        assert_eq!(
            block_body(&out, CommentStyle::Rust, "startup", "db").unwrap(),
            Some(("let a = 1;\nif a {\n    b();\n}\n".to_string(), 3))
        );
        assert_eq!(
            block_body(&out, CommentStyle::Rust, "startup", "auth"),
            Ok(None)
        );
        // A hand edit that lost some indentation is still read sensibly.
        let edited = out.replace("    let a = 1;", "  let a = 2;");
        assert_eq!(
            block_body(&edited, CommentStyle::Rust, "startup", "db")
                .unwrap()
                .unwrap()
                .0,
            "let a = 2;\nif a {\n    b();\n}\n"
        );
    }

    #[test]
    fn missing_marker() {
        let err = insert_block("A=1\n", CommentStyle::Hash, "env", "db", "B=2").unwrap_err();
        assert_eq!(
            err,
            InjectError::MissingMarker {
                marker: "env".into()
            }
        );
        assert!(err.to_string().contains("<<<inject:env>>>"));
    }

    #[test]
    fn duplicate_marker() {
        let source = "# <<<inject:env>>>\nA=1\n  # <<<inject:env>>>\n";
        let err = insert_block(source, CommentStyle::Hash, "env", "db", "B=2").unwrap_err();
        assert_eq!(
            err,
            InjectError::DuplicateMarker {
                marker: "env".into(),
                lines: vec![1, 3]
            }
        );
        assert!(err.to_string().contains("lines 1, 3"), "{err}");
    }

    #[test]
    fn begin_without_end() {
        let source = "# <<<inject:env>>>\n# <<<begin:db@env>>>\nA=1\n";
        let expected = InjectError::MalformedFence(Problem::UnterminatedBlock {
            module: "db".into(),
            marker: "env".into(),
            line: 2,
        });
        assert_eq!(
            insert_block(source, CommentStyle::Hash, "env", "mail", "B=2"),
            Err(expected.clone())
        );
        assert_eq!(
            remove_block(source, CommentStyle::Hash, "env", "db"),
            Err(expected.clone())
        );
        assert_eq!(
            block_body(source, CommentStyle::Hash, "env", "db"),
            Err(expected)
        );
    }

    #[test]
    fn end_without_begin() {
        let source = "# <<<inject:env>>>\n# <<<end:db@env>>>\n";
        let err = insert_block(source, CommentStyle::Hash, "env", "db", "A=1").unwrap_err();
        assert_eq!(
            err,
            InjectError::MalformedFence(Problem::UnmatchedEnd {
                module: "db".into(),
                marker: "env".into(),
                line: 2
            })
        );
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn mismatched_end() {
        let source = "# <<<inject:env>>>\n# <<<begin:db@env>>>\n# <<<end:mail@env>>>\n";
        let err = remove_block(source, CommentStyle::Hash, "env", "db").unwrap_err();
        assert_eq!(
            err,
            InjectError::MalformedFence(Problem::MismatchedEnd {
                module: "db".into(),
                marker: "env".into(),
                begin_line: 2,
                end_module: "mail".into(),
                end_marker: "env".into(),
                line: 3
            })
        );
    }

    #[test]
    fn marker_inside_block() {
        let source = "# <<<begin:db@env>>>\n# <<<inject:env>>>\n# <<<end:db@env>>>\n";
        let err = insert_block(source, CommentStyle::Hash, "env", "mail", "A").unwrap_err();
        assert!(
            matches!(
                err,
                InjectError::MalformedFence(Problem::MarkerInsideBlock { line: 2, .. })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn duplicate_block() {
        let source = "\
# <<<inject:env>>>
# <<<begin:db@env>>>
# <<<end:db@env>>>
# <<<begin:db@env>>>
# <<<end:db@env>>>
";
        let expected = InjectError::MalformedFence(Problem::DuplicateBlock {
            module: "db".into(),
            marker: "env".into(),
            lines: vec![2, 4],
        });
        assert_eq!(
            remove_block(source, CommentStyle::Hash, "env", "db"),
            Err(expected.clone())
        );
        assert_eq!(
            insert_block(source, CommentStyle::Hash, "env", "db", "A"),
            Err(expected)
        );
        // Other modules are not affected by the duplicate.
        assert!(insert_block(source, CommentStyle::Hash, "env", "mail", "A").is_ok());
    }

    #[test]
    fn rejects_fences_in_body() {
        let err = insert_block(
            RUST_MAIN,
            CommentStyle::Rust,
            "startup",
            "db",
            "let a = 1;\n  // <<<end:db@startup>>>\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            InjectError::FenceInBody {
                line: 2,
                text: "// <<<end:db@startup>>>".into()
            }
        );
    }

    #[test]
    fn rejects_invalid_names() {
        assert_eq!(
            insert_block(RUST_MAIN, CommentStyle::Rust, "Start up", "db", ""),
            Err(InjectError::InvalidMarkerName {
                marker: "Start up".into()
            })
        );
        assert_eq!(
            remove_block(RUST_MAIN, CommentStyle::Rust, "startup", "db@x"),
            Err(InjectError::InvalidModuleId {
                module: "db@x".into()
            })
        );
    }

    #[test]
    fn parse_failure_after_splice_reports_position_in_result() {
        let err = insert_block(
            RUST_MAIN,
            CommentStyle::Rust,
            "startup",
            "db",
            "let a = 1;\nlet b = ;\n",
        )
        .unwrap_err();
        let InjectError::ParseAfterSplice {
            module,
            marker,
            line,
            column,
            ..
        } = &err
        else {
            panic!("unexpected error {err:?}");
        };
        assert_eq!((module.as_str(), marker.as_str()), ("db", "startup"));
        // Line 1 fn, 2 marker, 3 begin fence, 4 `let a`, 5 `let b = ;` where `;` is column 13.
        assert_eq!((*line, *column), (5, 13), "{err}");
        assert!(err.to_string().contains("line 5, column 13"), "{err}");
    }

    #[test]
    fn unbalanced_snippet_is_caught_after_splice() {
        let err =
            insert_block(RUST_MAIN, CommentStyle::Rust, "startup", "db", "if a {\n").unwrap_err();
        // The snippet's `{` takes `main`'s closing brace, leaving `main`'s own `{` unclosed.
        assert!(
            matches!(&err, InjectError::ParseAfterSplice { line: 1, column: 39, message, .. }
                if message.starts_with("unbalanced")),
            "{err:?}"
        );
    }

    #[test]
    fn unparsable_source_is_blamed_on_the_source() {
        let source = "fn main() {\n    // <<<inject:startup>>>\n    let = 1;\n}\n";
        let err =
            insert_block(source, CommentStyle::Rust, "startup", "db", "let a = 1;").unwrap_err();
        assert!(
            matches!(err, InjectError::UnparsableSource { line: 3, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn items_at_top_level() {
        let source = "mod config;\n// <<<inject:mods>>>\n\nfn main() {}\n";
        let body = format_rust_snippet("pub   mod db ;").unwrap();
        let out = insert_block(source, CommentStyle::Rust, "mods", "db", &body).unwrap();
        assert_eq!(
            out,
            "mod config;\n// <<<inject:mods>>>\n// <<<begin:db@mods>>>\npub mod db;\n// <<<end:db@mods>>>\n\nfn main() {}\n"
        );
    }

    #[test]
    fn new_block_goes_after_the_marker_when_the_next_block_is_for_another_marker() {
        let source = "# <<<inject:a>>>\n# <<<begin:x@b>>>\n# <<<end:x@b>>>\n# <<<inject:b>>>\n";
        let out = insert_block(source, CommentStyle::Hash, "a", "y", "Y").unwrap();
        assert!(out.starts_with(
            "# <<<inject:a>>>\n# <<<begin:y@a>>>\nY\n# <<<end:y@a>>>\n# <<<begin:x@b>>>"
        ));
    }
}
