//! "No panic on any input": the manifest and lockfile parsers answer arbitrary text with a value
//! or an error, and manifest errors always point at a line and column inside the file; so do the
//! TypeScript, JavaScript and JSON checks, whose errors point inside the text; the check of
//! spliced Rust files answers and refuses nothing syn accepts.

use proptest::prelude::*;
use saaskit::edit::inject::first_unparsable;
use saaskit::edit::typescript::Syntax;
use saaskit::model::lock::Lock;
use saaskit::model::manifest::Manifest;

const VALID: &str = "[workspace]\nname = \"acme\"\ndatabase = \"sqlite\"\n\n[services.api]\nkind = \"api\"\nport = 8080\nmodules = [\"db\"]\n";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn manifest_parse_never_panics(text in "\\PC{0,300}") {
        let _ = Manifest::parse(&text);
    }

    /// Mutations of a valid manifest: a removed, replaced or inserted slice of characters.
    #[test]
    fn damaged_manifests_are_errors_with_a_position_or_still_valid(
        start in 0usize..VALID.len(),
        len in 0usize..20,
        insert in "[\\[\\]=\"a-z0-9 \\n.,{}é]{0,8}",
    ) {
        let chars: Vec<char> = VALID.chars().collect();
        let end = (start + len).min(chars.len());
        let damaged: String = chars[..start].iter().chain(insert.chars().collect::<Vec<_>>().iter()).chain(chars[end..].iter()).collect();
        if let Err(error) = Manifest::parse(&damaged) {
            let message = error.to_string();
            prop_assert!(message.starts_with("saaskit.toml"), "{message}");
        }
    }

    #[test]
    fn lock_parse_never_panics(text in "\\PC{0,300}") {
        let _ = Lock::parse(&text);
    }

    /// Script-like text (brackets, quotes, decorators, comments, newlines) as TypeScript,
    /// JavaScript, JSON and tsconfig JSON: an error is on a line of the text.
    #[test]
    fn script_checks_never_panic_and_point_inside_the_text(
        text in "[a-z{}()\\[\\]<>:;,.=\"'`@/*\n ]{0,200}",
        path in prop::sample::select(vec!["src/main.ts", "eslint.config.mjs", "package.json", "tsconfig.json"]),
    ) {
        let syntax = Syntax::for_path(path).expect("a checked path");
        if let Err(error) = syntax.check(&text) {
            let lines = text.split('\n').count().max(1);
            prop_assert!(error.line >= 1 && error.line <= lines, "{path}: {error} in {text:?}");
        }
    }

    /// Rust-like text (items, braces, quotes, lifetimes, macros) through the whole-file check of
    /// spliced files: rust-analyzer's parser first, syn for what it rejects.
    #[test]
    fn the_rust_file_check_never_panics_and_accepts_what_syn_accepts(
        text in "(fn |let |impl |struct |mod |use |[a-z]{1,3}|[{}()\\[\\]<>:;,.=!?&'\"#\n ]){0,60}",
    ) {
        let accepted = first_unparsable(&[&text]).is_none();
        if syn::parse_file(&text).is_ok() {
            prop_assert!(accepted, "{text:?}");
        }
    }
}
