//! Injection engine: splices module snippets into generated files after injection markers.
//!
//! Generated files carry marker lines such as `// <<<inject:startup>>>`. Installing a module puts
//! its snippet right after the marker, inside fences naming the module and the marker:
//!
//! ```text
//!     // <<<inject:startup>>>
//!     // <<<begin:db@startup>>>
//!     let db = shared::db::Database::connect(&db_config).await?;
//!     // <<<end:db@startup>>>
//! ```
//!
//! so that the snippet can later be found, replaced and removed exactly. Blocks keep install order
//! after their marker, except at the markers of [`REVERSE_ORDER_MARKERS`], where the newest block
//! comes first. Everything here is pure
//! (strings in, strings or typed errors out) and byte-exact: lines outside the block being edited
//! are never touched, line endings and the presence of a final newline are preserved, and
//! `remove_block(insert_block(s))` gives back `s` for a newly inserted block.

use std::collections::BTreeMap;

/// Name of the function a Rust snippet is wrapped in to be parsed and formatted.
const SNIPPET_WRAPPER: &str = "__saaskit_snippet";

/// Markers whose blocks run in reverse install order: a new block goes directly after the marker
/// line, before the blocks already there. At `shutdown` a module installed later may use what an
/// earlier one set up (a background worker using the database), so it must stop first, the way
/// Rust drops values in reverse order of creation: the worker drains before `db.close()` runs.
pub const REVERSE_ORDER_MARKERS: [&str; 1] = ["shutdown"];

/// Whether a new block at `marker` goes first, right after the marker line, instead of after the
/// blocks already there (see [`REVERSE_ORDER_MARKERS`]).
pub fn is_reverse_order(marker: &str) -> bool {
    REVERSE_ORDER_MARKERS.contains(&marker)
}

/// How comments are written in a file, which decides what marker and fence lines look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentStyle {
    /// `//` comments; the file must parse as Rust after every insertion.
    Rust,
    /// `#` comments: `.env`, `.gitignore`, TOML, YAML, shell scripts, ...
    Hash,
}

impl CommentStyle {
    /// The style for a file path: Rust for `.rs` files, hash comments for everything else.
    pub fn for_path(path: &str) -> Self {
        if path.ends_with(".rs") {
            Self::Rust
        } else {
            Self::Hash
        }
    }

    fn comment(self) -> &'static str {
        match self {
            Self::Rust => "//",
            Self::Hash => "#",
        }
    }
}

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

/// Why a file's markers and fences cannot be trusted, as reported by [`scan`].
/// Line numbers are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error(
        "line {line}: `{text}` looks like an injection marker or fence but {reason}; \
         fix the comment or delete the line"
    )]
    MalformedDirective {
        line: usize,
        text: String,
        reason: String,
    },
    #[error(
        "line {line}: block `{module}@{marker}` is opened here but never closed; add its \
         `<<<end:{module}@{marker}>>>` line after the block's code or delete the begin line"
    )]
    UnterminatedBlock {
        module: String,
        marker: String,
        line: usize,
    },
    #[error(
        "line {line}: `<<<end:{module}@{marker}>>>` closes no open block; delete it or \
         restore the matching `<<<begin:{module}@{marker}>>>` line"
    )]
    UnmatchedEnd {
        module: String,
        marker: String,
        line: usize,
    },
    #[error(
        "line {line}: `<<<end:{end_module}@{end_marker}>>>` closes block `{module}@{marker}` \
         opened at line {begin_line}; the begin and end lines must name the same module and marker"
    )]
    MismatchedEnd {
        module: String,
        marker: String,
        begin_line: usize,
        end_module: String,
        end_marker: String,
        line: usize,
    },
    #[error(
        "line {line}: marker `<<<inject:{marker}>>>` is inside block `{module}@{block_marker}`; \
         markers cannot live in module blocks, move it out of the block"
    )]
    MarkerInsideBlock {
        marker: String,
        module: String,
        block_marker: String,
        line: usize,
    },
    #[error(
        "marker `<<<inject:{marker}>>>` appears {} times (lines {}); keep exactly one",
        .lines.len(),
        join_lines(.lines)
    )]
    DuplicateMarker { marker: String, lines: Vec<usize> },
    #[error(
        "block `{module}@{marker}` appears {} times (begin lines {}); keep exactly one",
        .lines.len(),
        join_lines(.lines)
    )]
    DuplicateBlock {
        module: String,
        marker: String,
        lines: Vec<usize>,
    },
    #[error(
        "line {line}: block `{module}@{marker}` has no `<<<inject:{marker}>>>` marker in this \
         file; restore the marker right above the block"
    )]
    OrphanBlock {
        module: String,
        marker: String,
        line: usize,
    },
    #[error(
        "line {line}: block `{module}@{marker}` is not in the run of blocks right after its \
         marker (line {marker_line}); move it back there to keep install order"
    )]
    DetachedBlock {
        module: String,
        marker: String,
        line: usize,
        marker_line: usize,
    },
}

impl Problem {
    /// The (first) line the problem is about, 1-based.
    pub fn line(&self) -> usize {
        match self {
            Self::MalformedDirective { line, .. }
            | Self::UnterminatedBlock { line, .. }
            | Self::UnmatchedEnd { line, .. }
            | Self::MismatchedEnd { line, .. }
            | Self::MarkerInsideBlock { line, .. }
            | Self::OrphanBlock { line, .. }
            | Self::DetachedBlock { line, .. } => *line,
            Self::DuplicateMarker { lines, .. } | Self::DuplicateBlock { lines, .. } => {
                lines.first().copied().unwrap_or(0)
            }
        }
    }

    /// Whether the problem makes block boundaries uncertain, so no block may be edited.
    /// Duplicates only matter for the marker or block being edited, and a misplaced block
    /// can still be replaced or removed exactly.
    fn is_structural(&self) -> bool {
        matches!(
            self,
            Self::MalformedDirective { .. }
                | Self::UnterminatedBlock { .. }
                | Self::UnmatchedEnd { .. }
                | Self::MismatchedEnd { .. }
                | Self::MarkerInsideBlock { .. }
        )
    }
}

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
         where module code belongs, or, if the workspace was generated by an earlier saaskit \
         that did not have this marker yet, run `saaskit upgrade` first: it adds the marker"
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

/// A marker line found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerLine {
    pub name: String,
    /// 1-based.
    pub line: usize,
}

/// A well-formed fenced block found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencedBlock {
    pub module: String,
    pub marker: String,
    /// 1-based line of the `<<<begin:…>>>` fence.
    pub begin_line: usize,
    /// 1-based line of the `<<<end:…>>>` fence.
    pub end_line: usize,
}

/// Everything [`scan`] found in a file, in file order (problems sorted by line).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    pub markers: Vec<MarkerLine>,
    pub blocks: Vec<FencedBlock>,
    pub problems: Vec<Problem>,
}

/// Every marker and fenced block of `source`, with the problems a `doctor` should report.
pub fn scan(source: &str, style: CommentStyle) -> Scan {
    scan_lines(&split_lines(source), style)
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

/// Whether a Rust source file parses.
pub fn parses(source: &str) -> bool {
    syn::parse_file(source).is_ok()
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

/// One line of a source file, split so that the raw lines concatenate back to the file.
struct Line<'a> {
    /// The line with its terminator.
    raw: &'a str,
    /// The line without its terminator.
    content: &'a str,
    /// `"\n"`, `"\r\n"`, or `""` for a last line without newline.
    eol: &'a str,
}

fn split_lines(source: &str) -> Vec<Line<'_>> {
    source
        .split_inclusive('\n')
        .map(|raw| {
            let (content, eol) = if let Some(content) = raw.strip_suffix("\r\n") {
                (content, "\r\n")
            } else if let Some(content) = raw.strip_suffix('\n') {
                (content, "\n")
            } else {
                (raw, "")
            };
            Line { raw, content, eol }
        })
        .collect()
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

/// The lines, each followed by `'\n'`.
fn terminated<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn join_lines(lines: &[usize]) -> String {
    lines
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_valid_marker(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn is_valid_module(id: &str) -> bool {
    !id.is_empty()
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'/')
        })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum DirectiveKind {
    Inject,
    Begin,
    End,
}

#[derive(Debug, PartialEq)]
enum Directive<'a> {
    Inject(&'a str),
    Begin { module: &'a str, marker: &'a str },
    End { module: &'a str, marker: &'a str },
}

/// Recognises marker and fence lines: the trimmed line starts with the comment leader and
/// contains a `<<<inject:`, `<<<begin:` or `<<<end:` token (the earliest one counts; text may
/// follow it). `None` for ordinary lines, `Err(reason)` for a token that does not parse.
fn parse_directive(content: &str, style: CommentStyle) -> Option<Result<Directive<'_>, String>> {
    const TOKENS: [(&str, DirectiveKind); 3] = [
        ("<<<inject:", DirectiveKind::Inject),
        ("<<<begin:", DirectiveKind::Begin),
        ("<<<end:", DirectiveKind::End),
    ];
    let text = content.trim_start();
    if !text.starts_with(style.comment()) {
        return None;
    }
    let (start, kind) = TOKENS
        .iter()
        .filter_map(|(token, kind)| text.find(token).map(|at| (at + token.len(), *kind)))
        .min_by_key(|(start, _)| *start)?;
    let rest = &text[start..];
    let Some(close) = rest.find(">>>") else {
        return Some(Err("it lacks the closing `>>>`".to_string()));
    };
    let name = &rest[..close];
    Some(match kind {
        DirectiveKind::Inject if is_valid_marker(name) => Ok(Directive::Inject(name)),
        DirectiveKind::Inject => Err(format!("`{name}` is not a valid marker name")),
        DirectiveKind::Begin | DirectiveKind::End => match name.split_once('@') {
            Some((module, marker)) if is_valid_module(module) && is_valid_marker(marker) => {
                Ok(if kind == DirectiveKind::Begin {
                    Directive::Begin { module, marker }
                } else {
                    Directive::End { module, marker }
                })
            }
            _ => Err(format!("`{name}` is not `module@marker`")),
        },
    })
}

fn scan_lines(lines: &[Line<'_>], style: CommentStyle) -> Scan {
    let mut scan = Scan::default();
    // The block being read: (module, marker, begin line).
    let mut open: Option<(&str, &str, usize)> = None;
    for (index, line) in lines.iter().enumerate() {
        let number = index + 1;
        let directive = match parse_directive(line.content, style) {
            None => continue,
            Some(Ok(directive)) => directive,
            Some(Err(reason)) => {
                scan.problems.push(Problem::MalformedDirective {
                    line: number,
                    text: line.content.trim().to_string(),
                    reason,
                });
                continue;
            }
        };
        match directive {
            Directive::Inject(name) => match open {
                Some((module, block_marker, _)) => {
                    scan.problems.push(Problem::MarkerInsideBlock {
                        marker: name.to_string(),
                        module: module.to_string(),
                        block_marker: block_marker.to_string(),
                        line: number,
                    });
                }
                None => scan.markers.push(MarkerLine {
                    name: name.to_string(),
                    line: number,
                }),
            },
            Directive::Begin { module, marker } => {
                if let Some((module, marker, line)) = open {
                    scan.problems.push(unterminated(module, marker, line));
                }
                open = Some((module, marker, number));
            }
            Directive::End { module, marker } => match open.take() {
                None => scan.problems.push(Problem::UnmatchedEnd {
                    module: module.to_string(),
                    marker: marker.to_string(),
                    line: number,
                }),
                Some((begin_module, begin_marker, begin_line))
                    if begin_module == module && begin_marker == marker =>
                {
                    scan.blocks.push(FencedBlock {
                        module: module.to_string(),
                        marker: marker.to_string(),
                        begin_line,
                        end_line: number,
                    });
                }
                Some((begin_module, begin_marker, begin_line)) => {
                    scan.problems.push(Problem::MismatchedEnd {
                        module: begin_module.to_string(),
                        marker: begin_marker.to_string(),
                        begin_line,
                        end_module: module.to_string(),
                        end_marker: marker.to_string(),
                        line: number,
                    });
                }
            },
        }
    }
    if let Some((module, marker, line)) = open {
        scan.problems.push(unterminated(module, marker, line));
    }
    let placement = placement_problems(&scan);
    scan.problems.extend(placement);
    scan.problems.sort_by_key(Problem::line);
    scan
}

/// Duplicated markers and blocks, and blocks outside the run after their marker.
fn placement_problems(scan: &Scan) -> Vec<Problem> {
    let mut markers: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for marker in &scan.markers {
        markers.entry(&marker.name).or_default().push(marker.line);
    }
    let mut blocks: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for block in &scan.blocks {
        blocks
            .entry((&block.module, &block.marker))
            .or_default()
            .push(block.begin_line);
    }
    let mut problems = Vec::new();
    for (marker, lines) in &markers {
        if lines.len() > 1 {
            problems.push(Problem::DuplicateMarker {
                marker: marker.to_string(),
                lines: lines.clone(),
            });
        }
    }
    for ((module, marker), lines) in &blocks {
        if lines.len() > 1 {
            problems.push(Problem::DuplicateBlock {
                module: module.to_string(),
                marker: marker.to_string(),
                lines: lines.clone(),
            });
        }
    }
    // Blocks must sit in the run of blocks directly after (one of) their marker line(s).
    let mut attached = vec![false; scan.blocks.len()];
    for marker in &scan.markers {
        for index in run(&scan.blocks, marker.line - 1, &marker.name) {
            attached[index] = true;
        }
    }
    for (block, attached) in scan.blocks.iter().zip(attached) {
        if attached {
            continue;
        }
        let module = block.module.clone();
        let marker = block.marker.clone();
        let line = block.begin_line;
        problems.push(match markers.get(block.marker.as_str()) {
            Some(lines) => Problem::DetachedBlock {
                module,
                marker,
                line,
                marker_line: lines[0],
            },
            None => Problem::OrphanBlock {
                module,
                marker,
                line,
            },
        });
    }
    problems
}

fn unterminated(module: &str, marker: &str, line: usize) -> Problem {
    Problem::UnterminatedBlock {
        module: module.to_string(),
        marker: marker.to_string(),
        line,
    }
}

/// Index in `blocks` (sorted by line) of the block for `marker` whose begin fence is at
/// 0-based line `index`.
fn block_at(blocks: &[FencedBlock], index: usize, marker: &str) -> Option<usize> {
    let found = blocks
        .binary_search_by_key(&(index + 1), |block| block.begin_line)
        .ok()?;
    (blocks[found].marker == marker).then_some(found)
}

/// Indices in `blocks` of the run of `marker`'s blocks that directly follow the marker line at
/// 0-based `marker_index`, each block starting on the line after the previous one ends.
fn run<'b>(
    blocks: &'b [FencedBlock],
    marker_index: usize,
    marker: &'b str,
) -> impl Iterator<Item = usize> + 'b {
    std::iter::successors(block_at(blocks, marker_index + 1, marker), |&previous| {
        // `end_line` is 1-based, so it is also the 0-based index of the following line.
        block_at(blocks, blocks[previous].end_line, marker)
    })
}

/// 0-based index of the last line of the run after the marker line at 0-based
/// `marker_index` (the marker line itself when the run is empty).
fn run_end(blocks: &[FencedBlock], marker_index: usize, marker: &str) -> usize {
    run(blocks, marker_index, marker)
        .last()
        .map_or(marker_index, |index| blocks[index].end_line - 1)
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

/// 1-based line and column of a parse error in `text`, and its message.
fn describe_error(err: &syn::Error, text: &str) -> (usize, usize, String) {
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
    fn comment_style_for_path() {
        assert_eq!(
            CommentStyle::for_path("api/src/main.rs"),
            CommentStyle::Rust
        );
        assert_eq!(CommentStyle::for_path(".env"), CommentStyle::Hash);
        assert_eq!(CommentStyle::for_path(".gitignore"), CommentStyle::Hash);
        assert_eq!(CommentStyle::for_path("Cargo.toml"), CommentStyle::Hash);
    }

    #[test]
    fn formats_statements() {
        let formatted =
            format_rust_snippet("let db=shared::db::Database::connect(&db_config).await?;")
                .unwrap();
        assert_eq!(
            formatted,
            "let db = shared::db::Database::connect(&db_config).await?;\n"
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
    fn begin_inside_open_block() {
        let source = "# <<<begin:db@env>>>\n# <<<begin:mail@env>>>\n# <<<end:mail@env>>>\n";
        let problems = scan(source, CommentStyle::Hash).problems;
        assert_eq!(
            problems[0],
            Problem::UnterminatedBlock {
                module: "db".into(),
                marker: "env".into(),
                line: 1
            }
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
    fn malformed_directive() {
        let source = "# <<<inject:env>>>\n# <<<begin:DB@env>>>\n# <<<end:db@env\n";
        let problems = scan(source, CommentStyle::Hash).problems;
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(matches!(
            problems[0],
            Problem::MalformedDirective { line: 2, .. }
        ));
        assert!(matches!(
            problems[1],
            Problem::MalformedDirective { line: 3, .. }
        ));
        assert!(insert_block(source, CommentStyle::Hash, "env", "db", "A").is_err());
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
    fn scan_reports_markers_blocks_and_misplaced_blocks() {
        let source = "\
# <<<inject:env>>>
# <<<begin:db@env>>>
DB=1
# <<<end:db@env>>>

# <<<begin:mail@env>>>
# <<<end:mail@env>>>
# <<<begin:jobs@queue>>>
# <<<end:jobs@queue>>>
";
        let scanned = scan(source, CommentStyle::Hash);
        assert_eq!(
            scanned.markers,
            [MarkerLine {
                name: "env".into(),
                line: 1
            }]
        );
        assert_eq!(
            scanned.blocks[0],
            FencedBlock {
                module: "db".into(),
                marker: "env".into(),
                begin_line: 2,
                end_line: 4
            }
        );
        assert_eq!(scanned.blocks.len(), 3);
        assert_eq!(
            scanned.problems,
            [
                Problem::DetachedBlock {
                    module: "mail".into(),
                    marker: "env".into(),
                    line: 6,
                    marker_line: 1
                },
                Problem::OrphanBlock {
                    module: "jobs".into(),
                    marker: "queue".into(),
                    line: 8
                },
            ]
        );
    }

    #[test]
    fn scan_ignores_other_comment_styles() {
        // A Rust-style fence means nothing in a hash-comment file, and vice versa.
        assert_eq!(
            scan("// <<<begin:db@env>>>\n", CommentStyle::Hash),
            Scan::default()
        );
        assert_eq!(
            scan("# <<<inject:env>>>\n", CommentStyle::Rust),
            Scan::default()
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
