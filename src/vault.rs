//! The vault on disk: which files are content, found without following symlinks out of it.
//!
//! `.obsidian/`, `.trash/`, `.git/` and every other dot-file or dot-folder are not content
//! (design.md, "Words"), nor is the archive when it lives inside the vault.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, RawDir, openat, statat};

use crate::report::Problem;

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

/// Lists and stats the content files of `vault`, skipping `exclude` (the archive, when it is
/// inside). Folders are read in parallel, and each file is stat'ed relative to its folder's
/// descriptor, which is what makes an unchanged rescan cheap.
pub fn list(vault: &Path, exclude: &[PathBuf]) -> Listing {
    let (root, excluded) = resolved(vault, exclude);
    let walk = Walk {
        vault,
        root: &root,
        excluded: &excluded,
    };
    let mut out = match open_dir(CWD, vault) {
        Ok(fd) => walk.dir(&fd, ""),
        Err(e) => Listing {
            files: Vec::new(),
            problems: vec![Problem::new(
                "",
                format!("cannot read the vault folder: {e}"),
            )],
        },
    };
    debug_assert!(out.files.is_sorted_by(|a, b| a.path < b.path));
    out.problems.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Looks again at some vault-relative paths only, as a file watcher reported them, with the
/// walk's rules: a file is stat'ed, a folder walked, and a path that is missing, is not content
/// or goes through a symlinked folder yields nothing. Files come in no particular order (the
/// caller merges them with others and sorts once); the caller drops paths under others.
pub fn look_at(vault: &Path, exclude: &[PathBuf], paths: &[&str]) -> Listing {
    let (root, excluded) = resolved(vault, exclude);
    let walk = Walk {
        vault,
        root: &root,
        excluded: &excluded,
    };
    let looked: Vec<Listing> = paths.par_iter().map(|rel| walk.look(rel)).collect();
    let mut out = Listing::default();
    for l in looked {
        out.files.extend(l.files);
        out.problems.extend(l.problems);
    }
    out.problems.sort_by(|a, b| a.path.cmp(&b.path));
    out
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

/// An entry of a folder being listed, with where its name starts in its path.
enum Listed {
    File(VaultFile, usize),
    Dir(String, usize),
}

impl Listed {
    /// What orders entries as their paths sort: a folder's files all follow `name/`, so a
    /// folder sorts as its name with a `/` (by byte, `-` < `.` < `/`: `a-b/` < `a.md` < `a/`).
    fn sort_key(&self) -> SortKey<'_> {
        match self {
            Listed::File(f, at) => SortKey(&f.path[*at..], false),
            Listed::Dir(p, at) => SortKey(&p[*at..], true),
        }
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

struct Walk<'a> {
    vault: &'a Path,
    root: &'a Path,
    excluded: &'a [String],
}

impl Walk<'_> {
    /// Lists the folder open as `fd`, at vault-relative `rel` (empty for the root).
    fn dir(&self, fd: &OwnedFd, rel: &str) -> Listing {
        let mut out = Listing::default();
        let join = |name: &str| {
            let mut path = String::with_capacity(rel.len() + 1 + name.len());
            if !rel.is_empty() {
                path.push_str(rel);
                path.push('/');
            }
            path.push_str(name);
            path
        };
        // Read straight from the folder's descriptor into a buffer of our own: no second
        // descriptor per folder (as `Dir::read_from` opens), and few `getdents` calls.
        let mut buf = Vec::with_capacity(DIRENT_BUFFER);
        let mut entries = RawDir::new(fd, buf.spare_capacity_mut());
        // Files and folders in the order their paths sort (a folder's name counts with its
        // `/`), so that walking in this order lists the whole vault sorted, with no sort of
        // every path at the end.
        let mut order: Vec<Listed> = Vec::new();
        while let Some(entry) = entries.next() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    out.problems
                        .push(Problem::new(rel, format!("cannot read the folder: {e}")));
                    break;
                }
            };
            let raw = entry.file_name();
            let bytes = raw.to_bytes();
            if bytes.first() == Some(&b'.') {
                continue;
            }
            let Ok(name) = std::str::from_utf8(bytes) else {
                out.problems.push(Problem::new(
                    join(&String::from_utf8_lossy(bytes)),
                    "the file name is not valid UTF-8; skipped",
                ));
                continue;
            };
            let path = join(name);
            let name_at = path.len() - name.len();
            let mut file_type = entry.file_type();
            let mut stat = None;
            if file_type == FileType::Unknown || file_type == FileType::RegularFile {
                match statat(fd, raw, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => {
                        file_type = FileType::from_raw_mode(st.st_mode);
                        stat = Some(Stat::of_raw(&st));
                    }
                    Err(rustix::io::Errno::NOENT) => {
                        out.problems
                            .push(Problem::new(path, "vanished during the scan"));
                        continue;
                    }
                    Err(e) => {
                        out.problems
                            .push(Problem::new(path, format!("cannot read: {e}")));
                        continue;
                    }
                }
            }
            match file_type {
                FileType::Directory => {
                    if !self.excluded.contains(&path) {
                        order.push(Listed::Dir(path, name_at));
                    }
                }
                FileType::RegularFile => order.push(Listed::File(
                    self.file(path, stat.unwrap_or_default()),
                    name_at,
                )),
                FileType::Symlink => match self.symlink(&path) {
                    Ok(Some(stat)) => order.push(Listed::File(self.file(path, stat), name_at)),
                    Ok(None) => {}
                    Err(message) => out.problems.push(Problem::new(path, message)),
                },
                _ => out.problems.push(Problem::new(path, NOT_REGULAR)),
            }
        }
        // Not held while the subfolders are walked.
        drop(buf);
        order.sort_unstable_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let subdirs: Vec<&String> = order
            .iter()
            .filter_map(|l| match l {
                Listed::Dir(p, _) => Some(p),
                Listed::File(..) => None,
            })
            .collect();
        let nested: Vec<Listing> = subdirs
            .par_iter()
            .map(|sub| {
                let name = sub.rsplit('/').next().unwrap_or(sub);
                match open_dir(fd, Path::new(name)) {
                    Ok(child) => self.dir(&child, sub),
                    Err(e) => Listing {
                        files: Vec::new(),
                        problems: vec![Problem::new(
                            (*sub).clone(),
                            format!("cannot read the folder: {e}"),
                        )],
                    },
                }
            })
            .collect();
        // Exactly as many as this folder lists: a vector grown by doubling would leave up to
        // half its room unused, and the root's holds every file of the vault.
        let own = order.len() - subdirs.len();
        out.files = Vec::with_capacity(own + nested.iter().map(|n| n.files.len()).sum::<usize>());
        let mut nested = nested.into_iter();
        for listed in order {
            match listed {
                Listed::File(f, _) => out.files.push(f),
                Listed::Dir(..) => {
                    if let Some(n) = nested.next() {
                        out.files.extend(n.files);
                        out.problems.extend(n.problems);
                    }
                }
            }
        }
        out
    }

    /// One path as [`look_at`] sees it.
    fn look(&self, rel: &str) -> Listing {
        let mut out = Listing::default();
        let inside_excluded = self.excluded.iter().any(|x| {
            rel == x
                || rel
                    .strip_prefix(x.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        });
        if rel.is_empty() || !is_content_path(rel) || inside_excluded {
            return out;
        }
        let full = self.vault.join(rel);
        // The walk never enters a symlinked folder: neither does a look.
        if let Some((parent, _)) = rel.rsplit_once('/') {
            let real = fs::canonicalize(self.vault.join(parent)).ok();
            if real.as_deref() != Some(self.root.join(parent).as_path()) {
                return out;
            }
        }
        match fs::symlink_metadata(&full) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => out
                .problems
                .push(Problem::new(rel, format!("cannot read: {e}"))),
            Ok(m) if m.is_dir() => match open_dir(CWD, &full) {
                Ok(fd) => return self.dir(&fd, rel),
                Err(e) => out
                    .problems
                    .push(Problem::new(rel, format!("cannot read the folder: {e}"))),
            },
            Ok(m) if m.is_file() => out.files.push(self.file(rel.to_string(), Stat::of(&m))),
            Ok(m) if m.file_type().is_symlink() => match self.symlink(rel) {
                Ok(Some(stat)) => out.files.push(self.file(rel.to_string(), stat)),
                Ok(None) => {}
                Err(message) => out.problems.push(Problem::new(rel, message)),
            },
            Ok(_) => out.problems.push(Problem::new(rel, NOT_REGULAR)),
        }
        out
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
    /// happen); anything else is reported.
    fn symlink(&self, path: &str) -> Result<Option<Stat>, String> {
        let link = self.vault.join(path);
        let target = fs::canonicalize(&link)
            .map_err(|e| format!("symlink is broken or loops ({e}); not followed"))?;
        if !target.starts_with(self.root) {
            return Err(format!(
                "symlink points outside the vault ({}); not followed",
                target.display()
            ));
        }
        match fs::metadata(&target) {
            Ok(m) if m.is_file() => Ok(Some(Stat::of(&m))),
            _ => Ok(None),
        }
    }
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
        let listed: Vec<String> = list(dir.path(), &[])
            .files
            .into_iter()
            .map(|f| f.path)
            .collect();
        let mut sorted: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        sorted.sort();
        assert_eq!(listed, sorted);
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
        let listing = list(&vault, &[]);
        let files: Vec<_> = listing.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(files, vec!["a.md", "sub/alias.md"]);
        let mut problems: Vec<_> = listing.problems.iter().map(|p| p.path.as_str()).collect();
        problems.sort();
        assert_eq!(problems, vec!["broken.md", "out.md"]);
    }
}
