//! Homepage pictures for profiles (issue 11). `profiles screenshot` opens each profile's `url`
//! in the browser and writes what a visitor first sees to `assets/<note>-homepage.png`,
//! setting `image` where the profile has none. Composting keeps a composted organization's
//! last look, made from its snapshot (nothing fetched): `assets/<note>-homepage-<date>.png`,
//! linked by `archived_screenshot`. Both write files the next scan records as new assets.

use std::path::Path;

use jiff::civil::Date;
use serde::Serialize;
use url::Url;

use crate::annotate::properties::set_scalar;
use crate::annotate::{Keep, NoteEdit, Outcome, commit, read_text, write_file};
use crate::browser::{Launcher, Wanted};
use crate::fetch::Fetcher;
use crate::links::{Destination, Resolution};
use crate::note::NoteFacts;
use crate::scan::VaultView;
use crate::snapshot::record::Snapshot;
use crate::snapshot::render::{Live, Replay};
use crate::store::Store;

/// The property that holds a profile's picture.
pub const IMAGE: &str = "image";
/// The property composting sets: the organization's last look.
pub const LAST_LOOK: &str = "archived_screenshot";
/// Where the pictures go, in the vault.
pub const ASSETS: &str = "assets";

/// A homepage's picture: the window, as a visitor first sees the page.
const WINDOW: Wanted = Wanted {
    dom: false,
    screenshot: true,
    full_page: false,
    pdf: false,
    scroll: false,
};

/// The homepage of a profile: its frontmatter `url`, when it is an http(s) URL.
pub fn homepage(facts: &NoteFacts) -> Option<Url> {
    facts.links.iter().find_map(|l| {
        if l.property.as_deref() != Some("url") {
            return None;
        }
        match l.destination() {
            Destination::External(u) => Url::parse(u.trim()).ok(),
            _ => None,
        }
    })
}

/// Whether the note has a value under `property`.
fn has_property(facts: &NoteFacts, property: &str) -> bool {
    facts
        .links
        .iter()
        .any(|l| l.property.as_deref() == Some(property) && !l.target.trim().is_empty())
}

/// `assets/<note>-homepage.png`, or with a date `assets/<note>-homepage-<date>.png`; the
/// note's name in lower case, words joined by `-` (`La_Bolina.md`: `la-bolina`).
pub fn picture_path(note: &str, date: Option<Date>) -> String {
    let stem = Path::new(note)
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut slug = String::new();
    for c in stem.chars() {
        if c.is_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug = if slug.is_empty() { "profile" } else { slug };
    match date {
        Some(d) => format!("{ASSETS}/{slug}-homepage-{d}.png"),
        None => format!("{ASSETS}/{slug}-homepage.png"),
    }
}

/// A wikilink to a vault file, as a frontmatter value.
fn wikilink(path: &str) -> String {
    format!("[[{path}]]")
}

/// What `profiles screenshot` did for one profile.
#[derive(Debug, Clone, Serialize)]
pub struct PictureReport {
    /// The profile note.
    pub note: String,
    /// Its homepage.
    pub url: String,
    /// The picture's path in the vault.
    pub picture: String,
    /// What became of the picture.
    pub picture_result: Outcome,
    /// What became of the note (`image` set where it had none).
    pub note_result: Outcome,
    /// Why there is no picture, if there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl PictureReport {
    /// Whether something went wrong.
    pub fn failed(&self) -> bool {
        self.problem.is_some() || self.picture_result.failed() || self.note_result.failed()
    }
}

/// A `profiles screenshot` run.
pub struct Homepages<'a> {
    /// The vault folder.
    pub vault: &'a Path,
    /// The archive (files are recorded there before they are replaced).
    pub store: &'a Store,
    /// The fetcher and the browser; `None` for a dry run, which only says what it would do.
    pub tools: Option<(&'a Fetcher, &'a Launcher)>,
    /// Only profiles without a picture (no `image`, or one whose file is missing).
    pub missing_only: bool,
}

impl Homepages<'_> {
    /// Pictures for the profiles of `view` (those named in `only`, or all).
    pub async fn run(&self, view: &VaultView, only: &[String]) -> Vec<PictureReport> {
        let mut reports = Vec::new();
        let mut profiles: Vec<(&str, &NoteFacts)> = view
            .notes()
            .filter(|(note, _)| only.is_empty() || only.iter().any(|o| o == note))
            .collect();
        profiles.sort_by_key(|(note, _)| *note);
        for (note, facts) in profiles {
            let Some(url) = homepage(facts) else {
                if !only.is_empty() {
                    reports.push(PictureReport {
                        note: note.to_string(),
                        url: String::new(),
                        picture: String::new(),
                        picture_result: Outcome::default(),
                        note_result: Outcome::default(),
                        problem: Some("no http(s) `url` property: not a profile".into()),
                    });
                }
                continue;
            };
            let has_image = has_property(facts, IMAGE);
            if self.missing_only && has_image && image_found(view, note, facts) {
                continue;
            }
            reports.push(self.one(note, &url, has_image).await);
        }
        reports
    }

    async fn one(&self, note: &str, url: &Url, has_image: bool) -> PictureReport {
        let picture = picture_path(note, None);
        let mut report = PictureReport {
            note: note.to_string(),
            url: url.to_string(),
            picture: picture.clone(),
            picture_result: Outcome::default(),
            note_result: Outcome::default(),
            problem: None,
        };
        let keep = |path: &str, bytes: &[u8]| {
            crate::history::keep(self.store, path, bytes)
                .map(drop)
                .map_err(|e| crate::report::chain(&e))
        };
        let png = match self.tools {
            None => None,
            Some((fetcher, browser)) => {
                match browser.render(&Live::new(fetcher), url, WINDOW).await {
                    Ok(render) => render.screenshot,
                    Err(e) => {
                        report.problem = Some(e.to_string());
                        return report;
                    }
                }
            }
        };
        let dry_run = self.tools.is_none();
        report.picture_result = crate::fsutil::off_executor(|| {
            write_file(
                self.vault,
                &picture,
                png.as_deref().unwrap_or_default(),
                dry_run,
                &keep,
            )
        });
        if report.picture_result.failed() || has_image {
            return report;
        }
        report.note_result = crate::fsutil::off_executor(|| {
            set_property(self.vault, note, IMAGE, &picture, dry_run, &keep)
        });
        report
    }
}

/// Whether the note's `image` names a file the vault holds.
fn image_found(view: &VaultView, note: &str, facts: &NoteFacts) -> bool {
    facts
        .links
        .iter()
        .filter(|l| l.property.as_deref() == Some(IMAGE))
        .any(|l| match l.destination() {
            Destination::Internal(t) => matches!(
                view.index.resolve(note, t),
                Resolution::Found { .. } | Resolution::Ambiguous { .. }
            ),
            // A picture on the web: not vaultkeep's to replace.
            Destination::External(_) => true,
            _ => false,
        })
}

/// Sets one scalar property of a note to a wikilink to `path` (blocking).
fn set_property(
    vault: &Path,
    note: &str,
    property: &str,
    path: &str,
    dry_run: bool,
    keep: Keep<'_>,
) -> Outcome {
    let (before, text) = match read_text(vault, note) {
        Ok(read) => read,
        Err(skipped) => return skipped,
    };
    let after = match set_scalar(&text, property, &wikilink(path)) {
        Ok(a) => a,
        Err(e) => return Outcome::skipped(e.to_string()),
    };
    let edit = NoteEdit {
        path: note.to_string(),
        before,
        after: after.into_bytes(),
    };
    commit(vault, &edit, dry_run, keep)
}

/// The last look of a composted organization, from `snapshot` (its homepage's window, made
/// from the captures alone), saved as `assets/<note>-homepage-<date>.png` unless that file
/// is there already. Returns the picture's path in the vault.
pub async fn last_look(
    browser: &Launcher,
    store: &Store,
    vault: &Path,
    note: &str,
    url: &Url,
    snapshot: &Snapshot,
    keep: Keep<'_>,
) -> Result<String, String> {
    let date = crate::localtime::date(snapshot.started);
    let picture = picture_path(note, Some(date));
    if vault.join(&picture).is_file() {
        return Ok(picture);
    }
    let replay = Replay::new(store, &snapshot.captures);
    let render = browser
        .render(&replay, url, WINDOW)
        .await
        .map_err(|e| e.to_string())?;
    let png = render.screenshot.unwrap_or_default();
    let written = crate::fsutil::off_executor(|| write_file(vault, &picture, &png, false, keep));
    if written.failed() {
        return Err(written.detail.unwrap_or_else(|| "not written".into()));
    }
    Ok(picture)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_named_after_their_notes() {
        assert_eq!(
            picture_path("ecosystem/cohere/profiles/La_Bolina.md", None),
            "assets/la-bolina-homepage.png"
        );
        let date: Date = "2026-11-28".parse().unwrap();
        assert_eq!(
            picture_path("profiles/The New Institute.md", Some(date)),
            "assets/the-new-institute-homepage-2026-11-28.png"
        );
        assert_eq!(
            picture_path("profiles/Café Ü.md", None),
            "assets/café-ü-homepage.png"
        );
        assert_eq!(
            picture_path("profiles/---.md", None),
            "assets/profile-homepage.png"
        );
    }
}
