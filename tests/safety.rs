//! Nothing the user has is lost or misjudged (issue 9): unrecorded edits, wrong folders, an
//! offline laptop, power loss, previews beside the daemon, messages a person can act on.

use std::fs;
use std::process::Command;

use serde_json::Value;

use crate::common::daemon::{Daemon, events, status, wait_in};
use crate::common::dns::{self, Answer};
use crate::common::server::{Reply, Server};
use crate::common::{Sandbox, ns, sha256sum, stderr};

const ABOUT: &str = "About this vault.md";

fn versions(s: &Sandbox, path: &str) -> Vec<Value> {
    let (h, _) = s.json(&["history", path]);
    h["versions"].as_array().cloned().unwrap_or_default()
}

#[test]
fn recover_force_first_records_the_edit_it_replaces() {
    let s = Sandbox::with_sample_vault();
    s.scan();
    let note = s.vault.join(ABOUT);
    let original = fs::read(&note).unwrap();
    let mut edited = original.clone();
    edited.extend_from_slice(b"extra\n");
    fs::write(&note, &edited).unwrap();
    let out = s.run(&["recover", ABOUT, "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("kept as version 2"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        fs::read(&note).unwrap(),
        original,
        "the recorded version is back"
    );
    let v = versions(&s, ABOUT);
    assert_eq!(v.len(), 2);
    assert_eq!(v[1]["sha256"], sha256sum(&edited));
    let kept = s.run(&["recover", ABOUT, "--version", "2", "--output", "-"]);
    assert_eq!(kept.stdout, edited, "the edit can be brought back");
    assert_eq!(s.run(&["archive", "verify"]).status.code(), Some(0));
}

#[test]
fn recover_refuses_to_overwrite_an_unrecorded_edit_it_cannot_record() {
    let s = Sandbox::with_sample_vault();
    s.scan();
    let note = s.vault.join(ABOUT);
    fs::write(&note, "an edit nobody recorded\n").unwrap();
    // Another process holds the archive and does not record the edit.
    let lock = fs::OpenOptions::new()
        .write(true)
        .open(s.archive.join("lock"))
        .unwrap();
    lock.lock().unwrap();
    let out = s.run(&["recover", ABOUT, "--force"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not recorded yet"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        fs::read_to_string(&note).unwrap(),
        "an edit nobody recorded\n"
    );
}

#[test]
fn paths_may_carry_the_vault_folder_or_be_absolute() {
    let s = Sandbox::with_sample_vault();
    s.scan();
    for typed in [
        format!("vault/{ABOUT}"),
        s.vault.join(ABOUT).to_string_lossy().into_owned(),
        format!("./{ABOUT}"),
    ] {
        let (h, code) = s.json(&["history", &typed]);
        assert_eq!((code, &h["path"]), (0, &Value::from(ABOUT)), "{typed}");
    }
    let outside = s.dir.path().join("elsewhere.md");
    let out = s.run(&["history", outside.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("outside the vault"),
        "{}",
        stderr(&out)
    );
    let out = s.run(&["history", "nope.md"]);
    assert!(
        stderr(&out).contains("paths are relative to the vault"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_scan_of_an_empty_or_mostly_gone_vault_records_no_deletions_without_consent() {
    let s = Sandbox::empty();
    for i in 0..10 {
        s.write(&format!("n{i}.md"), format!("note {i}"));
    }
    s.scan();
    let log = || fs::read(s.archive.join("versions.jsonl")).unwrap();
    let before = log();
    // A mistyped --vault, or a drive that is not mounted: an empty folder.
    let empty = s.dir.path().join("empty-folder");
    fs::create_dir(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vaultkeep"))
        .arg("--vault")
        .arg(&empty)
        .arg("--archive")
        .arg(&s.archive)
        .arg("scan")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("holds none of the 10 files") && err.contains("--accept-deletions"),
        "{err}"
    );
    assert_eq!(log(), before, "nothing recorded");
    // Six of ten gone at once: refused too.
    for i in 0..6 {
        fs::remove_file(s.vault.join(format!("n{i}.md"))).unwrap();
    }
    let out = s.run(&["scan"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("6 of the 10 files"),
        "{}",
        stderr(&out)
    );
    assert_eq!(log(), before, "nothing recorded");
    // The user confirms.
    let (r, code) = s.json(&["scan", "--accept-deletions"]);
    assert_eq!((code, &r["events"]["deleted"]), (0, &Value::from(6)), "{r}");
    // Moving everything into a folder is not a deletion.
    fs::create_dir(s.vault.join("moved")).unwrap();
    for i in 6..10 {
        let name = format!("n{i}.md");
        fs::rename(s.vault.join(&name), s.vault.join("moved").join(&name)).unwrap();
    }
    let (r, code) = s.scan();
    assert_eq!((code, &r["events"]["renamed"]), (0, &Value::from(4)), "{r}");
}

#[test]
fn the_daemon_keeps_the_same_rule_for_deletions() {
    let s = Sandbox::empty();
    for i in 0..10 {
        s.write(&format!("n{i}.md"), format!("note {i}"));
    }
    let _d = Daemon::start(&s, &[]);
    for i in 0..6 {
        fs::remove_file(s.vault.join(format!("n{i}.md"))).unwrap();
    }
    wait_in(&s, "the daemon to refuse", || {
        status(&s)["last_errors"].as_array().is_some_and(|e| {
            e.iter()
                .any(|l| l["text"].as_str().unwrap().contains("6 of the 10 files"))
        })
    });
    assert_eq!(events(&s, "n0.md"), ["created"], "not recorded as deleted");
}

/// Folders under `archive/snapshots/`.
fn snapshot_folders(s: &Sandbox) -> usize {
    fs::read_dir(s.archive.join("snapshots")).map_or(0, |d| d.count())
}

/// A vault whose notes link to hosts that an offline laptop cannot reach.
fn offline_vault() -> Sandbox {
    let s = Sandbox::empty();
    s.write(
        "links.md",
        "https://example.org/ and https://gone.example/page and http://93.184.215.14/x\n",
    );
    s.write(
        "profiles/Gone Org.md",
        "---\ntitle: Gone Org\nurl: https://gone-org.example/\nend: 2020\n---\nComposted.\n",
    );
    s
}

#[test]
fn offline_is_not_dead() {
    if !ns::inside(&["-rn"], "safety::offline_is_not_dead") {
        return;
    }
    // A network namespace with no route out: what a laptop without network sees.
    ns::sh("ip link set lo up");
    let s = offline_vault();
    for round in 0..3 {
        let (r, code) = s.json(&["links", "check", "--min-gap", "0s", "--dead-after", "1"]);
        assert_eq!(
            (code, &r["dead"]),
            (0, &Value::from(0)),
            "round {round}: {r}"
        );
        assert_eq!(r["offline"], true, "{r}");
        for u in r["urls"].as_array().unwrap() {
            assert_eq!(u["last"]["reason"], "offline", "{u}");
        }
    }
    // Restore finds nothing dead either.
    let (r, _) = s.json(&["links", "restore", "--dry-run"]);
    assert_eq!(r["dead"], 0, "{r}");
    // A snapshot records nothing.
    let out = s.run(&["archive", "snapshot", "https://example.org/"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("the network seems down"), "{text}");
    assert_eq!(snapshot_folders(&s), 0, "no failure-only snapshot");
    // Composting writes no mark.
    let profile = s.vault.join("profiles/Gone Org.md");
    let before = fs::read(&profile).unwrap();
    let (r, code) = s.json(&["compost"]);
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["offline"], true, "{r}");
    assert_eq!(
        fs::read(&profile).unwrap(),
        before,
        "no archive_missing mark"
    );
    // The daemon waits: no snapshot folders, the URLs stay queued, no link judged.
    let d = Daemon::start(&s, &[]);
    wait_in(&s, "the daemon to notice the network is down", || {
        status(&s)["offline"] == true
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    let st = status(&s);
    assert!(st["queue"].as_u64().unwrap() >= 3, "{st}");
    d.terminate();
    assert_eq!(
        snapshot_folders(&s),
        0,
        "the daemon made no failure-only snapshot"
    );
    assert_eq!(fs::read(&profile).unwrap(), before);
}

#[test]
fn no_such_domain_is_told_apart_from_cannot_resolve() {
    if !ns::inside(
        &["-rnm"],
        "safety::no_such_domain_is_told_apart_from_cannot_resolve",
    ) {
        return;
    }
    // A real resolver path: getaddrinfo asks a DNS server on 127.0.0.1 that answers NXDOMAIN
    // for one name, SERVFAIL for another, and an address for the third.
    ns::sh("ip link set lo up");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("resolv.conf");
    fs::write(
        &conf,
        "nameserver 127.0.0.1\noptions attempts:1 timeout:1\n",
    )
    .unwrap();
    ns::sh(&format!("mount --bind {} /etc/resolv.conf", conf.display()));
    dns::serve(|name| match name {
        "alive.test" => Answer::Address([127, 0, 0, 1]),
        "gone.test" => Answer::NoSuchDomain,
        _ => Answer::ServerFailure,
    });
    let server = Server::start(|_| Reply::ok("text/html", "<p>alive</p>"));
    let port = server.addr.port();
    let s = Sandbox::empty();
    s.write(
        "n.md",
        format!("http://alive.test:{port}/ http://gone.test:{port}/ http://flaky.test:{port}/\n"),
    );
    let (r, code) = s.json(&[
        "links",
        "check",
        "--allow-private",
        "--min-gap",
        "0s",
        "--dead-after",
        "1",
    ]);
    assert_eq!(code, 1, "one URL is dead: {r}");
    assert_eq!(r["offline"], false, "{r}");
    let by_host = |host: &str| -> Value {
        r["urls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["url"].as_str().unwrap().contains(host))
            .unwrap()
            .clone()
    };
    assert_eq!(by_host("alive.test")["state"], "alive");
    let gone = by_host("gone.test");
    assert_eq!(
        (&gone["state"], &gone["last"]["reason"]),
        (&Value::from("dead"), &Value::from("no such host")),
        "{gone}"
    );
    let flaky = by_host("flaky.test");
    assert_eq!(
        (&flaky["state"], &flaky["last"]["reason"]),
        (&Value::from("unknown"), &Value::from("offline")),
        "{flaky}"
    );
}

#[test]
fn restore_acts_on_the_verdict_the_check_gave() {
    let server = Server::start(|req| match req.path().as_str() {
        "/gone" | "/also-gone" => Reply::status(404),
        _ => Reply::ok("text/html", "<p>ok</p>"),
    });
    let s = Sandbox::empty();
    s.write(
        "n.md",
        format!(
            "{} {} {}\n",
            server.url("/gone"),
            server.url("/also-gone"),
            server.url("/ok")
        ),
    );
    let (check, code) = s.json(&[
        "links",
        "check",
        "--allow-private",
        "--min-gap",
        "0s",
        "--dead-after",
        "1",
    ]);
    assert_eq!((code, &check["dead"]), (1, &Value::from(2)), "{check}");
    let (restore, _) = s.json(&["links", "restore", "--dry-run"]);
    assert_eq!(restore["dead"], 2, "{restore}");
    assert_eq!(restore["without_copy"].as_array().unwrap().len(), 2);
    // A stricter rule on restore's own command line wins.
    let (strict, _) = s.json(&["links", "restore", "--dry-run", "--min-gap", "1d"]);
    assert_eq!(strict["dead"], 0, "{strict}");
}

#[test]
fn an_object_left_empty_by_a_power_loss_is_repaired_by_the_next_scan() {
    let s = Sandbox::empty();
    s.write("first.md", "first");
    s.scan();
    for (name, leftover) in [("empty.md", 0usize), ("short.md", 7)] {
        let content = format!("the content of {name}, longer than the leftover").into_bytes();
        let hex = sha256sum(&content);
        // Power lost after the rename, before the data reached the disk.
        let object = s.archive.join("objects").join(&hex[..2]).join(&hex);
        fs::write(&object, &content[..leftover]).unwrap();
        s.write(name, &content);
        let (r, code) = s.scan();
        assert_eq!(code, 0, "{r}");
        assert_eq!(fs::read(&object).unwrap(), content, "{name}");
    }
    let (v, code) = s.json(&["archive", "verify"]);
    assert_eq!(code, 0, "{v}");
    assert!(v["problems"].as_array().unwrap().is_empty(), "{v}");
}

/// The system calls a run of vaultkeep made, counted by strace (None where strace is missing).
fn syscalls(s: &Sandbox, env: &[(&str, &str)], args: &[&str]) -> Option<String> {
    let log = s.dir.path().join("strace.log");
    let log_arg = log.display().to_string();
    let traced = [
        "-f",
        "-qq",
        "-y",
        "-e",
        "trace=fsync,fdatasync,syncfs",
        "-o",
        &log_arg,
    ];
    let mut c = s.cmd_under("strace", traced, args);
    c.envs(env.iter().copied());
    let out = c.output().ok()?;
    assert!(out.status.success(), "{}", stderr(&out));
    fs::read_to_string(&log).ok()
}

#[test]
fn a_scan_makes_the_objects_it_records_durable_even_without_new_bytes() {
    let s = Sandbox::empty();
    s.write("a.md", "a");
    s.scan();
    // An object already in place (left by an interrupted run) for a file not yet recorded.
    let content = b"recorded from an object left by an interrupted run";
    let hex = sha256sum(content);
    fs::write(
        s.archive.join("objects").join(&hex[..2]).join(&hex),
        content,
    )
    .unwrap();
    s.write("b.md", content);
    let Some(calls) = syscalls(&s, &[], &["scan"]) else {
        panic!("strace is needed for this test (apt-get install strace)");
    };
    // The object the record names is synced, though this run did not write it.
    let synced = calls
        .lines()
        .any(|l| l.contains("fsync(") && l.contains(&format!("/{hex}>")));
    assert!(synced, "{calls}");
    let (h, _) = s.json(&["history", "b.md"]);
    assert_eq!(h["versions"][0]["sha256"], hex);
}

#[test]
fn a_few_records_sync_their_objects_and_many_sync_the_file_system() {
    let s = Sandbox::empty();
    for i in 0..100 {
        s.write(&format!("n{i}.md"), format!("note {i}"));
    }
    let Some(first) = syscalls(&s, &[], &["scan"]) else {
        panic!("strace is needed for this test (apt-get install strace)");
    };
    assert!(first.contains("syncfs("), "{first}");
    // One saved note: its object and its folder, not every write pending on the disk.
    s.write("n7.md", "note 7, edited");
    let hex = sha256sum(b"note 7, edited");
    let Some(edit) = syscalls(&s, &[], &["scan"]) else {
        panic!("strace is needed for this test (apt-get install strace)");
    };
    assert!(!edit.contains("syncfs("), "{edit}");
    let object = format!("objects/{}/{hex}>", &hex[..2]);
    let folder = format!("objects/{}>", &hex[..2]);
    assert!(edit.lines().any(|l| l.contains(&object)), "{edit}");
    assert!(edit.lines().any(|l| l.contains(&folder)), "{edit}");
    // Recover keeps the unrecorded bytes it is about to replace the same way.
    s.write("n7.md", "note 7, never scanned");
    let hex = sha256sum(b"note 7, never scanned");
    let args = ["recover", "n7.md", "--version", "1", "--force"];
    let Some(recover) = syscalls(&s, &[], &args) else {
        panic!("strace is needed for this test (apt-get install strace)");
    };
    assert!(!recover.contains("syncfs("), "{recover}");
    assert!(
        recover.lines().any(|l| l.contains(&format!("/{hex}>"))),
        "{recover}"
    );
    assert_eq!(fs::read_to_string(s.vault.join("n7.md")).unwrap(), "note 7");
    assert_eq!(s.run(&["archive", "verify"]).status.code(), Some(0));
}

#[test]
fn the_portable_durability_path_fsyncs_each_object() {
    let s = Sandbox::empty();
    for i in 0..20 {
        s.write(&format!("n{i}.md"), format!("note {i}"));
    }
    let Some(calls) = syscalls(&s, &[("VAULTKEEP_SYNC", "files")], &["scan"]) else {
        panic!("strace is needed for this test (apt-get install strace)");
    };
    assert!(!calls.contains("syncfs("), "{calls}");
    let fsyncs = calls.matches("fsync(").count();
    assert!(fsyncs >= 20, "one per object at least: {fsyncs}\n{calls}");
    assert_eq!(s.run(&["archive", "verify"]).status.code(), Some(0));
}

#[test]
fn previews_work_while_the_daemon_runs() {
    let s = Sandbox::with_sample_vault();
    // No snapshots: the archive stays as it is while the previews compare.
    s.config("[watch]\nsnapshots = false\ncompost_every = \"0\"\ncheck_links_every = \"0\"\n");
    let d = Daemon::start(&s, &[]);
    for args in [
        &["compost", "--dry-run"][..],
        &["links", "restore", "--dry-run"],
        &["archive", "gc", "--dry-run"],
    ] {
        let out = s.run(args);
        assert_ne!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
    let compost = s.run(&["compost", "--dry-run"]);
    assert!(
        String::from_utf8_lossy(&compost.stdout).contains("+archived_urls:")
            || String::from_utf8_lossy(&compost.stdout).contains("+archive_missing:"),
        "{}",
        String::from_utf8_lossy(&compost.stdout)
    );
    // The real thing still waits for the daemon.
    assert_eq!(s.run(&["compost"]).status.code(), Some(2));
    // A scan reports beside it and records nothing: the daemon records.
    let log = s.archive.join("versions.jsonl");
    let before = fs::read(&log).unwrap();
    let out = s.run(&["scan"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("15 notes, 31 assets"));
    assert!(stderr(&out).contains("records nothing"), "{}", stderr(&out));
    let (report, code) = s.json(&["scan"]);
    assert_eq!(
        (code, report["recorded"].as_u64()),
        (0, Some(0)),
        "{report}"
    );
    assert_eq!(fs::read(&log).unwrap(), before);
    let refused = s.run(&["scan", "--accept-deletions"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("stop the daemon first"),
        "{}",
        stderr(&refused)
    );
    // The previews look at what the daemon says changed (nothing here), and show what they
    // show once it has stopped, looking at every file.
    let beside = s.run(&["-vv", "compost", "--dry-run"]);
    assert!(
        stderr(&beside).contains("the daemon vouches for every other file"),
        "{}",
        stderr(&beside)
    );
    d.terminate();
    let alone = s.run(&["compost", "--dry-run"]);
    assert_eq!(
        String::from_utf8_lossy(&beside.stdout),
        String::from_utf8_lossy(&alone.stdout)
    );
}

#[test]
fn messages_say_what_is_wrong_once_and_without_colours() {
    let s = Sandbox::with_sample_vault();
    // Logs piped to a file carry no ANSI colours.
    let out = s.cmd(&["scan", "-vv"]).output().unwrap();
    assert!(!stderr(&out).is_empty());
    assert!(!stderr(&out).contains('\u{1b}'), "{}", stderr(&out));
    // A vault or an archive that is a file.
    let file = s.dir.path().join("a-file");
    fs::write(&file, "x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vaultkeep"))
        .arg("--vault")
        .arg(&file)
        .arg("scan")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is a file, not a folder"),
        "{}",
        stderr(&out)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_vaultkeep"))
        .arg("--vault")
        .arg(&s.vault)
        .arg("--archive")
        .arg(&file)
        .arg("scan")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is a file, not a folder"),
        "{}",
        stderr(&out)
    );
    // A duration that is not one, named with its key and file.
    let cfg = s.dir.path().join("vaultkeep.toml");
    fs::write(&cfg, "[watch]\ncheck_links_every = \"daily\"\n").unwrap();
    let out = s.run(&["--config", cfg.to_str().unwrap(), "scan"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("vaultkeep.toml")
            && err.contains("check_links_every")
            && err.contains("daily"),
        "{err}"
    );
    fs::remove_file(&cfg).unwrap();
    // Why a root failed is printed, not only recorded.
    let server = Server::start(|_| Reply::ok("text/html", "<p>hi</p>"));
    let out = s.run(&["archive", "snapshot", &server.url("/")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("private-address guard") && text.contains("--allow-private"),
        "{text}"
    );
}

#[test]
fn an_archive_this_user_cannot_write_is_named_with_the_permission() {
    let s = Sandbox::with_sample_vault();
    s.scan();
    let out = as_other_user(&s, &["scan"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("cannot write to the archive") && err.contains("mode") && err.contains("uid"),
        "{err}"
    );
    assert!(
        err.matches("ermission denied").count() <= 1,
        "the cause is said once: {err}"
    );
}

/// Runs vaultkeep as another user than the archive's owner: `nobody` when the tests run as
/// root (root may write anywhere), else the current user with the archive made read-only.
pub fn as_other_user(s: &Sandbox, args: &[&str]) -> std::process::Output {
    if crate::common::is_root() {
        crate::common::open_to_all(s.dir.path());
        // The archive stays owned by root and writable by root only.
        crate::common::chmod(&s.archive, 0o755);
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_vaultkeep"));
        c.arg("--vault")
            .arg(&s.vault)
            .arg("--archive")
            .arg(&s.archive)
            .args(args)
            .current_dir(s.dir.path());
        c.output().unwrap()
    } else {
        crate::common::chmod(&s.archive, 0o555);
        let out = s.run(args);
        crate::common::chmod(&s.archive, 0o755);
        out
    }
}

/// libfaketime, which makes a process see another wall-clock time (Debian's `faketime`).
fn libfaketime() -> std::path::PathBuf {
    let lib = std::path::Path::new("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1");
    assert!(
        lib.exists(),
        "this test needs libfaketime (apt-get install faketime; .ci/run installs it)"
    );
    lib.to_path_buf()
}

#[test]
fn the_daemon_composts_a_profile_whose_end_passes_while_it_runs() {
    let lib = libfaketime();
    let server = Server::start(|_| Reply::ok("text/html", "<p>the organization</p>"));
    let s = Sandbox::empty();
    s.write(
        "profiles/Org.md",
        format!(
            "---\ntitle: Org\nurl: {}\nend: 2026-07-01\n---\nEnds tomorrow.\n",
            server.url("/")
        ),
    );
    let cfg = s.dir.path().join("vaultkeep.toml");
    fs::write(
        &cfg,
        // No browser: under a faked clock, Chromium's own timers would stall the job.
        "[watch]\ncompost_every = \"3s\"\ncheck_links_every = \"0\"\n[snapshot]\nbrowser = \"never\"\n",
    )
    .unwrap();
    // The daemon starts ten seconds before midnight of the profile's last day.
    let log = s.dir.path().join("watch.log");
    let daemon = Daemon::adopt(
        s.cmd(&[
            "watch",
            "--allow-private",
            "--log-file",
            log.to_str().unwrap(),
        ])
        .env("TZ", "UTC")
        .env("FAKETIME", "@2026-06-30 23:59:50")
        .env("DONT_FAKE_MONOTONIC", "1")
        .env("LD_PRELOAD", &lib)
        .spawn()
        .unwrap(),
    );
    let profile = s.vault.join("profiles/Org.md");
    wait_in(&s, "the profile to be composted after midnight", || {
        fs::read_to_string(&profile).is_ok_and(|t| t.contains("archived_urls:"))
    });
    daemon.kill9();
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("composting: 0 profiles"),
        "composting ran before midnight too and found nothing: {text}"
    );
}
