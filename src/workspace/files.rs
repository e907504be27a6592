//! Generated files and spliced snippets, added and removed, each edit replayed on the file's
//! pristine copy in the base store.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use anyhow::{Context as _, Result, bail};

use crate::edit::inject::{self, CommentStyle};
use crate::edit::render::{Context, module_text, render};
use crate::edit::typescript::Syntax;
use crate::model::catalog::{FileEntry, Module, Snippet};
use crate::model::lock;
use crate::stage::change::{Text, same_text};
use crate::stage::tree::Tree;

use super::{Workspace, base_path};

/// A module's file as it lands in the workspace.
#[derive(Debug, PartialEq)]
pub(super) struct RenderedFile {
    pub target: String,
    pub content: Cow<'static, str>,
    /// Its hash for saaskit.lock, when known: computed by build.rs for a file shipped as it is,
    /// or by the thread that rendered it ahead ([`RenderedFile::checked`]).
    pub sha256: Option<Cow<'static, str>>,
    /// Whether [`check_syntax`] passed on it already.
    pub syntax_checked: bool,
}

impl RenderedFile {
    /// The file with its hash computed and its syntax checked: what a thread rendering ahead of
    /// the installing one can do for it. `None` if the check fails (the installing thread then
    /// renders it again, and reports the error).
    pub(super) fn checked(mut self, module: &Module) -> Option<RenderedFile> {
        check_syntax(module, &self.target, &self.content).ok()?;
        self.syntax_checked = true;
        if self.sha256.is_none() {
            self.sha256 = Some(Cow::Owned(lock::hash(&self.content)));
        }
        Some(self)
    }
}

/// Rust templates are checked by building the generated workspace (CI); a TypeScript or JSON
/// file is checked here, as Rust splices are, since nothing else reads it before the user runs
/// npm.
fn check_syntax(module: &Module, target: &str, content: &str) -> Result<()> {
    let Some(syntax) = Syntax::for_path(target) else {
        return Ok(());
    };
    syntax.check(content).map_err(|e| {
        anyhow::anyhow!(
            "{target}:{}:{}: module `{}` generates invalid {} here: {}; fix the module's \
             file (nothing was written)",
            e.line,
            e.column,
            module.id,
            syntax.name(),
            e.message
        )
    })
}

/// A module's snippet as it is spliced: the file it goes into, and its body (formatted, for
/// Rust).
#[derive(Debug, PartialEq)]
pub(super) struct RenderedSnippet {
    pub target: String,
    pub body: String,
}

/// Renders `snippet` of `module` for `context`. `formatted` keeps each Rust snippet formatted so
/// far by its rendered text: a module's snippet for every service that gets it often renders the
/// same, and formatting is a parse and a print.
pub(super) fn render_snippet(
    module: &Module,
    snippet: &Snippet,
    context: &Context,
    formatted: &mut HashMap<String, String>,
) -> Result<RenderedSnippet> {
    let target = render(
        &format!("{} snippet target", module.id),
        &snippet.target,
        context,
    )?;
    let code = module_text(
        &format!("{} snippet for `{}`", module.id, snippet.marker),
        Cow::Borrowed(&snippet.code),
        true,
        context,
    )?
    .into_owned();
    let body = match CommentStyle::for_path(&target) {
        CommentStyle::Rust => match formatted.get(&code) {
            Some(body) => body.clone(),
            None => {
                let body = inject::format_rust_snippet(&code).with_context(|| {
                    format!(
                        "module `{}`: its `{}` snippet for {target} is not valid Rust",
                        module.id, snippet.marker
                    )
                })?;
                formatted.insert(code, body.clone());
                body
            }
        },
        // Whole lines, as the fenced block reads back (`block_body`): a snippet written
        // without a final newline would otherwise look edited to `remove`. The file is
        // parsed with every snippet in `finish`: a TypeScript snippet is often no unit of
        // its own (an element of the root module's `imports` array).
        CommentStyle::TypeScript => code.lines().map(|line| format!("{line}\n")).collect(),
        CommentStyle::Hash | CommentStyle::Markdown => code,
    };
    Ok(RenderedSnippet { target, body })
}

/// The snippets spliced into one Rust or TypeScript file by a command, and the file before them.
pub(super) struct Splices {
    original: Text,
    /// (module, marker, body), in order.
    blocks: Vec<(String, String, String)>,
}

impl<'c> Workspace<'c> {
    pub(super) fn add_file(&mut self, module: &Module, file: RenderedFile) -> Result<()> {
        let RenderedFile {
            target,
            content,
            sha256,
            syntax_checked,
        } = file;
        let target = target.as_str();
        if let Some(existing) = self.tree.read(target)?
            && existing != content
        {
            match self.lock.file(target) {
                Some(owner) if owner.module != module.id => {
                    bail!(
                        "modules `{}` and `{}` both generate {target}",
                        owner.module,
                        module.id
                    )
                }
                None if !self.overwrite => bail!(
                    "{target} already exists and was not generated by saaskit; module `{}` would overwrite it.\n\
                     Move the file away and run the command again.",
                    module.id
                ),
                _ => {}
            }
        }
        if !syntax_checked {
            check_syntax(module, target, &content)?;
        }
        let sha256 = sha256.map_or_else(|| lock::hash(&content), Cow::into_owned);
        self.lock.record_file_with_hash(target, &module.id, sha256);
        // The pristine copy is the same text, shared rather than copied.
        let content = Text::new(content);
        if let Some(base) = base_path(target) {
            self.tree.write_shared(&base, content.clone());
        }
        self.tree.write_shared(target, content);
        Ok(())
    }

    /// Replays on the pristine copy of `path` an edit saaskit makes to the generated file. A
    /// workspace generated before the base store existed has no copy: nothing to replay. A copy
    /// the edit does not apply to is dropped, so that `upgrade` does not trust it.
    pub(super) fn edit_base<T: Into<Text>>(
        &mut self,
        path: &str,
        edit: impl FnOnce(&str) -> Result<Option<T>>,
    ) -> Result<()> {
        let Some(base) = base_path(path) else {
            return Ok(());
        };
        let Some(current) = self.tree.read_shared(&base)? else {
            return Ok(());
        };
        match edit(&current) {
            Ok(Some(updated)) => self.tree.write_shared(&base, updated.into()),
            Ok(None) => {}
            Err(_) => self.tree.delete(&base),
        }
        Ok(())
    }

    pub(super) fn add_snippet(
        &mut self,
        module: &Module,
        index: usize,
        snippet: &Snippet,
        context: &Context,
    ) -> Result<()> {
        let prerendered = self
            .prerendered
            .and_then(|prerendered| prerendered.take_snippet(module, index, context));
        let RenderedSnippet { target, body } = match prerendered {
            Some(rendered) => rendered,
            None => render_snippet(module, snippet, context, &mut self.formatted_rust)?,
        };
        self.inject(&module.id, &target, &snippet.marker, &body)?;
        self.lock
            .record_snippet(&target, &snippet.marker, &module.id, &body);
        Ok(())
    }

    pub(super) fn inject(
        &mut self,
        module: &str,
        target: &str,
        marker: &str,
        body: &str,
    ) -> Result<()> {
        // Shared with the tree: the staged file and its copy are not copied to be spliced.
        let Some(source) = self.tree.read_shared(target)? else {
            bail!(
                "module `{module}` injects into {target}, which does not exist; restore it or run `saaskit doctor`"
            );
        };
        let style = CommentStyle::for_path(target);
        // Fences kept from the last splice describe the file only if nothing else wrote it since.
        let fences = self.fences.take(target, &source);
        // Rust and TypeScript files are parsed once, in `finish`, however many snippets they get.
        let (updated, fences) =
            inject::splice_block_with(&source, fences, style, marker, module, body)
                .with_context(|| format!("module `{module}`, marker `{marker}`: {target}"))?;
        let updated = Text::new(updated);
        self.fences.keep(target, updated.clone(), fences);
        if style == CommentStyle::Rust {
            self.parse_ahead.queue(target, &updated);
        }
        if matches!(style, CommentStyle::Rust | CommentStyle::TypeScript) {
            self.spliced
                .entry(target.to_string())
                .or_insert_with(|| Splices {
                    original: Text::clone(&source),
                    blocks: Vec::new(),
                })
                .blocks
                .push((module.into(), marker.into(), body.into()));
        }
        // The pristine copy gets the same splice (as `edit_base` would): it parses when the file
        // does. Until the user edits the file it is the same text, so the same result (no second
        // scan of the file). A workspace without copies has nothing to replay; a copy the splice
        // does not apply to is dropped.
        let base = base_path(target);
        let base_edit = match &base {
            Some(base) => match self.tree.read_shared(base)? {
                Some(copy) if same_text(&copy, &source) => Some(Some(updated.clone())),
                Some(copy) => Some(
                    inject::splice_block(&copy, style, marker, module, body)
                        .ok()
                        .map(Text::new),
                ),
                None => None,
            },
            None => None,
        };
        match (base, base_edit) {
            (Some(base), Some(Some(copy))) => self.tree.write_shared(&base, copy),
            (Some(base), Some(None)) => self.tree.delete(&base),
            _ => {}
        }
        self.tree.write_shared(target, updated);
        Ok(())
    }

    pub(super) fn remove_snippet(
        &mut self,
        module: &str,
        target: &str,
        marker: &str,
    ) -> Result<()> {
        let locked = self.lock.snippet(target, marker, module).cloned();
        self.lock.forget_snippet(target, marker, module);
        let style = CommentStyle::for_path(target);
        self.edit_base(target, |base| {
            Ok(inject::remove_block(base, style, marker, module)?)
        })?;
        let Some(source) = self.tree.read(target)? else {
            return Ok(());
        };
        let located = inject::block_body(&source, style, marker, module)
            .with_context(|| target.to_string())?;
        let Some((body, line)) = located else {
            self.notes.push(format!(
                "{target}: the `{marker}` snippet of `{module}` was already gone"
            ));
            return Ok(());
        };
        let edited = locked.is_some_and(|l| l.sha256 != lock::hash(&body));
        if edited && !self.force {
            bail!(
                "{target}:{line}: the `{marker}` snippet of module `{module}` was edited since it was added; \
                 removing the module would lose those edits.\n\
                 Move your code out of the fenced block, or run again with --force to remove it anyway."
            );
        }
        let updated = inject::remove_block(&source, style, marker, module)
            .with_context(|| target.to_string())?
            .unwrap_or(source);
        self.tree.write(target, updated);
        Ok(())
    }

    pub(super) fn remove_file(&mut self, module: &str, target: &str) -> Result<()> {
        let Some(locked) = self
            .lock
            .file(target)
            .filter(|f| f.module == module)
            .cloned()
        else {
            return Ok(());
        };
        self.lock.forget_file(target);
        // No longer generated: its pristine copy goes, whether the file itself goes or stays.
        if let Some(base) = base_path(target) {
            self.tree.delete(&base);
        }
        match self.tree.read(target)? {
            None => {}
            Some(current) if self.force || lock::hash(&current) == locked.sha256 => self.tree.delete(target),
            Some(_) => self.notes.push(format!(
                "kept {target}: you edited it since saaskit generated it (delete it yourself, or run again with --force)"
            )),
        }
        Ok(())
    }
}

/// [`spliced_files`] for a TypeScript or JavaScript file: when `current` does not
/// parse, the splices are replayed on the original one at a time, so that the error names the
/// one that broke it, with the line in the file, or says the file was broken before.
fn check_spliced_script(
    target: &str,
    syntax: Syntax,
    splices: &Splices,
    current: &str,
) -> Result<()> {
    if syntax.check(current).is_ok() {
        return Ok(());
    }
    let language = syntax.name();
    if let Err(e) = syntax.check(&splices.original) {
        bail!(
            "{target}:{}:{}: the file is not valid {language} even before injecting: {}; fix the \
             file first (nothing was written)",
            e.line,
            e.column,
            e.message
        );
    }
    let mut text = splices.original.to_string();
    for (module, marker, body) in &splices.blocks {
        text = inject::splice_block(&text, CommentStyle::TypeScript, marker, module, body)
            .with_context(|| format!("module `{module}`, marker `{marker}`: {target}"))?;
        if let Err(e) = syntax.check(&text) {
            bail!(
                "{target}:{}:{}: inserting the block of `{module}` at marker `{marker}` leaves \
                 invalid {language}: {}; fix the module's snippet or the code around the marker \
                 (nothing was written)",
                e.line,
                e.column,
                e.message
            );
        }
    }
    bail!("{target} does not parse after the snippets of this command were spliced into it")
}

/// A module file's target path and content: rendered when the source ends in `.jinja`.
pub(super) fn render_file(
    module: &Module,
    file: &FileEntry,
    context: &Context,
) -> Result<RenderedFile> {
    let target = render(&format!("{} file target", module.id), &file.target, context)?;
    let template = file.source.ends_with(".jinja");
    let content = module_text(
        &format!("modules/{}/{}", module.id, file.source),
        module.source_text(&file.source)?,
        template,
        context,
    )?;
    // Still borrowed: the source itself, neither rendered nor renamed.
    let verbatim = !template && matches!(content, Cow::Borrowed(_));
    let sha256 = verbatim
        .then(|| module.embedded_sha256(&file.source))
        .flatten();
    Ok(RenderedFile {
        target,
        content,
        sha256: sha256.map(Cow::Borrowed),
        syntax_checked: false,
    })
}

/// Each migration as its two files in `migrations_dir`, named as sqlx expects:
/// `<version>_<name>.sql`.
pub(super) fn render_migrations(
    module: &Module,
    migrations_dir: &str,
) -> Result<Vec<RenderedFile>> {
    let mut files = Vec::new();
    for migration in &module.migrations {
        for (backend, source) in [
            ("sqlite", &migration.sqlite),
            ("postgres", &migration.postgres),
        ] {
            let target = format!(
                "{migrations_dir}/{backend}/{}_{}.sql",
                migration.version, migration.name
            );
            files.push(RenderedFile {
                target,
                content: module.source_text(source)?,
                sha256: module.embedded_sha256(source).map(Cow::Borrowed),
                syntax_checked: false,
            });
        }
    }
    Ok(files)
}

/// Each Rust file snippets were spliced into, as it is now in `tree`, with its splices, for one
/// parse each; a TypeScript, JavaScript or JSON file is checked here, with its own parser.
pub(super) fn spliced_files<'s>(
    tree: &Tree,
    spliced: &'s BTreeMap<String, Splices>,
) -> Result<Vec<(&'s str, &'s Splices, Text)>> {
    let mut files = Vec::new();
    for (target, splices) in spliced {
        if let Some(current) = tree.read_shared(target)? {
            match Syntax::for_path(target) {
                Some(syntax) => check_spliced_script(target, syntax, splices, &current)?,
                None => files.push((target.as_str(), splices, current)),
            }
        }
    }
    Ok(files)
}

/// Why `target`, which does not parse after `splices`, broke: its splices replayed one by one,
/// each checked, so that the error names the module, the marker and the line.
pub(super) fn unparsable(target: &str, splices: &Splices) -> anyhow::Error {
    let mut text = splices.original.to_string();
    for (module, marker, body) in &splices.blocks {
        match inject::insert_block(&text, CommentStyle::Rust, marker, module, body) {
            Ok(next) => text = next,
            Err(error) => {
                return anyhow::Error::new(error)
                    .context(format!("module `{module}`, marker `{marker}`: {target}"));
            }
        }
    }
    anyhow::anyhow!(
        "{target} does not parse after the snippets of this command were spliced into it"
    )
}
