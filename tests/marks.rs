//! `compost`, `links check` and `links restore` (issue 5): minimal, byte-exact edits of real
//! notes, against real servers on 127.0.0.1.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::common::server::{Reply, Server, content_type};
use crate::common::{Sandbox, data, files_under};

const COMPOSTED: &str = "content/ecosystem/cohere/profiles/Ouishare.md";
const EARLIER: &str = "_history/content/ecosystem/cohere/profiles/Ouishare@62476dfe.md";

/// Every file of a folder and its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            (
                p.strip_prefix(dir).unwrap().display().to_string(),
                fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// The frontmatter of a note, parsed with yaml_serde (not with vaultkeep's reader).
fn frontmatter(text: &str) -> yaml_serde::Mapping {
    let rest = text.strip_prefix("---\n").unwrap();
    let end = rest.find("\n---\n").unwrap();
    yaml_serde::from_str(&rest[..end]).unwrap()
}

/// Servers standing in for Ouishare's site and handbook, and the cohere vault with the real
/// Ouishare pair whose composted profile points at them.
struct Ouishare {
    s: Sandbox,
    site: Server,
    handbook: Server,
    original: String,
}

fn ouishare() -> Ouishare {
    let site = Server::start(|req| match req.path().as_str() {
        "/" => Reply::ok(
            "text/html",
            "<link rel=stylesheet href=/s.css><a href=/mission>mission</a>",
        ),
        "/mission" => Reply::ok("text/html", "<p>mission</p>"),
        p => Reply::ok(content_type(p), "body{}"),
    });
    let handbook = Server::dir(data("sites/enspiral-handbook"));
    let s = Sandbox::with_data_vault("cohere");
    let path = s.vault.join(COMPOSTED);
    let text = fs::read_to_string(&path).unwrap();
    let text = text
        .replace("https://www.ouishare.net", &site.url(""))
        .replace(
            "https://handbook.ouishare.net/",
            &handbook
                .url("/handbook-home/")
                .replace("/handbook-home/", "/"),
        );
    fs::write(&path, &text).unwrap();
    Ouishare {
        original: text,
        s,
        site,
        handbook,
    }
}

#[test]
fn compost_preserves_and_marks_the_real_ouishare_profile_and_nothing_else() {
    let o = ouishare();
    let before = files(&o.s.vault);
    let (report, code) = o.s.json(&["compost", "--allow-private"]);
    assert_eq!(code, 0, "{report}");
    let profiles = report["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 1, "only the composted profile: {report}");
    assert_eq!(profiles[0]["note"], COMPOSTED);
    assert_eq!(profiles[0]["outcome"], "written");
    assert_eq!(report["snapshots_taken"], 3);

    // Byte-exact: three properties (four with a browser) appended before the closing fence,
    // nothing else.
    let after = fs::read_to_string(o.s.vault.join(COMPOSTED)).unwrap();
    let preserved = profiles[0]["preserved"].as_array().unwrap();
    let mut urls = [o.handbook.url("/"), o.site.url("/"), o.site.url("/mission")];
    urls.sort();
    assert_eq!(
        preserved
            .iter()
            .map(|p| p["url"].as_str().unwrap())
            .collect::<Vec<_>>(),
        urls
    );
    let today = preserved[0]["captured"].as_str().unwrap().to_string();
    let copies: Vec<String> = preserved
        .iter()
        .map(|p| p["copy"].as_str().unwrap().to_string())
        .collect();
    let mut block = String::from("archived_urls:\n");
    for u in &urls {
        block.push_str(&format!("  - \"{u}\"\n"));
    }
    block.push_str("archived_dates:\n");
    for _ in &urls {
        block.push_str(&format!("  - \"{today}\"\n"));
    }
    block.push_str("archived_copies:\n");
    for c in &copies {
        block.push_str(&format!("  - \"{c}\"\n"));
    }
    // With Chromium installed, the organization's last look too (tests/browser.rs checks it).
    if let Some(look) = profiles[0]["last_look"].as_str() {
        block.push_str(&format!("archived_screenshot: \"[[{look}]]\"\n"));
    }
    let fence = o.original.find("\n---\n").unwrap() + 1;
    let expected = format!("{}{}{}", &o.original[..fence], block, &o.original[fence..]);
    assert_eq!(after, expected);
    // Each copy is a file:/// URL (the archive is outside the vault) to an offline page that exists.
    for c in &copies {
        let path = c.strip_prefix("file://").unwrap();
        assert!(
            Path::new(&crate::common::server::percent_decode(path)).is_file(),
            "{c}"
        );
    }
    // The frontmatter reads back with the same values plus the added ones.
    let (old, new) = (frontmatter(&o.original), frontmatter(&after));
    for (k, v) in &old {
        assert_eq!(new.get(k), Some(v), "{k:?} changed");
    }
    let added = 3 + usize::from(profiles[0]["last_look"].is_string());
    assert_eq!(new.len(), old.len() + added);
    // Every other file, the earlier Ouishare version included, is byte-identical.
    let now = files(&o.s.vault);
    for (path, bytes) in &before {
        if path != COMPOSTED {
            assert_eq!(now.get(path), Some(bytes), "{path} changed");
        }
    }
    assert!(before.contains_key(EARLIER));
    // Idempotent: a second run changes nothing and takes no new snapshot.
    let (again, _) = o.s.json(&["compost", "--allow-private"]);
    assert_eq!(again["profiles"][0]["outcome"], "unchanged");
    assert_eq!(again["snapshots_taken"], 0);
    assert_eq!(
        fs::read_to_string(o.s.vault.join(COMPOSTED)).unwrap(),
        after
    );
    // The edit was recorded as a new version.
    let (h, _) = o.s.json(&["history", COMPOSTED]);
    assert_eq!(h["versions"].as_array().unwrap().len(), 2);
    // A newer snapshot of the site updates vaultkeep's own properties, without duplicates.
    let (snap, _) =
        o.s.json(&["archive", "snapshot", &o.site.url("/"), "--allow-private"]);
    let newer = snap["snapshots"][0]["id"].as_str().unwrap().to_string();
    let (third, _) = o.s.json(&["compost", "--allow-private"]);
    assert_eq!(third["profiles"][0]["outcome"], "written");
    let updated = fs::read_to_string(o.s.vault.join(COMPOSTED)).unwrap();
    let fm = frontmatter(&updated);
    let copies = fm["archived_copies"].as_sequence().unwrap();
    assert_eq!(copies.len(), 3);
    assert_eq!(
        copies
            .iter()
            .filter(|c| c.as_str().unwrap().contains(&newer))
            .count(),
        1,
        "{updated}"
    );
    assert_eq!(updated.matches("archived_copies:").count(), 1);
}

#[test]
fn compost_dry_run_shows_the_diff_and_changes_nothing() {
    let o = ouishare();
    let before = files(&o.s.vault);
    let out = o.s.run(&["compost", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("--- a/{COMPOSTED}")) && text.contains("+archive_missing:"),
        "{text}"
    );
    assert_eq!(files(&o.s.vault), before);
    assert!(
        !o.s.archive.join("snapshots").exists(),
        "a dry run captures nothing"
    );
    assert!(o.site.hits.lock().unwrap().is_empty());
}

#[test]
fn copies_inside_the_vault_get_vault_links() {
    let mut o = ouishare();
    o.s.archive = o.s.vault.join("_archive");
    let (report, code) = o.s.json(&["compost", "--allow-private"]);
    assert_eq!(code, 0, "{report}");
    let copy = report["profiles"][0]["preserved"][0]["copy"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        copy.starts_with("[[_archive/snapshots/") && copy.ends_with("/index.html]]"),
        "{copy}"
    );
    let target = copy.trim_start_matches("[[").trim_end_matches("]]");
    assert!(o.s.vault.join(target).is_file());
    // The copies are not vault content: a scan records nothing new for them.
    let (scan, _) = o.s.scan();
    assert_eq!(scan["recorded"], 0, "{scan}");
}

#[test]
fn a_url_that_cannot_be_captured_is_reported_and_the_profile_marked_with_what_was() {
    let o = ouishare();
    let _refusing = o.handbook.refuse();
    let (report, code) = o.s.json(&["compost", "--allow-private"]);
    assert_eq!(code, 1, "{report}");
    let p = &report["profiles"][0];
    assert_eq!(p["preserved"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(
        p["missing"][0]["message"]
            .as_str()
            .map(|m| m.contains("refused")),
        Some(true),
        "{p}"
    );
    let after = fs::read_to_string(o.s.vault.join(COMPOSTED)).unwrap();
    let fm = frontmatter(&after);
    assert_eq!(fm["archive_missing"].as_sequence().unwrap().len(), 1);
    assert_eq!(fm["archived_urls"].as_sequence().unwrap().len(), 2);
}

/// A site whose pages can be removed, for link checks.
fn site() -> (Server, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let gone = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let g = gone.clone();
    let server = Server::start(move |req| {
        let path = req.path();
        if g.lock().unwrap().contains(&path) {
            return Reply::status(404);
        }
        match path.as_str() {
            "/busy" => Reply::status(503),
            "/head-hater" if req.method == "HEAD" => Reply::status(405),
            p => Reply::ok("text/html", format!("<p>{p}</p>")),
        }
    });
    (server, gone)
}

fn states(report: &Value) -> BTreeMap<String, String> {
    report["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["url"].as_str().unwrap().to_string(),
                u["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn links_die_only_after_repeated_hard_failures_and_come_back_from_copies() {
    let (server, gone) = site();
    let other = Server::start(|_| Reply::ok("text/html", "<p>other</p>"));
    let other_url = other.url("/page");
    let s = Sandbox::empty();
    let (gone_url, busy, hater) = (
        server.url("/gone"),
        server.url("/busy"),
        server.url("/head-hater"),
    );
    let note = format!(
        "---\ntitle: Links\nurl: {gone_url}\n---\nBare: {gone_url}\nMarked: [the page]({gone_url}) and <{gone_url}>\nBusy: {busy}\nHEAD-hater: {hater}\n`{gone_url}` in code\n"
    );
    s.write("n.md", &note);
    s.write(
        "untouched.md",
        format!("Only {} here.\n", server.url("/alive")),
    );
    // Preserve the pages while they answer.
    let (snap, code) = s.json(&["archive", "snapshot", "n.md", "--allow-private"]);
    assert_eq!(code, 1, "the busy page cannot be captured: {snap}");
    // A link added later, never captured.
    s.write("n.md", format!("{note}Other: {other_url}\n"));
    let (first, code) = s.json(&["links", "check", "--allow-private", "--min-gap", "0s"]);
    assert_eq!(code, 0, "{first}");
    let st = states(&first);
    assert_eq!(st[&server.url("/gone")], "alive");
    assert_eq!(st[&server.url("/busy")], "unknown");
    assert_eq!(
        st[&server.url("/head-hater")],
        "alive",
        "GET after a refused HEAD"
    );
    // The page disappears, the other server goes away.
    gone.lock().unwrap().push("/gone".into());
    drop(other);
    let (second, _) = s.json(&["links", "check", "--allow-private", "--min-gap", "0s"]);
    let st = states(&second);
    assert_eq!(
        st[&server.url("/gone")],
        "unknown",
        "one hard failure is not enough"
    );
    let (third, code) = s.json(&["links", "check", "--allow-private", "--min-gap", "0s"]);
    assert_eq!(code, 1, "dead links exit 1");
    let st = states(&third);
    assert_eq!(st[&server.url("/gone")], "dead");
    assert_eq!(st[&other_url], "dead", "refused twice");
    assert_eq!(
        st[&server.url("/busy")],
        "unknown",
        "503s never make a link dead"
    );
    let gone_report = third["urls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["url"] == server.url("/gone"))
        .unwrap();
    assert_eq!(gone_report["checks"], 3);
    assert!(
        gone_report["local_copy"]["offline"]
            .as_str()
            .unwrap()
            .ends_with(".html")
    );
    assert_eq!(
        gone_report["references"].as_array().unwrap().len(),
        4,
        "frontmatter, bare, Markdown, autolink: {gone_report}"
    );
    // With the default gap of a day, the same history is not yet dead.
    let (strict, _) = s.json(&["links", "check", "--allow-private"]);
    assert_eq!(states(&strict)[&server.url("/gone")], "unknown");

    // Restore, first as a dry run.
    let before = fs::read_to_string(s.vault.join("n.md")).unwrap();
    let cfg = s.dir.path().join("vaultkeep.toml");
    fs::write(&cfg, "[links]\nmin_gap = \"0s\"\n").unwrap();
    let cfg = cfg.to_string_lossy().to_string();
    let dry = s.run(&["--config", &cfg, "links", "restore", "--dry-run"]);
    assert!(String::from_utf8_lossy(&dry.stdout).contains("+++ b/n.md"));
    assert_eq!(fs::read_to_string(s.vault.join("n.md")).unwrap(), before);
    let (restored, code) = s.json(&["--config", &cfg, "links", "restore"]);
    assert_eq!(code, 1, "the other page has no copy: {restored}");
    assert_eq!(restored["without_copy"][0]["url"], other_url);
    let after = fs::read_to_string(s.vault.join("n.md")).unwrap();
    let copy = |url: &str| -> (String, String) {
        let c = &third["urls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["url"] == url)
            .unwrap()["local_copy"];
        let date = c["captured"].as_str().unwrap()[..10].to_string();
        let file = crate::common::server::percent_decode(c["offline"].as_str().unwrap());
        (date, file)
    };
    let (date, file) = copy(&server.url("/gone"));
    let href = format!("file://{}", file.replace(' ', "%20"));
    let suffix = format!(" ([archived {date}]({href}))");
    let expected = format!(
        "---\ntitle: Links\nurl: {gone_url}\nurl_archived:\n  - \"{href}\"\n---\nBare: {gone_url}{suffix}\nMarked: [the page]({gone_url}){suffix} and <{gone_url}>{suffix}\nBusy: {busy}\nHEAD-hater: {hater}\n`{gone_url}` in code\nOther: {other_url}\n"
    );
    assert_eq!(after, expected);
    assert_eq!(
        fs::read_to_string(s.vault.join("untouched.md")).unwrap(),
        format!("Only {} here.\n", server.url("/alive"))
    );
    // Idempotent.
    let (again, _) = s.json(&["--config", &cfg, "links", "restore"]);
    assert_eq!(again["notes"][0]["outcome"], "unchanged");
    assert_eq!(fs::read_to_string(s.vault.join("n.md")).unwrap(), after);
    // The restored note still parses, with its values plus the sibling.
    let fm = frontmatter(&after);
    assert_eq!(fm["url"].as_str(), Some(server.url("/gone").as_str()));
    assert_eq!(fm["url_archived"][0].as_str(), Some(href.as_str()));
}

#[test]
fn a_refusal_met_before_any_server_answered_is_tried_again_once_the_network_is_known() {
    // The site answers slowly; the other host refuses at once, before anything has answered,
    // which alone looks like an offline laptop.
    let slow = Server::start(|_| {
        std::thread::sleep(std::time::Duration::from_millis(500));
        Reply::ok("text/html", "<p>the organization</p>")
    });
    let gone = Server::start(|_| Reply::ok("text/html", "x"));
    let gone_url = gone.url("/");
    let _refusing = gone.refuse();
    let s = Sandbox::empty();
    s.write(
        "profiles/Org.md",
        format!(
            "---\nurl: {}\nend: 2020\n---\nSee {gone_url}\n",
            slow.url("/")
        ),
    );
    let (report, code) = s.json(&["compost", "--allow-private"]);
    assert_eq!(code, 1, "{report}");
    let p = &report["profiles"][0];
    assert_eq!(p["outcome"], "written", "not postponed: {report}");
    assert_eq!(p["preserved"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(p["missing"][0]["path"], gone_url.as_str());
    assert_eq!(report["offline"], false);
}
