//! Browser capture (issue 11): headless Chromium renders pages built by scripts, every request
//! answered by vaultkeep's own fetcher. The site under test (`tests/data/sites/script-site`)
//! builds its text from a fetch() of JSON, routes on the client, adds a web font by script,
//! loads images when they scroll into view, and reaches for a loopback URL.
//!
//! Checked against an independent reference: Chromium's own command line (`--screenshot`,
//! running the page's scripts) screenshots the live page and the offline copy.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::server::{Reply, Request, Server, static_file};
use crate::common::{Sandbox, assert_no_file_holds, data, files_under, ns, stderr};

/// Text only the site's scripts put on its pages.
const HOME_TEXT: &str = "Rendered by scripts: the mycelium remembers";
const ABOUT_TEXT: &str = "About page rendered on the client";

/// The site, with the fallback single-page apps need: a path without an extension is the app.
fn site(req: &Request) -> Reply {
    let root = data("sites/script-site");
    let path = req.path();
    let last = path.rsplit('/').next().unwrap_or("");
    if !last.contains('.') && !root.join(path.trim_start_matches('/')).is_file() {
        let index = Request {
            target: "/index.html".into(),
            ..req.clone()
        };
        return static_file(&root, &index);
    }
    static_file(&root, req)
}

/// Runs vaultkeep with its temporary files (the browser's profile) under the sandbox, so the
/// test can tell its own Chromium processes from others'.
fn run(s: &Sandbox, args: &[&str]) -> Output {
    command(s, args).output().unwrap()
}

fn command(s: &Sandbox, args: &[&str]) -> Command {
    let tmp = s.dir.path().join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let mut c = s.cmd(args);
    c.env("TMPDIR", &tmp);
    c
}

fn json(s: &Sandbox, args: &[&str]) -> (Value, i32) {
    let mut args = args.to_vec();
    args.push("--json");
    let out = run(s, &args);
    let value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}\n{}", stderr(&out)));
    (value, out.status.code().unwrap_or(-1))
}

/// Snapshots `url` with `args`; returns the record.
fn snapshot(s: &Sandbox, url: &str, args: &[&str]) -> Value {
    let mut all = vec!["archive", "snapshot", "--allow-private", url];
    all.extend_from_slice(args);
    let (out, code) = json(s, &all);
    assert_eq!(code, 0, "{out}");
    let id = out["snapshots"][0]["id"].as_str().unwrap().to_string();
    json(s, &["archive", "show", &id]).0
}

fn capture<'a>(record: &'a Value, url: &str) -> &'a Value {
    record["captures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["url"] == url)
        .unwrap_or_else(|| panic!("no capture of {url}: {record}"))
}

fn offline_file(s: &Sandbox, record: &Value, capture: &Value) -> PathBuf {
    s.archive
        .join("snapshots")
        .join(record["id"].as_str().unwrap())
        .join(capture["offline"].as_str().unwrap())
}

/// Live (not zombie) processes whose command line names `dir`: the browsers vaultkeep
/// started with its temporary files there.
fn processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().to_string();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let p = entry.path();
        let Ok(cmdline) = fs::read(p.join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let zombie = fs::read_to_string(p.join("status"))
            .map(|s| {
                s.lines()
                    .any(|l| l.starts_with("State:") && l.contains('Z'))
            })
            .unwrap_or(true);
        if cmdline.contains(&needle) && !zombie {
            found.push(cmdline);
        }
    }
    found
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn no_browser_left(s: &Sandbox) {
    let tmp = s.dir.path().join("tmp");
    wait_until(
        "every browser process to end",
        Duration::from_secs(10),
        || processes_under(&tmp).is_empty(),
    );
}

fn png(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let channels = info.color_type.samples();
    let rgb: Vec<u8> = buf
        .chunks(channels)
        .flat_map(|px| [px[0], px[1 % channels], px[2 % channels]])
        .collect();
    (info.width, info.height, rgb)
}

/// Chromium itself, from its command line: a screenshot after the page's scripts had five
/// seconds (of virtual time) to run.
fn reference_screenshot(url: &str, out: &Path) {
    let profile = tempfile::tempdir().unwrap();
    let mut c = Command::new(chromium());
    c.args([
        "--headless",
        "--hide-scrollbars",
        "--force-color-profile=srgb",
        "--font-render-hinting=none",
        "--window-size=1280,1000",
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(format!("--screenshot={}", out.display()))
    .arg(url)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if crate::common::is_root() {
        c.arg("--no-sandbox");
    }
    assert!(c.status().unwrap().success(), "chromium --screenshot {url}");
    assert!(out.is_file());
}

/// The share of pixels that differ (a channel by more than 8 of 255).
fn differing(a: &Path, b: &Path) -> f64 {
    let (wa, ha, pa) = png(a);
    let (wb, hb, pb) = png(b);
    assert_eq!((wa, ha), (wb, hb), "screenshots of different sizes");
    let differ = pa
        .chunks(3)
        .zip(pb.chunks(3))
        .filter(|(x, y)| x.iter().zip(y.iter()).any(|(p, q)| p.abs_diff(*q) > 8))
        .count();
    differ as f64 / (wa as f64 * ha as f64)
}

/// The browser the tests use (`.ci/run` installs Debian's).
fn chromium() -> PathBuf {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .expect("these tests need Chromium: apt-get install chromium (.ci/run installs it)")
}

#[test]
fn static_capture_misses_what_scripts_build_and_the_browser_keeps_it() {
    chromium();
    let server = Server::start(site);
    let s = Sandbox::empty();
    let root = server.url("/");

    let plain = snapshot(&s, &root, &["--no-browser"]);
    let page = capture(&plain, &root);
    assert!(page.get("rendered").is_none());
    let html = fs::read_to_string(offline_file(&s, &plain, page)).unwrap();
    assert!(
        !html.contains(HOME_TEXT),
        "a static capture has only the shell"
    );
    assert!(
        plain["captures"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| !c["url"].as_str().unwrap().ends_with("content.json")),
        "nothing in the markup names the JSON the script fetches"
    );

    let record = snapshot(&s, &root, &["--browser", "--depth", "1"]);
    let page = capture(&record, &root);
    let html = fs::read_to_string(offline_file(&s, &record, page)).unwrap();
    assert!(html.contains(HOME_TEXT), "{html}");
    assert!(!html.contains("<script"), "scripts are removed: {html}");
    // Every response the page loaded is a capture of the snapshot.
    for path in [
        "/data/content.json",
        "/fonts/code.woff2",
        "/app.js",
        "/style.css",
        "/img/near.png",
    ] {
        capture(&record, &server.url(path));
    }
    // The image far down loads only once the page is scrolled.
    capture(&record, &server.url("/img/far.png"));
    // The route only the script links to, rendered on the client.
    let about = capture(&record, &server.url("/about"));
    let about_html = fs::read_to_string(offline_file(&s, &record, about)).unwrap();
    assert!(about_html.contains(ABOUT_TEXT), "{about_html}");
    // The raw response stays as it came: the rendering is beside it.
    let raw = &page["sha256"].as_str().unwrap();
    let object = s.archive.join("objects").join(&raw[..2]).join(raw);
    assert_eq!(
        fs::read(object).unwrap(),
        fs::read(data("sites/script-site/index.html")).unwrap()
    );
    // A full-page screenshot of the page's size, and a PDF.
    let rendered = &page["rendered"];
    let (w, h) = (
        rendered["width"].as_u64().unwrap() as u32,
        rendered["height"].as_u64().unwrap() as u32,
    );
    assert!(h > 2400, "the page is taller than its window: {rendered}");
    let dir = s
        .archive
        .join("snapshots")
        .join(record["id"].as_str().unwrap());
    let renders = files_under(&dir.join("renders"));
    let shot = renders
        .iter()
        .find(|p| p.to_string_lossy().ends_with("index.html.png"))
        .unwrap_or_else(|| panic!("no screenshot among {renders:?}"));
    let (pw, ph, _) = png(shot);
    assert_eq!((pw, ph), (w, h));
    let pdf = renders
        .iter()
        .find(|p| p.to_string_lossy().ends_with("index.html.pdf"))
        .unwrap();
    assert!(fs::read(pdf).unwrap().starts_with(b"%PDF-"));
    // `archive show` names them.
    let shown = run(&s, &["archive", "show", record["id"].as_str().unwrap()]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("rendered in the browser"), "{text}");
    assert!(text.contains(&shot.display().to_string()), "{text}");
    assert_eq!(run(&s, &["archive", "verify"]).status.code(), Some(0));
    no_browser_left(&s);
}

#[test]
fn the_offline_copy_looks_like_the_live_page() {
    chromium();
    let server = Server::start(site);
    let s = Sandbox::empty();
    let root = server.url("/");
    let record = snapshot(&s, &root, &["--browser"]);
    let work = tempfile::tempdir().unwrap();
    let live = work.path().join("live.png");
    reference_screenshot(&root, &live);
    drop(server);
    let page = capture(&record, &root);
    let offline = offline_file(&s, &record, page);
    let copy = work.path().join("offline.png");
    reference_screenshot(&format!("file://{}", offline.display()), &copy);
    let share = differing(&live, &copy);
    assert!(
        share < 0.005,
        "{:.3}% of pixels differ between the live page and its offline copy",
        share * 100.0
    );
    no_browser_left(&s);
}

#[test]
fn auto_renders_only_the_pages_that_look_built_by_scripts() {
    chromium();
    let scripted = Server::start(site);
    let handbook = Server::dir(data("sites/enspiral-handbook"));
    let s = Sandbox::empty();
    let record = snapshot(&s, &scripted.url("/"), &[]);
    assert!(
        capture(&record, &scripted.url("/"))["rendered"]["dom"].is_string(),
        "the app shell is rendered: {record}"
    );
    let record = snapshot(&s, &handbook.url("/"), &[]);
    assert!(
        capture(&record, &handbook.url("/"))
            .get("rendered")
            .is_none(),
        "a page with its text in the markup is captured statically"
    );
    no_browser_left(&s);
}

#[test]
fn a_static_capture_gets_a_screenshot_of_what_was_kept() {
    chromium();
    let handbook = Server::dir(data("sites/enspiral-handbook"));
    let s = Sandbox::empty();
    let root = handbook.url("/");
    let record = snapshot(&s, &root, &["--no-browser", "--screenshot"]);
    let rendered = &capture(&record, &root)["rendered"];
    assert!(rendered["dom"].is_null(), "not rendered: {rendered}");
    assert!(rendered["screenshot"].is_string(), "{rendered}");
    let dir = s
        .archive
        .join("snapshots")
        .join(record["id"].as_str().unwrap());
    let shots: Vec<_> = files_under(&dir.join("renders"));
    assert_eq!(shots.len(), 1, "{shots:?}");
    let (w, h, pixels) = png(&shots[0]);
    assert_eq!(w, rendered["width"].as_u64().unwrap() as u32);
    assert_eq!(h, rendered["height"].as_u64().unwrap() as u32);
    // Not a blank page: the handbook's text and colours are in it.
    let distinct: std::collections::BTreeSet<&[u8]> = pixels.chunks(3).collect();
    assert!(distinct.len() > 50, "{} colours", distinct.len());
    no_browser_left(&s);
}

#[test]
fn without_chromium_auto_captures_statically_and_browser_refuses() {
    let server = Server::start(site);
    let s = Sandbox::empty();
    fs::write(
        s.dir.path().join("vaultkeep.toml"),
        "[browser]\npath = \"/nonexistent/chromium\"\n",
    )
    .unwrap();
    let root = server.url("/");
    let out = run(
        &s,
        &["archive", "snapshot", "--allow-private", "--browser", &root],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("apt-get install chromium"), "{err}");
    assert!(
        s.archive.join("snapshots").read_dir().is_err()
            || files_under(&s.archive.join("snapshots")).is_empty()
    );

    let out = run(&s, &["archive", "snapshot", "--allow-private", &root]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(
        err.matches("install Chromium").count(),
        1,
        "one notice: {err}"
    );
    let (list, _) = json(&s, &["archive", "list"]);
    let id = list["snapshots"][0]["id"].as_str().unwrap();
    let (record, _) = json(&s, &["archive", "show", id]);
    assert!(capture(&record, &root).get("rendered").is_none());
    assert!(
        record["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no Chromium found"),
        "{record}"
    );
}

#[test]
fn a_page_that_hangs_or_a_browser_that_balloons_leaves_the_static_capture() {
    chromium();
    let server = Server::start(|req| {
        if req.path() == "/data/content.json" {
            std::thread::sleep(Duration::from_secs(20));
        }
        site(req)
    });
    let s = Sandbox::empty();
    let cfg = s.dir.path().join("vaultkeep.toml");
    fs::write(&cfg, "[browser]\npage_timeout_secs = 3\n").unwrap();
    let root = server.url("/");
    let started = Instant::now();
    let record = snapshot(&s, &root, &["--browser"]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(capture(&record, &root).get("rendered").is_none());
    let problem = record["problems"][0]["message"].as_str().unwrap();
    assert!(problem.contains("longer than 3 s"), "{problem}");
    no_browser_left(&s);

    // A page whose script takes 2.5 GiB of memory, 16 MiB at a time.
    let balloon = Server::start(|_| {
        Reply::ok(
            "text/html",
            "<p>x</p><script>const kept = []; for (let i = 0; i < 160; i++) \
             kept.push(new Uint8Array(16 << 20).fill(7));</script>",
        )
    });
    fs::write(&cfg, "[browser]\nmax_memory = \"1 GiB\"\n").unwrap();
    let root = balloon.url("/");
    let record = snapshot(&s, &root, &["--browser"]);
    let problem = record["problems"][0]["message"].as_str().unwrap();
    assert!(problem.contains("max_memory"), "{problem}");
    assert!(capture(&record, &root).get("rendered").is_none());
    no_browser_left(&s);
}

#[test]
fn no_browser_outlives_vaultkeep_killed_or_terminated() {
    chromium();
    // The page's data never comes: the browser is mid-render when vaultkeep ends.
    let server = Server::start(|req| {
        if req.path() == "/data/content.json" {
            std::thread::sleep(Duration::from_secs(30));
        }
        site(req)
    });
    for signal in ["-KILL", "-TERM"] {
        let s = Sandbox::empty();
        let tmp = s.dir.path().join("tmp");
        let mut child = command(
            &s,
            &[
                "archive",
                "snapshot",
                "--allow-private",
                "--browser",
                &server.url("/"),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        wait_until("the browser to start", Duration::from_secs(30), || {
            !processes_under(&tmp).is_empty()
        });
        std::thread::sleep(Duration::from_millis(500));
        Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        if signal == "-TERM" {
            assert_eq!(status.code(), Some(1), "stopped, recorded as incomplete");
        }
        wait_until(
            &format!("the browser to end after kill {signal}"),
            Duration::from_secs(15),
            || processes_under(&tmp).is_empty(),
        );
    }
}

#[test]
fn a_pages_scripts_cannot_reach_private_addresses() {
    if !ns::inside(
        &["-rn"],
        "browser::a_pages_scripts_cannot_reach_private_addresses",
    ) {
        return;
    }
    chromium();
    // A public-looking address for the site; on loopback, at the same port, a secret (the
    // site's script asks for http://127.0.0.1:<its port>/secret).
    ns::sh("ip link set lo up && ip addr add 93.184.215.14/32 dev lo");
    const SECRET: &str = "the-secret-no-script-may-read";
    let public = Server::start_on("93.184.215.14:8080", site);
    let secret = Server::start_on("127.0.0.1:8080", |_| Reply::ok("text/plain", SECRET));
    let s = Sandbox::empty();
    let root = public.url("/");
    let out = run(
        &s,
        &[
            "archive",
            "snapshot",
            "--browser",
            "--ignore-robots",
            "--json",
            &root,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = summary["snapshots"][0]["id"].as_str().unwrap();
    let (record, _) = json(&s, &["archive", "show", id]);
    let html = fs::read_to_string(offline_file(&s, &record, capture(&record, &root))).unwrap();
    assert!(html.contains(HOME_TEXT), "the page itself was rendered");
    let refused = record["failures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["url"] == "http://127.0.0.1:8080/secret")
        .unwrap_or_else(|| panic!("the script's request is not recorded: {record}"));
    assert_eq!(refused["reason"], "private", "{refused}");
    assert!(
        secret.hits.lock().unwrap().is_empty(),
        "no request reached the secret"
    );
    assert_no_file_holds(&s.archive, SECRET);
    no_browser_left(&s);
}

/// A vault of three profiles of the script-built site: one without `image`, one whose
/// `image` is there, one whose `image` file is missing.
fn profiles_vault(server: &Server) -> Sandbox {
    let s = Sandbox::empty();
    let url = server.url("/");
    s.write(
        "profiles/Mycelium_Collective.md",
        format!("---\ntitle: Mycelium\nurl: {url}\nimage:\n---\nA collective.\n"),
    );
    s.write(
        "profiles/Has Picture.md",
        format!("---\nurl: {url}\nimage: \"[[assets/own.png]]\"\n---\n"),
    );
    s.write("assets/own.png", "the owner's own picture");
    s.write(
        "profiles/Lost.md",
        format!("---\nurl: {url}\nimage: /assets/gone.png\n---\n"),
    );
    s
}

#[test]
fn profiles_get_homepage_pictures_and_an_image_only_where_they_had_none() {
    chromium();
    let server = Server::start(site);
    let s = profiles_vault(&server);
    let note = |name: &str| fs::read_to_string(s.vault.join("profiles").join(name)).unwrap();
    let before = (
        note("Mycelium_Collective.md"),
        note("Has Picture.md"),
        note("Lost.md"),
    );

    let (dry, code) = json(&s, &["profiles", "screenshot", "--dry-run"]);
    assert_eq!(code, 0, "{dry}");
    assert_eq!(dry["profiles"].as_array().unwrap().len(), 3);
    let diff = dry["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|p| p["note_result"]["diff"].as_str())
        .unwrap();
    assert!(
        diff.contains("+image: \"[[assets/mycelium-collective-homepage.png]]\""),
        "{diff}"
    );
    assert!(
        !s.vault
            .join("assets/mycelium-collective-homepage.png")
            .exists()
    );
    assert_eq!(
        note("Mycelium_Collective.md"),
        before.0,
        "a dry run changes nothing"
    );

    let (out, code) = json(&s, &["profiles", "screenshot", "--allow-private"]);
    assert_eq!(code, 0, "{out}");
    for name in ["mycelium-collective", "has-picture", "lost"] {
        let picture = s.vault.join(format!("assets/{name}-homepage.png"));
        let (w, h, _) = png(&picture);
        assert_eq!(
            (w, h),
            (1280, 800),
            "{name}: the window a visitor first sees"
        );
    }
    // `image` is set only where there was none; nothing else in the note changes.
    assert_eq!(
        note("Mycelium_Collective.md"),
        before.0.replace(
            "image:\n",
            "image: \"[[assets/mycelium-collective-homepage.png]]\"\n"
        )
    );
    assert_eq!(note("Has Picture.md"), before.1);
    assert_eq!(note("Lost.md"), before.2);
    assert_eq!(
        fs::read_to_string(s.vault.join("assets/own.png")).unwrap(),
        "the owner's own picture"
    );
    // The pictures are recorded as the vault's assets.
    let (history, _) = json(&s, &["history", "assets/mycelium-collective-homepage.png"]);
    assert_eq!(
        history["versions"].as_array().unwrap().len(),
        1,
        "{history}"
    );

    // --missing: only the profile whose picture file is missing.
    let (again, _) = json(
        &s,
        &["profiles", "screenshot", "--missing", "--allow-private"],
    );
    let notes: Vec<&str> = again["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["note"].as_str().unwrap())
        .collect();
    assert_eq!(notes, ["profiles/Lost.md"]);
    no_browser_left(&s);
}

#[test]
fn composting_keeps_the_organizations_last_look_in_the_vault() {
    chromium();
    let server = Server::start(site);
    let s = Sandbox::empty();
    s.write(
        "profiles/Mycelium.md",
        format!(
            "---\ntitle: Mycelium\nurl: {}\nend: 2024\n---\n",
            server.url("/")
        ),
    );
    let (out, code) = json(&s, &["compost", "--allow-private"]);
    assert_eq!(code, 0, "{out}");
    let look = out["profiles"][0]["last_look"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        look.starts_with("assets/mycelium-homepage-") && look.ends_with(".png"),
        "{look}"
    );
    let (w, h, pixels) = png(&s.vault.join(&look));
    assert_eq!((w, h), (1280, 800));
    let distinct: std::collections::BTreeSet<&[u8]> = pixels.chunks(3).collect();
    assert!(
        distinct.len() > 20,
        "the page's colours, not a blank window"
    );
    let text = fs::read_to_string(s.vault.join("profiles/Mycelium.md")).unwrap();
    assert!(
        text.contains(&format!("archived_screenshot: \"[[{look}]]\"")),
        "{text}"
    );
    let (history, _) = json(&s, &["history", &look]);
    assert_eq!(history["versions"].as_array().unwrap().len(), 1);
    // Once kept, kept: composting again changes nothing.
    let (again, _) = json(&s, &["compost", "--allow-private"]);
    assert_eq!(again["profiles"][0]["outcome"], "unchanged", "{again}");
    assert_eq!(
        fs::read_to_string(s.vault.join("profiles/Mycelium.md")).unwrap(),
        text
    );
    no_browser_left(&s);
}
