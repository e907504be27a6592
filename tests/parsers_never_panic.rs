//! "No panic on any input": the manifest and lockfile parsers answer arbitrary text with a value
//! or an error, and manifest errors always point at a line and column inside the file.

use proptest::prelude::*;
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
}
