//! Obsidian's rules for finding the file a link names: relative to the note (`../`),
//! vault-absolute (`/assets/x.png` or `assets/x.png`), then the shortest path by name.

use std::borrow::Cow;
use std::hash::BuildHasher;

use hashbrown::HashTable;

use percent_encoding::percent_decode_str;
use serde::Serialize;

/// The files of a vault, by path and by name, for resolving links. Each path is kept once
/// (and once lowercased); the tables hold positions, so a large vault's index costs about
/// twice its paths' text (issue 14).
#[derive(Debug, Default, Clone)]
pub struct FileIndex {
    paths: Vec<Box<str>>,
    /// Each path lowercased, by position.
    lowers: Vec<Box<str>>,
    /// Positions, by path.
    exact: HashTable<u32>,
    /// The first position of each lowercased path, by it.
    lower: HashTable<u32>,
    /// Positions grouped by lowercased file name, nearest the root first.
    by_depth: Vec<u32>,
    /// Each name's group in `by_depth` (start, length), by the name.
    by_name: HashTable<(u32, u32)>,
}

fn hash(s: &str) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(s)
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
    /// The path at `position` (in the order given to [`FileIndex::new`]).
    pub fn path(&self, position: usize) -> &str {
        &self.paths[position]
    }

    /// Indexes vault-relative paths written with `/`.
    pub fn new<I: IntoIterator<Item = String>>(paths: I) -> FileIndex {
        let paths: Vec<Box<str>> = paths.into_iter().map(String::into_boxed_str).collect();
        let lowers: Vec<Box<str>> = paths.iter().map(|p| p.to_lowercase().into()).collect();
        let mut exact = HashTable::with_capacity(paths.len());
        let mut lower = HashTable::with_capacity(paths.len());
        for (i, (path, low)) in paths.iter().zip(&lowers).enumerate() {
            let i = i as u32;
            let h = hash(path);
            if exact.find(h, |&j| *paths[j as usize] == **path).is_none() {
                exact.insert_unique(h, i, |&j| hash(&paths[j as usize]));
            }
            let h = hash(low);
            if lower.find(h, |&j| *lowers[j as usize] == **low).is_none() {
                lower.insert_unique(h, i, |&j| hash(&lowers[j as usize]));
            }
        }
        let name = |i: u32| file_name(&lowers[i as usize]);
        let mut by_depth: Vec<u32> = (0..paths.len() as u32).collect();
        by_depth.sort_by(|&a, &b| {
            let (pa, pb) = (&paths[a as usize], &paths[b as usize]);
            name(a)
                .cmp(name(b))
                .then_with(|| depth(pa).cmp(&depth(pb)))
                .then_with(|| pa.cmp(pb))
        });
        let mut by_name = HashTable::new();
        let mut start = 0;
        while start < by_depth.len() {
            let first = name(by_depth[start]);
            let len = by_depth[start..]
                .iter()
                .take_while(|&&i| name(i) == first)
                .count();
            by_name.insert_unique(hash(first), (start as u32, len as u32), |&(s, _)| {
                hash(name(by_depth[s as usize]))
            });
            start += len;
        }
        FileIndex {
            paths,
            lowers,
            exact,
            lower,
            by_depth,
            by_name,
        }
    }

    fn has_exact(&self, path: &str) -> bool {
        self.exact
            .find(hash(path), |&i| *self.paths[i as usize] == *path)
            .is_some()
    }

    /// The first path whose lowercase is `lower`.
    fn by_lower(&self, lower: &str) -> Option<&str> {
        self.lower
            .find(hash(lower), |&i| *self.lowers[i as usize] == *lower)
            .map(|&i| &*self.paths[i as usize])
    }

    /// Positions of the files named `name` (lowercased), nearest the root first.
    fn named(&self, name: &str) -> &[u32] {
        let group = self.by_name.find(hash(name), |&(s, _)| {
            file_name(&self.lowers[self.by_depth[s as usize] as usize]) == name
        });
        group.map_or(&[], |&(s, n)| &self.by_depth[s as usize..(s + n) as usize])
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
            if self.has_exact(p) {
                return Some(p.to_string());
            }
        }
        for p in [path, with_md.as_str()] {
            if let Some(hit) = self.by_lower(&p.to_lowercase()) {
                return Some(hit.to_string());
            }
        }
        None
    }

    /// Files whose path ends with `suffix` (or `suffix.md`), nearest the root first.
    fn by_suffix(&self, suffix: &str) -> Resolution {
        let lower = suffix.to_lowercase();
        let name = lower.rsplit('/').next().unwrap_or(&lower);
        let mut hits: Vec<&str> = Vec::new();
        for (candidate_name, tail) in [
            (name.to_string(), lower.clone()),
            (format!("{name}.md"), format!("{lower}.md")),
        ] {
            for &i in self.named(&candidate_name) {
                let (p, pl) = (&*self.paths[i as usize], &*self.lowers[i as usize]);
                // The path is the suffix, or ends with `/` + the suffix.
                let matches = pl == tail
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
            [one] => found((*one).to_string()),
            [first, ..] => Resolution::Ambiguous {
                path: (*first).to_string(),
                candidates: hits.iter().map(|s| (*s).to_string()).collect(),
            },
        }
    }
}

/// The last component of a path.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
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
