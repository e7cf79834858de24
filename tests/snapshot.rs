//! `archive snapshot` against real HTTP servers on 127.0.0.1 (issue 3).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::offline::{dangling, is_relative, references};
use crate::common::server::{Reply, Server, content_type, percent_decode};
use crate::common::{Sandbox, copy_dir, data, stderr};

/// Runs `archive snapshot ARGS --allow-private --json`; returns the first snapshot's summary,
/// its full record, and the exit code.
fn snapshot(s: &Sandbox, args: &[&str]) -> (Value, Value, i32) {
    let mut all = vec!["archive", "snapshot"];
    all.extend_from_slice(args);
    if !args.contains(&"--no-allow") {
        all.push("--allow-private");
    } else {
        all.retain(|a| *a != "--no-allow");
    }
    let (out, code) = s.json(&all);
    let summary = out["snapshots"][0].clone();
    let id = summary["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no snapshot in {out}"))
        .to_string();
    let (record, _) = s.json(&["archive", "show", &id]);
    (summary, record, code)
}

/// Writes a vaultkeep.toml into the sandbox and returns its path.
fn config(s: &Sandbox, text: &str) -> String {
    let path = s.dir.path().join("vaultkeep.toml");
    fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn failure<'a>(record: &'a Value, url_end: &str) -> &'a Value {
    record["failures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["url"].as_str().unwrap().ends_with(url_end))
        .unwrap_or_else(|| panic!("no failure for {url_end} in {}", record["failures"]))
}

fn captured(record: &Value) -> BTreeSet<String> {
    record["captures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["url"].as_str().unwrap().to_string())
        .collect()
}

/// The offline folder of a summary.
fn offline_dir(summary: &Value) -> PathBuf {
    let entry = PathBuf::from(summary["offline"].as_str().unwrap());
    let mut dir = entry.as_path();
    while dir.file_name().is_some_and(|n| n != "offline") {
        dir = dir.parent().unwrap();
    }
    dir.to_path_buf()
}

/// Pages of the handbook reachable from index.html by links, found by reading the files.
fn reachable_pages(site: &Path) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut queue = vec!["index.html".to_string()];
    while let Some(page) = queue.pop() {
        if !seen.insert(page.clone()) {
            continue;
        }
        let text = fs::read_to_string(site.join(&page)).unwrap_or_default();
        let dir = Path::new(&page).parent().unwrap_or(Path::new(""));
        for r in references(&text) {
            if !is_relative(&r) || r.starts_with('/') {
                continue;
            }
            let clean = percent_decode(r.split(['#', '?']).next().unwrap());
            let mut joined = PathBuf::new();
            for part in dir.join(&clean).components() {
                match part {
                    std::path::Component::ParentDir => {
                        joined.pop();
                    }
                    std::path::Component::Normal(p) => joined.push(p),
                    _ => {}
                }
            }
            let mut target = joined.to_string_lossy().into_owned();
            if site.join(&target).is_dir() {
                target = format!("{target}/index.html")
                    .trim_start_matches('/')
                    .to_string();
            }
            if target.ends_with(".html") && site.join(&target).is_file() {
                queue.push(target);
            }
        }
    }
    seen
}

#[test]
fn the_whole_handbook_is_crawled_and_opens_offline() {
    let site = data("sites/enspiral-handbook");
    let server = Server::dir(site.clone());
    let s = Sandbox::empty();
    let (summary, record, code) = snapshot(&s, &[&server.url("/"), "--depth", "20"]);
    assert_eq!(code, 0, "{summary}");
    let urls = captured(&record);
    let pages = reachable_pages(&site);
    assert!(pages.len() > 40, "{pages:?}");
    for page in &pages {
        let url = server.url(&format!("/{}", page.replace(' ', "%20")));
        let index = server.url(&format!(
            "/{}",
            page.trim_end_matches("index.html").replace(' ', "%20")
        ));
        assert!(
            urls.contains(&url) || urls.contains(&index),
            "{page} reachable but not captured"
        );
    }
    // The site's broken links and missing scripts are recorded as failures, not fatal.
    let failures = record["failures"].as_array().unwrap();
    assert!(
        failures
            .iter()
            .any(|f| f["reason"] == "http" && f["url"].as_str().unwrap().ends_with(".js"))
    );
    // Its fonts, style sheets and images came along.
    for needle in [
        "/FontAwesome/css/font-awesome.css",
        "/FontAwesome/fonts/fontawesome-webfont.woff2?v=4.7.0",
        "/favicon.png",
        "/css/general.css",
    ] {
        assert!(urls.contains(&server.url(needle)), "{needle} missing");
    }
    let offline = offline_dir(&summary);
    assert!(Path::new(summary["offline"].as_str().unwrap()).is_file());
    let bad = dangling(&offline);
    assert!(
        bad.is_empty(),
        "dangling references in the offline copy: {bad:#?}"
    );
    // Links between captured pages are relative; links to what was not captured stay absolute.
    let index = fs::read_to_string(summary["offline"].as_str().unwrap()).unwrap();
    assert!(
        index.contains("href=\"https://rsms.me/inter/inter.css\""),
        "the uncaptured font CSS keeps its URL"
    );
    let live: Vec<String> = references(&index)
        .into_iter()
        .filter(|r| r.starts_with(&server.url("/")))
        .collect();
    for r in &live {
        assert!(
            !urls.contains(r.split('#').next().unwrap()),
            "{r} was captured, yet the copy links to the live site"
        );
    }
}

#[test]
fn a_second_snapshot_of_an_unchanged_site_stores_no_new_bytes_and_a_changed_page_only_itself() {
    let s = Sandbox::empty();
    let site = s.dir.path().join("site");
    copy_dir(&data("sites/enspiral-handbook"), &site);
    let server = Server::dir(site.clone());
    let (first, _, _) = snapshot(&s, &[&server.url("/"), "--depth", "1"]);
    assert!(first["new_bytes"].as_u64().unwrap() > 100_000);
    let (second, _, _) = snapshot(&s, &[&server.url("/"), "--depth", "1"]);
    assert_eq!(second["new_bytes"], 0, "{second}");
    assert_eq!(
        second["reused_bytes"],
        first["new_bytes"].as_u64().unwrap() + first["reused_bytes"].as_u64().unwrap()
    );
    assert_ne!(second["id"], first["id"], "snapshots are never replaced");
    let page = site.join("ventures.html");
    let mut text = fs::read_to_string(&page).unwrap();
    text.push_str("<!-- changed -->");
    fs::write(&page, &text).unwrap();
    let (third, _, _) = snapshot(&s, &[&server.url("/"), "--depth", "1"]);
    assert_eq!(third["new_bytes"], text.len(), "{third}");
    let (list, _) = s.json(&["archive", "list"]);
    let ids: Vec<&str> = list["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], third["id"].as_str().unwrap(), "newest first");
    // Unchanged files of the offline copy are not stored twice either: the same favicon in
    // all three copies is one inode (the object) with three more names.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let host = format!("127.0.0.1_{}", server.addr.port());
        let icons: Vec<_> = [&first, &second, &third]
            .iter()
            .map(|snap| fs::metadata(offline_dir(snap).join(&host).join("favicon.png")).unwrap())
            .collect();
        assert!(
            icons.iter().all(|m| m.ino() == icons[0].ino()),
            "one inode for one favicon"
        );
        assert!(
            icons[0].nlink() >= 4,
            "object + 3 copies: {}",
            icons[0].nlink()
        );
    }
    let (verify, code) = s.json(&["archive", "verify"]);
    assert_eq!(code, 0, "{verify}");
}

/// A purpose-built page with every kind of requisite, from two hosts.
#[test]
fn every_requisite_kind_is_captured_and_referenced_offline() {
    let cdn = Server::start(|req| match req.path().as_str() {
        "/lib.css" => Reply::ok(
            "text/css",
            "@import 'more.css'; body{background:url(bg.png)}",
        ),
        "/more.css" => Reply::ok(
            "text/css",
            "@font-face{font-family:F;src:url(font.woff2) format('woff2')}",
        ),
        p => Reply::ok(content_type(p), format!("bytes of {p}")),
    });
    let cdn_url = cdn.url("");
    let page = format!(
        r#"<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="{cdn_url}/lib.css" integrity="sha384-abc"><link rel="icon" href="/favicon.ico">
<link rel="manifest" href="/site.webmanifest"><style>h1{{background:url("/style-block.png")}}</style>
<script src="/app.js"></script></head><body>
<img src="/img.png" srcset="/img-2x.png 2x, /img-3x.png 3x"><picture><source srcset="/pic.webp 1x"><img src="/pic.jpg"></picture>
<img data-src="/lazy.png" data-srcset="/lazy-2x.png 2x"><video poster="/poster.jpg"></video>
<iframe src="/frame.html"></iframe><div style="background-image:url('/inline.png')"></div>
<img src="/caf%C3%A9%20menu.png"><img src="/q.png?v=1&amp;w=2"><a href="/dir/">dir</a>
</body></html>"#
    );
    let origin = Server::start(move |req| match req.path().as_str() {
        "/" => Reply::ok("text/html; charset=utf-8", page.clone()),
        "/frame.html" => Reply::ok(
            "text/html",
            "<img src=\"frame-img.png\"><a href=\"/not-followed.html\">x</a>",
        ),
        "/dir/" => Reply::ok("text/html", "<p>dir</p>"),
        p => Reply::ok(content_type(p), format!("bytes of {p}")),
    });
    let s = Sandbox::empty();
    // The static crawl's own work (the page has a script and little text: `auto` would
    // render it in the browser).
    let (summary, record, code) = snapshot(&s, &[&origin.url("/"), "--depth", "1", "--no-browser"]);
    assert_eq!(code, 0, "{record}");
    let urls = captured(&record);
    for path in [
        "/favicon.ico",
        "/site.webmanifest",
        "/style-block.png",
        "/app.js",
        "/img.png",
        "/img-2x.png",
        "/img-3x.png",
        "/pic.webp",
        "/pic.jpg",
        "/lazy.png",
        "/lazy-2x.png",
        "/poster.jpg",
        "/frame.html",
        "/frame-img.png",
        "/inline.png",
        "/caf%C3%A9%20menu.png",
        "/q.png?v=1&w=2",
        "/dir/",
    ] {
        assert!(
            urls.contains(&origin.url(path)),
            "{path} missing from {urls:#?}"
        );
    }
    for path in ["/lib.css", "/more.css", "/bg.png", "/font.woff2"] {
        assert!(
            urls.contains(&cdn.url(path)),
            "{path} from the second host missing"
        );
    }
    assert!(
        !urls.contains(&origin.url("/not-followed.html")),
        "links inside a frame are not followed"
    );
    let offline = offline_dir(&summary);
    let bad = dangling(&offline);
    assert!(bad.is_empty(), "{bad:#?}");
    let index = fs::read_to_string(summary["offline"].as_str().unwrap()).unwrap();
    assert!(
        !index.contains("integrity"),
        "integrity would block the rewritten style sheet"
    );
    assert!(
        !index.contains(&origin.url("/")) && !index.contains(&cdn_url),
        "every captured reference is local:\n{index}"
    );
    // A captured image in the offline copy holds the captured bytes.
    let img = offline.join(format!("127.0.0.1_{}/img.png", origin.addr.port()));
    assert_eq!(fs::read_to_string(img).unwrap(), "bytes of /img.png");
}

#[test]
fn redirects_relative_absolute_cross_host_and_loops() {
    let other = Server::start(|req| Reply::ok("text/html", format!("<p>other {}</p>", req.path())));
    let other_url = other.url("/landing");
    let server = Server::start(move |req| match req.path().as_str() {
        "/rel" => Reply::redirect(301, "target.html"),
        "/abs" => Reply::redirect(302, "/target.html"),
        "/away" => Reply::redirect(307, &other_url),
        "/loop-a" => Reply::redirect(302, "/loop-b"),
        "/loop-b" => Reply::redirect(302, "/loop-a"),
        "/target.html" => Reply::ok("text/html", "<p>target</p>"),
        _ => Reply::status(404),
    });
    let s = Sandbox::empty();
    for (path, final_url) in [
        ("/rel", server.url("/target.html")),
        ("/abs", server.url("/target.html")),
        ("/away", other.url("/landing")),
    ] {
        let (summary, record, code) = snapshot(&s, &[&server.url(path)]);
        assert_eq!(code, 0, "{record}");
        let c = &record["captures"][0];
        assert_eq!(c["url"], server.url(path));
        assert_eq!(c["final_url"], final_url);
        assert_eq!(c["redirects"][0]["url"], server.url(path));
        assert!(Path::new(summary["offline"].as_str().unwrap()).is_file());
    }
    let (_, record, code) = snapshot(&s, &[&server.url("/loop-a")]);
    assert_eq!(code, 1, "a root that cannot be captured exits 1");
    assert_eq!(failure(&record, "/loop-a")["reason"], "redirects");
}

#[test]
fn hostile_servers_time_out_or_hit_the_size_limit() {
    let server = Server::start(|req| match req.path().as_str() {
        "/" => Reply::ok(
            "text/html",
            "<img src=\"/hang.png\"><img src=\"/endless.bin\"><img src=\"/ok.png\">",
        ),
        "/hang.png" => Reply::Hang,
        "/endless.bin" => Reply::Endless,
        p => Reply::ok(content_type(p), "fine"),
    });
    let s = Sandbox::empty();
    let cfg = config(
        &s,
        "[fetch]\ntimeout_secs = 2\nretries = 0\nmax_bytes = 1048576\n",
    );
    let (_, record, code) = snapshot(&s, &["--config", &cfg, &server.url("/")]);
    assert_eq!(
        code, 0,
        "the root was captured; failed requisites are listed"
    );
    assert_eq!(failure(&record, "/hang.png")["reason"], "timeout");
    assert_eq!(failure(&record, "/endless.bin")["reason"], "too large");
    assert!(captured(&record).contains(&server.url("/ok.png")));
}

#[test]
fn gzip_and_brotli_bodies_are_stored_decompressed() {
    use std::io::Write;
    let css = "body { color: red; background: url(a.png) }\n".repeat(50);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(css.as_bytes()).unwrap();
    let gzipped = gz.finish().unwrap();
    let mut br = Vec::new();
    brotli::BrotliCompress(&mut css.as_bytes(), &mut br, &Default::default()).unwrap();
    let server = Server::start(move |req| match req.path().as_str() {
        "/" => Reply::ok(
            "text/html",
            "<link rel=stylesheet href=g.css><link rel=stylesheet href=b.css>",
        ),
        "/g.css" => Reply::Full {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "text/css".into()),
                ("Content-Encoding".into(), "gzip".into()),
            ],
            body: gzipped.clone(),
        },
        "/b.css" => Reply::Full {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "text/css".into()),
                ("Content-Encoding".into(), "br".into()),
            ],
            body: br.clone(),
        },
        p => Reply::ok(content_type(p), "png"),
    });
    let s = Sandbox::empty();
    let (_, record, _) = snapshot(&s, &[&server.url("/")]);
    let expected = css.len() as u64;
    for name in ["/g.css", "/b.css"] {
        let c = record["captures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["url"] == server.url(name))
            .unwrap();
        assert_eq!(c["size"], expected, "{name}");
    }
    assert!(
        captured(&record).contains(&server.url("/a.png")),
        "URLs inside compressed CSS are followed"
    );
}

#[test]
fn a_windows_1252_page_is_read_and_rewritten_in_its_own_encoding() {
    let page: Vec<u8> = b"<html><head><meta charset=\"windows-1252\"></head><body><p>caf\xe9</p><img src=\"caf\xe9.png\"></body></html>".to_vec();
    let server = Server::start(move |req| match req.path().as_str() {
        "/" => Reply::Full {
            status: 200,
            headers: vec![(
                "Content-Type".into(),
                "text/html; charset=windows-1252".into(),
            )],
            body: page.clone(),
        },
        "/café.png" => Reply::ok("image/png", "PNG"),
        _ => Reply::status(404),
    });
    let s = Sandbox::empty();
    let (summary, record, _) = snapshot(&s, &[&server.url("/")]);
    assert!(
        captured(&record).contains(&server.url("/caf%C3%A9.png")),
        "{record}"
    );
    let offline = fs::read(summary["offline"].as_str().unwrap()).unwrap();
    assert!(
        offline.windows(7).any(|w| w == b"caf\xe9</p"),
        "text keeps its windows-1252 bytes"
    );
    assert!(dangling(&offline_dir(&summary)).is_empty());
}

#[test]
fn robots_txt_is_obeyed_unless_told_otherwise() {
    let server = Server::start(|req| match req.path().as_str() {
        "/robots.txt" => Reply::ok("text/plain", "User-agent: *\nDisallow: /private/\n"),
        "/" => Reply::ok(
            "text/html",
            "<img src=\"/private/secret.png\"><img src=\"/public.png\">",
        ),
        p => Reply::ok(content_type(p), "img"),
    });
    let s = Sandbox::empty();
    let (_, record, _) = snapshot(&s, &[&server.url("/")]);
    assert_eq!(failure(&record, "/private/secret.png")["reason"], "robots");
    assert_eq!(server.count("/private/secret.png"), 0, "never requested");
    let (_, record, _) = snapshot(&s, &[&server.url("/"), "--ignore-robots"]);
    assert!(captured(&record).contains(&server.url("/private/secret.png")));
}

#[test]
fn loopback_is_refused_without_allow_private() {
    let server = Server::start(|_| Reply::ok("text/html", "<p>hi</p>"));
    let s = Sandbox::empty();
    let (_, record, code) = snapshot(&s, &[&server.url("/"), "--no-allow"]);
    assert_eq!(code, 1);
    assert_eq!(failure(&record, "/")["reason"], "private");
    assert!(
        server.hits.lock().unwrap().is_empty(),
        "no request reached the server"
    );
    // A name that resolves to loopback is refused after resolution, too.
    let (_, record, _) = snapshot(
        &s,
        &[
            &format!("http://localhost:{}/", server.addr.port()),
            "--no-allow",
        ],
    );
    assert_eq!(failure(&record, "/")["reason"], "private");
}

#[test]
fn rate_limits_are_retried_after_retry_after() {
    let server = Server::start(|req| match req.path().as_str() {
        "/" => Reply::ok(
            "text/html",
            "<img src=\"/busy.png\"><img src=\"/never.png\">",
        ),
        "/never.png" => Reply::Full {
            status: 429,
            headers: vec![("Retry-After".into(), "3600".into())],
            body: Vec::new(),
        },
        p => Reply::ok(content_type(p), "ok"),
    });
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let b = busy.clone();
    let limited = Server::start(move |req| {
        if req.path() == "/robots.txt" {
            Reply::status(404)
        } else if b.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Reply::Full {
                status: 429,
                headers: vec![("Retry-After".into(), "1".into())],
                body: Vec::new(),
            }
        } else {
            Reply::ok("image/png", "finally")
        }
    });
    let s = Sandbox::empty();
    let started = std::time::Instant::now();
    let (_, record, _) = snapshot(&s, &[&limited.url("/busy.png")]);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "waited for Retry-After"
    );
    assert_eq!(record["captures"][0]["status"], 200);
    assert_eq!(limited.count("/busy.png"), 2);
    let (_, record, _) = snapshot(&s, &[&server.url("/")]);
    let f = failure(&record, "/never.png");
    assert_eq!(
        (f["reason"].as_str(), f["detail"].as_str()),
        (Some("http"), Some("HTTP 429"))
    );
    assert_eq!(
        server.count("/never.png"),
        1,
        "a Retry-After beyond the limit is not waited for"
    );
}

#[test]
fn a_note_snapshots_its_urls_and_crawls_its_url_and_its_handbook() {
    let site = data("sites/enspiral-handbook");
    // The handbook under /handbook/, as documentation sites often are.
    let handbook = Server::start(move |req| match req.path().strip_prefix("/handbook") {
        Some(rest) => crate::common::server::static_file(
            &site,
            &crate::common::server::Request {
                target: if rest.is_empty() {
                    "/".into()
                } else {
                    rest.to_string()
                },
                ..req.clone()
            },
        ),
        None => Reply::status(404),
    });
    let home = Server::start(|req| match req.path().as_str() {
        "/" => Reply::ok("text/html", "<a href=\"/mission\">mission</a>"),
        "/mission" => Reply::ok("text/html", "<a href=\"/deeper\">deeper</a>"),
        "/deeper" => Reply::ok("text/html", "<p>deeper</p>"),
        _ => Reply::status(404),
    });
    let s = Sandbox::empty();
    // A profile like Ouishare's, pointing at the test servers.
    let note = format!(
        "---\ntitle: Org\nurl: {}\nend: \"2023\"\n---\n{}\n\nThe handbook: {}\n",
        home.url("/"),
        home.url("/mission"),
        handbook.url("/handbook/")
    );
    s.write("profiles/Org.md", note);
    let (out, code) = s.json(&["archive", "snapshot", "profiles/Org.md", "--allow-private"]);
    assert_eq!(code, 0, "{out}");
    let snaps = out["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 3, "one snapshot per URL: {out}");
    let by_root = |root: String| {
        snaps
            .iter()
            .find(|x| x["root"] == root.as_str())
            .unwrap()
            .clone()
    };
    // The profile's `url` is crawled (default depth 3: /, /mission, /deeper) ...
    assert_eq!(by_root(home.url("/"))["pages"], 3);
    // ... a plain link is captured alone ...
    assert_eq!(by_root(home.url("/mission"))["pages"], 1);
    // ... and the handbook, a documentation site, is crawled too.
    assert!(
        by_root(handbook.url("/handbook/"))["pages"]
            .as_u64()
            .unwrap()
            > 10
    );
    // Scanning the vault for the note recorded its version.
    let (h, _) = s.json(&["history", "profiles/Org.md"]);
    assert_eq!(h["versions"].as_array().unwrap().len(), 1);
}

#[test]
fn snapshot_all_takes_every_url_of_the_vault_once() {
    let server = Server::start(|req| Reply::ok("text/html", format!("<p>{}</p>", req.path())));
    let s = Sandbox::empty();
    s.write(
        "a.md",
        format!("{} and {}", server.url("/one"), server.url("/two")),
    );
    s.write(
        "b.md",
        format!("[again]({}) <{}>", server.url("/one"), server.url("/three")),
    );
    let (out, code) = s.json(&["archive", "snapshot", "--all", "--allow-private"]);
    assert_eq!(code, 0, "{out}");
    let roots: BTreeSet<String> = out["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["root"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        roots,
        ["/one", "/three", "/two"]
            .iter()
            .map(|p| server.url(p))
            .collect()
    );
    assert_eq!(server.count("/one"), 1);
    let bad = s.run(&["archive", "snapshot", "nope.md"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("neither an http(s) URL nor a note"),
        "{}",
        stderr(&bad)
    );
}
