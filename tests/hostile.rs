//! Hostile and heavy websites (issue 8): one loopback server with a path per misbehaviour.
//! Every case checks the exit code and the recorded reason, a wall-time bound, a bound on the
//! vaultkeep process's peak memory (VmHWM), that `archive verify` passes, and that every file
//! written lies inside the archive.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::common::server::{Reply, Server, content_type};
use crate::common::{Measured, Sandbox, assert_no_file_holds, files_under, measure, ns, stderr};

/// Small timeouts, so that every misbehaviour ends quickly.
const CONFIG: &str = "[fetch]
timeout_secs = 3
connect_timeout_secs = 2
retries = 1
retry_base_ms = 200
url_budget_secs = 8
max_bytes = 4194304
";

/// What one snapshot run gave.
struct Run {
    code: i32,
    /// The first snapshot's record (`archive show --json`), or null.
    record: Value,
    measured: Measured,
}

impl Run {
    fn failure(&self, url_end: &str) -> &Value {
        self.record["failures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["url"].as_str().unwrap().ends_with(url_end))
            .unwrap_or_else(|| {
                let n = self.record["failures"].as_array().map_or(0, Vec::len);
                panic!("no failure for {url_end} among {n}")
            })
    }

    fn reason(&self, url_end: &str) -> String {
        self.failure(url_end)["reason"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn captured(&self, url_end: &str) -> Option<&Value> {
        self.record["captures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["url"].as_str().unwrap().ends_with(url_end))
    }

    fn within(&self, wall: Duration, mib: u64) -> &Run {
        let m = &self.measured;
        assert!(
            m.elapsed <= wall,
            "took {:?}, more than {wall:?}\n{}",
            m.elapsed,
            stderr(&m.output)
        );
        assert!(
            m.peak_kib <= mib * 1024,
            "peak memory {} KiB, more than {mib} MiB",
            m.peak_kib
        );
        self
    }
}

/// `archive snapshot --allow-private --json ARGS` with the small timeouts, measured; then the
/// checks every case shares.
fn snap(s: &Sandbox, args: &[&str]) -> Run {
    let cfg = s.dir.path().join("vaultkeep.toml");
    if !cfg.exists() {
        fs::write(&cfg, CONFIG).unwrap();
    }
    let mut all = vec!["archive", "snapshot", "--allow-private", "--json"];
    all.extend_from_slice(args);
    let measured = measure(s.cmd(&all));
    let code = measured.output.status.code().unwrap_or(-1);
    let out: Value = serde_json::from_slice(&measured.output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&measured.output.stdout),
            stderr(&measured.output)
        )
    });
    let record = match out["snapshots"][0]["id"].as_str() {
        Some(id) => s.json(&["archive", "show", id]).0,
        None => Value::Null,
    };
    let verify = s.run(&["archive", "verify", "--json"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    everything_inside(s);
    Run {
        code,
        record,
        measured,
    }
}

/// Every file under the sandbox is in the vault, in the archive (really inside it, not
/// through a link out), or the config file.
fn everything_inside(s: &Sandbox) {
    let archive = fs::canonicalize(&s.archive).unwrap();
    for f in files_under(s.dir.path()) {
        if f.starts_with(&s.vault) || f.file_name().is_some_and(|n| n == "vaultkeep.toml") {
            continue;
        }
        let real = fs::canonicalize(&f).unwrap();
        assert!(
            real.starts_with(&archive),
            "{} is outside the archive",
            f.display()
        );
    }
}

fn page(body: impl Into<String>) -> Reply {
    Reply::ok("text/html", body.into())
}

fn png() -> Reply {
    Reply::ok("image/png", b"\x89PNG small".to_vec())
}

fn gzip_bomb() -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        gz.write_all(&zeros).unwrap();
    }
    gz.finish().unwrap()
}

/// The server with a path per misbehaviour.
fn hostile() -> Server {
    let bomb = gzip_bomb();
    let retried = Arc::new(AtomicUsize::new(0));
    Server::start(move |req| {
        let path = req.path();
        match path.as_str() {
            "/robots.txt" => Reply::status(404),
            "/css-attr" => page(format!(
                "<div style=\"b:{}\">x</div><img src=/ok.png>",
                "(".repeat(50_000)
            )),
            "/css-block" => page(format!(
                "<style>b:{}</style><img src=/ok.png>",
                "(".repeat(50_000)
            )),
            "/css-sheet" => page("<link rel=stylesheet href=/deep.css><img src=/ok.png>"),
            "/nested-html" => page(format!(
                "{}<img src=/ok.png>{}",
                "<div><span>".repeat(50_000),
                "</span></div>".repeat(50_000)
            )),
            "/deep.css" => Reply::ok("text/css", format!("b:{}", "(".repeat(50_000))),
            "/long-name" => page(format!("<img src=\"/{}/file.png\">", "L".repeat(300))),
            "/long-accents" => page(format!("<img src=\"/{}/file.png\">", "%C3%A9".repeat(150))),
            "/deep-path" => page(format!("<img src=\"/{}x.png\">", "d/".repeat(3000))),
            "/deeper-path" => page(format!(
                "<img src=\"/{}y.png\"><img src=\"/{}z.png\">",
                "d/".repeat(3500),
                "d/".repeat(20_000)
            )),
            "/slow-page" => page(
                (0..24)
                    .map(|i| format!("<img src=/slow/{i}.png>"))
                    .collect::<String>(),
            ),
            "/many-images" => page(
                (0..100_000)
                    .map(|i| format!("<img src=/i/{i}.png>"))
                    .collect::<String>(),
            ),
            "/many-links" => page(
                (0..100_000)
                    .map(|i| format!("<a href=/p/{i}.html>{i}</a>"))
                    .collect::<String>(),
            ),
            "/misc" => page(
                [
                    "/endless.bin",
                    "/gzip-bomb.css",
                    "/short-body.png",
                    "/to-file.png",
                    "/to-gopher.png",
                    "/big-headers.png",
                    "/http10.png",
                    "/bad-chunks.png",
                    "/retry-forever.png",
                    "/retry-soon.png",
                    "/drip.png",
                    "/loop-a",
                    "/chain/0",
                ]
                .iter()
                .map(|p| format!("<img src={p}>"))
                .collect::<String>()
                    + "<link rel=stylesheet href=/import-a.css>",
            ),
            "/endless.bin" => Reply::Endless,
            "/gzip-bomb.css" => Reply::Full {
                status: 200,
                headers: vec![
                    ("Content-Type".into(), "text/css".into()),
                    ("Content-Encoding".into(), "gzip".into()),
                ],
                body: bomb.clone(),
            },
            "/short-body.png" => Reply::Raw(
                b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 1000\r\nConnection: close\r\n\r\nonly this"
                    .to_vec(),
            ),
            "/to-file.png" => Reply::redirect(302, "file:///etc/passwd"),
            "/to-gopher.png" => Reply::redirect(302, "gopher://127.0.0.1/x"),
            "/big-headers.png" => Reply::Full {
                status: 200,
                headers: vec![("X-Big".into(), "x".repeat(1 << 20))],
                body: b"png".to_vec(),
            },
            "/http10.png" => Reply::Raw(
                b"HTTP/1.0 200 OK\r\nContent-Type: image/png\r\n\r\nbytes until the connection closes"
                    .to_vec(),
            ),
            "/bad-chunks.png" => Reply::Raw(
                b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n"
                    .to_vec(),
            ),
            "/retry-forever.png" => Reply::Full {
                status: 429,
                headers: vec![("Retry-After".into(), "100000".into())],
                body: Vec::new(),
            },
            "/retry-soon.png" => {
                if retried.fetch_add(1, Ordering::SeqCst) == 0 {
                    Reply::Full {
                        status: 503,
                        headers: vec![("Retry-After".into(), "2".into())],
                        body: Vec::new(),
                    }
                } else {
                    png()
                }
            }
            "/drip.png" | "/drip" => Reply::Drip {
                bytes: b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n\r\nslow".to_vec(),
                every: Duration::from_secs(1),
            },
            "/loop-a" => Reply::redirect(302, "/loop-b"),
            "/loop-b" => Reply::redirect(302, "/loop-a"),
            "/import-a.css" => Reply::ok("text/css", "@import 'import-b.css'; a{background:url(a.png)}"),
            "/import-b.css" => Reply::ok("text/css", "@import 'import-a.css';"),
            "/evil" => page(
                [
                    "/../x.png".to_string(),
                    "/%2e%2e/%2e%2e/y.png".into(),
                    "/a%00b.png".into(),
                    "/c%0d%0ad.png".into(),
                    format!("/{}.png", "n".repeat(300)),
                    "/con".into(),
                    "/aux.png".into(),
                    "/CON.png".into(),
                ]
                .iter()
                .map(|p| format!("<img src=\"{p}\">"))
                .collect::<String>(),
            ),
            "/bogus-charset" => Reply::ok(
                "text/html; charset=no-such-charset",
                "<img src=/bogus-img.png>",
            ),
            "/utf16" => {
                let mut body = vec![0xFF, 0xFE];
                for unit in "<html><img src=\"/u16-img.png\"><link rel=stylesheet href=\"/u16.css\"></html>".encode_utf16() {
                    body.extend(unit.to_le_bytes());
                }
                Reply::Full {
                    status: 200,
                    headers: vec![("Content-Type".into(), "text/html; charset=utf-16".into())],
                    body,
                }
            }
            "/u16.css" => {
                let mut body = vec![0xFF, 0xFE];
                for unit in "body{background:url(u16-bg.png)}".encode_utf16() {
                    body.extend(unit.to_le_bytes());
                }
                Reply::Full {
                    status: 200,
                    headers: vec![("Content-Type".into(), "text/css".into())],
                    body,
                }
            }
            p if p.starts_with("/chain/") => {
                let n: u32 = p[7..].parse().unwrap_or(0);
                Reply::redirect(302, &format!("/chain/{}", n + 1))
            }
            p if p.starts_with("/slow/") => Reply::Slow {
                content_type: "image/png".into(),
                body: vec![7u8; 1000],
                over: Duration::from_secs(1),
            },
            p if p.starts_with("/p/") => page("<p>a page</p>"),
            p if p.ends_with(".png") => png(),
            p => Reply::ok(content_type(p), "fine"),
        }
    })
}

#[test]
fn deeply_nested_css_and_html_neither_crash_nor_stop_the_snapshot() {
    let server = hostile();
    for root in ["/css-attr", "/css-block", "/css-sheet", "/nested-html"] {
        let s = Sandbox::empty();
        let run = snap(&s, &[&server.url(root)]);
        run.within(Duration::from_secs(20), 100);
        assert_eq!(run.code, 0, "{root}: {}", stderr(&run.measured.output));
        assert!(run.captured("/ok.png").is_some(), "{root}");
    }
}

#[test]
fn long_and_deep_paths_are_named_safely_in_linear_time() {
    let server = hostile();
    for (root, image) in [
        ("/long-name", "/file.png"),
        ("/long-accents", "/file.png"),
        ("/deep-path", "x.png"),
        ("/deeper-path", "y.png"),
    ] {
        let s = Sandbox::empty();
        let run = snap(&s, &[&server.url(root)]);
        run.within(Duration::from_secs(20), 100);
        assert_eq!(run.code, 0, "{root}");
        let capture = run
            .captured(image)
            .unwrap_or_else(|| panic!("{root}: {} not captured", image));
        let id = run.record["id"].as_str().unwrap();
        let offline = s
            .archive
            .join("snapshots")
            .join(id)
            .join(capture["offline"].as_str().unwrap());
        assert!(offline.is_file(), "{}", offline.display());
        let rel = offline.strip_prefix(&s.archive).unwrap();
        assert!(rel.as_os_str().len() < 2048, "{}", rel.display());
        for part in rel.components() {
            assert!(part.as_os_str().len() <= 255);
        }
    }
}

#[test]
fn a_huge_robots_txt_is_read_in_part_and_a_huge_crawl_delay_is_capped() {
    let mut rules = String::from("User-agent: *\n");
    while rules.len() < 5 << 20 {
        rules.push_str(&format!("Disallow: /private/{}/\n", rules.len()));
    }
    let huge = Server::start(move |req| match req.path().as_str() {
        "/robots.txt" => Reply::ok("text/plain", rules.clone()),
        "/" => page("<img src=/ok.png>"),
        _ => png(),
    });
    let s = Sandbox::empty();
    let run = snap(&s, &[&huge.url("/")]);
    run.within(Duration::from_secs(15), 100);
    assert_eq!(run.code, 0);
    assert!(run.captured("/ok.png").is_some());

    let slow = Server::start(|req| match req.path().as_str() {
        "/robots.txt" => Reply::ok("text/plain", "User-agent: *\nCrawl-delay: 1e20\n"),
        "/" => page("<img src=/ok.png>"),
        _ => png(),
    });
    let s = Sandbox::empty();
    let run = snap(&s, &[&slow.url("/")]);
    // Capped at 5 s between two requests to the host.
    run.within(Duration::from_secs(20), 100);
    assert_eq!(run.code, 0);
    assert!(run.captured("/ok.png").is_some());
}

#[test]
fn the_host_limit_holds_while_bodies_are_received() {
    let server = hostile();
    let s = Sandbox::empty();
    let run = snap(&s, &[&server.url("/slow-page")]);
    run.within(Duration::from_secs(30), 100);
    assert_eq!(run.code, 0);
    assert_eq!(run.record["captures"].as_array().unwrap().len(), 25);
    let peak = server.peak.load(Ordering::SeqCst);
    assert!(peak <= 8, "{peak} requests to one host at once (limit 8)");
    assert!(
        run.measured.elapsed >= Duration::from_secs(3),
        "24 bodies of 1 s, 8 at a time, take 3 s: {:?}",
        run.measured.elapsed
    );
}

#[test]
fn a_page_of_a_hundred_thousand_images_stops_at_the_resource_limit() {
    let server = hostile();
    let s = Sandbox::empty();
    let run = snap(&s, &[&server.url("/many-images")]);
    run.within(Duration::from_secs(120), 150);
    assert_eq!(run.code, 1, "incomplete: a limit was reached");
    let r = &run.record;
    assert!(
        r["incomplete"].as_str().unwrap().contains("max_resources"),
        "{}",
        r["incomplete"]
    );
    let captures = r["captures"].as_array().unwrap().len();
    assert_eq!(captures, 5000, "the page and 4999 images");
    let listed = r["failures"].as_array().unwrap();
    assert!(listed.iter().all(|f| f["reason"] == "limit"));
    let total = listed.len() as u64 + r["not_listed"].as_u64().unwrap_or(0);
    assert_eq!(
        total,
        100_001 - 5000,
        "every image not fetched is accounted for"
    );
}

#[test]
fn a_page_of_a_hundred_thousand_links_crawls_its_page_budget() {
    let server = hostile();
    let s = Sandbox::empty();
    let run = snap(&s, &[&server.url("/many-links"), "--depth", "1"]);
    run.within(Duration::from_secs(60), 150);
    assert_eq!(run.code, 0);
    let pages = run.record["captures"].as_array().unwrap().len();
    assert_eq!(pages, 500, "max_pages");
    assert_eq!(run.reason("/p/600.html"), "limit");
    let listed = run.record["failures"].as_array().unwrap().len() as u64;
    let total = listed + run.record["not_listed"].as_u64().unwrap_or(0);
    assert_eq!(
        total,
        100_000 - 499,
        "every link not followed is accounted for"
    );
}

#[test]
fn misbehaving_requisites_fail_alone_with_a_reason() {
    let server = hostile();
    let s = Sandbox::empty();
    let run = snap(&s, &[&server.url("/misc")]);
    run.within(Duration::from_secs(30), 100);
    assert_eq!(run.code, 0, "the page itself was captured");
    assert_eq!(run.reason("/endless.bin"), "too large");
    assert_eq!(run.reason("/gzip-bomb.css"), "too large");
    assert!(matches!(
        run.reason("/short-body.png").as_str(),
        "error" | "bad response"
    ));
    assert_eq!(run.reason("/to-file.png"), "unsupported");
    assert_eq!(run.reason("/to-gopher.png"), "unsupported");
    assert_eq!(run.reason("/big-headers.png"), "bad response");
    assert_eq!(server.count("/big-headers.png"), 1, "not retried");
    assert!(
        run.captured("/http10.png").is_some(),
        "HTTP/1.0 without a length"
    );
    assert!(matches!(
        run.reason("/bad-chunks.png").as_str(),
        "error" | "bad response"
    ));
    let f = run.failure("/retry-forever.png");
    assert_eq!(
        (f["reason"].as_str(), f["detail"].as_str()),
        (Some("http"), Some("HTTP 429"))
    );
    assert_eq!(server.count("/retry-forever.png"), 1);
    assert!(
        run.captured("/retry-soon.png").is_some(),
        "503, then after 2 s an answer"
    );
    assert_eq!(server.count("/retry-soon.png"), 2);
    assert_eq!(run.reason("/drip.png"), "timeout");
    assert_eq!(run.reason("/loop-a"), "redirects");
    assert_eq!(run.reason("/chain/0"), "redirects");
    // An @import loop: each sheet once.
    assert!(run.captured("/import-a.css").is_some() && run.captured("/import-b.css").is_some());
    assert_eq!(server.count("/import-a.css"), 1);
    assert_eq!(server.count("/import-b.css"), 1);
}

#[test]
fn roots_that_never_answer_or_drip_end_within_their_budget() {
    let hang = Server::start(|_| Reply::Hang);
    let s = Sandbox::empty();
    let run = snap(&s, &[&hang.url("/")]);
    run.within(Duration::from_secs(20), 100);
    assert_eq!(run.code, 1);
    assert_eq!(run.reason("/"), "timeout");
    let server = hostile();
    for (root, reason) in [
        ("/drip", "timeout"),
        ("/loop-a", "redirects"),
        ("/chain/0", "redirects"),
        ("/to-file.png", "unsupported"),
    ] {
        let s = Sandbox::empty();
        let run = snap(&s, &[&server.url(root)]);
        run.within(Duration::from_secs(20), 100);
        assert_eq!(run.code, 1, "{root}");
        assert_eq!(run.reason(root), reason, "{root}");
    }
}

#[test]
fn malicious_paths_stay_inside_the_archive() {
    let server = hostile();
    let s = Sandbox::empty();
    let run = snap(&s, &[&server.url("/evil")]);
    run.within(Duration::from_secs(20), 100);
    assert_eq!(run.code, 0);
    let captures = run.record["captures"].as_array().unwrap();
    assert_eq!(captures.len(), 9, "{}", run.record["failures"]);
    for c in captures {
        let offline = c["offline"].as_str().unwrap();
        assert!(!offline.split('/').any(|p| p == ".."), "{offline}");
        assert!(!offline.contains('\0') && !offline.contains('\r') && !offline.contains('\n'));
        let name = offline.rsplit('/').next().unwrap().to_ascii_lowercase();
        assert!(
            !matches!(name.split('.').next(), Some("con" | "aux")),
            "{offline}"
        );
    }
}

#[test]
fn wrong_and_utf16_charsets_still_give_their_references() {
    let server = hostile();
    let s = Sandbox::empty();
    let run = snap(&s, &[&server.url("/bogus-charset")]);
    assert_eq!(run.code, 0);
    assert!(run.captured("/bogus-img.png").is_some());
    run.within(Duration::from_secs(20), 100);
    let run = snap(&s, &[&server.url("/utf16")]);
    run.within(Duration::from_secs(20), 100);
    assert_eq!(run.code, 0);
    for requisite in ["/u16-img.png", "/u16.css", "/u16-bg.png"] {
        assert!(
            run.captured(requisite).is_some(),
            "{requisite}: {}",
            run.record
        );
    }
}

#[test]
fn an_index_page_and_its_folder_are_fetched_and_recorded_once() {
    let server = Server::start(|req| match req.path().as_str() {
        "/" => page(
            "<a href=/index.html>home</a><a href=/a/>a</a><link rel=next href=/next.html><img src=/blob>",
        ),
        "/a/" => page("<a href=/a/index.html>a again</a>"),
        "/next.html" => page("<p>next</p>"),
        "/blob" => Reply::ok("application/octet-stream", "bytes"),
        "/robots.txt" => Reply::status(404),
        _ => page("<p>index</p>"),
    });
    let s = Sandbox::empty();
    let run = snap(&s, &[&server.url("/"), "--depth", "2"]);
    assert_eq!(run.code, 0);
    assert_eq!(server.count("/index.html"), 0, "the same page as /");
    assert_eq!(server.count("/a/index.html"), 0, "the same page as /a/");
    let root = run.captured(&format!("{}/", server.addr.port())).unwrap();
    assert_eq!(root["aliases"][0], server.url("/index.html"));
    assert!(
        run.captured("/next.html").is_some(),
        "<link rel=next> is followed"
    );
    let blob = run.captured("/blob").unwrap();
    assert!(blob["offline"].as_str().unwrap().ends_with("blob.bin"));
    run.within(Duration::from_secs(20), 100);
}

#[test]
fn proxy_settings_in_the_environment_are_ignored() {
    let proxy = Server::start(|_| page("<p>the proxy answered</p>"));
    let site = Server::start(|_| page("<p>the site</p>"));
    let s = Sandbox::empty();
    let mut cmd = s.cmd(&[
        "archive",
        "snapshot",
        "--allow-private",
        "--json",
        &site.url("/"),
    ]);
    for var in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"] {
        cmd.env(var, proxy.url(""));
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        proxy.hits.lock().unwrap().is_empty(),
        "no request went through the proxy"
    );
    assert!(!site.hits.lock().unwrap().is_empty());
}

/// A site whose 40 images each take 5 s, to stop a snapshot in the middle.
fn slow_site() -> Server {
    Server::start(|req| match req.path().as_str() {
        "/robots.txt" => Reply::status(404),
        "/" => page(
            (0..40)
                .map(|i| format!("<img src=/slow/{i}.png>"))
                .collect::<String>(),
        ),
        _ => Reply::Slow {
            content_type: "image/png".into(),
            body: vec![1u8; 100],
            over: Duration::from_secs(5),
        },
    })
}

#[test]
fn a_snapshot_stopped_by_sigterm_records_what_it_captured() {
    let server = slow_site();
    let s = Sandbox::empty();
    let child = s
        .cmd(&[
            "archive",
            "snapshot",
            "--allow-private",
            "--json",
            &server.url("/"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped promptly"
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = summary["snapshots"][0]["id"].as_str().unwrap();
    let (record, _) = s.json(&["archive", "show", id]);
    assert_eq!(record["incomplete"], "interrupted by SIGTERM");
    assert_eq!(
        record["captures"][0]["url"],
        server.url("/"),
        "the page is kept"
    );
    assert!(
        record["failures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["reason"] == "interrupted")
    );
    let list = s.run(&["archive", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("incomplete: interrupted by SIGTERM"));
    assert_eq!(s.run(&["archive", "verify"]).status.code(), Some(0));
}

#[test]
fn a_snapshot_killed_outright_keeps_its_captures_for_the_next_run() {
    let server = slow_site();
    let s = Sandbox::empty();
    let mut child = s
        .cmd(&["archive", "snapshot", "--allow-private", &server.url("/")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the page's capture reached the journal, then kill -9.
    let journal = || {
        fs::read_dir(s.archive.join("snapshots"))
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("journal.jsonl"))
            .find(|p| p.exists())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if journal().is_some_and(|j| fs::read_to_string(j).unwrap().contains("\"capture\"")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no capture journaled");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (list, _) = s.json(&["archive", "list"]);
    assert_eq!(
        list["snapshots"].as_array().unwrap().len(),
        0,
        "not recorded yet"
    );
    let (verify, code) = s.json(&["archive", "verify"]);
    assert_eq!(code, 0, "the journal's objects are referenced: {verify}");
    // The next writer finishes the record from the journal instead of deleting the objects.
    let (gc, code) = s.json(&["archive", "gc"]);
    assert_eq!(code, 0, "{gc}");
    assert_eq!(gc["objects"], 0, "nothing captured was removed");
    assert_eq!(gc["finished_snapshots"].as_array().unwrap().len(), 1);
    let (list, _) = s.json(&["archive", "list"]);
    let snapshot = &list["snapshots"][0];
    assert!(
        snapshot["incomplete"]
            .as_str()
            .unwrap()
            .starts_with("interrupted")
    );
    assert!(
        Path::new(snapshot["offline"].as_str().unwrap()).is_file(),
        "{snapshot}"
    );
    assert_eq!(s.run(&["archive", "verify"]).status.code(), Some(0));
}

#[test]
fn the_private_address_guard_holds_on_every_redirect_hop() {
    if !ns::inside(
        &["-rn"],
        "hostile::the_private_address_guard_holds_on_every_redirect_hop",
    ) {
        return;
    }
    // Inside our own network namespace: a public-looking address on lo, and a loopback
    // server holding a secret.
    ns::sh("ip link set lo up && ip addr add 93.184.215.14/32 dev lo");
    const SECRET: &str = "the-secret-the-guard-protects";
    let secret = Server::start(|_| Reply::ok("image/png", SECRET));
    let inner = secret.url("");
    let port = secret.addr.port();
    let public = Server::start_on("93.184.215.14:8080", move |req| match req.path().as_str() {
        "/robots.txt" => Reply::status(404),
        "/" => page(format!(
            "<img src=\"{inner}/direct.png\"><img src=\"/to-secret.png\"><link rel=stylesheet href=\"/to-secret.css\">\
             <img src=\"http://localhost:{port}/named.png\"><img src=\"http://169.254.169.254/latest/meta-data/\">\
             <img src=\"http://[::ffff:127.0.0.1]:{port}/mapped.png\"><a href=\"/to-secret-page\">x</a>"
        )),
        "/to-secret.png" | "/to-secret.css" => Reply::redirect(302, &format!("{inner}/hop.png")),
        "/to-secret-page" => Reply::redirect(301, &format!("http://localhost:{port}/page")),
        _ => Reply::status(404),
    });
    let s = Sandbox::empty();
    let cfg = s.dir.path().join("vaultkeep.toml");
    fs::write(&cfg, CONFIG).unwrap();
    let out = s.run(&[
        "archive",
        "snapshot",
        "--json",
        "--depth",
        "1",
        &public.url("/"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = summary["snapshots"][0]["id"].as_str().unwrap();
    let (record, _) = s.json(&["archive", "show", id]);
    let failures = record["failures"].as_array().unwrap();
    for end in [
        "/direct.png",
        "/to-secret.png",
        "/to-secret.css",
        "/named.png",
        "/latest/meta-data/",
        "/mapped.png",
        "/to-secret-page",
    ] {
        let f = failures
            .iter()
            .find(|f| f["url"].as_str().unwrap().ends_with(end))
            .unwrap_or_else(|| panic!("{end} not refused: {record}"));
        assert_eq!(f["reason"], "private", "{end}: {f}");
    }
    assert!(
        secret.hits.lock().unwrap().is_empty(),
        "no request reached the secret"
    );
    assert_no_file_holds(&s.archive, SECRET);
}
