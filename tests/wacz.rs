//! WACZ export and WARC/WACZ import (issue 10), validated by the web-archiving world's own
//! tools: `wacz validate`, `warcio check` and `warcio index`, the `surt` package, pywb's
//! replay, and wget's WARC writer.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::offline::dangling;
use crate::common::server::{Reply, Server};
use crate::common::{Sandbox, data, py_tool, sha256sum, stderr};

/// The handbook served on loopback and snapshotted two links deep; returns the snapshot's
/// record.
fn handbook_snapshot(s: &Sandbox, server: &Server) -> Value {
    let (out, code) = s.json(&[
        "archive",
        "snapshot",
        "--allow-private",
        &server.url("/"),
        "--depth",
        "2",
    ]);
    assert_eq!(code, 0, "{out}");
    let id = out["snapshots"][0]["id"].as_str().unwrap().to_string();
    s.json(&["archive", "show", &id]).0
}

fn export(s: &Sandbox, args: &[&str]) -> (PathBuf, Value) {
    let file = s.dir.path().join("out.wacz");
    let mut all = vec!["archive", "export", "--wacz", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let (report, code) = s.json(&all);
    assert_eq!(code, 0, "{report}");
    (file, report)
}

/// A zip member's bytes and whether it was stored (not deflated).
fn member(wacz: &Path, name: &str) -> (Vec<u8>, bool) {
    let mut zip = zip::ZipArchive::new(fs::File::open(wacz).unwrap()).unwrap();
    let mut f = zip.by_name(name).unwrap();
    let stored = f.compression() == zip::CompressionMethod::Stored;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).unwrap();
    (bytes, stored)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_exported_snapshot_is_a_wacz_the_ecosystems_tools_accept() {
    let server = Server::dir(data("sites/enspiral-handbook"));
    let s = Sandbox::empty();
    let record = handbook_snapshot(&s, &server);
    let id = record["id"].as_str().unwrap();
    let (wacz, report) = export(&s, &[id]);
    assert_eq!(report["snapshots"][0], id);
    assert!(
        report["revisits"].as_u64().unwrap() > 0,
        "repeated payloads are revisits"
    );

    // py-wacz's validator (lenient: the members and their compression are checked below).
    let out = run(Command::new(py_tool("wacz"))
        .args(["validate", "-f"])
        .arg(&wacz));
    assert!(out.contains("Validation succeeded"), "{out}");

    // The members, their compression, and the digests datapackage.json gives them.
    let names: BTreeSet<String> = zip::ZipArchive::new(fs::File::open(&wacz).unwrap())
        .unwrap()
        .file_names()
        .filter_map(Result::ok)
        .map(|n| n.to_string())
        .collect();
    let warc_name = format!("archive/{id}.warc.gz");
    let expected: BTreeSet<String> = [
        warc_name.as_str(),
        "indexes/index.cdx",
        "pages/pages.jsonl",
        "datapackage.json",
        "datapackage-digest.json",
    ]
    .map(String::from)
    .into();
    assert_eq!(names, expected);
    let (warc, stored) = member(&wacz, &warc_name);
    assert!(stored, "a .warc.gz member is STORED, for range reads");
    let (package, _) = member(&wacz, "datapackage.json");
    let package: Value = serde_json::from_slice(&package).unwrap();
    assert_eq!(package["profile"], "data-package");
    assert_eq!(package["wacz_version"], "1.1.1");
    for r in package["resources"].as_array().unwrap() {
        let (bytes, _) = member(&wacz, r["path"].as_str().unwrap());
        assert_eq!(r["hash"], format!("sha256:{}", sha256sum(&bytes)), "{r}");
        assert_eq!(r["bytes"], bytes.len());
    }
    let (digest, _) = member(&wacz, "datapackage-digest.json");
    let digest: Value = serde_json::from_slice(&digest).unwrap();
    let (package_bytes, _) = member(&wacz, "datapackage.json");
    assert_eq!(
        digest["hash"],
        format!("sha256:{}", sha256sum(&package_bytes))
    );

    // warcio checks every digest and reads every record.
    let warc_file = s.dir.path().join("out.warc.gz");
    fs::write(&warc_file, &warc).unwrap();
    run(Command::new(py_tool("warcio")).arg("check").arg(&warc_file));
    let index = run(Command::new(py_tool("warcio"))
        .args([
            "index",
            "-f",
            "warc-type,warc-target-uri,warc-refers-to-target-uri",
        ])
        .arg(&warc_file));
    let lines: Vec<Value> = index
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, report["records"].as_u64().unwrap());
    assert_eq!(lines[0]["warc-type"], "warcinfo");
    let revisits: Vec<&Value> = lines
        .iter()
        .filter(|l| l["warc-type"] == "revisit")
        .collect();
    assert_eq!(revisits.len() as u64, report["revisits"].as_u64().unwrap());
    assert!(
        revisits
            .iter()
            .all(|r| r["warc-refers-to-target-uri"].is_string())
    );
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(&warc[..])
        .read_to_end(&mut plain)
        .unwrap();
    let plain = String::from_utf8_lossy(&plain);
    assert!(plain.contains("Content-Encoding and Transfer-Encoding are dropped"));

    // The CDXJ index: in SURT order, keyed as the Internet Archive's `surt` package keys.
    let (cdx, _) = member(&wacz, "indexes/index.cdx");
    let cdx = String::from_utf8(cdx).unwrap();
    let keys: Vec<&str> = cdx.lines().map(|l| l.split(' ').next().unwrap()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    let urls: Vec<String> = cdx
        .lines()
        .map(|l| {
            let json: Value = serde_json::from_str(l.splitn(3, ' ').nth(2).unwrap()).unwrap();
            json["url"].as_str().unwrap().to_string()
        })
        .collect();
    let mut surt = Command::new(py_tool("python"))
        .args([
            "-c",
            "import surt,sys\nfor l in sys.stdin: print(surt.surt(l.strip()))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    surt.stdin
        .take()
        .unwrap()
        .write_all(urls.join("\n").as_bytes())
        .unwrap();
    let reference = String::from_utf8(surt.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(keys, reference.lines().collect::<Vec<_>>());

    // Pages, with their titles and text, for search.
    let (pages, _) = member(&wacz, "pages/pages.jsonl");
    let pages: Vec<Value> = String::from_utf8(pages)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(pages[0]["format"], "json-pages-1.0");
    assert!(pages.len() > 20);
    let home = pages
        .iter()
        .find(|p| p["url"] == server.url("/"))
        .expect("the root page");
    assert!(
        home["title"].as_str().unwrap().contains("Enspiral"),
        "{home}"
    );
    assert!(home["text"].as_str().unwrap().len() > 200);
    assert!(home["ts"].as_str().unwrap().starts_with("20"));
}

use std::io::Write;

/// pywb's `wayback`, serving one collection on loopback; killed when dropped.
struct Wayback {
    child: Child,
    port: u16,
}

impl Drop for Wayback {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Wayback {
    fn start(dir: &Path, wacz: &Path) -> Wayback {
        run(Command::new(py_tool("wb-manager"))
            .args(["init", "coll"])
            .current_dir(dir));
        run(Command::new(py_tool("wb-manager"))
            .args(["add", "coll"])
            .arg(wacz)
            .arg("--unpack-wacz")
            .current_dir(dir));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(py_tool("wayback"))
            .args(["-p", &port.to_string(), "-b", "127.0.0.1"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let w = Wayback { child, port };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "pywb did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        w
    }

    /// The raw bytes pywb replays for `url` captured at `ts` (14 digits), and the status.
    fn get(&self, ts: &str, url: &str) -> (u16, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let body = dir.path().join("body");
        let out = Command::new("curl")
            .args(["-s", "-o"])
            .arg(&body)
            .args(["-w", "%{http_code}"])
            .arg(format!("http://127.0.0.1:{}/coll/{ts}id_/{url}", self.port))
            .output()
            .unwrap();
        let status = String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0);
        (status, fs::read(&body).unwrap_or_default())
    }
}

#[test]
fn pywb_replays_every_capture_of_the_exported_handbook() {
    let server = Server::dir(data("sites/enspiral-handbook"));
    let s = Sandbox::empty();
    let record = handbook_snapshot(&s, &server);
    let (wacz, _) = export(&s, &["--url", &server.url("/")]);
    let pywb_dir = tempfile::tempdir().unwrap();
    let wayback = Wayback::start(pywb_dir.path(), &wacz);
    let mut kinds = BTreeSet::new();
    for c in record["captures"].as_array().unwrap() {
        let url = c["final_url"].as_str().unwrap();
        let ts = c["time"].as_str().unwrap();
        let ts: String = ts.chars().filter(char::is_ascii_digit).take(14).collect();
        let (status, body) = wayback.get(&ts, url);
        assert_eq!(status, 200, "pywb could not replay {url}");
        let hex = c["sha256"].as_str().unwrap();
        let object = s.archive.join("objects").join(&hex[..2]).join(hex);
        assert_eq!(body, fs::read(object).unwrap(), "{url}: other bytes");
        kinds.insert(c["media_type"].as_str().unwrap_or("").to_string());
    }
    for kind in ["text/html", "text/css", "font/woff2", "image/png"] {
        assert!(
            kinds.contains(kind),
            "no {kind} among the replayed captures: {kinds:?}"
        );
    }
}

fn comparable(record: &Value) -> Vec<Value> {
    let mut captures: Vec<Value> = record["captures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c.as_object_mut().unwrap().remove("offline");
            c
        })
        .collect();
    captures.sort_by_key(|c| (c["time"].to_string(), c["url"].to_string()));
    captures
}

fn objects(archive: &Path) -> BTreeSet<String> {
    crate::common::files_under(&archive.join("objects"))
        .into_iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn export_then_import_into_an_empty_archive_gives_the_same_captures_and_objects() {
    let server = Server::dir(data("sites/enspiral-handbook"));
    let s = Sandbox::empty();
    let record = handbook_snapshot(&s, &server);
    let (wacz, _) = export(&s, &["--all"]);
    let other = Sandbox::empty();
    let (imported, code) = other.json(&["archive", "import", wacz.to_str().unwrap()]);
    assert_eq!(code, 0, "{imported}");
    let file = &imported["files"][0];
    assert_eq!(file["snapshots"][0], record["id"]);
    let (back, _) = other.json(&["archive", "show", record["id"].as_str().unwrap()]);
    assert_eq!(comparable(&back), comparable(&record));
    for field in ["root", "depth", "max_pages", "started"] {
        assert_eq!(back[field], record[field], "{field}");
    }
    // The captured bytes, and no others, derived offline files apart.
    let derived = |r: &Value| -> BTreeSet<String> {
        r["offline_files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["sha256"].as_str().unwrap().to_string())
            .collect()
    };
    let captured = |archive: &Path, r: &Value| -> BTreeSet<String> {
        objects(archive).difference(&derived(r)).cloned().collect()
    };
    assert_eq!(
        captured(&other.archive, &back),
        captured(&s.archive, &record)
    );
    assert_eq!(other.run(&["archive", "verify"]).status.code(), Some(0));
    // Importing it again adds nothing.
    let (again, _) = other.json(&["archive", "import", wacz.to_str().unwrap()]);
    assert_eq!(again["files"][0]["already_held"][0], record["id"]);
}

#[test]
fn a_warc_written_by_wget_imports_as_a_snapshot_that_opens_offline() {
    let server = Server::dir(data("sites/enspiral-handbook"));
    let work = tempfile::tempdir().unwrap();
    // wget exits 8 when some link answers 404 (the handbook has broken links); its WARC is
    // written all the same.
    let status = Command::new("wget")
        .args([
            "-q",
            "-r",
            "-l",
            "2",
            "-p",
            "-np",
            "-e",
            "robots=off",
            "--warc-file=site",
        ])
        .arg(server.url("/"))
        .current_dir(work.path())
        .status()
        .unwrap();
    assert!(matches!(status.code(), Some(0 | 8)), "wget: {status}");
    let warc = work.path().join("site.warc.gz");
    assert!(warc.is_file());
    let s = Sandbox::empty();
    let (out, code) = s.json(&["archive", "import", warc.to_str().unwrap()]);
    // wget's own metadata records (its log, its arguments) are listed as skipped.
    assert_eq!(code, 1, "{out}");
    let file = &out["files"][0];
    assert!(
        file["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["message"]
                .as_str()
                .unwrap()
                .contains("not an http(s) capture")
                || p["message"]
                    .as_str()
                    .unwrap()
                    .contains("record, which vaultkeep does not use")),
        "{file}"
    );
    let id = file["snapshots"][0].as_str().unwrap();
    let (record, _) = s.json(&["archive", "show", id]);
    assert_eq!(record["root"], server.url("/"));
    let pages = record["captures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["role"] == "page")
        .count();
    assert!(pages > 20, "{pages} pages");
    let entry = s
        .archive
        .join("snapshots")
        .join(id)
        .join(record["offline"].as_str().unwrap());
    assert!(entry.is_file());
    let offline = s.archive.join("snapshots").join(id).join("offline");
    let bad = dangling(&offline);
    assert!(bad.is_empty(), "dangling references offline: {bad:#?}");
    assert_eq!(s.run(&["archive", "verify"]).status.code(), Some(0));
}

#[test]
fn broken_files_are_reported_and_never_half_recorded() {
    let server = Server::start(|req| match req.path().as_str() {
        "/" => Reply::ok("text/html", "<img src=/a.png><img src=/b.png>"),
        p => Reply::ok("image/png", format!("png {p}")),
    });
    let s = Sandbox::empty();
    let (out, _) = s.json(&["archive", "snapshot", "--allow-private", &server.url("/")]);
    let id = out["snapshots"][0]["id"].as_str().unwrap().to_string();
    let (wacz, _) = export(&s, &[&id]);
    let (warc, _) = member(&wacz, &format!("archive/{id}.warc.gz"));
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(&warc[..])
        .read_to_end(&mut plain)
        .unwrap();
    let other = Sandbox::empty();
    // Truncated in its last record: the records before it are kept, the cut one listed.
    let cut = s.dir.path().join("cut.warc");
    fs::write(&cut, &plain[..plain.len() - 40]).unwrap();
    // Not a WARC at all.
    let junk = s.dir.path().join("junk.warc");
    fs::write(&junk, "this is not a WARC file\n").unwrap();
    let (out, code) = other.json(&[
        "archive",
        "import",
        cut.to_str().unwrap(),
        junk.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    let files = out["files"].as_array().unwrap();
    let cut_report = &files[0];
    assert!(
        cut_report["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["message"].as_str().unwrap().contains("truncated")),
        "{cut_report}"
    );
    assert_eq!(cut_report["captures"], 2, "the page and the first image");
    assert!(
        files[1]["snapshots"].as_array().unwrap().is_empty(),
        "nothing recorded from junk"
    );
    let (list, _) = other.json(&["archive", "list"]);
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 1);
    assert_eq!(other.run(&["archive", "verify"]).status.code(), Some(0));
}

#[test]
fn a_notes_preserved_sites_export_as_one_file() {
    let site = Server::start(|req| Reply::ok("text/html", format!("<p>{}</p>", req.path())));
    let other = Server::start(|_| Reply::ok("text/html", "<p>not this</p>"));
    let s = Sandbox::empty();
    s.write(
        "profiles/Org.md",
        format!(
            "---\nurl: {}\nend: 2020\n---\n{}\n",
            site.url("/"),
            site.url("/about")
        ),
    );
    let out = s.run(&["compost", "--allow-private"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    s.json(&["archive", "snapshot", "--allow-private", &other.url("/")]);
    // compost says how to take the preserved sites elsewhere; that command works as printed.
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let hint = said
        .lines()
        .find_map(|l| l.split_once("vaultkeep archive export"))
        .unwrap_or_else(|| panic!("no export hint in:\n{said}"))
        .1;
    let mut args = vec!["archive", "export"];
    args.extend(hint.split_whitespace());
    assert_eq!(
        args[2..],
        ["--wacz", "Org.wacz", "--note", "profiles/Org.md"]
    );
    let (report, code) = s.json(&args);
    assert_eq!(code, 0, "{report}");
    assert!(s.dir.path().join("Org.wacz").is_file());
    assert_eq!(report["snapshots"].as_array().unwrap().len(), 2, "{report}");
    let (list, _) = s.json(&["archive", "list"]);
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 3);
}
