//! `archive import`: WARC and WACZ files made by other tools (wget, Browsertrix, ArchiveBox)
//! or by `archive export`, added to the archive as snapshots with their captures, objects and
//! an offline copy. Each WARC file becomes one snapshot. Records it cannot use (malformed,
//! of another type, truncated) are listed and skipped; a snapshot is recorded only once its
//! file has been read to the end, so an import never leaves one half-recorded.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Serialize;
use url::Url;

use crate::digest::Digest;
use crate::fetch::Hop;
use crate::report::Problem;
use crate::snapshot::crawl::is_html;
use crate::snapshot::record::{self, Capture, FailedUrl, Snapshot};
use crate::snapshot::{self, Role};
use crate::store::{self, Store};
use crate::warc::{self, ReadError, Record, http};

/// Bodies larger than this are skipped (they are held in memory while stored).
const MAX_BODY: u64 = 512 * 1024 * 1024;

/// What importing one file did.
#[derive(Debug, Serialize)]
pub struct FileReport {
    /// The file.
    pub file: PathBuf,
    /// Snapshots recorded from it.
    pub snapshots: Vec<String>,
    /// Snapshots it holds that the archive already had (by id).
    pub already_held: Vec<String>,
    /// Captures recorded.
    pub captures: usize,
    /// Bytes of bodies the archive did not hold before.
    pub new_bytes: u64,
    /// Records skipped, and why.
    pub skipped: Vec<Problem>,
}

/// Why a file could not be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be opened or is not a WARC or WACZ.
    #[error("cannot read {path}: {message}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The archive could not be written.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Imports one `.warc`, `.warc.gz` or `.wacz` file. The caller holds the archive's lock.
pub fn import(store: &Store, path: &Path) -> Result<FileReport, ImportError> {
    let unreadable = |message: String| ImportError::Unreadable {
        path: path.to_path_buf(),
        message,
    };
    let mut report = FileReport {
        file: path.to_path_buf(),
        snapshots: Vec::new(),
        already_held: Vec::new(),
        captures: 0,
        new_bytes: 0,
        skipped: Vec::new(),
    };
    let file = File::open(path).map_err(|e| unreadable(e.to_string()))?;
    let mut magic = [0u8; 4];
    let is_zip = (&file)
        .read_exact(&mut magic)
        .map(|()| &magic == b"PK\x03\x04")
        .unwrap_or(false);
    let mut file = file;
    file.rewind().map_err(|e| unreadable(e.to_string()))?;
    if is_zip {
        let mut zip = zip::ZipArchive::new(BufReader::new(file))
            .map_err(|e| unreadable(format!("not a zip (WACZ) file: {e}")))?;
        let mut names: Vec<String> = zip
            .file_names()
            .filter_map(Result::ok)
            .map(|n| n.to_string())
            .filter(|n| {
                n.starts_with("archive/") && (n.ends_with(".warc") || n.ends_with(".warc.gz"))
            })
            .collect();
        names.sort();
        if names.is_empty() {
            return Err(unreadable("a zip without WARC files under archive/".into()));
        }
        let main_page = main_page(&mut zip);
        for name in names {
            let member = zip
                .by_name(&name)
                .map_err(|e| unreadable(format!("{name}: {e}")))?;
            let source = format!("{}!{name}", path.display());
            read_warc(
                store,
                BufReader::new(member),
                &source,
                main_page.as_deref(),
                &mut report,
            )?;
        }
    } else {
        read_warc(
            store,
            BufReader::new(file),
            &path.display().to_string(),
            None,
            &mut report,
        )?;
    }
    Ok(report)
}

/// The first page a WACZ lists (`pages/pages.jsonl`), the root of its snapshot.
fn main_page<R: Read + Seek>(zip: &mut zip::ZipArchive<R>) -> Option<String> {
    let pages = zip.by_name("pages/pages.jsonl").ok()?;
    BufReader::new(pages)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .find_map(|v| v["url"].as_str().map(str::to_string))
}

/// What vaultkeep's own warcinfo record says about the snapshot a WARC holds.
#[derive(Debug, Default)]
struct Info {
    id: Option<String>,
    root: Option<String>,
    started: Option<Timestamp>,
    depth: u32,
    max_pages: usize,
    incomplete: Option<String>,
}

/// Reads one WARC stream into a snapshot.
fn read_warc(
    store: &Store,
    input: impl BufRead,
    source: &str,
    main_page: Option<&str>,
    report: &mut FileReport,
) -> Result<(), ImportError> {
    let reader = warc::open(input).map_err(|e| ImportError::Unreadable {
        path: source.into(),
        message: e.to_string(),
    })?;
    let mut info = Info::default();
    let mut captures: Vec<Capture> = Vec::new();
    let mut failures: Vec<FailedUrl> = Vec::new();
    // Redirects seen, waiting for the response they lead to: (URL, status, Location).
    let mut pending_hops: Vec<(String, u16, String)> = Vec::new();
    // Payloads recorded, by URL and date and by digest, for revisit records.
    let mut by_url_date: HashMap<(String, String), Digest> = HashMap::new();
    let mut new_bytes = 0u64;
    let mut first_time: Option<Timestamp> = None;
    for (n, record) in reader.enumerate() {
        let record = match record {
            Ok(r) => r,
            Err(e @ ReadError::TooLarge(_)) => {
                report
                    .skipped
                    .push(Problem::new(format!("{source} record {n}"), e.to_string()));
                continue;
            }
            Err(e) => {
                report.skipped.push(Problem::new(
                    format!("{source} record {n}"),
                    format!("{e}; the rest of this file is skipped"),
                ));
                break;
            }
        };
        let skip = |why: String| {
            Problem::new(
                format!(
                    "{source} record {n} ({} {})",
                    record.kind(),
                    record.target().unwrap_or("")
                ),
                why,
            )
        };
        match record.kind() {
            "warcinfo" => read_info(&record, &mut info),
            "request" | "metadata" => {}
            "response" | "revisit" | "resource" => {
                let time = record
                    .field("WARC-Date")
                    .and_then(|d| d.parse::<Timestamp>().ok())
                    .unwrap_or_else(Timestamp::now);
                first_time = Some(first_time.map_or(time, |t| t.min(time)));
                match exchange(store, &record, &by_url_date) {
                    Ok(Some(x)) if (300..400).contains(&x.status) && x.location.is_some() => {
                        pending_hops.push((x.url, x.status, x.location.unwrap_or_default()));
                    }
                    Ok(Some(x)) if !(200..300).contains(&x.status) => {
                        failures.push(FailedUrl {
                            url: x.url,
                            reason: "http".into(),
                            detail: format!("HTTP {}", x.status),
                            role: Role::Requisite,
                            time,
                        });
                    }
                    Ok(Some(x)) => {
                        new_bytes += x.new_bytes;
                        by_url_date.insert((x.url.clone(), time.to_string()), x.digest);
                        let (requested, redirects) =
                            chain(&mut pending_hops, &x.url, x.requested.as_deref());
                        let html = is_html(x.media_type.as_deref(), &[]) || x.looks_html;
                        let role = x.role.unwrap_or(if html {
                            Role::Page
                        } else if x.media_type.as_deref() == Some("text/css") {
                            Role::Stylesheet
                        } else {
                            Role::Requisite
                        });
                        // vaultkeep's own exports write an alias (`/index.html` for `/`) as a
                        // response without a role, right after its capture.
                        if info.id.is_some()
                            && x.role.is_none()
                            && let Some(last) = captures.last_mut()
                            && last.sha256 == x.digest
                        {
                            last.aliases.push(x.url);
                            last.aliases.sort();
                            continue;
                        }
                        captures.push(Capture {
                            url: requested,
                            final_url: x.url,
                            redirects,
                            status: x.status,
                            headers: x.headers,
                            time,
                            sha256: x.digest,
                            size: x.size,
                            media_type: x.media_type,
                            role,
                            depth: x.depth,
                            offline: None,
                            aliases: Vec::new(),
                            rendered: None,
                        });
                    }
                    Ok(None) => report.skipped.push(skip("not an http(s) capture".into())),
                    Err(why) => report.skipped.push(skip(why)),
                }
            }
            other => report.skipped.push(skip(format!(
                "a {other:?} record, which vaultkeep does not use"
            ))),
        }
    }
    if captures.is_empty() {
        report
            .skipped
            .push(Problem::new(source, "no captures: no snapshot recorded"));
        return Ok(());
    }
    let root = info
        .root
        .clone()
        .or_else(|| main_page.map(str::to_string))
        .or_else(|| {
            captures
                .iter()
                .find(|c| c.role == Role::Page)
                .map(|c| c.url.clone())
        })
        .unwrap_or_else(|| captures[0].url.clone());
    let started = info.started.or(first_time).unwrap_or_else(Timestamp::now);
    let id = match info.id.clone() {
        Some(id) => id,
        None => record::new_id(
            &Url::parse(&root).map_err(|e| ImportError::Unreadable {
                path: source.into(),
                message: format!("the root {root} is not a URL: {e}"),
            })?,
            started,
        ),
    };
    if store.has_snapshot_record(&id) {
        report.already_held.push(id);
        return Ok(());
    }
    let finished = captures.iter().map(|c| c.time).max().unwrap_or(started);
    let total: u64 = captures.iter().map(|c| c.size).sum();
    report.captures += captures.len();
    report.new_bytes += new_bytes;
    let snapshot = Snapshot {
        id: id.clone(),
        root,
        depth: info.depth,
        max_pages: if info.max_pages == 0 {
            captures.len()
        } else {
            info.max_pages
        },
        started,
        finished,
        new_bytes,
        reused_bytes: total.saturating_sub(new_bytes),
        offline: None,
        captures,
        failures,
        offline_files: Vec::new(),
        incomplete: info.incomplete,
        not_listed: 0,
        problems: Vec::new(),
    };
    snapshot::finish(store, snapshot)?;
    report.snapshots.push(id);
    Ok(())
}

fn read_info(record: &Record, info: &mut Info) {
    let text = String::from_utf8_lossy(&record.block);
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "vaultkeep-snapshot" => info.id = Some(v.to_string()),
            "vaultkeep-root" => info.root = Some(v.to_string()),
            "vaultkeep-started" => info.started = v.parse().ok(),
            "vaultkeep-depth" => info.depth = v.parse().unwrap_or(0),
            "vaultkeep-max-pages" => info.max_pages = v.parse().unwrap_or(0),
            "vaultkeep-incomplete" => info.incomplete = Some(v.to_string()),
            _ => {}
        }
    }
}

/// One response (or revisit, or resource) record, its body stored.
struct Exchange {
    url: String,
    status: u16,
    headers: Vec<(String, String)>,
    location: Option<String>,
    digest: Digest,
    size: u64,
    new_bytes: u64,
    media_type: Option<String>,
    looks_html: bool,
    role: Option<Role>,
    depth: u32,
    requested: Option<String>,
}

/// Reads a response, revisit or resource record and stores its body. `None` for a record
/// that is not an http(s) capture.
fn exchange(
    store: &Store,
    record: &Record,
    earlier: &HashMap<(String, String), Digest>,
) -> Result<Option<Exchange>, String> {
    let Some(url) = record.target().map(str::to_string) else {
        return Err("no WARC-Target-URI".into());
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Ok(None);
    }
    let (status, headers, body) = match record.kind() {
        "resource" => {
            let media = record
                .field("Content-Type")
                .unwrap_or("application/octet-stream");
            (
                200,
                vec![("Content-Type".to_string(), media.to_string())],
                Some(record.block.clone()),
            )
        }
        "revisit" => {
            let head = http::parse_response(&record.block, MAX_BODY).map_err(|e| e.to_string())?;
            (head.status, head.headers, None)
        }
        _ => {
            let r = http::parse_response(&record.block, MAX_BODY)?;
            (r.status, r.headers, Some(r.body))
        }
    };
    let location = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("location"))
        .and_then(|(_, v)| Url::parse(&url).ok()?.join(v).ok())
        .map(|u| u.to_string());
    let media_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|v| !v.is_empty());
    let (digest, size, new_bytes, looks_html) = match body {
        Some(body) => {
            let digest = Digest::of(&body);
            let new = store
                .objects()
                .put(&digest, &body)
                .map_err(|e| format!("cannot store the body: {e}"))?;
            let html = is_html(media_type.as_deref(), &body);
            (
                digest,
                body.len() as u64,
                if new { body.len() as u64 } else { 0 },
                html,
            )
        }
        None => {
            // A revisit: the payload was recorded earlier in this file.
            let refers = (
                record
                    .field("WARC-Refers-To-Target-URI")
                    .unwrap_or(&url)
                    .trim_matches(['<', '>'])
                    .to_string(),
                record
                    .field("WARC-Refers-To-Date")
                    .and_then(|d| d.parse::<Timestamp>().ok())
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
            );
            let digest = earlier
                .get(&refers)
                .or_else(|| {
                    earlier
                        .iter()
                        .find(|((u, _), _)| *u == refers.0)
                        .map(|(_, d)| d)
                })
                .copied()
                .ok_or("a revisit of a payload this file does not hold")?;
            let size = std::fs::metadata(store.objects().path(&digest))
                .map(|m| m.len())
                .unwrap_or(0);
            (digest, size, 0, media_type.as_deref() == Some("text/html"))
        }
    };
    let role = record.field("Vaultkeep-Role").and_then(|r| match r {
        "page" => Some(Role::Page),
        "frame" => Some(Role::Frame),
        "stylesheet" => Some(Role::Stylesheet),
        "requisite" => Some(Role::Requisite),
        _ => None,
    });
    Ok(Some(Exchange {
        url,
        status,
        headers,
        location,
        digest,
        size,
        new_bytes,
        media_type,
        looks_html,
        role,
        depth: record
            .field("Vaultkeep-Depth")
            .and_then(|d| d.parse().ok())
            .unwrap_or(0),
        requested: record.field("Vaultkeep-Requested").map(str::to_string),
    }))
}

/// The redirects that led to `url` (the last ones seen whose Location chains to it), taken
/// out of `pending`, and the URL first asked for.
fn chain(
    pending: &mut Vec<(String, u16, String)>,
    url: &str,
    requested: Option<&str>,
) -> (String, Vec<Hop>) {
    let mut hops = Vec::new();
    let mut target = url.to_string();
    while let Some(i) = pending
        .iter()
        .rposition(|(_, _, location)| *location == target)
    {
        let (from, status, _) = pending.remove(i);
        target = from.clone();
        hops.push(Hop { url: from, status });
        if requested == Some(target.as_str()) {
            break;
        }
    }
    hops.reverse();
    let first = hops
        .first()
        .map_or_else(|| url.to_string(), |h| h.url.clone());
    (first, hops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_chain_back_to_the_url_first_asked_for() {
        let mut pending = vec![
            (
                "https://x.org/a".to_string(),
                301,
                "https://x.org/b".to_string(),
            ),
            (
                "https://x.org/other".to_string(),
                302,
                "https://y.org/".to_string(),
            ),
            (
                "https://x.org/b".to_string(),
                302,
                "https://x.org/c".to_string(),
            ),
        ];
        let (first, hops) = chain(&mut pending, "https://x.org/c", None);
        assert_eq!(first, "https://x.org/a");
        assert_eq!(
            hops.iter()
                .map(|h| (h.url.as_str(), h.status))
                .collect::<Vec<_>>(),
            vec![("https://x.org/a", 301), ("https://x.org/b", 302)]
        );
        assert_eq!(pending.len(), 1, "the unrelated redirect waits");
        let (first, hops) = chain(&mut pending, "https://z.org/", None);
        assert_eq!((first.as_str(), hops.len()), ("https://z.org/", 0));
    }

    #[test]
    fn io_errors_are_unreadable_files() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _lock) = Store::open_for_writing(&dir.path().join("a"), "test").unwrap();
        let e = import(&store, &dir.path().join("missing.warc")).unwrap_err();
        assert!(matches!(e, ImportError::Unreadable { .. }));
    }
}
