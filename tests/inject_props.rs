//! Property tests of the injection engine: byte-exact round trips over random files.

use proptest::prelude::*;
use saaskit::edit::inject::{
    CommentStyle, REVERSE_ORDER_MARKERS, block_body, insert_block, is_reverse_order, remove_block,
    scan,
};

/// A file with exactly one marker line among random lines, and the marker's name.
#[derive(Debug, Clone)]
struct Fixture {
    source: String,
    marker: String,
}

fn eol() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("\n"), Just("\r\n")]
}

fn marker_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,8}"
}

fn module_id() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9_/-]{0,10}"
}

/// Joins lines with their line endings; the last line is terminated only if `final_eol`.
fn join(lines: &[String], eols: &[&str], final_eol: bool) -> String {
    let mut out = String::new();
    for (index, line) in lines.iter().enumerate() {
        out.push_str(line);
        if index + 1 < lines.len() || final_eol {
            out.push_str(eols[index % eols.len()]);
        }
    }
    out
}

/// Random text lines (no `<<<`, so no accidental fences), one hash-comment marker line at a
/// random position with random indentation and optional trailing text, random line endings.
fn hash_file() -> impl Strategy<Value = Fixture> {
    (
        prop::collection::vec("[^\n]{0,24}", 0..12),
        any::<prop::sample::Index>(),
        "[ \t]{0,6}",
        marker_name(),
        prop_oneof![Just(String::new()), " [a-z \r]{1,12}"],
        prop::collection::vec(eol(), 1..4),
        any::<bool>(),
    )
        .prop_filter("user lines must not contain `<<<`", |(lines, ..)| {
            lines.iter().all(|line| !line.contains("<<<"))
        })
        .prop_map(
            |(mut lines, at, indent, marker, trailing, eols, final_eol)| {
                let position = at.index(lines.len() + 1);
                lines.insert(
                    position,
                    format!("{indent}# <<<inject:{marker}>>>{trailing}"),
                );
                Fixture {
                    source: join(&lines, &eols, final_eol),
                    marker,
                }
            },
        )
}

/// `fn main() { ... }` whose lines are `// comment`s and `let x_N = N;` statements, with the
/// marker line somewhere inside the function.
fn rust_file() -> impl Strategy<Value = Fixture> {
    let user_line = prop_oneof![
        "[a-zA-Z0-9 ,.]{0,20}".prop_map(|text| format!("// {text}")),
        (0u32..1000).prop_map(|n| format!("let x_{n} = {n};")),
    ];
    (
        prop::collection::vec(("[ \t]{0,8}", user_line), 0..10),
        any::<prop::sample::Index>(),
        "[ \t]{0,8}",
        marker_name(),
        eol(),
        any::<bool>(),
    )
        .prop_map(|(user, at, indent, marker, eol, final_eol)| {
            let mut lines: Vec<String> = user
                .into_iter()
                .map(|(indent, line)| format!("{indent}{line}"))
                .collect();
            let position = at.index(lines.len() + 1);
            lines.insert(position, format!("{indent}// <<<inject:{marker}>>>"));
            lines.insert(0, "fn main() {".to_string());
            lines.push("}".to_string());
            Fixture {
                source: join(&lines, &[eol], final_eol),
                marker,
            }
        })
}

/// Body lines without `<<<` (which could form fences) and without `\r` (which would be read
/// back as part of a line ending).
fn hash_body() -> impl Strategy<Value = String> {
    body_of("[^\n\r<]{0,20}")
}

fn rust_body() -> impl Strategy<Value = String> {
    body_of(prop_oneof![
        Just(String::new()),
        "[a-z0-9 ]{0,12}".prop_map(|text| format!("// {text}")),
        (0u32..1000).prop_map(|n| format!("let y_{n} = {n};")),
        (0u32..1000).prop_map(|n| format!("if true {{\n    let z_{n} = {n};\n}}")),
    ])
}

fn body_of(line: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (prop::collection::vec(line, 0..6), any::<bool>()).prop_map(|(lines, final_newline)| {
        let mut body = lines.join("\n");
        if final_newline {
            body.push('\n');
        }
        body
    })
}

/// The body as `block_body` reports it: its lines, each ending with `'\n'`.
fn normalised(body: &str) -> String {
    body.lines().map(|line| format!("{line}\n")).collect()
}

/// `output` without its fence lines and everything between them.
fn without_blocks(output: &str) -> String {
    let mut kept = String::new();
    let mut inside = false;
    for line in output.split_inclusive('\n') {
        if line.contains("<<<begin:") {
            inside = true;
        }
        if !inside {
            kept.push_str(line);
        }
        if line.contains("<<<end:") {
            inside = false;
        }
    }
    kept
}

/// Every original line survives in order: only fenced lines were added, plus a line ending
/// after the last line when it had none.
fn assert_lines_survive(input: &str, output: &str) {
    let kept = without_blocks(output);
    let survived = kept == input
        || (!input.ends_with('\n')
            && [kept.strip_suffix("\r\n"), kept.strip_suffix('\n')].contains(&Some(input)));
    assert!(survived, "lines lost:\ninput  {input:?}\noutput {output:?}");
}

/// Checks every property for one file, body and module.
fn check_round_trips(style: CommentStyle, fixture: &Fixture, module: &str, body: &str) {
    let Fixture { source, marker } = fixture;
    let once = insert_block(source, style, marker, module, body).expect("insert");
    assert_lines_survive(source, &once);
    assert_eq!(
        insert_block(&once, style, marker, module, body).as_ref(),
        Ok(&once),
        "inserting twice differs from inserting once"
    );
    let (read, _) = block_body(&once, style, marker, module)
        .expect("block_body")
        .expect("block is present");
    assert_eq!(read, normalised(body));
    assert_eq!(
        remove_block(&once, style, marker, module),
        Ok(Some(source.clone()))
    );
    assert!(scan(&once, style).problems.is_empty());
}

/// The fixture with its marker renamed to `marker` (user lines hold no `<<<`, so only the marker
/// line changes).
fn with_marker(fixture: Fixture, marker: &str) -> Fixture {
    let old = format!("<<<inject:{}>>>", fixture.marker);
    Fixture {
        source: fixture
            .source
            .replace(&old, &format!("<<<inject:{marker}>>>")),
        marker: marker.to_string(),
    }
}

/// Installs `modules` in order, checks the blocks appear in that order (reversed at a
/// reverse-order marker), then removes them in `removal` order and expects the original file
/// back.
fn check_several(
    style: CommentStyle,
    fixture: &Fixture,
    modules: &[(String, String)],
    removal: &[usize],
) {
    let Fixture { source, marker } = fixture;
    let mut current = source.clone();
    for (module, body) in modules {
        current = insert_block(&current, style, marker, module, body).expect("insert");
    }
    assert_lines_survive(source, &current);
    let scanned = scan(&current, style);
    assert!(scanned.problems.is_empty(), "{:?}", scanned.problems);
    let installed: Vec<&str> = scanned.blocks.iter().map(|b| b.module.as_str()).collect();
    let mut expected: Vec<&str> = modules.iter().map(|(module, _)| module.as_str()).collect();
    if is_reverse_order(marker) {
        expected.reverse();
    }
    assert_eq!(
        installed, expected,
        "blocks are not in (reverse) install order"
    );
    // Removing the newest block and adding it again gives the same file: its place after the
    // marker depends only on the order of installation.
    let (newest, body) = modules.last().expect("at least one module");
    let without = remove_block(&current, style, marker, newest)
        .expect("remove")
        .expect("block is present");
    let again = insert_block(&without, style, marker, newest, body).expect("insert");
    assert_eq!(
        again, current,
        "remove and re-add of the newest block moved it"
    );
    for &index in removal {
        let module = &modules[index].0;
        current = remove_block(&current, style, marker, module)
            .expect("remove")
            .expect("block is present");
    }
    assert_eq!(&current, source);
}

/// Distinct modules with bodies, and an order to remove them in.
fn modules_and_removal(
    body: impl Strategy<Value = String>,
) -> impl Strategy<Value = (Vec<(String, String)>, Vec<usize>)> {
    prop::collection::btree_map(module_id(), body, 1..5).prop_flat_map(|modules| {
        let modules: Vec<(String, String)> = modules.into_iter().collect();
        let removal: Vec<usize> = (0..modules.len()).collect();
        (Just(modules), Just(removal).prop_shuffle())
    })
}

/// Lines that are often markers or fences (some malformed), to reach the engine's error paths.
fn fence_soup() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        "[^\n]{0,12}",
        Just("# <<<inject:m>>>".to_string()),
        Just("// <<<inject:m>>>".to_string()),
        Just("  # <<<begin:a@m>>>".to_string()),
        Just("# <<<end:a@m>>>".to_string()),
        Just("// <<<begin:a@m>>>".to_string()),
        Just("// <<<end:a@m>>> ".to_string()),
        Just("# <<<begin:b@m>>>".to_string()),
        Just("# <<<end:b@m".to_string()),
        Just("# <<<begin:A@m>>>".to_string()),
        Just("fn main() {".to_string()),
        Just("}".to_string()),
    ];
    (
        prop::collection::vec(line, 0..12),
        prop::collection::vec(eol(), 1..3),
        any::<bool>(),
    )
        .prop_map(|(lines, eols, final_eol)| join(&lines, &eols, final_eol))
}

fn style() -> impl Strategy<Value = CommentStyle> {
    prop_oneof![Just(CommentStyle::Hash), Just(CommentStyle::Rust)]
}

/// Runs every entry point; only panics count as failures.
fn exercise(source: &str, style: CommentStyle, marker: &str, module: &str, body: &str) {
    let _ = scan(source, style);
    let _ = block_body(source, style, marker, module);
    let _ = remove_block(source, style, marker, module);
    if let Ok(inserted) = insert_block(source, style, marker, module, body) {
        let _ = scan(&inserted, style);
        let _ = remove_block(&inserted, style, marker, module);
    }
}

proptest! {
    #[test]
    fn never_panics_on_random_input(
        source in any::<String>(),
        style in style(),
        marker in prop_oneof![marker_name(), any::<String>()],
        module in prop_oneof![module_id(), any::<String>()],
        body in any::<String>(),
    ) {
        exercise(&source, style, &marker, &module, &body);
    }

    #[test]
    fn never_panics_on_fence_soup(
        source in fence_soup(),
        style in style(),
        module in prop_oneof![Just("a".to_string()), Just("b".to_string()), module_id()],
        body in prop_oneof![hash_body(), fence_soup()],
    ) {
        exercise(&source, style, "m", &module, &body);
    }

    #[test]
    fn hash_round_trips(fixture in hash_file(), module in module_id(), body in hash_body()) {
        check_round_trips(CommentStyle::Hash, &fixture, &module, &body);
    }

    #[test]
    fn hash_several_modules(
        fixture in hash_file(),
        (modules, removal) in modules_and_removal(hash_body()),
    ) {
        check_several(CommentStyle::Hash, &fixture, &modules, &removal);
    }

    #[test]
    fn hash_several_modules_at_a_reverse_order_marker(
        fixture in hash_file(),
        marker in prop::sample::select(REVERSE_ORDER_MARKERS.to_vec()),
        (modules, removal) in modules_and_removal(hash_body()),
    ) {
        check_several(CommentStyle::Hash, &with_marker(fixture, marker), &modules, &removal);
    }

    #[test]
    fn rust_round_trips(fixture in rust_file(), module in module_id(), body in rust_body()) {
        check_round_trips(CommentStyle::Rust, &fixture, &module, &body);
    }

    #[test]
    fn rust_several_modules(
        fixture in rust_file(),
        (modules, removal) in modules_and_removal(rust_body()),
    ) {
        check_several(CommentStyle::Rust, &fixture, &modules, &removal);
    }

    #[test]
    fn rust_round_trips_at_a_reverse_order_marker(
        fixture in rust_file(),
        marker in prop::sample::select(REVERSE_ORDER_MARKERS.to_vec()),
        module in module_id(),
        body in rust_body(),
    ) {
        check_round_trips(CommentStyle::Rust, &with_marker(fixture, marker), &module, &body);
    }

    #[test]
    fn rust_several_modules_at_a_reverse_order_marker(
        fixture in rust_file(),
        marker in prop::sample::select(REVERSE_ORDER_MARKERS.to_vec()),
        (modules, removal) in modules_and_removal(rust_body()),
    ) {
        check_several(CommentStyle::Rust, &with_marker(fixture, marker), &modules, &removal);
    }
}
