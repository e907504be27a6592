//! Scanning: finds the marker lines and fenced blocks of a file, and what is wrong with them.

use std::collections::BTreeMap;

use super::CommentStyle;

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
    pub(super) fn is_structural(&self) -> bool {
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
    scan_lines(source, &split_lines(source), style)
}

/// One line of a source file, split so that the raw lines concatenate back to the file.
pub(super) struct Line<'a> {
    /// The line with its terminator.
    pub(super) raw: &'a str,
    /// The line without its terminator.
    pub(super) content: &'a str,
    /// `"\n"`, `"\r\n"`, or `""` for a last line without newline.
    pub(super) eol: &'a str,
}

/// `source`'s lines, as `split_inclusive('\n')` gives them. Every splice splits its whole file:
/// memchr's SIMD search finds the newlines in a fraction of what `split_inclusive`'s search
/// for one character costs per line, and counting them first sizes the vector once.
pub(super) fn split_lines(source: &str) -> Vec<Line<'_>> {
    let newlines = || memchr::memchr_iter(b'\n', source.as_bytes());
    let mut lines = Vec::with_capacity(newlines().count() + 1);
    let mut start = 0;
    for end in newlines() {
        lines.push(Line::new(&source[start..=end]));
        start = end + 1;
    }
    if start < source.len() {
        lines.push(Line::new(&source[start..]));
    }
    lines
}

impl<'a> Line<'a> {
    /// A line with its terminator, cut into content and terminator.
    pub(super) fn new(raw: &'a str) -> Self {
        let (content, eol) = if let Some(content) = raw.strip_suffix("\r\n") {
            (content, "\r\n")
        } else if let Some(content) = raw.strip_suffix('\n') {
            (content, "\n")
        } else {
            (raw, "")
        };
        Line { raw, content, eol }
    }
}

pub(super) fn join_lines(lines: &[usize]) -> String {
    lines
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn is_valid_marker(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

pub(super) fn is_valid_module(id: &str) -> bool {
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
pub(super) enum Directive<'a> {
    Inject(&'a str),
    Begin { module: &'a str, marker: &'a str },
    End { module: &'a str, marker: &'a str },
}

/// Where the text after the earliest `<<<inject:`, `<<<begin:` or `<<<end:` in `text` starts,
/// and which token it was. One pass over the `<<<` openings rather than a search per token:
/// `new` reads every comment line of every file it splices into.
fn earliest_token(text: &str) -> Option<(usize, DirectiveKind)> {
    const TOKENS: [(&str, DirectiveKind); 3] = [
        ("inject:", DirectiveKind::Inject),
        ("begin:", DirectiveKind::Begin),
        ("end:", DirectiveKind::End),
    ];
    // A `char` pattern searches with memchr; a `&str` pattern sets up a two-way searcher first,
    // which costs more than the search on a line of code.
    text.match_indices('<').find_map(|(at, _)| {
        let after = text[at..].strip_prefix("<<<")?;
        TOKENS.iter().find_map(|(token, kind)| {
            after
                .starts_with(token)
                .then(|| (text.len() - after.len() + token.len(), *kind))
        })
    })
}

/// Recognises marker and fence lines: the trimmed line starts with the comment leader and
/// contains a `<<<inject:`, `<<<begin:` or `<<<end:` token (the earliest one counts; text may
/// follow it). `None` for ordinary lines, `Err(reason)` for a token that does not parse.
pub(super) fn parse_directive(
    content: &str,
    style: CommentStyle,
) -> Option<Result<Directive<'_>, String>> {
    let text = content.trim_start();
    if !text.starts_with(style.comment()) {
        return None;
    }
    let (start, kind) = earliest_token(text)?;
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

/// [`scan`] of `source`, split into `lines` by [`split_lines`].
pub(super) fn scan_lines(source: &str, lines: &[Line<'_>], style: CommentStyle) -> Scan {
    let mut scan = Scan::default();
    // The block being read: (module, marker, begin line).
    let mut open: Option<(&str, &str, usize)> = None;
    for index in lines_with_tokens(source, lines) {
        let line = &lines[index];
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

/// Indices of the `lines` of `source` that hold `<<<`, the only ones that can be markers or fences
/// ([`parse_directive`] finds nothing in the others). One memchr pass over the file finds them:
/// `add`, `remove` and `generate resource` scan a file for each block they edit, and this halves
/// what parsing the lines costs them.
fn lines_with_tokens(source: &str, lines: &[Line<'_>]) -> Vec<usize> {
    let base = source.as_ptr() as usize;
    let mut hits = memchr::memmem::find_iter(source.as_bytes(), b"<<<").peekable();
    let mut found = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let Some(&at) = hits.peek() else {
            break;
        };
        // Where the line starts in `source`: the lines are slices of it, in order.
        let start = line.raw.as_ptr() as usize - base;
        if at >= start + line.raw.len() {
            continue;
        }
        while hits.next_if(|&at| at < start + line.raw.len()).is_some() {}
        found.push(index);
    }
    found
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
pub(super) fn run_end(blocks: &[FencedBlock], marker_index: usize, marker: &str) -> usize {
    run(blocks, marker_index, marker)
        .last()
        .map_or(marker_index, |index| blocks[index].end_line - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::inject::insert_block;

    #[test]
    fn lines_split_as_split_inclusive_does_with_their_terminators() {
        for source in ["", "a", "a\n", "\n\n", "a\r\nb", "a\nb\r\n\nc", "é\n\r"] {
            let lines = split_lines(source);
            let raw: Vec<&str> = lines.iter().map(|line| line.raw).collect();
            assert_eq!(raw, source.split_inclusive('\n').collect::<Vec<_>>());
            for line in &lines {
                assert_eq!(format!("{}{}", line.content, line.eol), line.raw);
                assert!(!line.content.ends_with('\n'));
            }
        }
        let lines = split_lines("a\r\nb");
        assert_eq!((lines[0].content, lines[0].eol), ("a", "\r\n"));
        assert_eq!((lines[1].content, lines[1].eol), ("b", ""));
    }

    #[test]
    fn the_earliest_token_counts_even_after_extra_angle_brackets() {
        assert_eq!(
            parse_directive("// <<<<inject:routes>>>", CommentStyle::Rust),
            Some(Ok(Directive::Inject("routes")))
        );
        assert_eq!(
            parse_directive("// <<<end:db@env>>> <<<begin:db@env>>>", CommentStyle::Rust),
            Some(Ok(Directive::End {
                module: "db",
                marker: "env"
            }))
        );
        assert_eq!(parse_directive("// a << b <<< c", CommentStyle::Rust), None);
        assert_eq!(
            parse_directive("let x = 1; // <<<inject:a>>>", CommentStyle::Rust),
            None
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
}
