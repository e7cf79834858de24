//! Minimal, safe edits of notes (design.md, "Editing notes"): only added lines, lines extended
//! at their end, or vaultkeep's own properties; written atomically, and only if the note is
//! still what was read. Computing an edit is pure; [`apply`] is the one place that writes.

pub mod properties;
pub mod suffix;

use std::fs;
use std::io;
use std::path::Path;

use serde::Serialize;

use crate::fsutil::{Replace, Replaced, replace_with};

/// A planned change to one note.
#[derive(Debug, Clone)]
pub struct NoteEdit {
    /// The note, relative to the vault.
    pub path: String,
    /// Its bytes as read.
    pub before: Vec<u8>,
    /// Its bytes after the edit.
    pub after: Vec<u8>,
}

impl NoteEdit {
    /// Whether the edit changes anything.
    pub fn changes(&self) -> bool {
        self.before != self.after
    }

    /// A unified diff of the edit, for `--dry-run`.
    pub fn diff(&self) -> String {
        let before = String::from_utf8_lossy(&self.before);
        let after = String::from_utf8_lossy(&self.after);
        similar::TextDiff::from_lines(before.as_ref(), after.as_ref())
            .unified_diff()
            .context_radius(2)
            .header(&format!("a/{}", self.path), &format!("b/{}", self.path))
            .to_string()
    }
}

/// What `apply` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// The note was rewritten.
    Written,
    /// The edit changed nothing; the note was not touched.
    Unchanged,
    /// The note changed since it was read: the user's edit wins, the note was left alone.
    ChangedMeanwhile,
}

/// What became of one note's edit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The note was rewritten.
    Written,
    /// The edit changed nothing; the note was not touched.
    #[default]
    Unchanged,
    /// The note changed since it was read: the user's edit wins, the note was left alone.
    ChangedMeanwhile,
    /// A dry run: the note would be rewritten (the diff shows how).
    WouldWrite,
    /// The note was left alone (`detail` says why).
    Skipped,
}

impl Effect {
    /// The words reports use (`changed meanwhile`).
    pub fn words(self) -> &'static str {
        match self {
            Effect::Written => "written",
            Effect::Unchanged => "unchanged",
            Effect::ChangedMeanwhile => "changed meanwhile",
            Effect::WouldWrite => "would write",
            Effect::Skipped => "skipped",
        }
    }
}

/// What became of one note's edit, as reports show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// What happened.
    pub outcome: Effect,
    /// Why, when the note was left alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The unified diff of the edit (dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl Outcome {
    /// The note was left alone, for this reason.
    pub fn skipped(detail: impl Into<String>) -> Outcome {
        Outcome {
            outcome: Effect::Skipped,
            detail: Some(detail.into()),
            diff: None,
        }
    }

    /// Whether the note was rewritten.
    pub fn written(&self) -> bool {
        self.outcome == Effect::Written
    }

    /// Whether the edit was wanted but not made.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Effect::ChangedMeanwhile | Effect::Skipped)
    }
}

/// A note's bytes, which must be UTF-8 text to be edited.
pub fn read_text(vault: &Path, note: &str) -> Result<(Vec<u8>, String), Outcome> {
    let bytes =
        fs::read(vault.join(note)).map_err(|e| Outcome::skipped(format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes.clone()).map_err(|_| Outcome::skipped("not UTF-8 text"))?;
    Ok((bytes, text))
}

/// Records the content a write is about to replace, when the archive lacks it (issue 9:
/// nothing vaultkeep writes may destroy bytes the archive does not have).
pub type Keep<'a> = &'a (dyn Fn(&str, &[u8]) -> Result<(), String> + Sync);

/// Writes an edit, or with `dry_run` only shows it; either way says what became of it. Before
/// writing, `keep` records the note as read.
pub fn commit(vault: &Path, edit: &NoteEdit, dry_run: bool, keep: Keep<'_>) -> Outcome {
    if dry_run {
        return Outcome {
            outcome: if edit.changes() {
                Effect::WouldWrite
            } else {
                Effect::Unchanged
            },
            detail: None,
            diff: edit.changes().then(|| edit.diff()),
        };
    }
    if edit.changes()
        && let Err(e) = keep(&edit.path, &edit.before)
    {
        return Outcome::skipped(format!("cannot record the note before editing it: {e}"));
    }
    let (outcome, detail) = match apply(vault, edit) {
        Ok(Applied::Written) => (Effect::Written, None),
        Ok(Applied::Unchanged) => (Effect::Unchanged, None),
        Ok(Applied::ChangedMeanwhile) => (
            Effect::ChangedMeanwhile,
            Some(
                "the note changed while vaultkeep worked on it; your edit wins, run again"
                    .to_string(),
            ),
        ),
        Err(e) => (Effect::Skipped, Some(format!("cannot write: {e}"))),
    };
    Outcome {
        outcome,
        detail,
        diff: None,
    }
}

/// Writes a file vaultkeep makes for the vault (a picture), or with `dry_run` only says so:
/// a new file only if none appeared meanwhile; over an existing one only after `keep` has
/// recorded it, and only if it still holds what was read.
pub fn write_file(
    vault: &Path,
    path: &str,
    bytes: &[u8],
    dry_run: bool,
    keep: Keep<'_>,
) -> Outcome {
    let target = vault.join(path);
    let before = match fs::read(&target) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Outcome::skipped(format!("cannot read {path}: {e}")),
    };
    if before.as_deref() == Some(bytes) {
        return Outcome::default();
    }
    if dry_run {
        return Outcome {
            outcome: Effect::WouldWrite,
            detail: None,
            diff: None,
        };
    }
    if let Some(b) = &before
        && let Err(e) = keep(path, b)
    {
        return Outcome::skipped(format!("cannot record {path} before replacing it: {e}"));
    }
    if let Some(parent) = target.parent()
        && let Err(e) = fs::create_dir_all(parent)
    {
        return Outcome::skipped(format!("cannot create {}: {e}", parent.display()));
    }
    let how = Replace {
        durable: true,
        keep_permissions: before.is_some(),
        unless_changed_from: before.as_deref(),
        create_new: before.is_none(),
    };
    match replace_with(&target, bytes, &how) {
        Ok(Replaced::Written) => Outcome {
            outcome: Effect::Written,
            detail: None,
            diff: None,
        },
        Ok(Replaced::ChangedMeanwhile) => Outcome {
            outcome: Effect::ChangedMeanwhile,
            detail: Some(format!(
                "{path} changed while vaultkeep worked; left as it is"
            )),
            diff: None,
        },
        Err(e) => Outcome::skipped(format!("cannot write {path}: {e}")),
    }
}

/// Writes `edit` into the vault if the note still holds `edit.before`: a temp file in the
/// same folder with the note's permissions, then a rename. The note is compared again just
/// before the rename, so an edit made in between is never overwritten.
pub fn apply(vault: &Path, edit: &NoteEdit) -> io::Result<Applied> {
    if !edit.changes() {
        return Ok(Applied::Unchanged);
    }
    let how = Replace {
        durable: true,
        keep_permissions: true,
        unless_changed_from: Some(&edit.before),
        create_new: false,
    };
    Ok(
        match replace_with(&vault.join(&edit.path), &edit.after, &how)? {
            Replaced::Written => Applied::Written,
            Replaced::ChangedMeanwhile => Applied::ChangedMeanwhile,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(path: &str, before: &str, after: &str) -> NoteEdit {
        NoteEdit {
            path: path.into(),
            before: before.into(),
            after: after.into(),
        }
    }

    #[test]
    fn an_edit_is_written_atomically_with_the_notes_permissions() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("n.md"), "old").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir.path().join("n.md"), fs::Permissions::from_mode(0o640))
                .unwrap();
        }
        assert_eq!(
            apply(dir.path(), &edit("n.md", "old", "new")).unwrap(),
            Applied::Written
        );
        assert_eq!(fs::read_to_string(dir.path().join("n.md")).unwrap(), "new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("n.md"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o640);
        }
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn a_user_edit_made_after_reading_wins() {
        let dir = tempfile::tempdir().unwrap();
        let planned = edit("n.md", "as read", "as read\nplus vaultkeep");
        // The user saves the note after vaultkeep read it, before vaultkeep writes.
        fs::write(dir.path().join("n.md"), "as read, then edited by the user").unwrap();
        assert_eq!(
            apply(dir.path(), &planned).unwrap(),
            Applied::ChangedMeanwhile
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("n.md")).unwrap(),
            "as read, then edited by the user"
        );
    }

    #[test]
    fn an_edit_that_changes_nothing_does_not_touch_the_note() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            apply(dir.path(), &edit("missing.md", "x", "x")).unwrap(),
            Applied::Unchanged
        );
    }

    #[test]
    fn the_diff_is_unified() {
        let d = edit("a.md", "one\ntwo\n", "one\ntwo\nthree\n").diff();
        assert!(d.starts_with("--- a/a.md\n+++ b/a.md\n@@"), "{d}");
        assert!(d.contains("+three"));
    }
}
