//! The vault on disk: which files are content, found without following symlinks out of it.
//!
//! `.obsidian/`, `.trash/`, `.git/` and every other dot-file or dot-folder are not content
//! (design.md, "Words"), nor is the archive when it lives inside the vault.

use std::fs;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

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

/// A content file of the vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultFile {
    /// Path relative to the vault, with `/` separators.
    pub path: String,
    /// Path on disk.
    pub abs: PathBuf,
    /// Note or asset.
    pub kind: FileKind,
}

/// The content files of a vault and what could not be walked.
#[derive(Debug, Default)]
pub struct Listing {
    /// Content files, sorted by path.
    pub files: Vec<VaultFile>,
    /// Folders that could not be read, symlinks not followed, odd names.
    pub problems: Vec<Problem>,
}

/// Whether a vault-relative path is content (no dot-file or dot-folder on the way).
pub fn is_content_path(path: &str) -> bool {
    !path.split('/').any(|part| part.starts_with('.'))
}

/// Lists the content files of `vault`, skipping `exclude` (the archive, when it is inside).
pub fn list(vault: &Path, exclude: &[PathBuf]) -> Listing {
    let mut out = Listing::default();
    let root = fs::canonicalize(vault).unwrap_or_else(|_| vault.to_path_buf());
    // Excluded folders as the walk spells them (under `vault`), so they are pruned, not read.
    let excluded: Vec<PathBuf> = exclude
        .iter()
        .filter_map(|x| fs::canonicalize(x).ok())
        .filter_map(|x| x.strip_prefix(&root).ok().map(|rel| vault.join(rel)))
        .collect();
    let walker = WalkDir::new(vault)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0
                || !(e.file_name().to_string_lossy().starts_with('.')
                    || excluded.iter().any(|x| e.path() == x))
        });
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e.path().map(|p| relative(vault, p)).unwrap_or_default();
                out.problems.push(Problem::new(
                    path,
                    format!("cannot read: {}", io_message(&e)),
                ));
                continue;
            }
        };
        if entry.depth() == 0 {
            continue;
        }
        let abs = entry.path();
        if entry.file_type().is_dir() {
            continue;
        }
        let Some(rel) = abs.strip_prefix(vault).ok().and_then(|r| r.to_str()) else {
            out.problems.push(Problem::new(
                abs.to_string_lossy(),
                "the file name is not valid UTF-8; skipped",
            ));
            continue;
        };
        let path = rel.replace(std::path::MAIN_SEPARATOR, "/");
        let file_type = entry.file_type();
        if file_type.is_symlink() {
            match symlink_target(abs, &root) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(message) => {
                    out.problems.push(Problem::new(path, message));
                    continue;
                }
            }
        } else if !file_type.is_file() {
            out.problems.push(Problem::new(
                path,
                "not a regular file (a pipe, socket or device); skipped",
            ));
            continue;
        }
        out.files.push(VaultFile {
            kind: FileKind::of(&path),
            path,
            abs: abs.to_path_buf(),
        });
    }
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Whether a symlink is followed: only to a regular file inside the vault. A link to a folder
/// inside the vault is skipped (its files are listed under their own path, and loops are
/// impossible); anything else is reported.
fn symlink_target(link: &Path, root: &Path) -> Result<bool, String> {
    let target = fs::canonicalize(link)
        .map_err(|e| format!("symlink is broken or loops ({e}); not followed"))?;
    if !target.starts_with(root) {
        return Err(format!(
            "symlink points outside the vault ({}); not followed",
            target.display()
        ));
    }
    Ok(target.is_file())
}

fn relative(vault: &Path, p: &Path) -> String {
    p.strip_prefix(vault)
        .unwrap_or(p)
        .to_string_lossy()
        .replace(std::path::MAIN_SEPARATOR, "/")
}

fn io_message(e: &walkdir::Error) -> String {
    if e.loop_ancestor().is_some() {
        return "symlink loop".to_string();
    }
    e.io_error()
        .map_or_else(|| e.to_string(), |io| io.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
