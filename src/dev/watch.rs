//! Change detection by polling: the size and modification time of every file the services are
//! built from or read at start, compared twice a second. Polling needs no platform API, sees
//! changes on every file system (network and container mounts included), and the trees of a
//! workspace are small enough for it to cost nothing noticeable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use walkdir::WalkDir;

/// Files of the workspace root that are watched, besides the trees of [`WATCHED_DIRS`].
pub const WATCHED_FILES: [&str; 5] = [
    "Cargo.toml",
    "Cargo.lock",
    ".env",
    "saaskit.toml",
    ".cargo/config.toml",
];

/// Directories whose every file (sources, templates, migrations, ...) is watched.
pub const WATCHED_DIRS: [&str; 2] = ["crates", "services"];

/// How often the files are compared.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// How long the files must stay unchanged after a change before it is reported, so that an
/// editor saving several files (or a `saaskit add`) gives one rebuild.
pub const QUIET: Duration = Duration::from_millis(300);

/// Size and modification time of each watched file, by `/`-separated path from the root.
pub type Snapshot = BTreeMap<String, (u64, Option<SystemTime>)>;

/// Whether a file under a watched directory counts: build output, version control, editors'
/// swap and backup files and saaskit's own temporary files do not.
pub fn is_watched(relative: &str) -> bool {
    relative.split('/').all(|part| {
        !(part == "target"
            || part == "node_modules"
            // A Node service's build output (`npm run build` writes it as the service restarts).
            || part == "dist"
            || part == "coverage"
            || (part.starts_with('.') && part != ".env")
            || part.ends_with('~')
            || part.ends_with(".swp")
            || part.ends_with(".swx")
            || part.ends_with(".saaskit-tmp")
            || part == "4913")
    })
}

pub fn snapshot(root: &Path) -> Snapshot {
    let mut files = Snapshot::new();
    for file in WATCHED_FILES {
        if let Ok(metadata) = std::fs::metadata(root.join(file)) {
            files.insert(file.to_string(), (metadata.len(), metadata.modified().ok()));
        }
    }
    for dir in WATCHED_DIRS {
        let walker = WalkDir::new(root.join(dir))
            .into_iter()
            .filter_entry(|entry| {
                entry.depth() == 0 || is_watched(&entry.file_name().to_string_lossy())
            });
        for entry in walker.filter_map(Result::ok) {
            if !entry.file_type().is_file() {
                continue;
            }
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            let Ok(relative) = entry.path().strip_prefix(root) else {
                continue;
            };
            let relative = relative.to_string_lossy().replace('\\', "/");
            files.insert(relative, (metadata.len(), metadata.modified().ok()));
        }
    }
    files
}

/// Paths added, removed or modified from `before` to `after`.
pub fn changes(before: &Snapshot, after: &Snapshot) -> BTreeSet<String> {
    let mut changed: BTreeSet<String> = after
        .iter()
        .filter(|(path, stamp)| before.get(*path) != Some(stamp))
        .map(|(path, _)| path.clone())
        .collect();
    changed.extend(
        before
            .keys()
            .filter(|path| !after.contains_key(*path))
            .cloned(),
    );
    changed
}

/// The services among `services` to restart because of `changed` even when their binary is
/// the same: `.env` is read by every service at start, and a service's own directory may hold
/// files it reads at run time (templates, static files). Whatever else changed restarts the
/// services whose binary the rebuild changed.
pub fn services_touched(changed: &BTreeSet<String>, services: &[&str]) -> BTreeSet<String> {
    let mut touched = BTreeSet::new();
    for path in changed {
        if path == ".env" {
            touched.extend(services.iter().map(|s| s.to_string()));
        } else if let Some(rest) = path.strip_prefix("services/") {
            let name = rest.split('/').next().unwrap_or_default();
            if services.contains(&name) {
                touched.insert(name.to_string());
            }
        }
    }
    touched
}

/// Polls the workspace at `root` on a thread of its own and sends each settled set of changes
/// since [`Watcher::start`] as `event(changes)`, until dropped.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    pub fn start<E: Send + 'static>(
        root: &Path,
        events: Sender<E>,
        event: fn(BTreeSet<String>) -> E,
    ) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let root = root.to_path_buf();
        // Taken now: what changes from here on is reported.
        let mut seen = snapshot(&root);
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(INTERVAL);
                    let now = snapshot(&root);
                    let mut changed = changes(&seen, &now);
                    if changed.is_empty() {
                        continue;
                    }
                    seen = now;
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(QUIET);
                        let now = snapshot(&root);
                        let more = changes(&seen, &now);
                        if more.is_empty() {
                            break;
                        }
                        changed.extend(more);
                        seen = now;
                    }
                    if events.send(event(changed)).is_err() {
                        return;
                    }
                }
            })
        };
        Watcher {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(paths: &[&str]) -> BTreeSet<String> {
        paths.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn build_output_version_control_and_editor_files_are_not_watched() {
        assert!(is_watched("services/api/src/main.rs"));
        assert!(is_watched("crates/core/migrations/sqlite/1_init.sql"));
        assert!(is_watched(".env"));
        assert!(!is_watched("services/api/target/debug/api"));
        assert!(!is_watched("services/nest/dist/main.js"));
        assert!(!is_watched("services/nest/node_modules/jose/package.json"));
        assert!(is_watched("services/nest/src/main.ts"));
        assert!(!is_watched("crates/core/.git/HEAD"));
        assert!(!is_watched("services/api/src/.main.rs.swp"));
        assert!(!is_watched("services/api/src/main.rs~"));
        assert!(!is_watched("services/api/src/main.rs.saaskit-tmp"));
        assert!(!is_watched("services/api/src/4913"));
    }

    #[test]
    fn added_removed_and_modified_files_are_changes() {
        let t = |s: u64| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        let before: Snapshot = [
            ("a".to_string(), (1, t(1))),
            ("b".to_string(), (1, t(1))),
            ("c".to_string(), (1, t(1))),
        ]
        .into();
        let after: Snapshot = [
            ("a".to_string(), (1, t(1))),
            ("b".to_string(), (1, t(2))),
            ("d".to_string(), (1, t(1))),
        ]
        .into();
        assert_eq!(changes(&before, &after), set(&["b", "c", "d"]));
        assert!(changes(&after, &after).is_empty());
    }

    #[test]
    fn env_touches_every_service_and_a_service_directory_its_service() {
        let services = ["api", "admin", "webhooks"];
        assert_eq!(
            services_touched(&set(&[".env"]), &services),
            set(&["api", "admin", "webhooks"])
        );
        assert_eq!(
            services_touched(
                &set(&["services/admin/templates/index.html", "services/billing/x"]),
                &services
            ),
            set(&["admin"])
        );
        assert!(
            services_touched(&set(&["crates/core/src/lib.rs", "Cargo.toml"]), &services).is_empty()
        );
    }

    #[test]
    fn a_snapshot_sees_a_modified_source_and_ignores_build_output() {
        let root = tempfile::tempdir().unwrap();
        let src = root.path().join("services/api/src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(root.path().join("services/api/target")).unwrap();
        std::fs::write(src.join("main.rs"), "fn main() {}").unwrap();
        std::fs::write(root.path().join("services/api/target/x"), "").unwrap();
        std::fs::write(root.path().join(".env"), "A=1\n").unwrap();
        let before = snapshot(root.path());
        assert_eq!(
            before.keys().cloned().collect::<BTreeSet<_>>(),
            set(&[".env", "services/api/src/main.rs"])
        );
        std::fs::write(src.join("main.rs"), "fn main() { }").unwrap();
        assert_eq!(
            changes(&before, &snapshot(root.path())),
            set(&["services/api/src/main.rs"])
        );
    }
}
