//! The watcher that drives the daemon's scans: watches the vault (debounced, renames paired) and
//! sends the daemon a batch of relevant paths whenever files change. Falls back to polling when
//! the system's watch limit is reached. (The other watcher, undebounced, answers scans beside
//! the daemon: [`super::vouch`].)

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, new_debouncer, new_debouncer_opt};
use tokio::sync::mpsc::UnboundedSender;

/// What the watcher tells the daemon.
#[derive(Debug)]
pub enum Signal {
    /// Files or folders at these vault-relative paths changed; `None` when a look at some
    /// paths would not do (the watcher missed events, or the vault folder itself changed).
    Changed(Option<Vec<String>>),
    /// The watcher failed (for a person).
    Trouble(String),
}

/// A running watcher; dropping it stops watching.
pub enum Watching {
    /// Kernel events (inotify, FSEvents, ReadDirectoryChanges).
    #[allow(dead_code)] // held for its Drop, which stops watching
    Native(Debouncer<notify::RecommendedWatcher, notify_debouncer_full::RecommendedCache>),
    /// Polling, after the kernel refused more watches.
    #[allow(dead_code)] // held for its Drop, which stops watching
    Polling(Debouncer<notify::PollWatcher, notify_debouncer_full::NoCache>),
}

/// Watches `vault`, ignoring dot-folders and `archive` (when it is inside the vault).
pub fn watch(
    vault: &Path,
    archive: &Path,
    debounce: Duration,
    poll: Duration,
    tx: UnboundedSender<Signal>,
) -> Result<Watching, notify::Error> {
    let filter = Filter::new(vault, archive);
    let handler = {
        let tx = tx.clone();
        let filter = filter.clone();
        move |result: DebounceEventResult| forward(result, &filter, &tx)
    };
    let mut native = new_debouncer(debounce, None, handler)?;
    match native.watch(vault, RecursiveMode::Recursive) {
        Ok(()) => Ok(Watching::Native(native)),
        Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
            drop(native);
            tracing::warn!(
                "the system's inotify watch limit is reached (one watch per vault folder); raise it with \
                 `sudo sysctl fs.inotify.max_user_watches=524288` (and in /etc/sysctl.conf to keep it). \
                 Polling the vault every {} s meanwhile.",
                poll.as_secs_f32()
            );
            let handler = move |result: DebounceEventResult| forward(result, &filter, &tx);
            let mut polling = new_debouncer_opt::<_, notify::PollWatcher, _>(
                debounce,
                None,
                handler,
                notify_debouncer_full::NoCache,
                notify::Config::default().with_poll_interval(poll),
            )?;
            polling.watch(vault, RecursiveMode::Recursive)?;
            Ok(Watching::Polling(polling))
        }
        Err(e) => Err(e),
    }
}

fn forward(result: DebounceEventResult, filter: &Filter, tx: &UnboundedSender<Signal>) {
    match result {
        Ok(events) => {
            // Reads are not changes: counting them would make every scan (which reads the
            // files it hashes) trigger the next one.
            let changes: Vec<&notify::Event> = events
                .iter()
                .map(|e| &e.event)
                .filter(|e| !matches!(e.kind, notify::EventKind::Access(_)))
                .collect();
            // Events were dropped (the kernel's queue overflowed): only a full look will do.
            let mut every = changes.iter().any(|e| e.need_rescan());
            let mut paths = Vec::new();
            for path in changes.iter().flat_map(|e| e.paths.iter()) {
                if !filter.relevant(path) {
                    continue;
                }
                match filter.relative(path) {
                    Some(rel) => paths.push(rel),
                    None => every = true,
                }
            }
            if every {
                let _ = tx.send(Signal::Changed(None));
            } else if !paths.is_empty() {
                let _ = tx.send(Signal::Changed(Some(paths)));
            }
        }
        Err(errors) => {
            for e in errors {
                let _ = tx.send(Signal::Trouble(e.to_string()));
            }
        }
    }
}

/// Which paths matter: content of the vault, not dot-folders (`.obsidian/`, `.trash/`,
/// editors' temp files) and not the archive.
#[derive(Clone)]
pub struct Filter {
    vault: PathBuf,
    archive: Option<PathBuf>,
}

impl Filter {
    /// A filter for `vault`, excluding `archive` if it lives inside it.
    pub fn new(vault: &Path, archive: &Path) -> Filter {
        let vault = std::fs::canonicalize(vault).unwrap_or_else(|_| vault.to_path_buf());
        let archive = std::fs::canonicalize(archive)
            .ok()
            .filter(|a| a.starts_with(&vault));
        Filter { vault, archive }
    }

    /// The vault folder, as the kernel names it (symbolic links resolved).
    pub fn vault(&self) -> &Path {
        &self.vault
    }

    /// A changed path relative to the vault, with `/` separators; `None` for the vault folder
    /// itself or a path outside it.
    pub fn relative(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.vault).ok()?.to_str()?;
        (!rel.is_empty()).then(|| rel.replace('\\', "/"))
    }

    /// Whether a changed path is vault content. The vault folder itself matters (it may have
    /// been removed or replaced).
    pub fn relevant(&self, path: &Path) -> bool {
        if self.archive.as_ref().is_some_and(|a| path.starts_with(a)) {
            return false;
        }
        match path.strip_prefix(&self.vault) {
            Ok(rel) => crate::vault::is_content_path(&rel.to_string_lossy()),
            Err(_) => path == self.vault || self.vault.starts_with(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_folders_and_the_archive_are_not_relevant() {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault");
        std::fs::create_dir_all(vault.join("_archive")).unwrap();
        let f = Filter::new(&vault, &vault.join("_archive"));
        let v = std::fs::canonicalize(&vault).unwrap();
        assert!(f.relevant(&v.join("notes/a.md")));
        assert!(!f.relevant(&v.join(".obsidian/workspace.json")));
        assert!(!f.relevant(&v.join("notes/.a.md.swp")));
        assert!(!f.relevant(&v.join("_archive/objects/ab/x")));
        assert!(f.relevant(&v), "the vault itself");
    }
}
