//! TypeScript and JavaScript sources and JSON files, checked before saaskit writes them: a module
//! snippet that breaks a NestJS service's `main.ts`, or a template that renders a broken
//! `package.json`, must stop the command with the file and line, and write nothing, as a broken
//! Rust file does. No Node is needed: the sources are parsed with oxc's parser (a full TypeScript
//! parser, decorators included, that reports every error with a span; what it adds to saaskit's
//! build is in docs/services.md).

use oxc_allocator::Allocator;
use oxc_parser::Parser;
use oxc_span::SourceType;

use crate::model::manifest::line_column;

/// File name endings of the sources checked as TypeScript or JavaScript (the language and module
/// kind come from the ending, as `tsc` and Node decide them).
pub const SCRIPT_EXTENSIONS: [&str; 8] =
    [".ts", ".mts", ".cts", ".tsx", ".js", ".mjs", ".cjs", ".jsx"];

/// A syntax error, 1-based, in the text that was checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// How a file is checked, by its path; `None` for files that are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// A TypeScript or JavaScript source, parsed as its name says.
    Script(SourceType),
    /// Strict JSON (`package.json`, `package-lock.json`, ...), as npm reads it.
    Json,
    /// JSON with comments and trailing commas, which TypeScript reads its own configuration as
    /// (`tsconfig.json`, `tsconfig.build.json`).
    JsonWithComments,
}

impl Syntax {
    pub fn for_path(path: &str) -> Option<Syntax> {
        let name = path.rsplit('/').next().unwrap_or(path);
        if SCRIPT_EXTENSIONS.iter().any(|ext| name.ends_with(ext)) {
            return SourceType::from_path(name).ok().map(Syntax::Script);
        }
        if !name.ends_with(".json") {
            return None;
        }
        if name.starts_with("tsconfig") || name.starts_with("jsconfig") {
            Some(Syntax::JsonWithComments)
        } else {
            Some(Syntax::Json)
        }
    }

    /// How the language is named in messages.
    pub fn name(self) -> &'static str {
        match self {
            Syntax::Script(source_type) if source_type.is_typescript() => "TypeScript",
            Syntax::Script(_) => "JavaScript",
            Syntax::Json => "JSON",
            Syntax::JsonWithComments => "JSON (with comments)",
        }
    }

    /// The first syntax error in `text`, if any.
    pub fn check(self, text: &str) -> Result<(), SyntaxError> {
        match self {
            Syntax::Script(source_type) => check_script(text, source_type),
            Syntax::Json => check_json(text),
            Syntax::JsonWithComments => check_json_with_comments(text),
        }
    }
}

/// Whether `path` is checked when saaskit writes it.
pub fn is_checked(path: &str) -> bool {
    Syntax::for_path(path).is_some()
}

fn check_script(text: &str, source_type: SourceType) -> Result<(), SyntaxError> {
    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, text, source_type).parse();
    let Some(error) = parsed.errors.first() else {
        return Ok(());
    };
    // Where the error is: its first label; an error without one (rare) is put at the end, where
    // the parser stopped.
    let offset = error
        .labels
        .as_ref()
        .and_then(|labels| labels.first())
        .map_or(text.len(), |label| label.offset());
    let (line, column) = line_column(text, offset);
    let mut message = error.message.to_string();
    if let Some(help) = &error.help {
        message.push_str(&format!(" ({help})"));
    }
    Err(SyntaxError {
        line,
        column,
        message,
    })
}

fn check_json(text: &str) -> Result<(), SyntaxError> {
    match serde_json::from_str::<serde::de::IgnoredAny>(text) {
        Ok(_) => Ok(()),
        Err(error) => Err(SyntaxError {
            line: error.line(),
            column: error.column(),
            message: error
                .to_string()
                .split(" at line ")
                .next()
                .unwrap_or_default()
                .to_string(),
        }),
    }
}

/// JSON with comments and trailing commas is a JavaScript expression: parsed as one, in
/// parentheses on lines of their own, rather than with another crate for this one format. It
/// accepts a little more than TypeScript does (unquoted keys), never less.
fn check_json_with_comments(text: &str) -> Result<(), SyntaxError> {
    let wrapped = format!("(\n{text}\n)");
    check_script(&wrapped, SourceType::mjs()).map_err(|error| {
        let lines = text.lines().count().max(1);
        SyntaxError {
            line: error.line.saturating_sub(1).clamp(1, lines),
            ..error
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, text: &str) -> Result<(), SyntaxError> {
        Syntax::for_path(path).expect("a checked file").check(text)
    }

    #[test]
    fn paths_decide_the_syntax() {
        assert_eq!(
            Syntax::for_path("services/nest/src/main.ts")
                .unwrap()
                .name(),
            "TypeScript"
        );
        assert_eq!(
            Syntax::for_path("services/nest/eslint.config.mjs")
                .unwrap()
                .name(),
            "JavaScript"
        );
        assert_eq!(
            Syntax::for_path("services/nest/package.json"),
            Some(Syntax::Json)
        );
        assert_eq!(
            Syntax::for_path("services/nest/tsconfig.build.json"),
            Some(Syntax::JsonWithComments)
        );
        assert_eq!(Syntax::for_path("services/api/src/main.rs"), None);
        assert_eq!(Syntax::for_path(".env"), None);
    }

    #[test]
    fn nest_sources_parse() {
        let source = "\
import { Controller, Get, Module } from '@nestjs/common';

@Controller('api/nest')
export class MeController {
  constructor(private readonly users: UsersService) {}

  @Get('me')
  async me(@Req() request: Request & { user?: User }): Promise<User | undefined> {
    return request.user!;
  }
}

@Module({ controllers: [MeController] })
export class AppModule {}
";
        check("src/app.module.ts", source).unwrap();
    }

    #[test]
    fn errors_say_where() {
        let error = check("src/main.ts", "const a = 1;\nconst b = ;\n").unwrap_err();
        assert_eq!((error.line, error.column), (2, 11), "{error}");
        let error = check("src/main.ts", "function f() {\n  return 1;\n").unwrap_err();
        assert_eq!(error.line, 3, "{error}");
        // Type annotations are TypeScript, not JavaScript.
        check("src/a.ts", "let a: number = 1;\n").unwrap();
        let error = check("src/a.js", "let a: number = 1;\n").unwrap_err();
        assert_eq!(error.line, 1, "{error}");
    }

    #[test]
    fn json_is_strict_and_tsconfig_takes_comments() {
        check("package.json", "{\n  \"name\": \"nest\"\n}\n").unwrap();
        let error = check("package.json", "{\n  \"name\": \"nest\",\n}\n").unwrap_err();
        assert_eq!(error.line, 3, "{error}");
        assert!(error.message.contains("key must be a string"), "{error}");
        let tsconfig = "{\n  // strict mode\n  \"compilerOptions\": { \"strict\": true, },\n}\n";
        check("tsconfig.json", tsconfig).unwrap();
        let error = check("tsconfig.json", "{\n  \"a\": 1\n  \"b\": 2\n}\n").unwrap_err();
        assert_eq!(error.line, 3, "{error}");
    }
}
