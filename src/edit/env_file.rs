//! The `.env` file, read as the generated services read it.
//!
//! The services load `.env` with dotenvy 0.15 (the library crate's `config::Env::load`: every
//! entry in order, the last assignment of a key wins, an exported variable wins over the file,
//! the first line dotenvy cannot parse ends the file). `saaskit doctor`, `saaskit dev`, `saaskit keys` and the
//! `.env` blocks of `add`/`remove`/`upgrade` all read through [`entries`], a port of dotenvy's
//! rules, so that saaskit never reads a value differently from the services:
//!
//! - blank lines and lines starting with `#` are skipped; `export KEY=value` is `KEY=value`;
//! - a key is `[A-Za-z_][A-Za-z0-9_.]*`, with spaces allowed around `=`;
//! - `'single'` quotes keep their content as is; `"double"` quotes and bare values take the
//!   escapes `\\ \' \" \$ \n` and `\ ` and expand `$NAME`/`${NAME}` (the process environment
//!   first, then the keys above in the file); a quoted value may span several lines;
//! - a bare value ends at whitespace, after which only a ` # comment` may follow; `KEY=` and
//!   `KEY= # comment` are empty values.
//!
//! Each entry also says where its value is written, so that an edit (`saaskit keys rotate`)
//! replaces those bytes only and the rest of the file stays as the user wrote it. The
//! differential test against dotenvy itself is in this file's tests.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;

use anyhow::{Context as _, Result};

/// One `KEY=value` assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'t> {
    pub key: &'t str,
    /// The value as the services read it: quotes removed, escapes and `$NAME`s expanded.
    pub value: String,
    /// What follows the `=` as written, up to the end of the entry's last line (comment
    /// included, line terminator excluded): what a rewrite of the line keeps byte for byte.
    pub written: &'t str,
    /// Where the value sits in the text: inside the quotes of a quoted value, the bare value
    /// without a trailing comment otherwise. What an edit of the value replaces.
    pub span: Range<usize>,
    /// The entry's first line, counted from 1.
    pub line: usize,
    /// Just past the entry's last line terminator (or the end of the text).
    pub line_end: usize,
}

/// A line the services cannot read: they stop reading `.env` there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError<'t> {
    pub line: usize,
    /// The key, when the line got that far.
    pub key: Option<&'t str>,
    /// What follows the `=` as written, when the line has one.
    pub written: Option<&'t str>,
    pub problem: String,
}

/// Every assignment of `text`, in order, and each line dotenvy would refuse.
pub fn entries(text: &str) -> Vec<Result<Entry<'_>, LineError<'_>>> {
    let mut out = Vec::new();
    let mut substitutions: HashMap<String, Option<String>> = HashMap::new();
    let mut offset = 0;
    let mut line = 1;
    while offset < text.len() {
        let logical = logical_line(text, offset);
        let first_line = line;
        line += text[offset..logical.end].matches('\n').count();
        offset = logical.end;
        let Some(content) = logical.content else {
            let lines = &text[logical.start..logical.end];
            let quote = lines
                .chars()
                .find(|c| *c == '"' || *c == '\'')
                .unwrap_or('"');
            out.push(Err(LineError {
                line: first_line,
                key: key_of(lines),
                written: None,
                problem: format!("has an opening {quote} that no later line closes"),
            }));
            break;
        };
        match parse_entry(text, logical.start, content.clone(), &mut substitutions) {
            Ok(None) => {}
            Ok(Some(parsed)) => out.push(Ok(Entry {
                key: parsed.key,
                value: parsed.value,
                written: text[parsed.written_start..logical.end].trim_end_matches(['\n', '\r']),
                span: parsed.span,
                line: first_line,
                line_end: logical.end,
            })),
            Err((problem, written_start)) => out.push(Err(LineError {
                line: first_line,
                key: key_of(&text[content]),
                written: written_start
                    .map(|start| text[start..logical.end].trim_end_matches(['\n', '\r'])),
                problem,
            })),
        }
    }
    out
}

/// The values the services read from `text`: the entries up to the first line they cannot
/// read, the last assignment of a key winning.
pub fn values(text: &str) -> BTreeMap<String, String> {
    entries(text)
        .into_iter()
        .map_while(Result::ok)
        .map(|entry| (entry.key.to_string(), entry.value))
        .collect()
}

/// Each key's value as written after its `=` (the last assignment), lines the services refuse
/// included: what saaskit keeps, byte for byte, when it rewrites a block of `.env`.
pub fn written(text: &str) -> BTreeMap<String, String> {
    entries(text)
        .into_iter()
        .filter_map(|entry| match entry {
            Ok(entry) => Some((entry.key, entry.written)),
            Err(error) => error.key.zip(error.written),
        })
        .map(|(key, written)| (key.to_string(), written.to_string()))
        .collect()
}

/// The last assignment of `key` the services read in `text`.
pub fn value_of<'t>(text: &'t str, key: &str) -> Option<Entry<'t>> {
    entries(text)
        .into_iter()
        .map_while(Result::ok)
        .filter(|entry| entry.key == key)
        .last()
}

/// The values of the `.env` file at `path`; `None` when there is none.
pub fn read(path: &Path) -> Result<Option<BTreeMap<String, String>>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(values(&text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// One entry's lines in the text: `start..end` with its terminators, and the part dotenvy
/// parses (without a trailing comment or terminator); `content` is `None` for a quote left open
/// at the end of the text.
struct Logical {
    start: usize,
    end: usize,
    content: Option<Range<usize>>,
}

/// dotenvy's `QuotedLines`: a line, joined with the next ones while a quote is open.
fn logical_line(text: &str, start: usize) -> Logical {
    let mut state = State::Complete;
    let mut position = start;
    loop {
        if position >= text.len() {
            // Also dotenvy's: a last line that ends in whitespace without a terminator.
            let content = (state == State::Complete).then_some(start..text.len());
            return Logical {
                start,
                end: text.len(),
                content,
            };
        }
        let line_end = text[position..]
            .find('\n')
            .map_or(text.len(), |i| position + i + 1);
        if text[start..line_end].trim_start().starts_with('#') {
            return Logical {
                start,
                end: line_end,
                content: Some(start..start),
            };
        }
        let (comment, next) = end_state(state, &text[position..line_end]);
        state = next;
        if let Some(at) = comment {
            return Logical {
                start,
                end: line_end,
                content: Some(start..position + at),
            };
        }
        if state == State::Complete {
            let content = text[start..line_end].trim_end_matches('\n');
            let content = content.strip_suffix('\r').unwrap_or(content);
            return Logical {
                start,
                end: line_end,
                content: Some(start..start + content.len()),
            };
        }
        position = line_end;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Complete,
    Escape,
    StrongOpen,
    StrongOpenEscape,
    WeakOpen,
    WeakOpenEscape,
    WhiteSpace,
}

/// dotenvy's `eval_end_state`: the state after `line`, and where a comment starts in it.
fn end_state(mut state: State, line: &str) -> (Option<usize>, State) {
    for (position, c) in line.char_indices() {
        state = match state {
            State::WhiteSpace => match c {
                '#' => return (Some(position), State::Complete),
                '\\' => State::Escape,
                '"' => State::WeakOpen,
                '\'' => State::StrongOpen,
                _ => State::Complete,
            },
            State::Escape => State::Complete,
            State::Complete => match c {
                c if c.is_whitespace() && c != '\n' && c != '\r' => State::WhiteSpace,
                '\\' => State::Escape,
                '"' => State::WeakOpen,
                '\'' => State::StrongOpen,
                _ => State::Complete,
            },
            State::WeakOpen => match c {
                '\\' => State::WeakOpenEscape,
                '"' => State::Complete,
                _ => State::WeakOpen,
            },
            State::WeakOpenEscape => State::WeakOpen,
            State::StrongOpen => match c {
                '\\' => State::StrongOpenEscape,
                '\'' => State::Complete,
                _ => State::StrongOpen,
            },
            State::StrongOpenEscape => State::StrongOpen,
        };
    }
    (None, state)
}

/// The key at the start of a line, for naming it in an error.
fn key_of(line: &str) -> Option<&str> {
    let line = line.trim_start();
    let line = line
        .strip_prefix("export")
        .filter(|rest| rest.starts_with(char::is_whitespace))
        .map_or(line, str::trim_start);
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(line.len());
    (end > 0).then(|| &line[..end])
}

/// What [`parse_entry`] finds on a line; its extent in the file is the caller's.
struct Parsed<'t> {
    key: &'t str,
    value: String,
    /// Just past the `=`.
    written_start: usize,
    span: Range<usize>,
}

/// dotenvy's `parse_line` over `text[content]`: `None` for a blank line or a comment.
fn parse_entry<'t>(
    text: &'t str,
    line_start: usize,
    content: Range<usize>,
    substitutions: &mut HashMap<String, Option<String>>,
) -> Result<Option<Parsed<'t>>, (String, Option<usize>)> {
    // Trailing whitespace is not part of the value.
    let end = line_start + text[content.clone()].trim_end().len();
    let mut at = skip_whitespace(text, content.start, end);
    if at == end || text[at..end].starts_with('#') {
        return Ok(None);
    }
    let (mut key, after) = parse_key(text, at, end).map_err(|e| (e, None))?;
    at = skip_whitespace(text, after, end);
    // `export` is a prefix, or a key of its own (`export=1`).
    if key == "export" && !text[at..end].starts_with('=') {
        let (real, after) = parse_key(text, at, end).map_err(|e| (e, None))?;
        key = real;
        at = skip_whitespace(text, after, end);
    }
    if !text[at..end].starts_with('=') {
        return Err((format!("has no `=` after the key `{key}`"), None));
    }
    let written_start = at + 1;
    let value_start = skip_whitespace(text, written_start, end);
    let raw = &text[value_start..end];
    let value = if raw.is_empty() || raw.starts_with('#') {
        substitutions.insert(key.to_string(), None);
        String::new()
    } else {
        let value = parse_value(raw, substitutions).map_err(|e| (e, Some(written_start)))?;
        substitutions.insert(key.to_string(), Some(value.clone()));
        value
    };
    Ok(Some(Parsed {
        key,
        value,
        written_start,
        span: value_span(raw, value_start),
    }))
}

fn skip_whitespace(text: &str, from: usize, end: usize) -> usize {
    text[from..end]
        .find(|c: char| !c.is_whitespace())
        .map_or(end, |i| from + i)
}

fn parse_key(text: &str, at: usize, end: usize) -> Result<(&str, usize), String> {
    let rest = &text[at..end];
    if !rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return Err("does not start with a key (a letter or `_`)".into());
    }
    let length = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(rest.len());
    Ok((&rest[..length], at + length))
}

/// The bytes an edit of the value replaces: inside matching quotes, else up to a ` # comment`.
fn value_span(raw: &str, start: usize) -> Range<usize> {
    if let Some(quote) = raw.chars().next().filter(|c| *c == '"' || *c == '\'')
        && let Some(close) = raw[1..].find(quote)
    {
        return start + 1..start + 1 + close;
    }
    let end = raw
        .char_indices()
        .find(|(i, c)| *c == '#' && raw[..*i].ends_with([' ', '\t']))
        .map_or(raw.len(), |(i, _)| i);
    start..start + raw[..end].trim_end().len()
}

#[derive(PartialEq, Eq)]
enum Substitution {
    None,
    Block,
    Braced,
}

/// dotenvy's `parse_value`: quotes, escapes, `$NAME` substitution, a trailing comment.
fn parse_value(
    input: &str,
    substitutions: &mut HashMap<String, Option<String>>,
) -> Result<String, String> {
    let mut strong_quote = false;
    let mut weak_quote = false;
    let mut escaped = false;
    let mut expecting_end = false;
    let mut output = String::new();
    let mut mode = Substitution::None;
    let mut name = String::new();
    for c in input.chars() {
        if expecting_end {
            match c {
                ' ' | '\t' => continue,
                '#' => break,
                _ => {
                    return Err(
                        "has a space in an unquoted value: quote the value, or escape the space \
                         with `\\ `"
                            .into(),
                    );
                }
            }
        } else if escaped {
            match c {
                '\\' | '\'' | '"' | '$' | ' ' => output.push(c),
                'n' => output.push('\n'),
                _ => return Err(format!("has an unknown escape `\\{c}`")),
            }
            escaped = false;
        } else if strong_quote {
            if c == '\'' {
                strong_quote = false;
            } else {
                output.push(c);
            }
        } else if mode != Substitution::None {
            if c.is_alphanumeric() {
                name.push(c);
            } else if mode == Substitution::Block {
                if c == '{' && name.is_empty() {
                    mode = Substitution::Braced;
                } else {
                    substitute(substitutions, &std::mem::take(&mut name), &mut output);
                    if c == '$' {
                        mode = Substitution::Block;
                    } else {
                        mode = Substitution::None;
                        output.push(c);
                    }
                }
            } else if c == '}' {
                mode = Substitution::None;
                substitute(substitutions, &std::mem::take(&mut name), &mut output);
            } else {
                name.push(c);
            }
        } else if c == '$' {
            mode = Substitution::Block;
        } else if weak_quote {
            match c {
                '"' => weak_quote = false,
                '\\' => escaped = true,
                _ => output.push(c),
            }
        } else {
            match c {
                '\'' => strong_quote = true,
                '"' => weak_quote = true,
                '\\' => escaped = true,
                ' ' | '\t' => expecting_end = true,
                _ => output.push(c),
            }
        }
    }
    if mode == Substitution::Braced {
        return Err("has a `${` without its `}`".into());
    }
    if strong_quote || weak_quote {
        return Err("has an opening quote without a closing one".into());
    }
    substitute(substitutions, &name, &mut output);
    Ok(output)
}

/// `$NAME`: the process environment first, then the keys above in the file.
fn substitute(substitutions: &HashMap<String, Option<String>>, name: &str, output: &mut String) {
    match std::env::var(name) {
        Ok(value) => output.push_str(&value),
        Err(_) => {
            if let Some(Some(value)) = substitutions.get(name) {
                output.push_str(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines the services' parser treats in surprising ways, each read by saaskit as by dotenvy.
    const TRICKY: &[&str] = &[
        "A=1\nB=\"two words\"\nC='single $A'\n",
        "URL=postgres://u:p@h/db?sslmode=require&x=a=b\n",
        "export KEY=exported\nexport=as-a-key\nexport   SPACED=1\n",
        "EMPTY=\nEMPTY_COMMENT= # nothing\nSPACES=   \nQUOTED_EMPTY=\"\"\n",
        "A=1 # a comment\nB=1#not-a-comment\nC=\"x # y\" # z\n",
        "ESC=\"a\\nb \\\"q\\\" \\\\ \\$A\"\nBARE=s\\ ix\n",
        "A=base\nB=$A/path\nC=\"${A}x\"\nD='$A'\nE=$UNSET_SAASKIT_TEST_VAR.end\n",
        "MULTI=\"line one\nline two\"\nAFTER=1\n",
        "SINGLE='one\ntwo'\nAFTER=2\r\n",
        "  INDENTED = value \nKEY.WITH.DOTS=1\n",
        "# comment\n\n   # indented comment\nA=1\r\nB=2\r\n",
        "\u{feff}BOM=1\n",
        "A=1\nA=2\n",
        "A=1\nnot a line\nB=2\n",
        "A=1\nB=two words\nC=3\n",
        "A=1\nB=\"open\n",
        "A=1\n=novalue\nB=2\n",
        "A=\"x\"y\"\n",
        "A=\\q\n",
        "A=1\nB=${A\n",
        "LAST=1 ",
    ];

    /// What dotenvy reads, up to its first error, the last assignment winning.
    fn dotenvy_values(text: &str) -> BTreeMap<String, String> {
        dotenvy::from_read_iter(text.as_bytes())
            .map_while(Result::ok)
            .collect()
    }

    #[test]
    fn reads_every_tricky_line_as_dotenvy_does() {
        for text in TRICKY {
            assert_eq!(values(text), dotenvy_values(text), "{text:?}");
        }
    }

    #[test]
    fn fails_where_dotenvy_fails() {
        for text in TRICKY {
            let ours = entries(text).iter().position(Result::is_err);
            let theirs = dotenvy::from_read_iter(text.as_bytes()).position(|e| e.is_err());
            assert_eq!(ours, theirs, "{text:?}");
        }
    }

    #[test]
    fn written_keeps_what_the_user_wrote_even_where_the_services_refuse_it() {
        let map = written("A= 'x' # c\nB=two words\nC=\"open\nD=1\n");
        assert_eq!(map["A"], " 'x' # c");
        assert_eq!(map["B"], "two words");
        assert!(!map.contains_key("C") && !map.contains_key("D"));
    }

    #[test]
    fn quotes_escapes_and_comments() {
        let text = "A='x y'\nB=\"a\\nb\" # c\nC=v#w\nexport D = 4\nE= # empty\n";
        let map = values(text);
        assert_eq!(map["A"], "x y");
        assert_eq!(map["B"], "a\nb");
        assert_eq!(map["C"], "v#w");
        assert_eq!(map["D"], "4");
        assert_eq!(map["E"], "");
    }

    #[test]
    fn spans_cover_the_value_as_written() {
        let text = "A = 'quoted' # c\nB=bare # c\r\nC=\"multi\nline\"\nD=\n";
        let entries: Vec<Entry> = entries(text).into_iter().map(Result::unwrap).collect();
        let at = |i: usize| &text[entries[i].span.clone()];
        assert_eq!(
            [at(0), at(1), at(2), at(3)],
            ["quoted", "bare", "multi\nline", ""]
        );
        assert_eq!(entries[0].written, " 'quoted' # c");
        assert_eq!(entries[1].written, "bare # c");
        assert_eq!(entries[2].written, "\"multi\nline\"");
        let lines: Vec<usize> = entries.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 2, 3, 5]);
        assert_eq!(entries[1].line_end, text.find("C=").unwrap());
    }

    #[test]
    fn the_last_assignment_wins_and_errors_name_the_line_and_key() {
        assert_eq!(value_of("X=1\nX = 2 # c\n", "X").unwrap().value, "2");
        assert_eq!(value_of("X=1\n", "Y"), None);
        let errors: Vec<LineError> = entries("A=1\nB=\"open\n")
            .into_iter()
            .filter_map(Result::err)
            .collect();
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].line, errors[0].key), (2, Some("B")));
    }
}
