//! What the notes of a scanned vault say, and the scan's report: read from the note cache,
//! from the scan itself, or (for notes the cache lacks) from the archive's copy.

use std::collections::{HashMap, HashSet};

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

/// Where a pass finds what each note says: the notes read during the scan, the note cache,
/// or (for notes neither has) the archive's copy, read again and cached.
struct Source<'a> {
    scan: &'a Scan,
    /// The note cache, indexed on the first note this pass did not read (after a first
    /// scan, every note was, and the whole cache file need not be read again).
    cache: std::sync::OnceLock<Option<cache::Lines>>,
    /// Notes read from the archive now, cached for next time.
    appender: Option<cache::Appender>,
}

impl<'a> Source<'a> {
    fn open(scan: &'a Scan) -> Source<'a> {
        Source {
            scan,
            cache: std::sync::OnceLock::new(),
            // A preview writes nothing: what it reads from the archive is not cached.
            appender: scan
                .options
                .record
                .then(|| super::note_appender(&scan.store, &scan.options))
                .flatten(),
        }
    }

    fn facts(&self, digest: &Digest) -> Result<NoteFacts, store::Error> {
        let cached = |lines: &Option<cache::Lines>| lines.as_ref().and_then(|l| l.get(digest));
        let cache = || {
            self.cache.get_or_init(|| {
                let path = cache::path(&self.scan.store);
                cache::Lines::open(&path, self.scan.options.max_note_bytes)
            })
        };
        if let Some(facts) = cached(&self.scan.fresh).or_else(|| cached(cache())) {
            return Ok(facts);
        }
        let objects = self.scan.store.objects();
        let bytes = objects
            .read(digest)
            .map_err(store::Error::io("read", &objects.path(digest)))?;
        let facts = crate::note::read_note_bytes(&bytes, self.scan.options.max_note_bytes);
        if let Some(appender) = &self.appender {
            appender.add(digest, &facts);
        }
        Ok(facts)
    }

    /// Writes the notes read from the archive; rewrites the cache when it is mostly stale
    /// (`live`: the notes' content addresses, asked for then).
    fn finish(self, live: impl FnOnce() -> HashSet<Digest>) {
        let appended = self.appender.map(|a| {
            let (lines, error) = a.finish();
            if let Some(e) = error {
                tracing::warn!("cannot write the note cache: {e}");
            }
            lines.len()
        });
        let Some(appended) = appended else { return };
        // A cache never opened held no note this pass needed: left as it is until a pass
        // reads it.
        let Some(opened) = self.cache.get() else {
            return;
        };
        let live = live();
        let lines = opened.as_ref().map_or(0, cache::Lines::line_count) + appended;
        if lines <= cache::Lines::keep_up_to(live.len()) {
            return;
        }
        let path = cache::path(&self.scan.store);
        let max = self.scan.options.max_note_bytes;
        if let Some(all) = cache::Lines::open(&path, max)
            && let Err(e) = all.compact(&path, max, &live)
        {
            tracing::warn!("cannot rewrite the note cache: {e}");
        }
    }
}

/// The notes among `files`, in their order, with their content addresses.
fn notes(files: &[ScannedFile]) -> impl Iterator<Item = (&str, Digest)> {
    files
        .iter()
        .filter(|f| f.kind == FileKind::Note)
        .filter_map(|f| Some((f.path.as_str(), f.sha256?)))
}

impl Scan {
    /// What the notes read during this pass (the new and changed ones) say.
    pub fn take_fresh(&self) -> HashMap<Digest, NoteFacts> {
        let Some(fresh) = &self.fresh else {
            return HashMap::new();
        };
        fresh.entries().collect()
    }

    /// What the whole vault says needs a scan that listed it (a caller's mistake otherwise).
    fn must_be_whole(&self) {
        assert!(
            self.is_whole(),
            "a scan of changed paths knows only those: report on a whole scan"
        );
    }

    /// What every note says, all held in memory (for commands that work on the whole vault).
    pub fn view(&self) -> Result<VaultView, store::Error> {
        self.must_be_whole();
        let source = Source::open(self);
        let files = self.files()?;
        let digests: HashSet<Digest> = notes(&files).map(|(_, d)| d).collect();
        let facts = digests
            .par_iter()
            .map(|d| Ok((*d, source.facts(d)?)))
            .collect::<Result<HashMap<_, _>, store::Error>>()?;
        source.finish(|| digests);
        Ok(VaultView {
            index: FileIndex::new(files.iter().map(|f| f.path.clone())),
            files: files.into_owned(),
            facts,
        })
    }

    /// Calls `each` with every note's path and what it says (every note this pass listed), in
    /// path order, a block of notes at a time: memory stays bounded by the block, not by the
    /// vault.
    pub fn each_note(&self, mut each: impl FnMut(&str, &NoteFacts)) -> Result<(), store::Error> {
        let source = Source::open(self);
        let files = self.files()?;
        let notes: Vec<(&str, Digest)> = notes(&files).collect();
        for block in notes.chunks(2048) {
            let facts = block
                .par_iter()
                .map(|(_, d)| source.facts(d))
                .collect::<Result<Vec<_>, store::Error>>()?;
            for ((path, _), facts) in block.iter().zip(&facts) {
                each(path, facts);
            }
        }
        source.finish(|| notes.iter().map(|(_, d)| *d).collect());
        Ok(())
    }

    /// The full report. The summary of links and profiles is reused from the last scan when
    /// the vault is as it was then (same records, same files, same day).
    pub fn report(&self) -> Result<ScanReport, store::Error> {
        self.must_be_whole();
        let summary = match summary::load_full(&self.store, &self.key) {
            Some(s) => s,
            None => {
                let (summary, _) = self.summarize(None)?;
                if self.keeps_summaries() {
                    summary::save_full(&self.store, &self.key, &summary);
                }
                summary
            }
        };
        Ok(self.complete(summary, None))
    }

    /// The report with each list cut to its first few items, and the full counts: what a
    /// person reads. Only those items are held, however large the vault; cheap when the
    /// vault has not changed.
    pub fn brief(&self) -> Result<ScanReport, store::Error> {
        self.must_be_whole();
        let (summary, totals) = match summary::load_brief(&self.store, &self.key) {
            Some(b) => b,
            None => {
                let (summary, totals) = self.summarize(Some(summary::BRIEF_ITEMS))?;
                if self.keeps_summaries() {
                    summary::save_brief(&self.store, &self.key, &summary, totals);
                }
                (summary, totals)
            }
        };
        Ok(self.complete(summary, Some(totals)))
    }

    /// Whether this pass saves the summary it made for the next: a recording pass, and a
    /// preview beside the daemon that found nothing unrecorded (its files are then the
    /// archive's; the key names their contents, so the summary is right for whoever meets
    /// them next). Other previews write nothing: their archive may be read-only.
    fn keeps_summaries(&self) -> bool {
        self.options.record || (self.options.changed_paths.is_some() && self.recorded == 0)
    }

    /// Reads every note (from this pass, the cache or the archive) into a summary whose lists
    /// keep at most `limit` items each.
    fn summarize(&self, limit: Option<usize>) -> Result<(Summary, Totals), store::Error> {
        let clock = std::time::Instant::now();
        let source = Source::open(self);
        let files = self.files()?;
        let mut counts = summary::Counts {
            notes: 0,
            assets: 0,
        };
        let mut notes: Vec<(u32, Digest)> = Vec::new();
        for (i, f) in files.iter().enumerate() {
            match f.kind {
                FileKind::Note => {
                    counts.notes += 1;
                    notes.extend(f.sha256.map(|d| (i as u32, d)));
                }
                FileKind::Asset => counts.assets += 1,
            }
        }
        let index = FileIndex::new(files.into_owned().into_iter().map(|f| f.path));
        tracing::debug!(elapsed = ?clock.elapsed(), "indexed the names and the note cache");
        let counted = summary::summarize(
            counts,
            &notes,
            &index,
            |d| source.facts(d),
            self.options.today,
            limit,
        );
        tracing::debug!(elapsed = ?clock.elapsed(), "summarized");
        source.finish(|| notes.iter().map(|(_, d)| *d).collect());
        tracing::debug!(elapsed = ?clock.elapsed(), "note cache written");
        counted
    }

    fn complete(&self, mut summary: Summary, totals: Option<Totals>) -> ScanReport {
        let mut totals = totals.unwrap_or_else(|| summary.totals());
        totals.problems += self.problems.len();
        summary.problems.extend(self.problems.iter().cloned());
        summary.problems.sort_by(|a, b| a.path.cmp(&b.path));
        if !self.options.record {
            return ScanReport {
                summary,
                unrecorded: self.recorded,
                daemon_reported: self.options.changed_paths.as_ref().map(|c| c.len()),
                totals,
                ..ScanReport::default()
            };
        }
        ScanReport {
            summary,
            recorded: self.recorded,
            events: self.events.clone(),
            new_bytes: self.new_bytes,
            unrecorded: 0,
            daemon_reported: None,
            totals,
        }
    }
}
