//! The remote (issue 13), against a real S3 server (SeaweedFS) in each test's own network
//! namespace: two devices that edit, push and pull at once end with the same history; a push
//! killed, or whose server dies, mid-way leaves nothing half-visible and the next push
//! completes it; every failure says what to do and never shows a secret.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::s3::{self, Weed};
use crate::common::{Sandbox, ns, stderr};

/// A device: a copy of the sample vault with its own archive, sharing `s3://vault/<prefix>`.
fn device(prefix: &str, name: &str) -> Sandbox {
    let s = Sandbox::with_sample_vault();
    fs::write(
        s.dir.path().join("vaultkeep.toml"),
        s3::config(prefix, name),
    )
    .unwrap();
    s
}

fn cmd(s: &Sandbox, args: &[&str]) -> Command {
    let mut c = s.cmd(args);
    c.env("AWS_ACCESS_KEY_ID", s3::KEY)
        .env("AWS_SECRET_ACCESS_KEY", s3::SECRET)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
    c
}

fn vk(s: &Sandbox, args: &[&str]) -> Output {
    cmd(s, args).output().unwrap()
}

fn ok(s: &Sandbox, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = vk(s, &args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn device_id(s: &Sandbox) -> String {
    let d: Value =
        serde_json::from_slice(&fs::read(s.archive.join("device.json")).unwrap()).unwrap();
    d["id"].as_str().unwrap().to_string()
}

/// The archive's objects, loose or packed, by name.
fn objects(s: &Sandbox) -> BTreeSet<String> {
    let (list, code) = s.json(&["archive", "objects"]);
    assert_eq!(code, 0, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|o| o["sha256"].as_str().unwrap().to_string())
        .collect()
}

fn append(s: &Sandbox, note: &str, text: &str) {
    let path = s.vault.join(note);
    let mut body = fs::read_to_string(&path).unwrap_or_default();
    body.push_str(text);
    fs::write(path, body).unwrap();
}

/// Inside the test's own network namespace, with SeaweedFS on its loopback; `None` outside
/// (the test then runs itself inside).
fn server(test: &str) -> Option<Weed> {
    // One SeaweedFS at a time: each takes 150 MB and a burst of CPU to start.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let outside = {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        !ns::inside(&["-rn"], test)
    };
    if outside {
        return None;
    }
    ns::sh("ip link set lo up");
    Some(Weed::start())
}

#[test]
fn two_devices_that_edit_push_and_pull_at_once_end_with_one_history() {
    let Some(_weed) =
        server("remote::two_devices_that_edit_push_and_pull_at_once_end_with_one_history")
    else {
        return;
    };
    let a = device("atlas", "laptop");
    let b = device("atlas", "desktop");
    ok(&a, &["scan"]);
    ok(&b, &["scan"]);
    let shared = "About this vault.md";
    std::thread::scope(|t| {
        for (s, own) in [
            (&a, "ecosystem/cohere/profiles/ECOLISE.md"),
            (&b, "ecosystem/cohere/profiles/La_Bolina.md"),
        ] {
            t.spawn(move || {
                for i in 0..4 {
                    append(s, own, &format!("\nedit {i}\n"));
                    append(
                        s,
                        shared,
                        &format!("\n{} was here {i}\n", s.dir.path().display()),
                    );
                    ok(s, &["scan"]);
                    ok(s, &["remote", "push"]);
                    let pulled = vk(s, &["remote", "pull", "--json"]);
                    assert!(pulled.status.code() == Some(0), "{}", stderr(&pulled));
                }
            });
        }
    });
    for _ in 0..2 {
        for s in [&a, &b] {
            ok(s, &["remote", "push"]);
            ok(s, &["remote", "pull"]);
        }
    }
    let (ida, idb) = (device_id(&a), device_id(&b));
    // Each archive holds the other's records byte for byte, and the same objects.
    assert_eq!(
        fs::read(a.archive.join("versions.jsonl")).unwrap(),
        fs::read(b.archive.join(format!("peers/{ida}.jsonl"))).unwrap()
    );
    assert_eq!(
        fs::read(b.archive.join("versions.jsonl")).unwrap(),
        fs::read(a.archive.join(format!("peers/{idb}.jsonl"))).unwrap()
    );
    assert_eq!(objects(&a), objects(&b));
    // History says which device recorded each version, and both devices see the same ones.
    let history = |s: &Sandbox, path: &str| -> Vec<(String, String)> {
        ok(s, &["history", path])["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let device = v["device"].as_str().map(str::to_string);
                let who = device.unwrap_or_else(|| device_id(s));
                (who, v["sha256"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let mut ha = history(&a, shared);
    let mut hb = history(&b, shared);
    ha.sort();
    hb.sort();
    assert_eq!(ha, hb);
    assert!(ha.iter().any(|(d, _)| *d == ida) && ha.iter().any(|(d, _)| *d == idb));
    // The note both changed differs between them: said, and both versions kept.
    let status = ok(&a, &["remote", "status"]);
    let diverged: Vec<&str> = status["diverged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert_eq!(diverged, [shared], "{status}");
    assert_eq!(status["objects_to_push"], 0);
    assert_eq!(status["record_bytes_to_push"], 0);
    let verify = ok(&a, &["remote", "verify"]);
    assert!(
        verify["problems"].as_array().unwrap().is_empty(),
        "{verify}"
    );
    // A version another device recorded comes back from this archive.
    let theirs = history(&a, "ecosystem/cohere/profiles/La_Bolina.md");
    let last = theirs.iter().rposition(|(d, _)| *d == idb).unwrap() + 1;
    let out = vk(
        &a,
        &[
            "recover",
            "ecosystem/cohere/profiles/La_Bolina.md",
            "--version",
            &last.to_string(),
            "--output",
            "-",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("edit 3"),
        "{}",
        stderr(&out)
    );
}

/// Runs `remote push` paused after its first upload (`VAULTKEEP_PAUSE_AT`), and waits until
/// it is there.
fn paused_push(s: &Sandbox, pause_for: Option<u64>) -> std::process::Child {
    let mut c = cmd(s, &["remote", "push"]);
    c.env("VAULTKEEP_PAUSE_AT", "remote:object-uploaded")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(secs) = pause_for {
        c.env("VAULTKEEP_PAUSE_FOR", secs.to_string());
    }
    let mut child = c.spawn().unwrap();
    let err = child.stderr.take().unwrap();
    let mut lines = BufReader::new(err).lines();
    let reached = lines.any(|l| l.is_ok_and(|l| l.contains("paused at remote:object-uploaded")));
    assert!(reached, "the push never uploaded an object");
    // Keep reading stderr, so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

#[test]
fn a_push_killed_or_whose_server_dies_leaves_nothing_half_visible() {
    let Some(mut weed) =
        server("remote::a_push_killed_or_whose_server_dies_leaves_nothing_half_visible")
    else {
        return;
    };
    let a = device("crash", "laptop");
    // Enough objects for a push to be caught in the middle.
    for i in 0..300 {
        a.write(
            &format!("notes/n{i}.md"),
            format!("note {i}\n{}", "x".repeat(i * 37)),
        );
    }
    ok(&a, &["scan"]);

    // Killed after its first upload: objects there, no records naming them yet.
    let mut child = paused_push(&a, None);
    child.kill().unwrap();
    child.wait().unwrap();
    let status = ok(&a, &["remote", "status"]);
    assert!(
        status["record_bytes_to_push"].as_u64().unwrap() > 0,
        "{status}"
    );
    let verify = ok(&a, &["remote", "verify"]);
    assert!(verify["objects"].as_u64().unwrap() >= 1);
    assert!(
        verify["problems"].as_array().unwrap().is_empty(),
        "{verify}"
    );
    assert_eq!(
        verify["devices"].as_array().unwrap().len(),
        0,
        "no records yet: {verify}"
    );

    // The server dies while the push is under way: one clear error, exit 2.
    let child = paused_push(&a, Some(3));
    weed.kill();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    // Back up: the next push completes it, and the remote holds a whole, sound archive.
    weed.restart();
    ok(&a, &["remote", "push"]);
    let verify = ok(&a, &["remote", "verify"]);
    assert!(
        verify["problems"].as_array().unwrap().is_empty(),
        "{verify}"
    );
    assert_eq!(
        verify["objects"].as_u64().unwrap() as usize,
        objects(&a).len()
    );
    let status = ok(&a, &["remote", "status"]);
    assert_eq!(status["objects_to_push"], 0, "{status}");
    assert_eq!(status["record_bytes_to_push"], 0, "{status}");
    // Another device gets every version.
    let b = device("crash", "desktop");
    ok(&b, &["remote", "pull"]);
    let id = device_id(&a);
    assert_eq!(
        fs::read(a.archive.join("versions.jsonl")).unwrap(),
        fs::read(b.archive.join(format!("peers/{id}.jsonl"))).unwrap()
    );
}

#[test]
fn every_remote_failure_is_one_clear_message_without_secrets() {
    let Some(_weed) = server("remote::every_remote_failure_is_one_clear_message_without_secrets")
    else {
        return;
    };
    let s = device("errors", "laptop");
    ok(&s, &["scan"]);
    let check = |c: &mut Command, says: &str| {
        let out = c.output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(says), "{says:?} not in: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            !err.contains(s3::SECRET) && !err.contains("wrong-secret"),
            "{err}"
        );
    };
    check(
        cmd(&s, &["remote", "push"]).env("AWS_SECRET_ACCESS_KEY", "wrong-secret"),
        "refused the credentials",
    );
    check(
        cmd(&s, &["remote", "push"])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("HOME", s.dir.path()),
        "no credentials",
    );
    // A profile of the credentials file works where the environment has none.
    let creds = s.dir.path().join("credentials");
    fs::write(
        &creds,
        format!(
            "[atlas]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            s3::KEY,
            s3::SECRET
        ),
    )
    .unwrap();
    let out = cmd(&s, &["remote", "push"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
        .env("AWS_PROFILE", "atlas")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A read-only bucket (credentials that may not write), and a clock a day behind.
    s.write("new.md", "something to push");
    ok(&s, &["scan"]);
    check(
        cmd(&s, &["remote", "push"])
            .env("AWS_ACCESS_KEY_ID", s3::READER_KEY)
            .env("AWS_SECRET_ACCESS_KEY", s3::READER_SECRET),
        "may not write (AccessDenied)",
    );
    let faketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
    assert!(
        Path::new(faketime).is_file(),
        "needs libfaketime (.ci/run installs it)"
    );
    check(
        cmd(&s, &["remote", "push"])
            .env("LD_PRELOAD", faketime)
            .env("FAKETIME", "-1d")
            .env("DONT_FAKE_MONOTONIC", "1"),
        "clock is off",
    );
    let config = s.dir.path().join("vaultkeep.toml");
    let good = fs::read_to_string(&config).unwrap();
    fs::write(&config, good.replace("s3://vault/", "s3://no-such-bucket/")).unwrap();
    check(&mut cmd(&s, &["remote", "push"]), "does not exist");
    fs::write(&config, good.replace("127.0.0.1:8333", "127.0.0.1:1")).unwrap();
    check(&mut cmd(&s, &["remote", "status"]), "cannot reach");
    fs::write(&config, "").unwrap();
    check(&mut cmd(&s, &["remote", "push"]), "no remote configured");
}

#[test]
fn the_daemon_pushes_after_changes_and_pulls_on_its_schedule() {
    let Some(_weed) = server("remote::the_daemon_pushes_after_changes_and_pulls_on_its_schedule")
    else {
        return;
    };
    let a = device("daemon", "laptop");
    let b = device("daemon", "desktop");
    // The daemon's remote work alone: no snapshots, link checks or composting beside it.
    let config = a.dir.path().join("vaultkeep.toml");
    let mut text = fs::read_to_string(&config).unwrap();
    text.push_str("[watch]\nsnapshots = false\ncheck_links_every = \"0\"\ncompost_every = \"0\"\n");
    fs::write(&config, text).unwrap();
    ok(&b, &["scan"]);
    ok(&b, &["remote", "push"]);
    let log = a.dir.path().join("watch.log");
    let child = cmd(&a, &["watch", "--log-file", log.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let daemon = crate::common::daemon::Daemon::adopt(child);
    let wait = |what: &str, mut done: Box<dyn FnMut() -> bool + '_>| {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "waited for {what}: {}",
                fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // It pulls what the other device pushed.
    let idb = device_id(&b);
    let peer = a.archive.join(format!("peers/{idb}.jsonl"));
    wait("the daemon to pull", Box::new(|| peer.is_file()));
    // It pushes what it records.
    append(&a, "About this vault.md", "\nfrom the daemon's device\n");
    wait(
        "the daemon to push its edit",
        Box::new(|| {
            let pulled = vk(&b, &["remote", "pull", "--json"]);
            pulled.status.success()
                && device_id_exists(&a)
                && fs::read_to_string(b.archive.join(format!("peers/{}.jsonl", device_id(&a))))
                    .is_ok_and(|t| t.contains("About this vault.md") && t.lines().count() > 46)
        }),
    );
    let (code, _) = daemon.terminate();
    assert_eq!(code, Some(0));
}

fn device_id_exists(s: &Sandbox) -> bool {
    s.archive.join("device.json").is_file()
}

#[test]
fn remote_gc_deletes_only_what_no_record_names_after_its_grace() {
    let Some(_weed) = server("remote::remote_gc_deletes_only_what_no_record_names_after_its_grace")
    else {
        return;
    };
    let a = device("gc", "laptop");
    ok(&a, &["scan"]);
    // An object nothing names (a snapshot's leftover, say), pushed with the rest.
    let orphan = "stray bytes no record names";
    let digest = crate::common::sha256_hex(orphan.as_bytes());
    let dir = a.archive.join("objects").join(&digest[..2]);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(&digest), orphan).unwrap();
    ok(&a, &["remote", "push"]);
    let before = ok(&a, &["remote", "verify"])["objects"].as_u64().unwrap();
    // A long grace: only marked as young.
    let gc = ok(&a, &["remote", "gc", "--grace", "1d"]);
    assert_eq!(
        (gc["deleted"].as_u64(), gc["young"].as_u64()),
        (Some(0), Some(1)),
        "{gc}"
    );
    // No grace: the first run marks it, the second deletes it; named objects stay.
    let gc = ok(&a, &["remote", "gc", "--grace", "0s"]);
    assert_eq!(
        (gc["deleted"].as_u64(), gc["marked"].as_u64()),
        (Some(0), Some(1)),
        "{gc}"
    );
    let dry = ok(&a, &["remote", "gc", "--grace", "0s", "--dry-run"]);
    assert_eq!(dry["deleted"], 1, "{dry}");
    let gc = ok(&a, &["remote", "gc", "--grace", "0s"]);
    assert_eq!(gc["deleted"], 1, "{gc}");
    let verify = ok(&a, &["remote", "verify"]);
    assert_eq!(verify["objects"].as_u64().unwrap(), before - 1);
    assert!(
        verify["problems"].as_array().unwrap().is_empty(),
        "{verify}"
    );
}

#[test]
fn a_snapshot_one_device_took_opens_offline_on_another() {
    let Some(_weed) = server("remote::a_snapshot_one_device_took_opens_offline_on_another") else {
        return;
    };
    let site = crate::common::server::Server::dir(crate::common::data("sites/enspiral-handbook"));
    let a = device("snapshots", "laptop");
    let taken = ok(
        &a,
        &[
            "archive",
            "snapshot",
            "--allow-private",
            "--no-browser",
            &site.url("/"),
        ],
    );
    let id = taken["snapshots"][0]["id"].as_str().unwrap().to_string();
    ok(&a, &["remote", "push"]);
    drop(site);
    let b = device("snapshots", "desktop");
    let pulled = ok(&b, &["remote", "pull"]);
    assert_eq!(pulled["snapshots"], 1, "{pulled}");
    let shown = ok(&b, &["archive", "show", &id]);
    let entry = b
        .archive
        .join("snapshots")
        .join(&id)
        .join(shown["offline"].as_str().unwrap());
    assert!(
        entry.is_file(),
        "the offline copy was rebuilt: {}",
        entry.display()
    );
    let bad =
        crate::common::offline::dangling(&b.archive.join("snapshots").join(&id).join("offline"));
    assert!(bad.is_empty(), "{bad:#?}");
    let verify = vk(&b, &["archive", "verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", stderr(&verify));
    // Pulling again adds nothing.
    let again = ok(&b, &["remote", "pull"]);
    assert_eq!(again["snapshots"], 0);
}
