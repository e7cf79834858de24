//! The daemon vouches for the files it saw not change (git's fsmonitor, for `vaultkeep scan`
//! beside it): a scan asks which vault paths may differ from what the archive's index says and
//! looks at those only, instead of a `stat` of every file.
//!
//! A watcher of its own, undebounced, numbers every change the kernel reports ([`Touched`]).
//! A path is forgotten once a scan that started after its last change has looked at it and
//! saved the index. A scan asks over a Unix socket in the archive (`watch/socket`); the daemon
//! then writes a cookie file where that same watcher sees it. The kernel queues a watcher's
//! events in order, so once the cookie's event has arrived, so has the event of every change
//! made before the question: the answer misses none. When the watcher may have missed events
//! (a full kernel queue, the vault gone), the daemon vouches for nothing until a scan of every
//! file has started since.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use super::events::Filter;
use crate::scan::Covers;
use crate::store::Store;

/// The socket's name in the daemon's folder.
const SOCKET: &str = "socket";
/// What a scan sends.
const QUESTION: &str = "changed-paths 1";
/// How long the daemon waits for its watcher to catch up with a question.
const CATCH_UP: Duration = Duration::from_secs(2);
/// Changed paths held at most: past this many the daemon vouches for nothing until a scan of
/// every file (a bounded answer, and bounded memory during a burst).
const MOST_PATHS: usize = 100_000;

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// Every other file is as the index says.
    Paths(Vec<String>),
    /// The daemon cannot vouch for the vault now, and why.
    Unknown(String),
}

/// The changes the watcher reported that no finished scan has looked at yet.
#[derive(Debug)]
pub struct Touched {
    /// The number the next change gets.
    next: u64,
    /// Each changed vault path, with the number of its last change.
    paths: HashMap<String, u64>,
    /// Changes up to this number may have been missed, and why: nothing is vouched for until
    /// a scan of every file that started later.
    lost: Option<(u64, String)>,
    /// Paths the scans could not read: a scan beside the daemon looks at them again, to report
    /// them as a scan of every file would.
    troubled: BTreeSet<String>,
    /// Files the scans reached through a symbolic link: a change of the target is reported
    /// under the target's path only, so every scan looks at them.
    linked: BTreeSet<String>,
}

impl Default for Touched {
    fn default() -> Self {
        Touched {
            next: 1,
            paths: HashMap::new(),
            lost: Some((0, "its first scan has not finished".into())),
            troubled: BTreeSet::new(),
            linked: BTreeSet::new(),
        }
    }
}

impl Touched {
    /// A change at `path` (relative to the vault).
    pub fn changed(&mut self, path: String) {
        self.paths.insert(path, self.next);
        self.next += 1;
        if self.paths.len() > MOST_PATHS {
            self.lose(format!("more than {MOST_PATHS} paths changed at once"));
        }
    }

    /// Changes may have been missed from now on.
    pub fn lose(&mut self, why: impl Into<String>) {
        self.lost = Some((self.next, why.into()));
        self.next += 1;
        // A scan of every file looks at them all.
        self.paths.clear();
    }

    /// The mark of a scan starting now: it sees every change numbered below it.
    pub fn mark(&self) -> u64 {
        self.next
    }

    /// A scan that started at `mark` finished and saved the index: it looked at the `changed`
    /// paths (every file: `None`), could not read `problems` and reached `linked` through a
    /// symbolic link.
    pub fn looked(
        &mut self,
        mark: u64,
        changed: Option<&BTreeSet<String>>,
        problems: impl IntoIterator<Item = String>,
        linked: impl IntoIterator<Item = String>,
    ) {
        match changed {
            None => {
                self.paths.retain(|_, n| *n >= mark);
                if self.lost.as_ref().is_some_and(|(n, _)| *n < mark) {
                    self.lost = None;
                }
                self.troubled.clear();
                self.linked.clear();
            }
            Some(changed) => {
                let covers = Covers::new(changed);
                self.paths.retain(|p, n| *n >= mark || !covers.covers(p));
                self.troubled.retain(|p| !covers.covers(p));
                self.linked.retain(|p| !covers.covers(p));
            }
        }
        self.troubled.extend(problems);
        self.linked.extend(linked);
    }

    /// The files reached through a symbolic link, which every scan looks at.
    pub fn linked(&self) -> impl Iterator<Item = &String> {
        self.linked.iter()
    }

    /// What the daemon can vouch for now.
    pub fn answer(&self) -> Answer {
        match &self.lost {
            Some((_, why)) => Answer::Unknown(why.clone()),
            None => {
                let mut paths: BTreeSet<&String> = self.paths.keys().collect();
                paths.extend(&self.troubled);
                paths.extend(&self.linked);
                Answer::Paths(paths.into_iter().cloned().collect())
            }
        }
    }
}

/// The daemon's side: the watcher that numbers changes and sees cookies, and the answers.
pub struct Vouch {
    touched: Arc<Mutex<Touched>>,
    /// The last cookie the watcher saw.
    seen: tokio::sync::watch::Sender<u64>,
    /// `watch/` in the archive: the socket and the cookies.
    dir: PathBuf,
    filter: Filter,
    watcher: Option<notify::RecommendedWatcher>,
}

impl Vouch {
    /// For the daemon of `vault` recording into `store`; watches nothing yet.
    pub fn new(vault: &Path, store: &Store) -> Vouch {
        let dir = store.watch_dir();
        Vouch {
            touched: Arc::default(),
            seen: tokio::sync::watch::Sender::new(0),
            filter: Filter::new(vault, store.root()),
            dir,
            watcher: None,
        }
    }

    /// Starts numbering changes (before the first scan, which is then the first that counts).
    /// When the system refuses another watcher, nothing is vouched for: scans beside the daemon
    /// look at every file.
    pub fn watch(&mut self) {
        self.watcher = None;
        if let Some(kind) = crate::fsutil::network_file_system(self.filter.vault()) {
            tracing::info!(
                "the vault is on {kind}: changes made on another machine raise no event here, so a scan beside the daemon looks at every file"
            );
            self.lock().lose(format!("the vault is on {kind}"));
            return;
        }
        match self.start() {
            Ok(w) => self.watcher = Some(w),
            Err(e) => {
                tracing::warn!(
                    "cannot watch the vault for `vaultkeep scan` ({e}): a scan beside the daemon looks at every file"
                );
                self.lock()
                    .lose(format!("its watcher could not start: {e}"));
            }
        }
    }

    fn start(&self) -> Result<notify::RecommendedWatcher, notify::Error> {
        std::fs::create_dir_all(&self.dir).map_err(notify::Error::io)?;
        let dir = std::fs::canonicalize(&self.dir).map_err(notify::Error::io)?;
        let (touched, seen, filter) =
            (self.touched.clone(), self.seen.clone(), self.filter.clone());
        let cookies = dir.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let mut t = touched.lock().unwrap_or_else(|e| e.into_inner());
                let event = match event {
                    Ok(event) => event,
                    Err(e) => return t.lose(format!("its watcher failed: {e}")),
                };
                if matches!(event.kind, notify::EventKind::Access(_)) {
                    return;
                }
                if event.need_rescan() {
                    t.lose("its watcher missed changes (the kernel's event queue overflowed)");
                }
                let mut cookie = None;
                for path in &event.paths {
                    if let Some(n) = cookie_number(&cookies, path) {
                        cookie = cookie.max(Some(n));
                    } else if filter.relevant(path) {
                        match filter.relative(path) {
                            Some(rel) => t.changed(rel),
                            None => t.lose("the vault folder itself changed"),
                        }
                    }
                }
                // Said once the changes before it are counted, and not under their lock.
                drop(t);
                if let Some(n) = cookie {
                    seen.send_if_modified(|s| std::mem::replace(s, n.max(*s)) < n);
                }
            })?;
        watcher.watch(self.filter.vault(), RecursiveMode::Recursive)?;
        if !dir.starts_with(self.filter.vault()) {
            watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        }
        Ok(watcher)
    }

    /// Whether the next scan should look at every file: the watcher runs but may have missed
    /// changes, and only such a scan lets the daemon vouch again.
    pub fn needs_every_file(&self) -> bool {
        self.watcher.is_some() && self.lock().lost.is_some()
    }

    /// Stops watching: nothing is vouched for until the next scan of every file.
    pub fn stop(&mut self, why: &str) {
        self.watcher = None;
        self.lock().lose(why);
    }

    /// Locks the changes (a scan starting takes its mark; a finished one says what it saw).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Touched> {
        self.touched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers scans on `watch/socket` until the task is dropped. `None` (logged) when the
    /// socket cannot be made: scans beside the daemon then look at every file.
    pub fn serve(&self) -> Option<tokio::task::JoinHandle<()>> {
        let socket = self.dir.join(SOCKET);
        let listener = std::fs::create_dir_all(&self.dir)
            .and_then(|()| match std::fs::remove_file(&socket) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => UnixListener::bind(&socket),
            })
            .and_then(|listener| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
                Ok(listener)
            });
        let listener = match listener {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(
                    "cannot listen on {} ({e}): a scan beside the daemon looks at every file",
                    socket.display()
                );
                return None;
            }
        };
        let asked = Asked {
            touched: self.touched.clone(),
            seen: self.seen.subscribe(),
            cookies: Arc::new(AtomicU64::new(1)),
            dir: self.dir.clone(),
        };
        Some(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let asked = asked.clone();
                tokio::spawn(async move {
                    if let Err(e) = asked.answer(stream).await {
                        tracing::debug!("a scan's question went unanswered: {e}");
                    }
                });
            }
        }))
    }

    /// Removes the socket and any cookie left (the daemon stops).
    pub fn clean_up(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What answering needs, shared with each connection.
#[derive(Clone)]
struct Asked {
    touched: Arc<Mutex<Touched>>,
    seen: tokio::sync::watch::Receiver<u64>,
    cookies: Arc<AtomicU64>,
    dir: PathBuf,
}

impl Asked {
    async fn answer(mut self, stream: UnixStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut question = String::new();
        tokio::time::timeout(
            CATCH_UP,
            tokio::io::BufReader::new(read).read_line(&mut question),
        )
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)??;
        let answer = if question.trim_end() == QUESTION {
            self.catch_up().await
        } else {
            Answer::Unknown(format!("it does not understand {:?}", question.trim_end()))
        };
        let mut line = serde_json::to_vec(&answer)?;
        line.push(b'\n');
        write.write_all(&line).await
    }

    /// Once the watcher has seen a cookie written now, what the daemon vouches for.
    async fn catch_up(&mut self) -> Answer {
        let n = self.cookies.fetch_add(1, Ordering::Relaxed);
        let cookie = self.dir.join(format!("cookie-{n}"));
        if let Err(e) = std::fs::write(&cookie, b"") {
            return Answer::Unknown(format!("cannot write {}: {e}", cookie.display()));
        }
        // (The value seen is dropped at once: it is locked while held.)
        let caught_up = tokio::time::timeout(CATCH_UP, self.seen.wait_for(|s| *s >= n))
            .await
            .is_ok_and(|seen| seen.is_ok());
        let _ = std::fs::remove_file(&cookie);
        if caught_up {
            self.touched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .answer()
        } else {
            Answer::Unknown("its watcher did not catch up in time".into())
        }
    }
}

/// The number of a cookie file in `dir`.
fn cookie_number(dir: &Path, path: &Path) -> Option<u64> {
    if path.parent()? != dir {
        return None;
    }
    path.file_name()?
        .to_str()?
        .strip_prefix("cookie-")?
        .parse()
        .ok()
}

/// The scan's side: asks the daemon recording into `store` which paths may have changed
/// since what the index says. `Err` says why it cannot vouch (no daemon, an old one, its
/// watcher missed events): the scan then looks at every file.
pub fn ask(store: &Store) -> Result<BTreeSet<String>, String> {
    let socket = store.watch_dir().join(SOCKET);
    let ask = || -> std::io::Result<Answer> {
        let mut stream = std::os::unix::net::UnixStream::connect(&socket)?;
        stream.set_read_timeout(Some(CATCH_UP * 2))?;
        stream.set_write_timeout(Some(CATCH_UP))?;
        stream.write_all(format!("{QUESTION}\n").as_bytes())?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        Ok(serde_json::from_str(&line)?)
    };
    match ask() {
        Ok(Answer::Paths(paths)) => Ok(paths.into_iter().collect()),
        Ok(Answer::Unknown(why)) => Err(format!("the daemon cannot vouch for the vault: {why}")),
        Err(e) => Err(format!(
            "cannot ask the daemon on {}: {e}",
            socket.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(paths: &[&str]) -> BTreeSet<String> {
        paths.iter().map(|p| p.to_string()).collect()
    }

    /// A scan of every file that started now has finished.
    fn scanned_every_file(t: &mut Touched) {
        let mark = t.mark();
        t.looked(mark, None, [], []);
    }

    fn paths(t: &Touched) -> Vec<String> {
        match t.answer() {
            Answer::Paths(p) => p,
            Answer::Unknown(why) => panic!("unknown: {why}"),
        }
    }

    #[test]
    fn nothing_is_vouched_for_until_a_scan_of_every_file_started_after_the_loss() {
        let mut t = Touched::default();
        assert!(matches!(t.answer(), Answer::Unknown(_)));
        t.changed("a.md".into());
        let mark = t.mark();
        t.changed("b.md".into());
        t.looked(mark, None, [], []);
        // b.md changed after the scan started: it may not have seen it.
        assert_eq!(paths(&t), ["b.md"]);
        let early = t.mark();
        t.lose("overflow");
        t.looked(early, None, [], []);
        assert!(matches!(t.answer(), Answer::Unknown(w) if w == "overflow"));
        // A scan of some paths does not make up for lost events.
        let mark = t.mark();
        t.looked(mark, Some(&set(&["b.md"])), [], []);
        assert!(matches!(t.answer(), Answer::Unknown(_)));
        scanned_every_file(&mut t);
        assert!(paths(&t).is_empty());
    }

    #[test]
    fn a_scan_of_changed_paths_forgets_what_it_covered_before_it_started() {
        let mut t = Touched::default();
        scanned_every_file(&mut t);
        for p in ["notes/a.md", "notes/sub/b.md", "other.md", "notes2/c.md"] {
            t.changed(p.into());
        }
        let mark = t.mark();
        t.changed("notes/late.md".into());
        // A folder covers what it holds, not a sibling whose name it prefixes.
        t.looked(
            mark,
            Some(&set(&["notes"])),
            ["notes/locked".to_string()],
            ["notes/alias.md".to_string()],
        );
        assert_eq!(
            paths(&t),
            [
                "notes/alias.md",
                "notes/late.md",
                "notes/locked",
                "notes2/c.md",
                "other.md"
            ]
        );
        // A path seen again later stays, with its new number.
        t.changed("other.md".into());
        t.looked(mark, Some(&set(&["other.md", "notes/locked"])), [], []);
        assert_eq!(
            paths(&t),
            ["notes/alias.md", "notes/late.md", "notes2/c.md", "other.md"]
        );
        // A scan of every file finds no problem and no link any more.
        scanned_every_file(&mut t);
        assert!(paths(&t).is_empty());
    }

    #[test]
    fn too_many_changes_at_once_vouch_for_nothing() {
        let mut t = Touched::default();
        scanned_every_file(&mut t);
        for i in 0..=MOST_PATHS {
            t.changed(format!("{i}.md"));
        }
        assert!(matches!(t.answer(), Answer::Unknown(_)));
        assert!(t.paths.is_empty());
    }

    #[test]
    fn cookies_are_files_of_the_watch_folder_only() {
        let dir = Path::new("/archive/watch");
        assert_eq!(cookie_number(dir, &dir.join("cookie-12")), Some(12));
        assert_eq!(cookie_number(dir, &dir.join("socket")), None);
        assert_eq!(cookie_number(dir, Path::new("/vault/watch/cookie-3")), None);
    }
}
