//! What `saaskit new` will render, rendered ahead on a second thread.
//!
//! Installing modules is one thread's work: each splice needs the file as the one before left it.
//! Rendering a module's files and snippets and formatting its Rust snippets does not: it depends
//! only on the module, the workspace's name and database, and the service it is for (a
//! [`Context`] holds nothing about the modules installed). `new` knows its modules from the
//! start, so [`Prerendered::fill`] renders them, in install order, on the machine's other core
//! while the installing thread splices; the installing thread takes each result when it gets
//! there ([`Prerendered::take_file`], [`Prerendered::take_snippet`]) and renders itself what is
//! not ready yet, so the output is the same whichever thread rendered what.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::edit::render::{Context, ServiceVars};
use crate::model::catalog::Module;
use crate::model::manifest::Manifest;

use super::files::{RenderedFile, RenderedSnippet, render_file, render_snippet};

/// Rendered files and snippets, by module, entry and service.
#[derive(Default)]
pub struct Prerendered {
    slots: Mutex<HashMap<Key, Slot>>,
    stop: AtomicBool,
}

/// Module id, which of its entries, and the service (`None`: the workspace's context).
type Key = (String, Entry, Option<String>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Entry {
    File(usize),
    Snippet(usize),
}

enum Slot {
    File(RenderedFile),
    Snippet(RenderedSnippet),
    /// The installing thread got there first and rendered it itself.
    Taken,
}

impl Prerendered {
    /// Renders what installing `modules`, in this order, renders in the workspace's context and
    /// for each service of `manifest` of a kind the module applies to, until [`Self::stop`].
    /// A module's requirements may go on services of other kinds than a default's: those the
    /// installing thread renders itself. Errors are left to the installing thread to meet.
    pub fn fill(&self, manifest: &Manifest, modules: &[&Module]) {
        let workspace = Context::for_manifest(manifest);
        let services: Vec<ServiceVars> = manifest.services.iter().map(ServiceVars::new).collect();
        let mut formatted = HashMap::new();
        for module in modules {
            let contexts = std::iter::once(workspace.clone()).chain(
                services
                    .iter()
                    .filter(|service| module.applies_to(&service.kind))
                    .map(|service| workspace.with_service(service)),
            );
            for context in contexts {
                let kind = context.service_kind();
                let files = module.files.iter().enumerate();
                for (index, file) in files.filter(|(_, file)| file.applies_in(kind)) {
                    let key = key(module, Entry::File(index), &context);
                    if self.stopped_or_taken(&key) {
                        continue;
                    }
                    let rendered = render_file(module, file, &context).ok();
                    if let Some(rendered) = rendered.and_then(|file| file.checked(module)) {
                        self.put(key, Slot::File(rendered));
                    }
                }
                let snippets = module.snippets.iter().enumerate();
                for (index, snippet) in snippets.filter(|(_, snippet)| snippet.applies_in(kind)) {
                    let key = key(module, Entry::Snippet(index), &context);
                    if self.stopped_or_taken(&key) {
                        continue;
                    }
                    if let Ok(rendered) = render_snippet(module, snippet, &context, &mut formatted)
                    {
                        self.put(key, Slot::Snippet(rendered));
                    }
                }
            }
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
        }
    }

    /// Ends [`Self::fill`] at its next entry: the modules are installed.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// `module`'s file `index` rendered for `context`, if it was; the caller renders it
    /// otherwise, and the filling thread no longer does.
    pub(super) fn take_file(
        &self,
        module: &Module,
        index: usize,
        context: &Context,
    ) -> Option<RenderedFile> {
        match self.take(key(module, Entry::File(index), context)) {
            Some(Slot::File(rendered)) => Some(rendered),
            _ => None,
        }
    }

    /// [`Self::take_file`] for `module`'s snippet `index`.
    pub(super) fn take_snippet(
        &self,
        module: &Module,
        index: usize,
        context: &Context,
    ) -> Option<RenderedSnippet> {
        match self.take(key(module, Entry::Snippet(index), context)) {
            Some(Slot::Snippet(rendered)) => Some(rendered),
            _ => None,
        }
    }

    fn take(&self, key: Key) -> Option<Slot> {
        self.slots().insert(key, Slot::Taken)
    }

    fn put(&self, key: Key, slot: Slot) {
        // Not over `Taken`: the installing thread rendered it meanwhile.
        self.slots().entry(key).or_insert(slot);
    }

    fn stopped_or_taken(&self, key: &Key) -> bool {
        self.stop.load(Ordering::Relaxed) || self.slots().contains_key(key)
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<Key, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn key(module: &Module, entry: Entry, context: &Context) -> Key {
    let service = context.service.as_ref().map(|service| service.name.clone());
    (module.id.clone(), entry, service)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog::Catalog;
    use crate::workspace::tests::MANIFEST;

    #[test]
    fn what_is_taken_is_what_the_installing_thread_renders() {
        let catalog = Catalog::load().unwrap();
        let manifest = Manifest::parse(MANIFEST).unwrap();
        let modules: Vec<&Module> = std::iter::once(&catalog.base)
            .chain(catalog.modules.values())
            .collect();
        let prerendered = Prerendered::default();
        prerendered.fill(&manifest, &modules);

        let workspace = Context::for_manifest(&manifest);
        let services = manifest.services.iter().map(ServiceVars::new);
        let contexts: Vec<Context> = std::iter::once(workspace.clone())
            .chain(services.map(|service| workspace.with_service(&service)))
            .collect();
        let mut formatted = HashMap::new();
        let (mut files, mut snippets) = (0, 0);
        for module in &modules {
            for context in &contexts {
                let kind = context.service_kind();
                // Rendered ahead only where the module may go.
                let filled = kind.is_none_or(|kind| module.applies_to(kind));
                for (index, file) in module.files.iter().enumerate() {
                    let taken = prerendered.take_file(module, index, context);
                    if filled && file.applies_in(kind) {
                        let rendered = render_file(module, file, context).unwrap();
                        let expected = rendered.checked(module).unwrap();
                        assert!(expected.syntax_checked);
                        assert_eq!(
                            expected.sha256.as_deref(),
                            Some(crate::model::lock::hash(&expected.content).as_str())
                        );
                        assert_eq!(taken, Some(expected), "{} file {index}", module.id);
                        files += 1;
                    } else {
                        assert_eq!(taken, None, "{} file {index}", module.id);
                    }
                    assert_eq!(prerendered.take_file(module, index, context), None);
                }
                for (index, snippet) in module.snippets.iter().enumerate() {
                    let taken = prerendered.take_snippet(module, index, context);
                    if filled && snippet.applies_in(kind) {
                        let rendered =
                            render_snippet(module, snippet, context, &mut formatted).unwrap();
                        assert_eq!(taken, Some(rendered), "{} snippet {index}", module.id);
                        snippets += 1;
                    } else {
                        assert_eq!(taken, None, "{} snippet {index}", module.id);
                    }
                }
            }
        }
        assert!(
            files > 100 && snippets > 50,
            "{files} files, {snippets} snippets"
        );
    }

    #[test]
    fn nothing_is_rendered_once_stopped_or_taken() {
        let catalog = Catalog::load().unwrap();
        let manifest = Manifest::parse(MANIFEST).unwrap();
        let context = Context::for_manifest(&manifest);
        let base = &catalog.base;
        let index = (base.files.iter())
            .position(|file| file.applies_in(None))
            .unwrap();

        let taken_first = Prerendered::default();
        assert_eq!(taken_first.take_file(base, index, &context), None);
        taken_first.fill(&manifest, &[base]);
        assert_eq!(taken_first.take_file(base, index, &context), None);

        let stopped = Prerendered::default();
        stopped.stop();
        stopped.fill(&manifest, &[base]);
        assert!(stopped.slots().is_empty());
    }
}
