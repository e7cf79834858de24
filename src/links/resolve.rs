//! Obsidian's rules for finding the file a link names: relative to the note (`../`),
//! vault-absolute (`/assets/x.png` or `assets/x.png`), then the shortest path by name.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use percent_encoding::percent_decode_str;
use serde::Serialize;

/// The files of a vault, by path and by name, for resolving links.
#[derive(Debug, Default, Clone)]
pub struct FileIndex {
    exact: HashSet<String>,
    lower: HashMap<String, String>,
    /// Lowercased file name → (path, lowercased path), nearest the root first.
    by_name: HashMap<String, Vec<(String, String)>>,
}

/// What a link target resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Resolution {
    /// One file (vault-relative path).
    Found { path: String },
    /// Several files share the name; Obsidian picks the one nearest the vault root.
    Ambiguous {
        path: String,
        candidates: Vec<String>,
    },
    /// A heading or block of the note itself.
    SameNote,
    /// No file of that name.
    Missing,
    /// The path climbs out of the vault: never read, only reported.
    OutsideVault,
}

impl FileIndex {
    /// Indexes vault-relative paths written with `/`.
    pub fn new<I: IntoIterator<Item = String>>(paths: I) -> FileIndex {
        let mut index = FileIndex::default();
        for path in paths {
            index.insert(path);
        }
        for list in index.by_name.values_mut() {
            list.sort_by(|a, b| depth(&a.0).cmp(&depth(&b.0)).then_with(|| a.0.cmp(&b.0)));
        }
        index
    }

    fn insert(&mut self, path: String) {
        let lower = path.to_lowercase();
        let name = lower.rsplit('/').next().unwrap_or(&lower).to_string();
        self.by_name
            .entry(name)
            .or_default()
            .push((path.clone(), lower.clone()));
        self.lower.entry(lower).or_insert_with(|| path.clone());
        self.exact.insert(path);
    }

    /// Resolves `target` (as written, before percent-decoding) from the note at `note`.
    pub fn resolve(&self, note: &str, target: &str) -> Resolution {
        let target = target.trim();
        if target.is_empty() {
            return Resolution::SameNote;
        }
        let decoded = percent_decode_str(target)
            .decode_utf8()
            .unwrap_or(Cow::Borrowed(target));
        let mut forms = vec![target];
        if decoded != target {
            forms.push(&decoded);
        }
        let mut outside = false;
        for form in forms {
            match self.resolve_form(note, form) {
                Resolution::Missing => {}
                Resolution::OutsideVault => outside = true,
                found => return found,
            }
        }
        if outside {
            Resolution::OutsideVault
        } else {
            Resolution::Missing
        }
    }

    fn resolve_form(&self, note: &str, target: &str) -> Resolution {
        let note_dir = note.rsplit_once('/').map_or("", |(dir, _)| dir);
        if let Some(rooted) = target.strip_prefix('/') {
            return match normalize("", rooted) {
                Some(p) => self.exact_file(&p).map_or(Resolution::Missing, found),
                None => Resolution::OutsideVault,
            };
        }
        if target.starts_with("./") || target.starts_with("../") || target == ".." {
            return match normalize(note_dir, target) {
                Some(p) => self.exact_file(&p).map_or(Resolution::Missing, found),
                None => Resolution::OutsideVault,
            };
        }
        if let Some(hit) = normalize(note_dir, target).and_then(|p| self.exact_file(&p)) {
            return found(hit);
        }
        let Some(absolute) = normalize("", target) else {
            return Resolution::OutsideVault;
        };
        if let Some(hit) = self.exact_file(&absolute) {
            return found(hit);
        }
        self.by_suffix(&absolute)
    }

    /// The path itself or the path with `.md`, exact first, then ignoring letter case.
    fn exact_file(&self, path: &str) -> Option<String> {
        let with_md = format!("{path}.md");
        for p in [path, with_md.as_str()] {
            if self.exact.contains(p) {
                return Some(p.to_string());
            }
        }
        for p in [path, with_md.as_str()] {
            if let Some(hit) = self.lower.get(&p.to_lowercase()) {
                return Some(hit.clone());
            }
        }
        None
    }

    /// Files whose path ends with `suffix` (or `suffix.md`), nearest the root first.
    fn by_suffix(&self, suffix: &str) -> Resolution {
        let lower = suffix.to_lowercase();
        let name = lower.rsplit('/').next().unwrap_or(&lower);
        let mut hits: Vec<&String> = Vec::new();
        for (candidate_name, tail) in [
            (name.to_string(), lower.clone()),
            (format!("{name}.md"), format!("{lower}.md")),
        ] {
            let Some(paths) = self.by_name.get(&candidate_name) else {
                continue;
            };
            for (p, pl) in paths {
                // The path is the suffix, or ends with `/` + the suffix.
                let matches = pl == &tail
                    || (pl.len() > tail.len()
                        && pl.ends_with(tail.as_str())
                        && pl.as_bytes()[pl.len() - tail.len() - 1] == b'/');
                if matches && !hits.contains(&p) {
                    hits.push(p);
                }
            }
        }
        hits.sort_by(|a, b| depth(a).cmp(&depth(b)).then_with(|| a.cmp(b)));
        match hits.as_slice() {
            [] => Resolution::Missing,
            [one] => found((*one).clone()),
            [first, ..] => Resolution::Ambiguous {
                path: (*first).clone(),
                candidates: hits.iter().map(|s| (*s).clone()).collect(),
            },
        }
    }
}

fn found(path: String) -> Resolution {
    Resolution::Found { path }
}

fn depth(path: &str) -> usize {
    path.matches('/').count()
}

/// Joins `rel` onto `dir` and removes `.` and `..`; `None` when `..` climbs above the root.
pub(crate) fn normalize(dir: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> FileIndex {
        FileIndex::new(
            [
                "assets/ouishare-logo.png",
                "assets/report.pdf",
                "ecosystem/cohere/profiles/Ouishare.md",
                "ecosystem/cohere/profiles/Impact Hub.md",
                "Notes/Idea.md",
                "Archive/Old/Idea.md",
                "Notes/Tom & Jerry.md",
                "Notes/#hash note.md",
                "Notes/v1.2 plan.md",
                "People/Kevin Kelly.md",
            ]
            .map(String::from),
        )
    }

    fn path(r: Resolution) -> String {
        match r {
            Resolution::Found { path } => path,
            other => panic!("not found: {other:?}"),
        }
    }

    const NOTE: &str = "ecosystem/cohere/profiles/Ouishare.md";

    #[test]
    fn relative_paths_climb_from_the_note_folder() {
        assert_eq!(
            path(vault().resolve(NOTE, "../../../assets/report.pdf")),
            "assets/report.pdf"
        );
    }

    #[test]
    fn vault_absolute_paths_with_or_without_slash() {
        assert_eq!(
            path(vault().resolve(NOTE, "/assets/ouishare-logo.png")),
            "assets/ouishare-logo.png"
        );
        assert_eq!(
            path(vault().resolve(NOTE, "assets/ouishare-logo.png")),
            "assets/ouishare-logo.png"
        );
    }

    #[test]
    fn a_bare_name_without_extension_is_a_note_found_anywhere() {
        assert_eq!(
            path(vault().resolve("x.md", "Kevin Kelly")),
            "People/Kevin Kelly.md"
        );
        assert_eq!(
            path(vault().resolve("x.md", "kevin kelly")),
            "People/Kevin Kelly.md"
        );
        assert_eq!(
            path(vault().resolve("x.md", "Impact Hub")),
            "ecosystem/cohere/profiles/Impact Hub.md"
        );
    }

    #[test]
    fn a_shared_name_resolves_nearest_the_root_and_is_reported_ambiguous() {
        match vault().resolve("x.md", "Idea") {
            Resolution::Ambiguous { path, candidates } => {
                assert_eq!(path, "Notes/Idea.md");
                assert_eq!(candidates, vec!["Notes/Idea.md", "Archive/Old/Idea.md"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            path(vault().resolve("x.md", "Old/Idea")),
            "Archive/Old/Idea.md"
        );
    }

    #[test]
    fn a_note_in_the_same_folder_wins_over_the_name_rule() {
        assert_eq!(
            path(vault().resolve("Archive/Old/Other.md", "Idea")),
            "Archive/Old/Idea.md"
        );
    }

    #[test]
    fn spaces_percent_encoding_ampersands_and_hashes_in_names() {
        let v = vault();
        assert_eq!(
            path(v.resolve(NOTE, "Impact%20Hub.md")),
            "ecosystem/cohere/profiles/Impact Hub.md"
        );
        assert_eq!(
            path(v.resolve("x.md", "Tom & Jerry")),
            "Notes/Tom & Jerry.md"
        );
        assert_eq!(
            path(v.resolve("x.md", "Notes/%23hash%20note.md")),
            "Notes/#hash note.md"
        );
        assert_eq!(path(v.resolve("x.md", "v1.2 plan")), "Notes/v1.2 plan.md");
    }

    #[test]
    fn a_target_outside_the_vault_is_reported_not_read() {
        assert_eq!(
            vault().resolve(NOTE, "../../../../etc/passwd"),
            Resolution::OutsideVault
        );
        assert_eq!(
            vault().resolve("x.md", "/../secret.md"),
            Resolution::OutsideVault
        );
        assert_eq!(
            vault().resolve("x.md", "a/../../secret.md"),
            Resolution::OutsideVault
        );
    }

    #[test]
    fn missing_and_same_note() {
        assert_eq!(
            vault().resolve(NOTE, "../../../assets/ouishare-homepage.png"),
            Resolution::Missing
        );
        assert_eq!(vault().resolve(NOTE, ""), Resolution::SameNote);
    }

    #[test]
    fn normalize_removes_dots() {
        assert_eq!(normalize("a/b", "../c/./d").as_deref(), Some("a/c/d"));
        assert_eq!(normalize("", "../x"), None);
    }
}
