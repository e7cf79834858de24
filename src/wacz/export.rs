//! `archive export --wacz`: snapshots as one WACZ 1.1.1 file. Each snapshot becomes
//! `archive/<id>.warc.gz` (a warcinfo record, then a request and a response record per
//! capture and per redirect on its way, and revisit records where a payload repeats);
//! `indexes/index.cdx` lists every response in SURT order; `pages/pages.jsonl` has each
//! page's title and text. Streaming: records go to temp files beside the output, one capture
//! at a time; only the index lines are held in memory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Serialize;
use url::Url;

use super::package::{Meta, Package};
use crate::digest::Digest;
use crate::snapshot::Role;
use crate::snapshot::crawl::is_html;
use crate::snapshot::record::{Capture, Snapshot};
use crate::store::{self, Store};
use crate::warc::{self, Effort, Writer, http, surt::surt};

/// What the warcinfo record of every exported WARC says about the records.
const HOW: &str = "Bodies are as vaultkeep stored them: decoded. Content-Encoding and \
Transfer-Encoding are dropped from the response headers and Content-Length is set to the \
stored body. Request records are reconstructed (GET, the user agent): vaultkeep does not keep \
the headers it sent. Redirect responses carry their status and Location only. A payload seen \
before in this file is written once, then as revisit records.";

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Nothing to export.
    #[error("no snapshot to export: give snapshot ids, --url, --note or --all")]
    Nothing,
    /// The output file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The archive could not be read.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// What an export wrote.
#[derive(Debug, Serialize)]
pub struct ExportReport {
    /// The WACZ file.
    pub file: PathBuf,
    /// The snapshots in it.
    pub snapshots: Vec<String>,
    /// Their captures.
    pub captures: usize,
    /// WARC records written.
    pub records: usize,
    /// Of those, revisit records (repeated payloads).
    pub revisits: usize,
    /// Pages listed with their text.
    pub pages: usize,
    /// The file's size.
    pub bytes: u64,
}

/// Which snapshots to export.
#[derive(Debug, Default)]
pub struct Selection {
    /// Snapshot ids, or unique beginnings of them.
    pub ids: Vec<String>,
    /// URLs: every snapshot made for one (as its root) or holding a capture of one.
    pub urls: Vec<String>,
    /// Every snapshot.
    pub all: bool,
}

/// The snapshots `selection` names, oldest first, each once. A named id that matches none is
/// an error naming it.
pub fn select(store: &Store, selection: &Selection) -> Result<Vec<Snapshot>, String> {
    let all: Vec<Snapshot> = crate::snapshot::record::load_all(store)
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    let mut chosen: Vec<Snapshot> = Vec::new();
    let mut take = |s: &Snapshot| {
        if !chosen.iter().any(|c| c.id == s.id) {
            chosen.push(s.clone());
        }
    };
    for id in &selection.ids {
        let found = crate::snapshot::record::find(store, id)?;
        if let Some(s) = all.iter().find(|s| s.id == found) {
            take(s);
        }
    }
    let keys: Vec<String> = selection
        .urls
        .iter()
        .map(|u| crate::copies::key(u))
        .collect();
    for s in &all {
        let holds = |u: &str| keys.iter().any(|k| *k == crate::copies::key(u));
        if selection.all
            || holds(&s.root)
            || s.captures
                .iter()
                .any(|c| holds(&c.url) || holds(&c.final_url))
        {
            take(s);
        }
    }
    chosen.sort_by_key(|s| s.started);
    Ok(chosen)
}

/// One line of the CDXJ index: `<SURT key> <timestamp> <JSON>`. Sorted as bytes, lines are in
/// the order of their key, then timestamp: a key holds no space (a URL's are escaped), and a
/// space sorts before any character that may follow a key that is another's beginning.
type IndexLine = String;

/// Writes `snapshots` to `out` as a WACZ file (atomically: a temp file, then a rename).
pub fn export(
    store: &Store,
    snapshots: &[Snapshot],
    out: &Path,
    user_agent: &str,
) -> Result<ExportReport, ExportError> {
    if snapshots.is_empty() {
        return Err(ExportError::Nothing);
    }
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Write {
            path: path.clone(),
            source,
        }
    };
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let work = tempfile::Builder::new()
        .prefix(".vaultkeep-export-")
        .tempdir_in(dir)
        .map_err(write_err(dir))?;
    let mut report = ExportReport {
        file: out.to_path_buf(),
        snapshots: Vec::new(),
        captures: 0,
        records: 0,
        revisits: 0,
        pages: 0,
        bytes: 0,
    };
    let mut index: Vec<IndexLine> = Vec::new();
    let pages_path = work.path().join("pages.jsonl");
    let mut pages = BufWriter::new(File::create(&pages_path).map_err(write_err(&pages_path))?);
    writeln!(
        pages,
        r#"{{"format": "json-pages-1.0", "id": "pages", "title": "Pages"}}"#
    )
    .map_err(write_err(&pages_path))?;
    let mut warcs = Vec::new();
    for snap in snapshots {
        let name = format!("{}.warc.gz", snap.id);
        let path = work.path().join(&name);
        let file = BufWriter::new(File::create(&path).map_err(write_err(&path))?);
        let mut w = SnapshotWriter {
            store,
            warc: Writer::new(file),
            name: name.clone(),
            user_agent,
            seen: HashMap::new(),
            index: &mut index,
            pages: &mut pages,
            report: &mut report,
        };
        w.snapshot(snap).map_err(|e| match e {
            Failed::Io(source) => ExportError::Write {
                path: path.clone(),
                source,
            },
            Failed::Store(s) => ExportError::Store(s),
        })?;
        w.warc
            .finish()
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .map_err(write_err(&path))?;
        report.snapshots.push(snap.id.clone());
        warcs.push((name, path));
    }
    pages
        .into_inner()
        .map_err(|e| e.into_error())
        .map_err(write_err(&pages_path))?;
    index.sort_unstable();
    // Written out, not joined in memory: an export of many captures holds the lines once.
    let cdx_path = work.path().join("index.cdx");
    let mut cdx = BufWriter::new(File::create(&cdx_path).map_err(write_err(&cdx_path))?);
    for line in &index {
        writeln!(cdx, "{line}").map_err(write_err(&cdx_path))?;
    }
    cdx.into_inner()
        .map_err(|e| e.into_error())
        .map_err(write_err(&cdx_path))?;
    drop(index);

    let tmp = tempfile::Builder::new()
        .prefix(".vaultkeep-")
        .suffix(".wacz.tmp")
        .tempfile_in(dir)
        .map_err(write_err(dir))?;
    let mut package = Package::new(BufWriter::new(tmp));
    let zip_err = write_err(out);
    for (name, path) in &warcs {
        package
            .add_file(&format!("archive/{name}"), path)
            .map_err(&zip_err)?;
    }
    package
        .add_file("indexes/index.cdx", &cdx_path)
        .map_err(&zip_err)?;
    package
        .add_file("pages/pages.jsonl", &pages_path)
        .map_err(&zip_err)?;
    let first = &snapshots[0];
    let meta = Meta {
        title: if snapshots.len() == 1 {
            format!("{} ({})", first.root, first.started)
        } else {
            format!("{} snapshots, from {}", snapshots.len(), first.root)
        },
        created: Timestamp::now().to_string(),
        software: format!("vaultkeep {}", env!("CARGO_PKG_VERSION")),
        main_page_url: Some(first.root.clone()),
        main_page_date: Some(first.started.to_string()),
    };
    let written = package.finish(meta).map_err(&zip_err)?;
    let tmp = written.into_inner().map_err(|e| zip_err(e.into_error()))?;
    tmp.as_file().sync_all().map_err(&zip_err)?;
    tmp.persist(out).map_err(|e| zip_err(e.error))?;
    report.bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    Ok(report)
}

/// Why writing one snapshot failed.
enum Failed {
    Io(io::Error),
    Store(store::Error),
}

impl From<io::Error> for Failed {
    fn from(e: io::Error) -> Failed {
        Failed::Io(e)
    }
}

/// Writes one snapshot's records.
struct SnapshotWriter<'a, W: Write> {
    store: &'a Store,
    warc: Writer<W>,
    name: String,
    user_agent: &'a str,
    /// Payloads written: digest → (URL, WARC-Date), for revisits.
    seen: HashMap<Digest, (String, String)>,
    index: &'a mut Vec<IndexLine>,
    pages: &'a mut BufWriter<File>,
    report: &'a mut ExportReport,
}

impl<W: Write> SnapshotWriter<'_, W> {
    fn snapshot(&mut self, snap: &Snapshot) -> Result<(), Failed> {
        let mut info = format!(
            "software: vaultkeep/{}\r\nformat: WARC File Format 1.1\r\n\
             conformsTo: http://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/\r\n\
             description: {HOW}\r\nvaultkeep-snapshot: {}\r\nvaultkeep-root: {}\r\n\
             vaultkeep-started: {}\r\nvaultkeep-depth: {}\r\nvaultkeep-max-pages: {}\r\n",
            env!("CARGO_PKG_VERSION"),
            snap.id,
            snap.root,
            snap.started,
            snap.depth,
            snap.max_pages
        );
        if let Some(why) = &snap.incomplete {
            info.push_str(&format!("vaultkeep-incomplete: {why}\r\n"));
        }
        self.warc.write(
            &[
                ("WARC-Type", "warcinfo".into()),
                ("WARC-Record-ID", warc::record_id()),
                ("WARC-Date", snap.started.to_string()),
                ("WARC-Filename", self.name.clone()),
                ("Content-Type", "application/warc-fields".into()),
            ],
            &[info.as_bytes()],
            Effort::Full,
        )?;
        self.report.records += 1;
        let mut captures: Vec<&Capture> = snap.captures.iter().collect();
        captures.sort_by_key(|c| c.time);
        for c in captures {
            self.capture(c)?;
        }
        Ok(())
    }

    fn capture(&mut self, c: &Capture) -> Result<(), Failed> {
        let date = c.time;
        // The redirects on the way, each a response of its own.
        for (i, hop) in c.redirects.iter().enumerate() {
            let next = c
                .redirects
                .get(i + 1)
                .map_or(c.final_url.as_str(), |h| h.url.as_str());
            let head = http::response_head(
                hop.status,
                &[("Location".to_string(), next.to_string())],
                Some(0),
            );
            self.exchange(&hop.url, date, &head, &[], &Digest::of(b""), None, None)?;
        }
        let body = self.store.objects().read(&c.sha256).map_err(|e| {
            Failed::Store(store::Error::io(
                "read",
                &self.store.objects().path(&c.sha256),
            )(e))
        })?;
        let head = http::response_head(c.status, &c.headers, Some(body.len() as u64));
        self.exchange(
            &c.final_url,
            date,
            &head,
            &body,
            &c.sha256,
            c.media_type.as_deref(),
            Some(c),
        )?;
        for alias in &c.aliases {
            self.exchange(
                alias,
                date,
                &head,
                &body,
                &c.sha256,
                c.media_type.as_deref(),
                None,
            )?;
        }
        self.report.captures += 1;
        if matches!(c.role, Role::Page | Role::Frame) && is_html(c.media_type.as_deref(), &body) {
            let (title, text) = crate::snapshot::text::title_and_text(&body);
            let line = serde_json::json!({
                "url": c.final_url,
                "ts": date.to_string(),
                "title": if title.is_empty() { c.final_url.clone() } else { title },
                "text": text,
            });
            writeln!(self.pages, "{line}")?;
            self.report.pages += 1;
        }
        Ok(())
    }

    /// A request record and its response (or, for a payload written before, a revisit).
    #[allow(clippy::too_many_arguments)]
    fn exchange(
        &mut self,
        url: &str,
        time: Timestamp,
        head: &[u8],
        body: &[u8],
        digest: &Digest,
        media: Option<&str>,
        capture: Option<&Capture>,
    ) -> Result<(), Failed> {
        let Ok(parsed) = Url::parse(url) else {
            return Ok(());
        };
        let date = time.to_string();
        let request_id = warc::record_id();
        self.warc.write(
            &[
                ("WARC-Type", "request".into()),
                ("WARC-Record-ID", request_id.clone()),
                ("WARC-Date", date.clone()),
                ("WARC-Target-URI", url.into()),
                ("Content-Type", "application/http;msgtype=request".into()),
            ],
            &[&http::request_block(&parsed, self.user_agent)],
            Effort::Full,
        )?;
        let payload = warc::digest_field(digest);
        let mut fields = vec![
            ("WARC-Record-ID", warc::record_id()),
            ("WARC-Date", date.clone()),
            ("WARC-Target-URI", url.to_string()),
            ("WARC-Concurrent-To", request_id),
            ("WARC-Payload-Digest", payload.clone()),
            ("Content-Type", "application/http;msgtype=response".into()),
        ];
        if let Some(c) = capture {
            fields.push(("Vaultkeep-Role", role_name(c.role).into()));
            fields.push(("Vaultkeep-Depth", c.depth.to_string()));
            if c.url != c.final_url {
                fields.push(("Vaultkeep-Requested", c.url.clone()));
            }
        }
        let status = String::from_utf8_lossy(head)
            .split_whitespace()
            .nth(1)
            .unwrap_or("200")
            .to_string();
        let earlier = (!body.is_empty())
            .then(|| self.seen.get(digest).cloned())
            .flatten();
        let (written, mime) = match earlier {
            Some((first_url, first_date)) => {
                fields.insert(0, ("WARC-Type", "revisit".into()));
                fields.push((
                    "WARC-Profile",
                    "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest".into(),
                ));
                fields.push(("WARC-Refers-To-Target-URI", first_url));
                fields.push(("WARC-Refers-To-Date", first_date));
                self.report.revisits += 1;
                (
                    self.warc.write(&fields, &[head], Effort::Full)?,
                    "warc/revisit".to_string(),
                )
            }
            None => {
                fields.insert(0, ("WARC-Type", "response".into()));
                if !body.is_empty() {
                    self.seen.insert(*digest, (url.to_string(), date.clone()));
                }
                let mime = media.unwrap_or("application/octet-stream").to_string();
                let effort = Effort::for_media(media);
                (self.warc.write(&fields, &[head, body], effort)?, mime)
            }
        };
        self.report.records += 2;
        let ts = time.strftime("%Y%m%d%H%M%S").to_string();
        let json = serde_json::json!({
            "url": url,
            "mime": mime,
            "status": status,
            "digest": payload,
            "length": written.length.to_string(),
            "offset": written.offset.to_string(),
            "filename": self.name,
        });
        self.index.push(format!("{} {ts} {json}", surt(&parsed)));
        Ok(())
    }
}

/// A capture's role, as its extension field says it.
pub(super) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Page => "page",
        Role::Frame => "frame",
        Role::Stylesheet => "stylesheet",
        Role::Requisite => "requisite",
    }
}
