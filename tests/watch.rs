//! `vaultkeep watch` (issue 4): the real binary as a daemon over a temp vault, waiting on
//! observable results (history, status) with generous deadlines, never on fixed sleeps.

use std::fs;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::Sandbox;
use crate::common::daemon::{Daemon, events, status, wait, wait_in};
use crate::common::server::{Reply, Server};

#[test]
fn one_daemon_per_archive_and_a_clean_stop_on_sigterm() {
    let s = Sandbox::empty();
    s.write("a.md", "a");
    let d = Daemon::start(&s, &[]);
    let second = s.run(&["watch"]);
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains(&format!("pid {}", d.pid())), "{err}");
    let st = status(&s);
    assert_eq!(st["daemon"]["pid"], d.pid());
    let (code, took) = d.terminate();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");
    assert_eq!(status(&s)["daemon"]["running"], false);
}

#[test]
fn every_change_of_notes_and_assets_is_recorded() {
    let s = Sandbox::with_sample_vault();
    let _d = Daemon::start(&s, &[]);
    s.write("new.md", "first");
    wait("the new note", || events(&s, "new.md") == ["created"]);
    s.write("new.md", "second");
    wait("its edit", || {
        events(&s, "new.md") == ["created", "modified"]
    });
    fs::rename(s.vault.join("new.md"), s.vault.join("moved.md")).unwrap();
    wait("its rename", || {
        events(&s, "moved.md") == ["created", "modified", "renamed"]
    });
    fs::remove_file(s.vault.join("moved.md")).unwrap();
    wait("its deletion", || {
        events(&s, "moved.md").last().map(String::as_str) == Some("deleted")
    });
    // An asset, and a folder moved as a whole.
    s.write("assets/new.png", b"\x89PNG fake");
    wait("the new asset", || {
        events(&s, "assets/new.png") == ["created"]
    });
    fs::rename(s.vault.join("ecosystem/pip"), s.vault.join("pip-moved")).unwrap();
    let moved =
        "pip-moved/profiles/coexistence-awareness-based-intrinsically-motivated-association.md";
    wait("the moved folder", || {
        events(&s, moved) == ["created", "renamed"]
    });
    // Nothing under .obsidian/ or .trash/ is content.
    s.write(".obsidian/workspace.json", "{}");
    s.write(".trash/old.md", "x");
    s.write("last.md", "x");
    wait("the last note", || events(&s, "last.md") == ["created"]);
    assert!(events(&s, ".obsidian/workspace.json").is_empty());
    assert!(events(&s, ".trash/old.md").is_empty());
}

#[test]
fn an_idle_vault_causes_no_scans_and_the_daemons_reads_no_feedback_loop() {
    let s = Sandbox::with_sample_vault();
    let _d = Daemon::start(&s, &[]);
    let scans = status(&s)["scans"].as_u64().unwrap();
    // Reading every note (as a scan does) is not a change: nothing may trigger another scan.
    s.run(&["history", "About this vault.md"]);
    for entry in fs::read_dir(s.vault.join("ecosystem/cohere/profiles")).unwrap() {
        fs::read(entry.unwrap().path()).unwrap();
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        status(&s)["scans"].as_u64().unwrap(),
        scans,
        "reads or the daemon's own work caused a scan"
    );
}

#[test]
fn editor_saves_are_modifications() {
    let s = Sandbox::empty();
    s.write("note.md", "v1");
    let _d = Daemon::start(&s, &[]);
    // Atomic save: a temp file, then a rename over the note (what Obsidian and vim do).
    s.write(".note.md.tmp", "v2");
    fs::rename(s.vault.join(".note.md.tmp"), s.vault.join("note.md")).unwrap();
    wait("the atomic save", || {
        events(&s, "note.md") == ["created", "modified"]
    });
    // Truncate and write in place.
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(s.vault.join("note.md"))
            .unwrap();
        f.write_all(b"v3 written in place").unwrap();
    }
    wait("the in-place save", || {
        events(&s, "note.md") == ["created", "modified", "modified"]
    });
    let out = s.run(&["recover", "note.md", "--output", "-"]);
    assert_eq!(out.stdout, b"v3 written in place");
}

#[test]
fn a_burst_of_a_thousand_files_is_recorded() {
    let s = Sandbox::empty();
    let _d = Daemon::start(&s, &[]);
    for i in 0..1000 {
        s.write(&format!("burst/{:03}/{i}.md", i % 37), format!("note {i}"));
    }
    wait("1000 files", || status(&s)["archive"]["files"] == 1000);
    assert_eq!(events(&s, "burst/000/999.md"), ["created"]);
    assert_eq!(events(&s, "burst/001/38.md"), ["created"]);
}

#[test]
fn a_new_url_is_snapshotted_and_a_restart_resumes_a_queued_snapshot() {
    let answer = Arc::new(AtomicBool::new(false));
    let a = answer.clone();
    let server = Server::start(move |req| {
        if req.path() == "/robots.txt" {
            return Reply::status(404);
        }
        let start = Instant::now();
        while !a.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(25) {
            std::thread::sleep(Duration::from_millis(20));
        }
        Reply::ok("text/html", format!("<p>{}</p>", req.path()))
    });
    let s = Sandbox::empty();
    let d = Daemon::start(&s, &["--allow-private"]);
    s.write("links.md", format!("See {}\n", server.url("/slow")));
    wait_in(&s, "the snapshot to be queued", || {
        status(&s)["queued"][0] == server.url("/slow")
    });
    let (code, _) = d.terminate();
    assert_eq!(code, Some(0));
    assert_eq!(status(&s)["queue"], 1, "the queue survives the stop");
    answer.store(true, Ordering::SeqCst);
    let _d = Daemon::start(&s, &["--allow-private"]);
    wait_in(&s, "the resumed snapshot", || {
        status(&s)["queue"] == 0 && status(&s)["archive"]["snapshots"] == 1
    });
    let (list, _) = s.json(&["archive", "list"]);
    assert_eq!(list["snapshots"][0]["root"], server.url("/slow"));
    assert_eq!(list["snapshots"][0]["pages"], 1);
    // A URL added while the daemon runs is captured right away.
    s.write("more.md", format!("And {}\n", server.url("/fast")));
    wait_in(&s, "the new URL's snapshot", || {
        status(&s)["archive"]["snapshots"] == 2
    });
}

#[test]
fn kill_9_during_a_burst_loses_nothing_recorded() {
    let s = Sandbox::empty();
    let d = Daemon::start(&s, &[]);
    let vault = s.vault.clone();
    let writer = std::thread::spawn(move || {
        for i in 0..1500 {
            let p = vault.join(format!("k/{}/{i}.md", i % 20));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, format!("{i}")).unwrap();
        }
    });
    wait("some of the burst recorded", || {
        status(&s)["recorded"].as_u64().unwrap_or(0) > 0
    });
    d.kill9();
    writer.join().unwrap();
    let before = fs::read_to_string(s.archive.join("versions.jsonl")).unwrap();
    let whole = &before[..before.rfind('\n').map_or(0, |i| i + 1)];
    assert!(!whole.is_empty());
    let verify = s.run(&["archive", "verify"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let _d = Daemon::start(&s, &[]);
    wait_in(&s, "the whole burst", || {
        status(&s)["archive"]["files"] == 1500
    });
    let after = fs::read_to_string(s.archive.join("versions.jsonl")).unwrap();
    assert!(
        after.starts_with(whole),
        "every version recorded before the kill is still there"
    );
}

#[test]
fn a_vanished_vault_is_not_recorded_as_deleted() {
    let s = Sandbox::empty();
    s.write("a.md", "a");
    s.write("b.md", "b");
    let _d = Daemon::start(&s, &[]);
    let away = s.dir.path().join("away");
    fs::rename(&s.vault, &away).unwrap();
    wait("the daemon to notice", || {
        status(&s)["last_errors"].as_array().is_some_and(|e| {
            e.iter()
                .any(|l| l["text"].as_str().unwrap().contains("is gone"))
        })
    });
    fs::rename(&away, &s.vault).unwrap();
    s.write("c.md", "c");
    wait_in(&s, "work to resume", || events(&s, "c.md") == ["created"]);
    assert_eq!(events(&s, "a.md"), ["created"], "never recorded as deleted");
}

#[test]
fn an_edit_appends_to_the_index_change_log_and_a_later_scan_agrees_with_it() {
    let s = Sandbox::with_sample_vault();
    let d = Daemon::start(&s, &[]);
    let index = s.archive.join("index");
    let whole = fs::read(&index).unwrap();
    s.write("About this vault.md", "edited by the test\n");
    s.write("new folder/new.md", "new");
    wait("the edit and the new note", || {
        events(&s, "About this vault.md").last().map(String::as_str) == Some("modified")
            && events(&s, "new folder/new.md") == ["created"]
    });
    // Few entries changed: they were appended, the 46-file index was not rewritten.
    wait("the change log", || {
        s.archive.join("index.changes").exists()
    });
    assert_eq!(fs::read(&index).unwrap(), whole);
    let (code, _) = d.terminate();
    assert_eq!(code, Some(0));
    // A full scan reads the index with its change log: nothing changed since.
    let (scan, _) = s.scan();
    assert_eq!(scan["recorded"], 0, "{scan}");
}

#[test]
fn a_scan_beside_the_daemon_looks_at_what_changed_and_reports_what_a_scan_of_every_file_would() {
    let s = Sandbox::with_sample_vault();
    // A link that leads nowhere: a problem of every scan, which the daemon's vouching keeps.
    std::os::unix::fs::symlink("nowhere.md", s.vault.join("broken.md")).unwrap();
    // A note that is a link to another: when that one changes, the kernel names it only.
    std::os::unix::fs::symlink("About this vault.md", s.vault.join("alias.md")).unwrap();
    // A long quiet time: the changes below wait, unrecorded, while the scans compare.
    s.config("[watch]\ndebounce_ms = 60000\nsnapshots = false\n");
    let d = Daemon::start(&s, &[]);
    // The daemon makes no report: the first scan beside it summarizes the notes, and keeps
    // the summary for the next (nothing is unrecorded).
    let summary = s.archive.join("cache/summary.json");
    let _ = fs::remove_file(&summary);
    let beside = |s: &Sandbox| {
        let (mut vouched, _) = s.json(&["scan"]);
        let (every, _) = s.json(&["scan", "--every-file"]);
        let reported = vouched
            .as_object_mut()
            .unwrap()
            .remove("daemon_reported")
            .and_then(|r| r.as_u64())
            .expect("the daemon said which paths changed");
        assert_eq!(every.get("daemon_reported"), None);
        assert_eq!(
            vouched, every,
            "a scan of {reported} paths and one of every file"
        );
        (every, reported)
    };
    let (quiet, reported) = beside(&s);
    assert_eq!(quiet["unrecorded"], 0, "{quiet}");
    assert!(summary.exists());
    assert_eq!(reported, 2, "the links only");
    assert!(
        quiet["problems"].to_string().contains("broken.md"),
        "{quiet}"
    );

    // Changes of every kind: a new note and a new folder, a folder moved, an asset deleted,
    // a note edited (and the note linked to it with it).
    s.write("new.md", "[[About this vault]] https://example.org/new");
    s.write("new folder/deep/b.md", "[[new]]");
    fs::rename(s.vault.join("ecosystem/pip"), s.vault.join("pip-moved")).unwrap();
    fs::remove_file(s.vault.join("assets/impact-hub.png")).unwrap();
    let mut about = fs::read_to_string(s.vault.join("About this vault.md")).unwrap();
    about.push_str("\n[[new]]\n");
    s.write("About this vault.md", about);
    let kept = fs::read(&summary).unwrap();
    let (changed, reported) = beside(&s);
    assert_eq!(
        fs::read(&summary).unwrap(),
        kept,
        "changes not recorded yet: not kept"
    );
    assert!(
        changed["unrecorded"].as_u64() >= Some(6),
        "every change is found, none recorded yet: {changed}"
    );
    assert!(
        (6..30).contains(&reported),
        "the changed paths only, not the vault's {} files: {reported}",
        changed["notes"].as_u64().unwrap() + changed["assets"].as_u64().unwrap()
    );
    assert_ne!(changed["notes"], quiet["notes"]);

    // Stopped, the daemon leaves no socket: a scan records, looking at every file.
    let (code, _) = d.terminate();
    assert_eq!(code, Some(0));
    assert!(!s.archive.join("watch").exists());
    let (after, _) = s.scan();
    assert_eq!(after.get("daemon_reported"), None, "{after}");
    assert!(after["recorded"].as_u64() >= Some(6), "{after}");
}

#[test]
fn a_note_linked_to_another_is_recorded_when_that_one_changes() {
    let s = Sandbox::empty();
    s.write("a.md", "a");
    std::os::unix::fs::symlink("a.md", s.vault.join("alias.md")).unwrap();
    // No composting: its scan of every file would find the change too.
    s.config("[watch]\ncompost_every = \"0\"\ncheck_links_every = \"0\"\n");
    let _d = Daemon::start(&s, &[]);
    assert_eq!(events(&s, "alias.md"), ["created"]);
    // The kernel names a.md only, each time.
    s.write("a.md", "edited");
    wait_in(&s, "the link's new content", || {
        events(&s, "alias.md") == ["created", "modified"]
    });
    assert_eq!(events(&s, "a.md"), ["created", "modified"]);
    s.write("a.md", "edited again");
    wait_in(&s, "the link's content after a second edit", || {
        events(&s, "alias.md") == ["created", "modified", "modified"]
    });
}

#[test]
fn a_daemon_killed_leaves_a_socket_that_misleads_no_scan_and_the_next_daemon_answers() {
    let s = Sandbox::with_sample_vault();
    let d = Daemon::start(&s, &[]);
    let socket = s.archive.join("watch/socket");
    assert!(socket.exists());
    d.kill9();
    assert!(socket.exists(), "nothing removed it");
    // The daemon is gone: a scan records (looking at every file), not asking the dead socket.
    s.write("after.md", "written while no daemon ran");
    let (scan, code) = s.scan();
    assert_eq!(code, 0, "{scan}");
    assert_eq!(scan["recorded"], 1, "{scan}");
    assert_eq!(scan.get("daemon_reported"), None, "{scan}");
    // The next daemon makes its socket anew and answers on it.
    let _d = Daemon::start(&s, &[]);
    let (beside, _) = s.scan();
    assert_eq!(beside["daemon_reported"], 0, "{beside}");
    assert_eq!(beside["recorded"], 0, "{beside}");
}
