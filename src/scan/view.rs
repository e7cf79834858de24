//! What the notes of a scanned vault say, and the scan's report: read from the note cache,
//! from the scan itself, or (for notes the cache lacks) from the archive's copy.

use std::collections::HashMap;

use rayon::prelude::*;

use super::summary::{self, ScanReport, Summary, Totals};
use super::{Scan, ScannedFile, cache};
use crate::digest::Digest;
use crate::links::FileIndex;
use crate::note::NoteFacts;
use crate::store;
use crate::vault::FileKind;

/// The vault as read by a scan: its files and what each note says. Other commands (snapshot,
/// compost, links) work from this.
#[derive(Debug, Default)]
pub struct VaultView {
    /// Every content file, sorted by path.
    pub files: Vec<ScannedFile>,
    /// What each note says, by content address.
    pub facts: HashMap<Digest, NoteFacts>,
    /// The files by path and name, for resolving links.
    pub index: FileIndex,
}

impl VaultView {
    /// Notes with what they say.
    pub fn notes(&self) -> impl Iterator<Item = (&str, &NoteFacts)> {
        self.files
            .iter()
            .filter(|f| f.kind == FileKind::Note)
            .filter_map(|f| {
                let facts = self.facts.get(f.sha256.as_ref()?)?;
                Some((f.path.as_str(), facts))
            })
    }

    /// What one note says, by vault-relative path.
    pub fn note(&self, path: &str) -> Option<&NoteFacts> {
        self.notes().find(|(p, _)| *p == path).map(|(_, f)| f)
    }
}

impl Scan {
    /// What the notes read during this pass say (the new and changed ones), taking them out
    /// of the scan (a later [`Scan::view`] reads them from the cache or the archive).
    pub fn take_fresh(&self) -> HashMap<Digest, NoteFacts> {
        std::mem::take(&mut *self.fresh.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// What every note says, read from the note cache, from this pass, or (for notes the
    /// cache lacks) from the archive's copy. Keeps the cache to the vault's current notes.
    pub fn view(&self) -> Result<VaultView, store::Error> {
        let (view, dirty) = self.build_view()?;
        if dirty {
            self.save_facts(&view.facts);
        }
        Ok(view)
    }

    /// The view, and whether the note cache needs saving.
    fn build_view(&self) -> Result<(VaultView, bool), store::Error> {
        let (facts, dirty) = self.load_facts()?;
        let view = VaultView {
            index: FileIndex::new(self.files.iter().map(|f| f.path.clone())),
            files: self.files.clone(),
            facts,
        };
        Ok((view, dirty))
    }

    /// Every note's facts, and whether the note cache needs saving.
    fn load_facts(&self) -> Result<(HashMap<Digest, NoteFacts>, bool), store::Error> {
        let (mut facts, fresh) = rayon::join(
            || cache::load(&self.store, self.options.max_note_bytes),
            || std::mem::take(&mut *self.fresh.lock().unwrap_or_else(|e| e.into_inner())),
        );
        let mut dirty = !fresh.is_empty();
        facts.extend(fresh);
        let missing: std::collections::HashSet<Digest> = self
            .files
            .iter()
            .filter(|f| f.kind == FileKind::Note)
            .filter_map(|f| f.sha256)
            .filter(|d| !facts.contains_key(d))
            .collect();
        let read: Vec<(Digest, NoteFacts)> = missing
            .par_iter()
            .map(|d| {
                let bytes = self
                    .store
                    .objects()
                    .read(d)
                    .map_err(store::Error::io("read", &self.store.objects().path(d)))?;
                Ok((
                    *d,
                    crate::note::read_note_bytes(&bytes, self.options.max_note_bytes),
                ))
            })
            .collect::<Result<_, store::Error>>()?;
        dirty |= !read.is_empty();
        facts.extend(read);
        let live: std::collections::HashSet<Digest> =
            self.files.iter().filter_map(|f| f.sha256).collect();
        let before = facts.len();
        facts.retain(|d, _| live.contains(d));
        dirty |= facts.len() != before;
        Ok((facts, dirty))
    }

    /// Saves the note cache; a failure only costs time next run.
    fn save_facts(&self, facts: &HashMap<Digest, NoteFacts>) {
        if !self.options.record {
            return;
        }
        if let Err(e) = cache::save(&self.store, self.options.max_note_bytes, facts) {
            tracing::warn!("cannot save the note cache: {}", crate::report::chain(&e));
        }
    }

    /// The full report. The summary of links and profiles is reused from the last scan when
    /// the vault is as it was then (same records, same files, same day).
    pub fn report(&self) -> Result<ScanReport, store::Error> {
        let summary = match summary::load_full(&self.store, &self.key) {
            Some(s) => s,
            None => self.summarize()?,
        };
        Ok(self.complete(summary, None))
    }

    /// The report with each list cut to its first few items, and the full counts: what a
    /// person reads. Cheap when the vault has not changed.
    pub fn brief(&self) -> Result<ScanReport, store::Error> {
        let (summary, totals) = match summary::load_brief(&self.store, &self.key) {
            Some(b) => b,
            None => {
                let full = self.summarize()?;
                let totals = full.totals();
                (full.brief(), totals)
            }
        };
        Ok(self.complete(summary, Some(totals)))
    }

    fn summarize(&self) -> Result<Summary, store::Error> {
        let clock = std::time::Instant::now();
        let (view, dirty) = self.build_view()?;
        tracing::debug!(elapsed = ?clock.elapsed(), "read what the notes say");
        // Saving the note cache and summarizing only read the view: do both at once.
        let ((), summary) = rayon::join(
            || {
                if dirty {
                    self.save_facts(&view.facts);
                    tracing::debug!(elapsed = ?clock.elapsed(), "saved the note cache");
                }
            },
            || {
                let s = summary::summarize(&view, self.options.today);
                tracing::debug!(elapsed = ?clock.elapsed(), "summary computed");
                s
            },
        );
        tracing::debug!(elapsed = ?clock.elapsed(), "summarized");
        if self.options.record {
            summary::save(&self.store, &self.key, &summary);
        }
        tracing::debug!(elapsed = ?clock.elapsed(), "saved the summary");
        Ok(summary)
    }

    fn complete(&self, mut summary: Summary, totals: Option<Totals>) -> ScanReport {
        let mut totals = totals.unwrap_or_else(|| summary.totals());
        totals.problems += self.problems.len();
        summary.problems.extend(self.problems.iter().cloned());
        summary.problems.sort_by(|a, b| a.path.cmp(&b.path));
        let mut events = std::collections::BTreeMap::new();
        for r in &self.records {
            *events.entry(r.event.name().to_string()).or_default() += 1;
        }
        ScanReport {
            summary,
            recorded: self.records.len(),
            events,
            new_bytes: self.new_bytes,
            totals,
        }
    }
}
