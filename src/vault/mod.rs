//! The vault on disk: which files are content, found without following symlinks out of it.
//!
//! `.obsidian/`, `.trash/`, `.git/` and every other dot-file or dot-folder are not content
//! (design.md, "Words"), nor is the archive when it lives inside the vault.
//!
//! A scan's walk lists a folder that did not change since the last recording scan as that scan
//! kept it ([`folders`]), and stats every file.

mod folders;

use std::collections::VecDeque;
use std::ffi::CStr;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rayon::prelude::*;
use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, RawDir, openat, statat};

use crate::report::Problem;
use folders::{FolderKey, Keeper, Known};

/// Notes are `.md` files; everything else is an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A Markdown note.
    Note,
    /// Any other file (PNG, PDF, SVG...).
    Asset,
}

impl FileKind {
    /// The kind of a vault path, by its extension.
    pub fn of(path: &str) -> FileKind {
        let is_md = path
            .rsplit_once('.')
            .is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("md"));
        if is_md {
            FileKind::Note
        } else {
            FileKind::Asset
        }
    }
}

/// What a stat says about a file: enough to tell whether it changed (git's index keeps the
/// same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch (i64 reaches 2262, and keeps the per-file
    /// entries of a large vault small).
    pub mtime_ns: i64,
    /// Inode number.
    pub ino: u64,
}

impl Stat {
    /// From a std metadata (follows what the caller followed).
    pub fn of(meta: &fs::Metadata) -> Stat {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Stat {
                size: meta.len(),
                mtime_ns: nanos(meta.mtime(), meta.mtime_nsec()),
                ino: meta.ino(),
            }
        }
        #[cfg(not(unix))]
        {
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            Stat {
                size: meta.len(),
                mtime_ns,
                ino: 0,
            }
        }
    }

    #[allow(clippy::unnecessary_cast)] // the stat fields' types differ between platforms
    fn of_raw(st: &rustix::fs::Stat) -> Stat {
        Stat {
            size: st.st_size as u64,
            mtime_ns: nanos(st.st_mtime as i64, st.st_mtime_nsec as i64),
            ino: st.st_ino as u64,
        }
    }
}

/// Seconds and nanoseconds as ns since the epoch, saturating (beyond 1677-2262).
fn nanos(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// A content file of the vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultFile {
    /// Path relative to the vault, with `/` separators.
    pub path: String,
    /// Note or asset.
    pub kind: FileKind,
    /// What the walk's stat said.
    pub stat: Stat,
}

/// The content files of a vault and what could not be walked.
#[derive(Debug, Default)]
pub struct Listing {
    /// Content files, sorted by path.
    pub files: Vec<VaultFile>,
    /// Folders that could not be read, symlinks not followed, odd names.
    pub problems: Vec<Problem>,
    /// Paths whose contents could not be seen (see [`is_unseen`]).
    pub unseen: Vec<String>,
    /// Files listed through a symbolic link: a change of the target is reported by the
    /// kernel under the target's path only.
    pub linked: Vec<String>,
}

/// Whether `path` is at or under one of `unseen`, the paths a listing could not see into: a
/// folder it could not read (too many open files, a permission, a disk error) or a file it
/// could not stat. What the archive recorded there is not gone: it was not seen, and taking it
/// for deleted would record deletions that never happened. The empty path is the whole vault.
pub fn is_unseen(unseen: &[String], path: &str) -> bool {
    unseen.iter().any(|u| {
        u.is_empty()
            || path
                .strip_prefix(u.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// What a listing could not do: problems to report, and the paths it could not see into;
/// and the files it reached through a symbolic link.
#[derive(Debug, Default)]
struct Trouble {
    problems: Vec<Problem>,
    unseen: Vec<String>,
    linked: Vec<String>,
}

impl Trouble {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    /// `path` could not be seen into, for the reason `message`.
    fn unseen(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        self.unseen.push(path.clone());
        self.problem(path, message);
    }

    /// What a symlink that was not followed means.
    fn unfollowed(&mut self, path: impl Into<String>, why: Unfollowed) {
        match why {
            Unfollowed::Problem(message) => self.problem(path, message),
            Unfollowed::Unseen(message) => self.unseen(path, message),
        }
    }

    fn into_listing(self, files: Vec<VaultFile>) -> Listing {
        Listing {
            files,
            problems: self.problems,
            unseen: self.unseen,
            linked: self.linked,
        }
    }

    fn extend(&mut self, other: Trouble) {
        let Trouble {
            problems,
            unseen,
            linked,
        } = other;
        self.problems.extend(problems);
        self.unseen.extend(unseen);
        self.linked.extend(linked);
    }
}

/// A path a person typed for a vault file, as a vault-relative path: relative to the vault
/// (`notes/a.md`), or with the vault folder in front as seen from the working folder
/// (`vault/notes/a.md`), or absolute inside the vault. `known` says whether a vault-relative
/// path names a file the vault or the archive has; it wins when a path could be read both
/// ways. `None` when the path lies outside the vault.
pub fn relative_path(vault: &Path, typed: &str, known: impl Fn(&str) -> bool) -> Option<String> {
    let plain = typed.replace('\\', "/");
    let plain = plain.trim_start_matches("./").to_string();
    let typed_path = Path::new(typed);
    if typed_path.is_relative() && known(&plain) {
        return Some(plain);
    }
    let absolute = |p: &Path| -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().map_or_else(|_| p.to_path_buf(), |d| d.join(p))
        }
    };
    let root = fs::canonicalize(vault).unwrap_or_else(|_| absolute(vault));
    // The file may be gone (recovering a deleted note): resolve its folder, keep its name.
    let full = absolute(typed_path);
    let resolved = match (full.parent(), full.file_name()) {
        (Some(dir), Some(name)) => fs::canonicalize(dir).map_or(full.clone(), |d| d.join(name)),
        _ => full.clone(),
    };
    match resolved.strip_prefix(&root) {
        Ok(rel) if !rel.as_os_str().is_empty() => Some(rel.to_string_lossy().replace('\\', "/")),
        _ if typed_path.is_relative() => Some(plain),
        _ => None,
    }
}

/// Whether a vault-relative path is content (no dot-file or dot-folder on the way).
pub fn is_content_path(path: &str) -> bool {
    !path.split('/').any(|part| part.starts_with('.'))
}

/// Looks again at some vault-relative paths only, as a file watcher reported them, with the
/// walk's rules: a file is stat'ed, a folder walked, and a path that is missing, is not content
/// or goes through a symlinked folder yields nothing. Files come in no particular order (the
/// caller merges them with others and sorts once); the caller drops paths under others.
pub fn look_at(vault: &Path, exclude: &[PathBuf], paths: &[&str]) -> Listing {
    let walk = Walk::new(vault, exclude);
    let looked: Vec<(Vec<VaultFile>, Trouble)> =
        paths.par_iter().map(|rel| walk.look(rel)).collect();
    let (mut files, mut trouble) = (Vec::new(), Trouble::default());
    for (more, found) in looked {
        files.extend(more);
        trouble.extend(found);
    }
    trouble.problems.sort_by(|a, b| a.path.cmp(&b.path));
    trouble.into_listing(files)
}

/// The vault's real path, and the excluded folders as vault-relative paths.
fn resolved(vault: &Path, exclude: &[PathBuf]) -> (PathBuf, Vec<String>) {
    let root = fs::canonicalize(vault).unwrap_or_else(|_| vault.to_path_buf());
    let excluded: Vec<String> = exclude
        .iter()
        .filter_map(|x| fs::canonicalize(x).ok())
        .filter_map(|x| {
            x.strip_prefix(&root)
                .ok()
                .and_then(|rel| rel.to_str())
                .map(|r| r.replace('\\', "/"))
        })
        .filter(|rel| !rel.is_empty())
        .collect();
    (root, excluded)
}

/// Bytes of folder entries read per `getdents` call: a few hundred names.
const DIRENT_BUFFER: usize = 16 * 1024;

/// Why a pipe, socket or device in the vault is not listed.
const NOT_REGULAR: &str = "not a regular file (a pipe, socket or device); skipped";

/// An entry of a folder read: a file with its kind and what its stat said, or a subfolder
/// (`None`). Its name lies in the folder's names (see [`Item::name`]): the walk makes a
/// file's path only as it gives the file, so a folder read ahead holds one string of names,
/// not a path per file.
struct Item {
    at: u32,
    len: u32,
    file: Option<(FileKind, Stat)>,
    /// Its place in the order the walk stat'ed the folder's entries: their inodes' order for
    /// a folder read anew (what a listing kept for the next walk records), the kept names'
    /// order for a folder listed as kept (whose listing is not written again).
    listed: u32,
}

impl Item {
    /// Its name, in the names of its folder.
    fn name<'n>(&self, names: &'n str) -> &'n str {
        &names[self.at as usize..(self.at + self.len) as usize]
    }

    /// What orders entries as their paths sort: a folder's files all follow `name/`, so a
    /// folder sorts as its name with a `/` (by byte, `-` < `.` < `/`: `a-b/` < `a.md` < `a/`).
    fn sort_key<'n>(&self, names: &'n str) -> SortKey<'n> {
        SortKey(self.name(names), self.file.is_none())
    }
}

/// A name, and whether a `/` follows it.
#[derive(PartialEq, Eq)]
struct SortKey<'a>(&'a str, bool);

impl Ord for SortKey<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        let n = a.len().min(b.len());
        // Past the common length, the next byte is the name's, or the folder's `/`, or none.
        let next = |s: &[u8], dir: bool| s.get(n).copied().or(dir.then_some(b'/'));
        a[..n]
            .cmp(&b[..n])
            .then_with(|| next(a, self.1).cmp(&next(b, other.1)))
    }
}

impl PartialOrd for SortKey<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The content files of a vault, one at a time in path order, as a scan takes them. Folders
/// are read ahead of the walk on the thread pool, so that every core stats files while the
/// walk goes on, and what is held is what was read ahead, not the vault (issue 14). Each file
/// is stat'ed relative to its folder's descriptor, which is what makes an unchanged rescan
/// cheap.
pub struct Walker {
    walk: Arc<Walk>,
    /// The folders being listed, innermost last, with what each has left to give.
    open: Vec<Folder>,
    /// Files in the folders read ahead and not reached yet.
    ahead_files: Arc<AtomicUsize>,
    /// The folders handed to the pool, nearest first, until one is seen begun.
    handed: VecDeque<Arc<Ahead>>,
    /// The threads that read folders ahead (see [`readers`]); none: the walk reads them all.
    readers: Option<Arc<rayon::ThreadPool>>,
    trouble: Trouble,
    /// Where the folders' listings are kept for the next walk, as the walk reaches them.
    keeper: Option<Box<Keeper>>,
}

/// A folder read, with what it has left to give in path order.
struct Folder {
    /// Open while subfolders are left to open in it (`None`: none, or it could not be read).
    fd: Option<Arc<OwnedFd>>,
    /// Its vault-relative path (empty for the vault), and the names of its entries.
    rel: String,
    names: String,
    items: std::vec::IntoIter<Item>,
    /// Its subfolders, in path order, and how many the walk has reached.
    folders: Vec<Subfolder>,
    reached: usize,
    /// Files it lists.
    files: usize,
    /// Its listing, to keep for the next walk (see [`folders`]).
    kept: Option<(FolderKey, folders::ToKeep)>,
}

/// A subfolder of a folder read, until the walk reaches it.
struct Subfolder {
    path: String,
    /// Where its name starts in `path`.
    name_at: usize,
    /// Where it is left once handed to the pool to be read ahead.
    ahead: Option<Arc<Slot>>,
}

/// Where a folder read on the pool is left for the walk.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    done: Condvar,
}

#[derive(Default)]
struct SlotState {
    /// Whether a thread began to read it: the pool, or the walk, which reads a folder it
    /// reaches before the pool began it rather than wait.
    begun: bool,
    read: Option<(Folder, Trouble)>,
    /// Whether the walk waits for it: only then is it woken (a wake is a system call, and
    /// most folders are read before the walk reaches them).
    waiting: bool,
}

/// Folders read ahead at most: enough to keep the readers busy on folders of a few files.
/// Unchanged rescans on 2 cores with one reader: 32 folders 19.9 ms at 23,161 files and 62.7
/// ms at 88,987 (64: 19.9 and 72.1 ms, the walk and the reader taking turns; 256 and more
/// slower still, each step of the walk going through the whole window).
const READ_AHEAD: usize = 32;

/// Files read ahead at most: what a walk holds beyond the folders it is in.
const READ_AHEAD_FILES: usize = 16 * 1024;

/// The threads that read folders ahead of a walk, shared by every walk: one fewer than the
/// cores (`RAYON_NUM_THREADS`, when set, counts as the cores), for the walk's own thread reads
/// folders too. On 2 cores the unchanged rescan of 23,161 files took 19.9 ms with one reader
/// against 20.7 ms when the two threads of rayon's pool read ahead, and 62.7 against 65.8 ms at
/// 88,987 files: three busy threads on two cores cost more than the third one read. Hashing
/// keeps rayon's pool, a thread per core. `None` on one core (the walk reads every folder
/// itself), or when no thread can be started.
fn readers() -> Option<Arc<rayon::ThreadPool>> {
    static READERS: std::sync::OnceLock<Option<Arc<rayon::ThreadPool>>> =
        std::sync::OnceLock::new();
    READERS
        .get_or_init(|| {
            let cores = std::env::var("RAYON_NUM_THREADS")
                .ok()
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n > 0)
                .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
                .unwrap_or(1);
            let threads = cores.saturating_sub(1);
            if threads == 0 {
                return None;
            }
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("vaultkeep-reader-{i}"))
                .build()
                .map_err(|e| tracing::debug!("no threads to read folders ahead: {e}"))
                .ok()
                .map(Arc::new)
        })
        .clone()
}

impl Walker {
    /// Starts a walk of `vault`, skipping `exclude` (the archive, when it is inside): its
    /// first folders are read by the readers (see [`readers`]) from now on.
    #[cfg(test)]
    pub fn new(vault: &Path, exclude: &[PathBuf]) -> Walker {
        Walk::new(vault, exclude).walker(CWD, vault, "", None)
    }

    /// Starts a walk of `vault`, skipping `exclude` (the archive, when it is inside), that
    /// lists each folder that did not change since the last walk from the listings kept at
    /// `kept` (unless `reread`), and keeps its own there when `keep` (see the `folders`
    /// module). On a network file system every folder is read and nothing is kept.
    pub fn remembering(
        vault: &Path,
        exclude: &[PathBuf],
        kept: &Path,
        reread: bool,
        keep: bool,
    ) -> Walker {
        Walker::remembering_settled(vault, exclude, (kept, reread, keep), folders::SETTLED)
    }

    /// [`Walker::remembering`], keeping the listings of folders unchanged for `settled` ns.
    fn remembering_settled(
        vault: &Path,
        exclude: &[PathBuf],
        (kept, reread, keep): (&Path, bool, bool),
        settled: i64,
    ) -> Walker {
        let mut walk = Walk::new(vault, exclude);
        walk.settled = settled;
        if let Some(fs) = crate::fsutil::network_file_system(&walk.root) {
            tracing::debug!("the vault is on {fs}: every folder is read");
            return walk.walker(CWD, vault, "", None);
        }
        if !reread {
            walk.known = Known::open(kept, &walk.root).map(Arc::new);
        }
        let keeper = keep.then(|| Box::new(Keeper::create(kept, &walk.root, walk.known.clone())));
        walk.walker(CWD, vault, "", keeper)
    }

    /// Keeps the listings of every folder for the next walk, once the walk is over (a walk
    /// left unfinished keeps none).
    pub fn keep_listings(&mut self) {
        let Some(keeper) = self.keeper.take() else {
            return;
        };
        if !self.open.is_empty() {
            return;
        }
        tracing::debug!(
            folders = keeper.len(),
            unchanged = self.walk.remembered.load(Ordering::Relaxed),
            "listed the folders that did not change since the last scan as it kept them"
        );
        if let Err(e) = keeper.keep() {
            tracing::warn!("cannot keep the folder listings for the next scan: {e}");
        }
    }

    fn keep_listing(keeper: &mut Option<Box<Keeper>>, path: &str, folder: &mut Folder) {
        if let (Some(keeper), Some((key, listing))) = (keeper, folder.kept.take()) {
            keeper.add(path, key, &listing);
        }
    }

    /// Every file at once, and what could not be listed.
    #[cfg(test)]
    pub fn into_listing(mut self) -> Listing {
        let files: Vec<VaultFile> = self.by_ref().collect();
        debug_assert!(files.is_sorted_by(|a, b| a.path < b.path));
        let problems = self.problems();
        Listing {
            problems,
            ..std::mem::take(&mut self.trouble).into_listing(files)
        }
    }

    /// What could not be listed so far (folders that could not be read, symlinks not
    /// followed, odd names), sorted by path.
    pub fn problems(&mut self) -> Vec<Problem> {
        let mut problems = std::mem::take(&mut self.trouble.problems);
        problems.sort_by(|a, b| a.path.cmp(&b.path));
        problems
    }

    /// The paths the walk could not see into so far (see [`is_unseen`]).
    pub fn unseen(&self) -> &[String] {
        &self.trouble.unseen
    }

    /// The files listed so far through a symbolic link.
    pub fn linked(&mut self) -> Vec<String> {
        std::mem::take(&mut self.trouble.linked)
    }

    /// The innermost open folder's next subfolder, which the walk has reached: as read ahead
    /// (waiting for it if it is being read), or read now.
    fn reach(&mut self) -> Folder {
        let Some(parent) = self.open.last_mut() else {
            return Folder::unread();
        };
        let Some(sub) = parent.folders.get_mut(parent.reached) else {
            return Folder::unread();
        };
        parent.reached += 1;
        let path = std::mem::take(&mut sub.path);
        let (mut folder, trouble) = match sub.ahead.take() {
            Some(slot) if !slot.begin() => {
                // Being read on the pool: meanwhile the walk reads the nearest folders the
                // pool has not begun, rather than leave a core idle.
                while !slot.is_read() && self.help() {}
                let read = slot.wait();
                self.ahead_files.fetch_sub(read.0.files, Ordering::Relaxed);
                read
            }
            // Not handed to the pool, or handed and not begun: read here.
            _ => match &parent.fd {
                Some(fd) => self.walk.open(fd, &path, sub.name_at),
                None => (Folder::unread(), Trouble::default()),
            },
        };
        self.trouble.extend(trouble);
        Walker::keep_listing(&mut self.keeper, &path, &mut folder);
        folder
    }

    /// Hands the pool the folders not read yet among the next [`READ_AHEAD`] in path order
    /// (the nearest first: the walk reaches them first).
    fn read_ahead(&mut self) {
        let Some(readers) = &self.readers else {
            return;
        };
        let mut wanted = Vec::new();
        let mut window = READ_AHEAD;
        let files = &self.ahead_files;
        for folder in self.open.iter_mut().rev() {
            if look_ahead(folder, files, &mut window, &mut wanted) {
                break;
            }
        }
        // The pool begins them in the order they are handed: those at the front that it
        // began are the walk's no more.
        while self
            .handed
            .front()
            .is_some_and(|ahead| ahead.slot.is_begun())
        {
            self.handed.pop_front();
        }
        for ahead in wanted {
            let ahead = Arc::new(ahead);
            self.handed.push_back(ahead.clone());
            let (walk, files) = (self.walk.clone(), self.ahead_files.clone());
            readers.spawn_fifo(move || {
                ahead.read(&walk, &files);
            });
        }
    }

    /// Reads the nearest folder handed to the pool that no thread began; false when there is
    /// none left.
    fn help(&mut self) -> bool {
        while let Some(ahead) = self.handed.pop_front() {
            if ahead.read(&self.walk, &self.ahead_files) {
                return true;
            }
        }
        false
    }
}

/// A folder to read ahead: in its parent, at its path, its name starting where, and where to
/// leave it.
struct Ahead {
    parent: Arc<OwnedFd>,
    path: String,
    name_at: usize,
    slot: Arc<Slot>,
}

impl Ahead {
    /// Reads the folder into its slot, unless another thread began it; whether this one did.
    fn read(&self, walk: &Walk, files: &AtomicUsize) -> bool {
        if !self.slot.begin() {
            return false;
        }
        let read = walk.open(&self.parent, &self.path, self.name_at);
        files.fetch_add(read.0.files, Ordering::Relaxed);
        self.slot.put(read);
        true
    }
}

/// Goes through the subfolders `folder` has left in path order (and into those read ahead),
/// handing those not read yet to `wanted`, until `window` folders were seen or enough files
/// (counted by `files`) are read ahead; whether it stopped.
fn look_ahead(
    folder: &mut Folder,
    files: &AtomicUsize,
    window: &mut usize,
    wanted: &mut Vec<Ahead>,
) -> bool {
    let Some(fd) = &folder.fd else {
        return false;
    };
    for sub in &mut folder.folders[folder.reached..] {
        if *window == 0 {
            return true;
        }
        *window -= 1;
        match &sub.ahead {
            Some(slot) => {
                let mut state = slot.state.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((read, _)) = state.read.as_mut()
                    && look_ahead(read, files, window, wanted)
                {
                    return true;
                }
            }
            None => {
                if files.load(Ordering::Relaxed) >= READ_AHEAD_FILES {
                    return true;
                }
                let slot = Arc::new(Slot::default());
                sub.ahead = Some(slot.clone());
                wanted.push(Ahead {
                    parent: fd.clone(),
                    path: sub.path.clone(),
                    name_at: sub.name_at,
                    slot,
                });
            }
        }
    }
    false
}

impl Iterator for Walker {
    type Item = VaultFile;

    fn next(&mut self) -> Option<VaultFile> {
        loop {
            let innermost = self.open.last_mut()?;
            let Some(item) = innermost.items.next() else {
                self.open.pop();
                continue;
            };
            match item.file {
                Some((kind, stat)) => {
                    let path = join(&innermost.rel, item.name(&innermost.names));
                    return Some(VaultFile { path, kind, stat });
                }
                None => {
                    let folder = self.reach();
                    self.open.push(folder);
                    self.read_ahead();
                }
            }
        }
    }
}

impl Folder {
    fn unread() -> Folder {
        Folder {
            fd: None,
            rel: String::new(),
            names: String::new(),
            items: Vec::new().into_iter(),
            folders: Vec::new(),
            reached: 0,
            files: 0,
            kept: None,
        }
    }
}

impl Slot {
    /// Claims the read of the folder: false when another thread began it.
    fn begin(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        !std::mem::replace(&mut state.begun, true)
    }

    fn is_begun(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).begun
    }

    fn is_read(&self) -> bool {
        (self.state.lock().unwrap_or_else(|e| e.into_inner()).read).is_some()
    }

    fn put(&self, read: (Folder, Trouble)) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.read = Some(read);
        let waiting = state.waiting;
        drop(state);
        if waiting {
            self.done.notify_all();
        }
    }

    /// The folder once read. A walk on a thread of rayon's pool (a daemon's looks) runs the
    /// pool's other work meanwhile, looking again at least every millisecond; any other
    /// thread sleeps until it is done.
    fn wait(&self) -> (Folder, Trouble) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(done) = state.read.take() {
                return done;
            }
            if rayon::current_thread_index().is_some() {
                drop(state);
                let ran_other_work = rayon::yield_now() == Some(rayon::Yield::Executed);
                state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if !ran_other_work && state.read.is_none() {
                    // Nothing else to run: the read is under way on another thread. Sleep a
                    // little rather than spin, and look for other work again.
                    state.waiting = true;
                    state = self
                        .done
                        .wait_timeout(state, std::time::Duration::from_millis(1))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            } else {
                state.waiting = true;
                state = self.done.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

/// The rules of a walk: which vault, and what to skip.
#[derive(Clone)]
struct Walk {
    vault: PathBuf,
    /// The vault's real path.
    root: PathBuf,
    /// Excluded folders, vault-relative.
    excluded: Vec<String>,
    /// The folder listings the last walk kept.
    known: Option<Arc<Known>>,
    /// Whether this walk keeps its folders' listings.
    keeping: bool,
    /// When the walk started, ns since the epoch: a listing is kept only if its folder had
    /// not changed for `settled` ns by then.
    started_ns: i64,
    settled: i64,
    /// Folders listed as the last walk kept them.
    remembered: Arc<AtomicUsize>,
}

impl Walk {
    fn new(vault: &Path, exclude: &[PathBuf]) -> Walk {
        let (root, excluded) = resolved(vault, exclude);
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Walk {
            vault: vault.to_path_buf(),
            root,
            excluded,
            known: None,
            keeping: false,
            started_ns: i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX),
            settled: folders::SETTLED,
            remembered: Arc::default(),
        }
    }

    /// A walk of the folder at `path` (seen from `at`), at vault-relative `rel`, keeping its
    /// folders' listings with `keeper`.
    fn walker<Fd: AsFd>(
        mut self,
        at: Fd,
        path: &Path,
        rel: &str,
        keeper: Option<Box<Keeper>>,
    ) -> Walker {
        self.keeping = keeper.is_some();
        let mut walker = Walker {
            walk: Arc::new(self),
            open: Vec::new(),
            ahead_files: Arc::default(),
            handed: VecDeque::new(),
            readers: readers(),
            trouble: Trouble::default(),
            keeper,
        };
        match open_dir(at, path) {
            Ok(fd) => {
                let (mut folder, trouble) = walker.walk.read(fd, rel);
                walker.trouble = trouble;
                Walker::keep_listing(&mut walker.keeper, rel, &mut folder);
                walker.open.push(folder);
                walker.read_ahead();
            }
            Err(e) => walker.trouble.unseen(
                rel,
                if rel.is_empty() {
                    format!("cannot read the vault folder: {e}")
                } else {
                    format!("cannot read the folder: {e}")
                },
            ),
        }
        walker
    }

    /// Opens and reads the folder at vault-relative `path` in `parent` (its name starts at
    /// `name_at`).
    fn open(&self, parent: &OwnedFd, path: &str, name_at: usize) -> (Folder, Trouble) {
        match open_dir(parent, Path::new(&path[name_at..])) {
            Ok(fd) => self.read(fd, path),
            Err(e) => {
                let mut trouble = Trouble::default();
                trouble.unseen(path, format!("cannot read the folder: {e}"));
                (Folder::unread(), trouble)
            }
        }
    }

    /// Reads the folder open as `fd`, at vault-relative `rel` (empty for the root): its files
    /// stat'ed and its folders, in the order their paths sort. Its entries are those the last
    /// walk kept if it did not change since, else read from the folder.
    fn read(&self, fd: OwnedFd, rel: &str) -> (Folder, Trouble) {
        let key = (self.known.is_some() || self.keeping)
            .then(|| FolderKey::of(&fd))
            .flatten();
        let known = key.and_then(|key| self.known.as_ref()?.entries(rel, key));
        let mut reading = Reading {
            fd: &fd,
            rel,
            names: String::with_capacity(known.as_ref().map_or(0, |e| e.len())),
            order: Vec::with_capacity(known.as_ref().map_or(0, |e| e.count())),
            trouble: Trouble::default(),
            // What the order will lack, for a listing built anew (a kept one is kept as is).
            unlisted: (self.keeping && known.is_none()).then(folders::Unlisted::default),
        };
        match &known {
            Some(entries) => {
                self.remembered.fetch_add(1, Ordering::Relaxed);
                // Stat'ed in the order the walk that kept them did (see the `folders` module),
                // then listed in the order they sort.
                let mut listed: Vec<(folders::Kind, &CStr, Option<Stated>)> = entries
                    .iter()
                    .map(|(kind, raw)| (kind, raw, None))
                    .collect();
                for i in entries.listed_order() {
                    if let Some((folders::Kind::Stat, raw, stat)) = listed.get_mut(i) {
                        *stat = Some(stat_at(&fd, raw));
                    }
                }
                for (kind, raw, stat) in listed {
                    let file_type = match kind {
                        folders::Kind::Folder => FileType::Directory,
                        folders::Kind::Stat => FileType::Unknown,
                    };
                    self.list(&mut reading, raw, file_type, stat);
                }
            }
            None => self.read_entries(&mut reading),
        }
        let Reading {
            names,
            mut order,
            trouble,
            unlisted,
            ..
        } = reading;
        // Files and folders in the order their paths sort (a folder's name counts with its
        // `/`), so that walking in this order lists the whole vault sorted, with no sort of
        // every path. A kept listing is in this order already, which the sort sees at once.
        order.sort_unstable_by(|a, b| a.sort_key(&names).cmp(&b.sort_key(&names)));
        // A listing with trouble is not kept: what it could not list is reported each time.
        let kept = match key {
            Some(key)
                if self.keeping
                    && trouble.problems.is_empty()
                    && key.settled(self.started_ns, self.settled) =>
            {
                // Kept entries are dropped here, on the thread that read them, whose next
                // folder reuses their memory.
                let listing = match known {
                    Some(_) => folders::ToKeep::Same,
                    None => folders::ToKeep::Read(folders::Listing::of(
                        order.iter().map(|item| {
                            let kind = match item.file {
                                Some(_) => folders::Kind::Stat,
                                None => folders::Kind::Folder,
                            };
                            (kind, item.name(&names), item.listed as usize)
                        }),
                        unlisted.unwrap_or_default(),
                    )),
                };
                Some((key, listing))
            }
            _ => None,
        };
        // The walk takes a subfolder from `folders` when its turn comes in `items`; the
        // descriptor is kept only while subfolders are left to open with it.
        let folders: Vec<Subfolder> = order
            .iter()
            .filter(|item| item.file.is_none())
            .map(|item| {
                let path = join(rel, item.name(&names));
                Subfolder {
                    name_at: path.len() - item.len as usize,
                    path,
                    ahead: None,
                }
            })
            .collect();
        let folder = Folder {
            fd: (!folders.is_empty()).then(|| Arc::new(fd)),
            rel: rel.to_string(),
            names,
            files: order.len() - folders.len(),
            items: order.into_iter(),
            folders,
            reached: 0,
            kept,
        };
        (folder, trouble)
    }

    /// Lists the entries of the folder being read, from the folder itself.
    fn read_entries(&self, reading: &mut Reading<'_>) {
        // Read straight from the folder's descriptor into a buffer of our own: no second
        // descriptor per folder (as `Dir::read_from` opens), and few `getdents` calls.
        let mut buf = Vec::with_capacity(DIRENT_BUFFER);
        let mut entries = RawDir::new(reading.fd, buf.spare_capacity_mut());
        // Each entry's inode, type and where its name (with its NUL) lies in `names`.
        let mut found: Vec<(u64, FileType, std::ops::Range<usize>)> = Vec::new();
        let mut names = Vec::new();
        while let Some(entry) = entries.next() {
            match entry {
                Ok(entry) => {
                    let name = entry.file_name().to_bytes_with_nul();
                    found.push((
                        entry.ino(),
                        entry.file_type(),
                        names.len()..names.len() + name.len(),
                    ));
                    names.extend_from_slice(name);
                }
                Err(e) => {
                    let rel = reading.rel;
                    (reading.trouble).unseen(rel, format!("cannot read the folder: {e}"));
                    break;
                }
            }
        }
        // Stat'ed in the order of their inodes: the order of the file system's inode table on
        // disk, and about the order of the kernel's records of them in memory (see the
        // `folders` module). A large folder lists its entries in the order of a hash.
        found.sort_unstable_by_key(|(ino, ..)| *ino);
        for (_, file_type, at) in found {
            if let Ok(raw) = CStr::from_bytes_with_nul(&names[at]) {
                self.list(reading, raw, file_type, None);
            }
        }
    }

    /// Lists the entry `raw` of the folder being read, of the type the folder says
    /// (`Unknown`: a stat tells), given what its stat said if it was stat'ed already.
    fn list(
        &self,
        reading: &mut Reading<'_>,
        raw: &CStr,
        mut file_type: FileType,
        stated: Option<Stated>,
    ) {
        let bytes = raw.to_bytes();
        if bytes.first() == Some(&b'.') {
            return;
        }
        let Ok(name) = std::str::from_utf8(bytes) else {
            let path = reading.join(&String::from_utf8_lossy(bytes));
            (reading.trouble).problem(path, "the file name is not valid UTF-8; skipped");
            return;
        };
        let mut stat = None;
        if file_type == FileType::Unknown || file_type == FileType::RegularFile {
            match stated.unwrap_or_else(|| stat_at(reading.fd, raw)) {
                Ok((stated_type, stated)) => {
                    file_type = stated_type;
                    stat = Some(stated);
                }
                Err(rustix::io::Errno::NOENT) => {
                    let path = reading.join(name);
                    (reading.trouble).problem(path, "vanished during the scan");
                    return;
                }
                Err(e) => {
                    let path = reading.join(name);
                    (reading.trouble).unseen(path, format!("cannot read: {e}"));
                    return;
                }
            }
        }
        match file_type {
            FileType::Directory if self.is_excluded(reading.rel, name) => {
                reading.unlisted(folders::Kind::Folder, bytes);
            }
            FileType::Directory => reading.add(name, None),
            FileType::RegularFile => {
                let kind = FileKind::of(name);
                reading.add(name, Some((kind, stat.unwrap_or_default())));
            }
            FileType::Symlink => {
                let path = reading.join(name);
                match self.symlink(&path) {
                    Ok(Some(stat)) => {
                        reading.trouble.linked.push(path);
                        reading.add(name, Some((FileKind::of(name), stat)));
                    }
                    Ok(None) => reading.unlisted(folders::Kind::Stat, bytes),
                    Err(why) => reading.trouble.unfollowed(path, why),
                }
            }
            _ => {
                let path = reading.join(name);
                reading.trouble.problem(path, NOT_REGULAR);
            }
        }
    }

    /// Whether the entry `name` of the folder at `rel` is an excluded folder.
    fn is_excluded(&self, rel: &str, name: &str) -> bool {
        self.excluded.iter().any(|x| match rel {
            "" => x == name,
            _ => x
                .strip_prefix(rel)
                .and_then(|x| x.strip_prefix('/'))
                .is_some_and(|x| x == name),
        })
    }

    /// One path as [`look_at`] sees it.
    fn look(&self, rel: &str) -> (Vec<VaultFile>, Trouble) {
        let (mut files, mut trouble) = (Vec::new(), Trouble::default());
        let inside_excluded = self.excluded.iter().any(|x| {
            rel == x
                || rel
                    .strip_prefix(x.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        });
        if rel.is_empty() || !is_content_path(rel) || inside_excluded {
            return (files, trouble);
        }
        let full = self.vault.join(rel);
        // The walk never enters a symlinked folder: neither does a look. A folder above that
        // is gone takes the path with it; one that cannot be read hides it.
        if let Some((parent, _)) = rel.rsplit_once('/') {
            match fs::canonicalize(self.vault.join(parent)) {
                Ok(real) if real == self.root.join(parent) => {}
                Ok(_) => return (files, trouble),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    return (files, trouble);
                }
                Err(e) => {
                    trouble.unseen(rel, format!("cannot read: {e}"));
                    return (files, trouble);
                }
            }
        }
        match fs::symlink_metadata(&full) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => trouble.unseen(rel, format!("cannot read: {e}")),
            Ok(m) if m.is_dir() => {
                let mut walker = self.clone().walker(CWD, &full, rel, None);
                let files = walker.by_ref().collect();
                return (files, walker.trouble);
            }
            Ok(m) if m.is_file() => files.push(self.file(rel.to_string(), Stat::of(&m))),
            Ok(m) if m.file_type().is_symlink() => match self.symlink(rel) {
                Ok(Some(stat)) => {
                    trouble.linked.push(rel.to_string());
                    files.push(self.file(rel.to_string(), stat));
                }
                Ok(None) => {}
                Err(why) => trouble.unfollowed(rel, why),
            },
            Ok(_) => trouble.problem(rel, NOT_REGULAR),
        }
        (files, trouble)
    }

    fn file(&self, path: String, stat: Stat) -> VaultFile {
        VaultFile {
            kind: FileKind::of(&path),
            path,
            stat,
        }
    }

    /// A symlink is followed only to a regular file inside the vault. A link to a folder inside
    /// the vault is skipped (its files are listed under their own path, so loops cannot
    /// happen); anything else is reported. A link that cannot be followed for another reason
    /// than being broken (a folder on the way that cannot be entered) is unseen.
    fn symlink(&self, path: &str) -> Result<Option<Stat>, Unfollowed> {
        let broken = |e: &std::io::Error| {
            e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
        };
        let link = self.vault.join(path);
        let target = match fs::canonicalize(&link) {
            Ok(target) => target,
            Err(e) if broken(&e) => {
                return Err(Unfollowed::Problem(format!(
                    "symlink is broken or loops ({e}); not followed"
                )));
            }
            Err(e) => {
                return Err(Unfollowed::Unseen(format!(
                    "cannot follow the symlink: {e}"
                )));
            }
        };
        if !target.starts_with(&self.root) {
            return Err(Unfollowed::Problem(format!(
                "symlink points outside the vault ({}); not followed",
                target.display()
            )));
        }
        match fs::metadata(&target) {
            Ok(m) if m.is_file() => Ok(Some(Stat::of(&m))),
            Ok(_) => Ok(None),
            Err(e) if broken(&e) => Ok(None),
            Err(e) => Err(Unfollowed::Unseen(format!(
                "cannot follow the symlink: {e}"
            ))),
        }
    }
}

/// A folder being read: what it lists so far.
struct Reading<'a> {
    fd: &'a OwnedFd,
    /// Its vault-relative path.
    rel: &'a str,
    /// The names of its entries, one after another, and the entries.
    names: String,
    order: Vec<Item>,
    trouble: Trouble,
    /// The entries it lists that the order lacks (a symlink to a folder, an excluded
    /// folder), to keep for the next walk.
    unlisted: Option<folders::Unlisted>,
}

impl Reading<'_> {
    /// The vault-relative path of the entry `name`.
    fn join(&self, name: &str) -> String {
        join(self.rel, name)
    }

    /// Lists the entry `name`: a file, or a folder (`None`).
    fn add(&mut self, name: &str, file: Option<(FileKind, Stat)>) {
        // Names are placed by u32: every one must end within reach of one.
        if u32::try_from(self.names.len() + name.len()).is_err() {
            let path = self.join(name);
            self.trouble
                .problem(path, "too many names in one folder; skipped");
            return;
        }
        let (at, len) = (self.names.len() as u32, name.len() as u32);
        self.names.push_str(name);
        let listed = self.order.len() as u32;
        self.order.push(Item {
            at,
            len,
            file,
            listed,
        });
    }

    /// Keeps aside an entry the order lacks, to be stat'ed again next time.
    fn unlisted(&mut self, kind: folders::Kind, name: &[u8]) {
        if let Some(unlisted) = &mut self.unlisted {
            unlisted.add(kind, name);
        }
    }
}

/// What a stat of an entry said: its type and what a scan compares.
type Stated = Result<(FileType, Stat), rustix::io::Errno>;

/// Stats the entry `raw` of the folder open as `fd`, not following a symlink.
fn stat_at(fd: &OwnedFd, raw: &CStr) -> Stated {
    statat(fd, raw, AtFlags::SYMLINK_NOFOLLOW)
        .map(|st| (FileType::from_raw_mode(st.st_mode), Stat::of_raw(&st)))
}

/// The vault-relative path of the entry `name` of the folder at `rel`.
fn join(rel: &str, name: &str) -> String {
    let mut path = String::with_capacity(rel.len() + 1 + name.len());
    if !rel.is_empty() {
        path.push_str(rel);
        path.push('/');
    }
    path.push_str(name);
    path
}

/// Why a symlink was not followed.
enum Unfollowed {
    /// It cannot be (broken, a loop, out of the vault): reported.
    Problem(String),
    /// It could not be this time: reported, and what it was is kept (see [`is_unseen`]).
    Unseen(String),
}

fn open_dir<Fd: AsFd>(at: Fd, path: &Path) -> std::io::Result<OwnedFd> {
    openat(
        at,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_paths_may_carry_the_vault_folder_or_be_absolute() {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault");
        fs::create_dir_all(vault.join("notes")).unwrap();
        fs::write(vault.join("notes/a.md"), "a").unwrap();
        let exists = |rel: &str| vault.join(rel).exists();
        let rel = |t: &str| relative_path(&vault, t, exists);
        assert_eq!(rel("notes/a.md").as_deref(), Some("notes/a.md"));
        assert_eq!(rel("./notes/a.md").as_deref(), Some("notes/a.md"));
        let abs = vault.join("notes/a.md");
        assert_eq!(rel(abs.to_str().unwrap()).as_deref(), Some("notes/a.md"));
        // A deleted note, given absolutely: its folder is resolved, its name kept.
        let gone = vault.join("notes/gone.md");
        assert_eq!(
            rel(gone.to_str().unwrap()).as_deref(),
            Some("notes/gone.md")
        );
        let outside = dir.path().join("elsewhere.md");
        assert_eq!(rel(outside.to_str().unwrap()), None);
    }

    #[test]
    fn the_walk_lists_paths_in_byte_order_without_sorting_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let paths = [
            "a-b/x.md",
            "a.md",
            "a/x.md",
            "a/b/c.md",
            "a b.md",
            "A.md",
            "ä.md",
            "a~",
            "ab/z.png",
            "a/b-c.md",
            "a/b.md",
            "a/b/d/e.md",
            "z/a/b/c.pdf",
            "z/a.md",
            "z/a b/c.md",
        ];
        for p in paths {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, p).unwrap();
        }
        let listed: Vec<String> = Walker::new(dir.path(), &[])
            .into_listing()
            .files
            .into_iter()
            .map(|f| f.path)
            .collect();
        let mut sorted: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        sorted.sort();
        assert_eq!(listed, sorted);
    }

    #[test]
    fn a_walk_reading_many_folders_ahead_lists_every_file_once_in_order() {
        // More folders than are read ahead at once, nested and side by side, some empty and
        // some holding only folders: what the walk gives is every file, sorted, whichever
        // folders the pool read first.
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for a in 0..12 {
            for b in 0..(a % 5) {
                for c in 0..(READ_AHEAD / 8) {
                    let folder = format!("f{a}/g{b}/h{c:02}");
                    std::fs::create_dir_all(dir.path().join(&folder)).unwrap();
                    for n in 0..(c % 4) {
                        paths.push(format!("{folder}/n{n}.md"));
                    }
                }
                paths.push(format!("f{a}/g{b}.md"));
            }
            std::fs::create_dir_all(dir.path().join(format!("f{a}/empty"))).unwrap();
            paths.push(format!("f{a}.png"));
        }
        for p in &paths {
            std::fs::write(dir.path().join(p), p).unwrap();
        }
        paths.sort();
        for _ in 0..3 {
            let listed: Vec<String> = Walker::new(dir.path(), &[]).map(|f| f.path).collect();
            assert_eq!(listed, paths);
        }
        // Taken a few at a time from inside the pool (as a daemon's look at a folder is).
        let from_pool: Vec<Vec<String>> = (0..4)
            .into_par_iter()
            .map(|_| Walker::new(dir.path(), &[]).map(|f| f.path).collect())
            .collect();
        assert!(from_pool.iter().all(|l| *l == paths));
        // The walk reading the folders handed to the readers itself, as it does while it
        // waits for one they began: its one reader is kept busy meanwhile, so it begins none.
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap(),
        );
        let (release, busy) = std::sync::mpsc::channel::<()>();
        pool.spawn(move || {
            let _ = busy.recv();
        });
        let (helped, read_here) = {
            let (mut walker, mut listed, mut read_here) = (Walker::new(dir.path(), &[]), vec![], 0);
            walker.readers = Some(pool.clone());
            while let Some(file) = walker.next() {
                listed.push(file.path);
                while walker.help() {
                    read_here += 1;
                }
            }
            (listed, read_here)
        };
        release.send(()).unwrap();
        assert_eq!(helped, paths);
        assert!(
            read_here > 100,
            "the walk read {read_here} folders handed to the pool"
        );
    }

    #[test]
    fn a_path_is_unseen_at_or_under_an_unseen_folder_not_beside_it() {
        let unseen = ["locked".to_string(), "a/b.md".to_string()];
        assert!(is_unseen(&unseen, "locked"));
        assert!(is_unseen(&unseen, "locked/deeper/n.md"));
        assert!(is_unseen(&unseen, "a/b.md"));
        assert!(
            !is_unseen(&unseen, "locked.md"),
            "a name with the folder's as its prefix"
        );
        assert!(!is_unseen(&unseen, "lockedx/n.md"));
        assert!(!is_unseen(&unseen, "a/b.mdx"));
        assert!(!is_unseen(&[], "locked"));
        assert!(
            is_unseen(&[String::new()], "any/path.md"),
            "the vault folder itself"
        );
    }

    #[test]
    fn notes_are_md_files_in_any_letter_case() {
        assert_eq!(FileKind::of("a/b.md"), FileKind::Note);
        assert_eq!(FileKind::of("B.MD"), FileKind::Note);
        assert_eq!(FileKind::of("x.png"), FileKind::Asset);
        assert_eq!(FileKind::of("md"), FileKind::Asset);
    }

    #[test]
    fn dot_folders_are_not_content() {
        assert!(is_content_path("a/b.md"));
        assert!(!is_content_path(".obsidian/app.json"));
        assert!(!is_content_path("a/.trash/b.md"));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_followed_only_to_files_inside_the_vault() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault");
        fs::create_dir_all(vault.join("sub")).unwrap();
        fs::create_dir_all(vault.join(".obsidian")).unwrap();
        fs::write(vault.join("a.md"), "a").unwrap();
        fs::write(vault.join(".obsidian/app.json"), "{}").unwrap();
        fs::write(dir.path().join("secret.md"), "s").unwrap();
        symlink(vault.join("a.md"), vault.join("sub/alias.md")).unwrap();
        symlink(dir.path().join("secret.md"), vault.join("out.md")).unwrap();
        symlink(&vault, vault.join("sub/loop")).unwrap();
        symlink(vault.join("nowhere"), vault.join("broken.md")).unwrap();
        let listing = Walker::new(&vault, &[]).into_listing();
        let files: Vec<_> = listing.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(files, vec!["a.md", "sub/alias.md"]);
        let mut problems: Vec<_> = listing.problems.iter().map(|p| p.path.as_str()).collect();
        problems.sort();
        assert_eq!(problems, vec!["broken.md", "out.md"]);
    }

    /// A walk of `vault` that lists unchanged folders as the last kept them at `kept`, and keeps
    /// its own there, with a short settling time.
    fn remembering(vault: &Path, kept: &Path, reread: bool, settled_ms: i64) -> Walker {
        Walker::remembering_settled(vault, &[], (kept, reread, true), settled_ms * 1_000_000)
    }

    /// The files a walk lists (path and size), and how many folders it listed as kept.
    fn walked(mut walker: Walker) -> (Vec<(String, u64)>, usize) {
        let files = walker.by_ref().map(|f| (f.path, f.stat.size)).collect();
        let remembered = walker.walk.remembered.load(Ordering::Relaxed);
        walker.keep_listings();
        (files, remembered)
    }

    fn write(vault: &Path, path: &str, bytes: &str) {
        let path = vault.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn settle() {
        std::thread::sleep(std::time::Duration::from_millis(120));
    }

    #[test]
    fn folders_unchanged_since_the_last_walk_are_listed_as_kept_and_changed_ones_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, kept) = (dir.path().join("vault"), dir.path().join("folders"));
        for p in [
            "top.md",
            "a/x.md",
            "a/y.md",
            "b/c/z.png",
            ".obsidian/app.json",
        ] {
            write(&vault, p, p);
        }
        std::os::unix::fs::symlink(vault.join("top.md"), vault.join("a/link.md")).unwrap();
        let fresh = || walked(Walker::new(&vault, &[])).0;
        settle();
        let (first, remembered) = walked(remembering(&vault, &kept, false, 50));
        assert_eq!((first.len(), remembered), (5, 0));
        assert_eq!(first, fresh());
        // Nothing changed: every folder (the vault, a, b, b/c) as kept, the files stat'ed, and
        // the kept listings left as they are.
        write(&vault, "a/x.md", "edited, and longer");
        let written = || {
            use std::os::unix::fs::MetadataExt;
            let m = fs::metadata(&kept).unwrap();
            (m.ino(), m.mtime_nsec(), m.len())
        };
        let before = written();
        let (second, remembered) = walked(remembering(&vault, &kept, false, 50));
        assert_eq!((second.clone(), remembered), (fresh(), 4));
        assert_ne!(
            second, first,
            "an edit in a kept folder is seen: its files are stat'ed"
        );
        assert_eq!(written(), before);
        // A file made, one deleted, one renamed, a folder made: each folder read again.
        write(&vault, "a/new.md", "new");
        fs::remove_file(vault.join("b/c/z.png")).unwrap();
        fs::rename(vault.join("a/y.md"), vault.join("top-y.md")).unwrap();
        write(&vault, "b/d/w.md", "w");
        let (third, remembered) = walked(remembering(&vault, &kept, false, 50));
        assert_eq!((third, remembered), (fresh(), 0));
        // Folders that just changed were not kept; once settled, they are.
        settle();
        walked(remembering(&vault, &kept, false, 50));
        let (fourth, remembered) = walked(remembering(&vault, &kept, false, 50));
        assert_eq!((fourth, remembered), (fresh(), 5));
        // One folder changed among kept ones: its listing is written anew, and those kept
        // before and after it are copied into the new file.
        write(&vault, "a/another.md", "another");
        settle();
        let (fifth, remembered) = walked(remembering(&vault, &kept, false, 50));
        assert_eq!((fifth, remembered), (fresh(), 4));
        assert_ne!(written(), before);
        let (sixth, remembered) = walked(remembering(&vault, &kept, false, 50));
        assert_eq!((sixth, remembered), (fresh(), 5));
        // `reread` trusts nothing kept.
        assert_eq!(walked(remembering(&vault, &kept, true, 50)).1, 0);
    }

    #[test]
    fn a_folder_changed_within_the_settling_time_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, kept) = (dir.path().join("vault"), dir.path().join("folders"));
        write(&vault, "a/x.md", "x");
        walked(remembering(&vault, &kept, false, 60_000));
        assert_eq!(walked(remembering(&vault, &kept, false, 60_000)).1, 0);
    }

    #[test]
    fn a_kept_listing_holds_its_files_in_inode_order_to_stat_and_by_name_to_list() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let (vault, kept) = (dir.path().join("vault"), dir.path().join("folders"));
        // Made in an order their names do not sort in.
        let made = ["m.md", "b.md", "sub/x.md", "z.png", "a.md"];
        for p in made {
            write(&vault, p, p);
        }
        settle();
        let (first, _) = walked(remembering(&vault, &kept, false, 50));
        let paths: Vec<&str> = first.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["a.md", "b.md", "m.md", "sub/x.md", "z.png"]);
        let root = fs::canonicalize(&vault).unwrap();
        let known = Known::open(&kept, &root).unwrap();
        let fd = open_dir(CWD, &vault).unwrap();
        let entries = known.entries("", FolderKey::of(&fd).unwrap()).unwrap();
        let names: Vec<String> = entries
            .iter()
            .map(|(_, n)| n.to_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["a.md", "b.md", "m.md", "sub", "z.png"]);
        let stated: Vec<&str> = entries.listed_order().map(|i| names[i].as_str()).collect();
        let mut by_inode = names.clone();
        by_inode.sort_by_key(|n| fs::symlink_metadata(vault.join(n)).unwrap().ino());
        assert_eq!(stated, by_inode);
        // The next walk, from the kept listing, lists the same files.
        assert_eq!(walked(remembering(&vault, &kept, false, 50)), (first, 2));
    }

    #[test]
    fn damaged_or_foreign_kept_listings_are_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, kept) = (dir.path().join("vault"), dir.path().join("folders"));
        for p in ["a/one.md", "a/two.md", "b/three.md"] {
            write(&vault, p, p);
        }
        settle();
        walked(remembering(&vault, &kept, false, 50));
        let good = fs::read(&kept).unwrap();
        let fresh = walked(Walker::new(&vault, &[])).0;
        // A byte of a's entries changed: a is read again, the others are as kept.
        let at = good.windows(7).position(|w| w == b"two.md\0").unwrap();
        let mut damaged = good.clone();
        damaged[at] = b'x';
        fs::write(&kept, &damaged).unwrap();
        let walk = |kept: &Path| {
            walked(Walker::remembering_settled(
                &vault,
                &[],
                (kept, false, false),
                50_000_000,
            ))
        };
        assert_eq!(walk(&kept), (fresh.clone(), 2));
        // Cut short, or kept for another vault (its header names another folder, every
        // folder's key and entries being the same): nothing is trusted.
        fs::write(&kept, &good[..good.len() - 3]).unwrap();
        assert_eq!(walk(&kept), (fresh.clone(), 0));
        let mut foreign = good.clone();
        let root = fs::canonicalize(&vault).unwrap();
        foreign[folders::MAGIC.len() + root.as_os_str().len() - 1] ^= 1;
        fs::write(&kept, &foreign).unwrap();
        assert_eq!(walk(&kept), (fresh.clone(), 0));
        fs::write(&kept, &good).unwrap();
        assert_eq!(walk(&kept), (fresh, 3), "the file as kept is trusted");
    }
}
