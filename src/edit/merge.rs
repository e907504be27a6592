//! Merging text files by lines, for `saaskit upgrade`.
//!
//! [`merge`] is a three-way merge (diff3): `base` is what saaskit generated, `ours` the file as
//! the user has it now, `theirs` what the current templates generate. Changes on one side only are
//! taken; identical changes on both sides are taken once; different changes to the same lines (or
//! to adjacent lines, as git does) become a conflict, written with git's markers in diff3 style:
//!
//! ```text
//! <<<<<<< ours: <label>
//! the user's lines
//! ||||||| base: <label>
//! the generated lines both started from
//! =======
//! the newly generated lines
//! >>>>>>> theirs: <label>
//! ```
//!
//! [`merge_without_base`] is for files whose base is unknown: every difference becomes a
//! conflict, without a base section. Both are pure functions over strings. Every line keeps its
//! own line ending; the marker lines use the file's (CRLF when `ours` uses CRLF). The line
//! alignment is `similar`'s three-way merge.

use similar::{DiffTag, MergeResolution, TextDiff, TextMerge};

/// What the conflict markers say after `<<<<<<< ours: `, `||||||| base: ` and `>>>>>>> theirs: `.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    pub ours: &'a str,
    pub base: &'a str,
    pub theirs: &'a str,
}

/// A merge result: the text (with conflict markers, if any) and how many conflicts it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub text: String,
    pub conflicts: usize,
}

const MARKER_SIZE: usize = 7;

/// Three-way merge of `ours` and `theirs`, which both descend from `base`.
pub fn merge(base: &str, ours: &str, theirs: &str, labels: &Labels) -> Merged {
    let merge = TextMerge::from_lines(base, ours, theirs);
    let base_lines: Vec<&str> = (0..merge.base_len())
        .filter_map(|i| merge.base_line(i))
        .collect();
    let ours_lines: Vec<&str> = (0..merge.ours_len())
        .filter_map(|i| merge.ours_line(i))
        .collect();
    let theirs_lines: Vec<&str> = (0..merge.theirs_len())
        .filter_map(|i| merge.theirs_line(i))
        .collect();
    let mut out = Output::new(line_ending(ours, theirs));
    for region in merge.regions() {
        let ours = &ours_lines[region.ours_range()];
        let theirs = &theirs_lines[region.theirs_range()];
        match region.resolution() {
            MergeResolution::Theirs => out.lines(theirs),
            MergeResolution::Conflict => {
                out.conflict(labels, ours, Some(&base_lines[region.base_range()]), theirs)
            }
            // Unchanged, changed on our side only, or changed identically on both.
            _ => out.lines(ours),
        }
    }
    out.finish()
}

/// Two-way merge for a file without a known base: the lines both sides share are kept, and every
/// place where they differ becomes a conflict (with no base section), since nothing tells whose
/// change it was.
pub fn merge_without_base(ours: &str, theirs: &str, labels: &Labels) -> Merged {
    let diff = TextDiff::from_lines(ours, theirs);
    let old = |i: usize| diff.old_slice(i).expect("diff ops index their inputs");
    let new = |i: usize| diff.new_slice(i).expect("diff ops index their inputs");
    let mut out = Output::new(line_ending(ours, theirs));
    // A run of non-equal ops is one conflict: (ours range, theirs range).
    let mut pending: Option<(std::ops::Range<usize>, std::ops::Range<usize>)> = None;
    let flush = |out: &mut Output, pending: &mut Option<_>| {
        if let Some((o, t)) = pending.take() {
            let o: std::ops::Range<usize> = o;
            let t: std::ops::Range<usize> = t;
            let ours: Vec<&str> = o.map(old).collect();
            let theirs: Vec<&str> = t.map(new).collect();
            out.conflict(labels, &ours, None, &theirs);
        }
    };
    for op in diff.ops() {
        let (tag, o, t) = op.as_tag_tuple();
        if tag == DiffTag::Equal {
            flush(&mut out, &mut pending);
            out.lines(&o.map(old).collect::<Vec<_>>());
            continue;
        }
        pending = Some(match pending.take() {
            Some((po, pt)) => (po.start..o.end, pt.start..t.end),
            None => (o, t),
        });
    }
    flush(&mut out, &mut pending);
    out.finish()
}

/// `\r\n` when `ours` ends its lines so (or, being a single line, `theirs` does), else `\n`.
fn line_ending(ours: &str, theirs: &str) -> &'static str {
    let sample = if ours.contains('\n') { ours } else { theirs };
    let crlf = sample.matches("\r\n").count();
    let lf = sample.matches('\n').count();
    if crlf > 0 && crlf * 2 >= lf {
        "\r\n"
    } else {
        "\n"
    }
}

struct Output<'l> {
    text: String,
    eol: &'l str,
    conflicts: usize,
}

impl<'l> Output<'l> {
    fn new(eol: &'l str) -> Output<'l> {
        Output {
            text: String::new(),
            eol,
            conflicts: 0,
        }
    }

    /// Ends the last line if it has no line ending (a side's last line before more output).
    fn end_line(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push_str(self.eol);
        }
    }

    fn lines(&mut self, lines: &[&str]) {
        for line in lines {
            self.end_line();
            self.text.push_str(line);
        }
    }

    fn marker(&mut self, character: char, label: Option<&str>) {
        self.end_line();
        for _ in 0..MARKER_SIZE {
            self.text.push(character);
        }
        if let Some(label) = label {
            self.text.push(' ');
            // A label must not add lines of its own.
            self.text.push_str(&label.replace(['\r', '\n'], " "));
        }
        self.text.push_str(self.eol);
    }

    fn conflict(&mut self, labels: &Labels, ours: &[&str], base: Option<&[&str]>, theirs: &[&str]) {
        self.conflicts += 1;
        self.marker('<', Some(&format!("ours: {}", labels.ours)));
        self.lines(ours);
        if let Some(base) = base {
            self.marker('|', Some(&format!("base: {}", labels.base)));
            self.lines(base);
        }
        self.marker('=', None);
        self.lines(theirs);
        self.marker('>', Some(&format!("theirs: {}", labels.theirs)));
    }

    fn finish(self) -> Merged {
        Merged {
            text: self.text,
            conflicts: self.conflicts,
        }
    }
}

/// Whether `text` holds a line starting with a conflict marker [`merge`] writes (`<<<<<<< ours`),
/// and the first such line's number (1-based).
pub fn conflict_marker_line(text: &str) -> Option<usize> {
    let start = format!("{} ours", "<".repeat(MARKER_SIZE));
    text.lines()
        .position(|line| line.starts_with(&start))
        .map(|index| index + 1)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const LABELS: Labels = Labels {
        ours: "a.rs",
        base: "a.rs as saaskit 0.1.0 generated it",
        theirs: "a.rs as saaskit 0.2.0 generates it",
    };

    fn merged(base: &str, ours: &str, theirs: &str) -> Merged {
        merge(base, ours, theirs, &LABELS)
    }

    #[test]
    fn edits_on_different_lines_merge_cleanly() {
        let base = "one\ntwo\nthree\nfour\nfive\n";
        let ours = "one\ntwo\nthree\nfour\nFIVE (mine)\n";
        let theirs = "ONE (new template)\ntwo\nthree\nfour\nfive\n";
        assert_eq!(
            merged(base, ours, theirs),
            Merged {
                text: "ONE (new template)\ntwo\nthree\nfour\nFIVE (mine)\n".into(),
                conflicts: 0
            }
        );
    }

    #[test]
    fn insertions_and_deletions_on_both_sides_merge_cleanly() {
        let base = "a\nb\nc\nd\ne\nf\n";
        let ours = "a\nmine\nb\nc\nd\ne\n";
        let theirs = "a\nb\nc\ntheirs\nd\ne\nf\n";
        assert_eq!(
            merged(base, ours, theirs).text,
            "a\nmine\nb\nc\ntheirs\nd\ne\n"
        );
    }

    #[test]
    fn the_same_edit_on_both_sides_is_taken_once() {
        let base = "fn a() {}\nfn b() {}\n";
        let both = "fn a() {}\nfn b() -> u8 { 1 }\n";
        assert_eq!(
            merged(base, both, both),
            Merged {
                text: both.into(),
                conflicts: 0
            }
        );
    }

    #[test]
    fn different_edits_of_the_same_lines_conflict_with_labelled_diff3_markers() {
        let base = "head\n    \"hello\"\ntail\n";
        let ours = "head\n    \"hi\"\ntail\n";
        let theirs = "head\n    \"hello, again\"\ntail\n";
        let result = merged(base, ours, theirs);
        assert_eq!(result.conflicts, 1);
        assert_eq!(
            result.text,
            "head\n\
             <<<<<<< ours: a.rs\n    \"hi\"\n\
             ||||||| base: a.rs as saaskit 0.1.0 generated it\n    \"hello\"\n\
             =======\n    \"hello, again\"\n\
             >>>>>>> theirs: a.rs as saaskit 0.2.0 generates it\n\
             tail\n"
        );
        assert_eq!(conflict_marker_line(&result.text), Some(2));
    }

    #[test]
    fn crlf_lines_and_markers_stay_crlf() {
        let base = "a\r\nb\r\nc\r\nd\r\ne\r\n";
        let ours = "a\r\nB\r\nc\r\nd\r\ne\r\n";
        let theirs = "a\r\nb\r\nc\r\nd\r\nE\r\n";
        assert_eq!(merged(base, ours, theirs).text, "a\r\nB\r\nc\r\nd\r\nE\r\n");

        let theirs = "a\r\nb2\r\nc\r\nd\r\ne\r\n";
        let result = merged(base, ours, theirs);
        assert_eq!(result.conflicts, 1);
        assert!(
            !result.text.replace("\r\n", "").contains('\n'),
            "{:?}",
            result.text
        );
        assert!(result.text.contains("\r\n=======\r\n"), "{:?}", result.text);
    }

    #[test]
    fn a_missing_final_newline_is_kept_and_never_glues_a_marker_to_a_line() {
        // Clean: the last line keeps having no newline.
        let base = "a\nb\nc\nd";
        let ours = "A\nb\nc\nd";
        let theirs = "a\nb\nc\nd";
        assert_eq!(merged(base, ours, theirs).text, "A\nb\nc\nd");
        let theirs = "a\nb\nc\nD";
        assert_eq!(merged(base, ours, theirs).text, "A\nb\nc\nD");

        // Conflicting last lines: each side's line is ended before the next marker.
        let result = merged("a\nb\nc", "a\nb\nmine", "a\nb\ntheirs");
        assert_eq!(result.conflicts, 1);
        assert_eq!(
            result.text,
            "a\nb\n\
             <<<<<<< ours: a.rs\nmine\n\
             ||||||| base: a.rs as saaskit 0.1.0 generated it\nc\n\
             =======\ntheirs\n\
             >>>>>>> theirs: a.rs as saaskit 0.2.0 generates it\n"
        );
    }

    #[test]
    fn without_a_base_every_difference_is_a_conflict_and_shared_lines_stay() {
        let ours = "same\nmine\nsame too\nend\n";
        let theirs = "same\ntheirs\nsame too\nend\nadded\n";
        let result = merge_without_base(ours, theirs, &LABELS);
        assert_eq!(result.conflicts, 2);
        assert_eq!(
            result.text,
            "same\n\
             <<<<<<< ours: a.rs\nmine\n=======\ntheirs\n>>>>>>> theirs: a.rs as saaskit 0.2.0 generates it\n\
             same too\nend\n\
             <<<<<<< ours: a.rs\n=======\nadded\n>>>>>>> theirs: a.rs as saaskit 0.2.0 generates it\n"
        );
        assert_eq!(
            merge_without_base(ours, ours, &LABELS),
            Merged {
                text: ours.into(),
                conflicts: 0
            }
        );
    }

    #[test]
    fn labels_cannot_add_lines() {
        let labels = Labels {
            ours: "a\nb",
            base: "c\r\nd",
            theirs: "e",
        };
        let result = merge("x\n", "y\n", "z\n", &labels);
        assert!(
            result.text.contains("<<<<<<< ours: a b\n"),
            "{}",
            result.text
        );
        assert!(
            result.text.contains("||||||| base: c  d\n"),
            "{}",
            result.text
        );
    }

    /// Text made of a few distinct lines, so that random edits often touch the same lines.
    fn text() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(
                prop::sample::select(vec!["a", "b", "c", "", "  d", "a\r"]),
                0..12,
            ),
            any::<bool>(),
        )
            .prop_map(|(lines, final_newline)| {
                let mut text = lines.join("\n");
                if final_newline && !lines.is_empty() {
                    text.push('\n');
                }
                text
            })
    }

    proptest! {
        #[test]
        fn a_change_on_one_side_only_is_the_result(base in text(), other in text()) {
            prop_assert_eq!(merged(&base, &other, &base), Merged { text: other.clone(), conflicts: 0 });
            prop_assert_eq!(merged(&base, &base, &other), Merged { text: other.clone(), conflicts: 0 });
            prop_assert_eq!(merged(&base, &other, &other), Merged { text: other, conflicts: 0 });
        }

        #[test]
        fn without_conflicts_the_result_has_no_markers(base in text(), ours in text(), theirs in text()) {
            let result = merged(&base, &ours, &theirs);
            prop_assert_eq!(result.conflicts == 0, conflict_marker_line(&result.text).is_none());
            let two_way = merge_without_base(&ours, &theirs, &LABELS);
            prop_assert_eq!(two_way.conflicts == 0, ours == theirs);
        }
    }
}
