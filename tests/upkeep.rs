//! `archive verify` and `archive gc` on real archives, healthy and damaged.

use std::fs;
use std::process::Command;

use crate::common::Sandbox;

fn objects(s: &Sandbox) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for fan in fs::read_dir(s.archive.join("objects")).unwrap() {
        for f in fs::read_dir(fan.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

#[test]
fn a_healthy_archive_verifies_and_names_every_object_by_its_sha256() {
    let s = Sandbox::with_sample_vault();
    s.scan();
    let (r, code) = s.json(&["archive", "verify"]);
    assert_eq!(code, 0, "{r}");
    let on_disk = objects(&s);
    assert_eq!(r["objects"], on_disk.len());
    assert!(r["problems"].as_array().unwrap().is_empty());
    // sha256sum agrees with every object's name.
    let out = Command::new("sha256sum").args(&on_disk).output().unwrap();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (sum, path) = line.split_once("  ").unwrap();
        assert!(path.ends_with(sum), "{line}");
    }
}

#[test]
fn a_damaged_or_missing_object_is_a_problem() {
    let s = Sandbox::with_sample_vault();
    s.scan();
    let all = objects(&s);
    let damaged = &all[0];
    let missing = &all[1];
    let mut perms = fs::metadata(damaged).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    fs::set_permissions(damaged, perms).unwrap();
    fs::write(damaged, b"bit rot").unwrap();
    fs::remove_file(missing).unwrap();
    let (r, code) = s.json(&["archive", "verify"]);
    assert_eq!(code, 1);
    let problems: Vec<_> = r["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["message"].as_str().unwrap().to_string())
        .collect();
    assert!(
        problems.iter().any(|m| m.starts_with("damaged")),
        "{problems:?}"
    );
    let missing_name = missing.file_name().unwrap().to_str().unwrap();
    assert!(
        problems
            .iter()
            .any(|m| m.contains(missing_name) && m.contains("missing")),
        "{problems:?}"
    );
}

#[test]
fn a_torn_record_is_a_warning_and_the_next_scan_cuts_it() {
    let s = Sandbox::with_sample_vault();
    s.scan();
    let log = s.archive.join("versions.jsonl");
    let mut bytes = fs::read(&log).unwrap();
    bytes.extend_from_slice(b"{\"time\":\"2026-");
    fs::write(&log, &bytes).unwrap();
    let (r, code) = s.json(&["archive", "verify"]);
    assert_eq!(code, 0, "{r}");
    assert!(r["warnings"].to_string().contains("interrupted write"));
    s.write("new.md", "x");
    let (scan, _) = s.scan();
    assert_eq!(scan["recorded"], 1);
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
}

#[test]
fn gc_removes_only_unreferenced_objects_and_stale_temp_files() {
    let s = Sandbox::with_sample_vault();
    s.scan();
    let before = objects(&s);
    let orphan_content = b"nobody points at me";
    let out = Command::new("sha256sum")
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = out;
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(orphan_content)
        .unwrap();
    let sum =
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()[..64].to_string();
    let orphan = s.archive.join("objects").join(&sum[..2]).join(&sum);
    fs::write(&orphan, orphan_content).unwrap();
    let stale = s.archive.join("objects/ab/.tmp-stale");
    let fresh = s.archive.join("objects/ab/.tmp-fresh");
    // A scan or the daemon killed while writing a derived file (the index, a cache) leaves
    // its temp file beside it.
    let stale_derived = [
        s.archive.join(".vaultkeep-index.tmp"),
        s.archive.join("cache/.vaultkeep-folders.tmp"),
    ];
    let fresh_derived = s.archive.join("cache/.vaultkeep-fresh.tmp");
    for path in [&stale, &fresh, &fresh_derived]
        .into_iter()
        .chain(&stale_derived)
    {
        fs::write(path, b"partial").unwrap();
    }
    for path in std::iter::once(&stale).chain(&stale_derived) {
        Command::new("touch")
            .args(["-d", "3 hours ago"])
            .arg(path)
            .status()
            .unwrap();
    }

    let (verify, _) = s.json(&["archive", "verify"]);
    let warned = verify["warnings"].to_string();
    assert!(
        warned.contains(".vaultkeep-index.tmp") && warned.contains("cache/.vaultkeep-fresh.tmp"),
        "{verify}"
    );
    let (dry, code) = s.json(&["archive", "gc", "--dry-run"]);
    assert_eq!(code, 0);
    assert_eq!(
        (dry["objects"].as_u64(), dry["temp_files"].as_u64()),
        (Some(1), Some(3)),
        "{dry}"
    );
    assert!(
        orphan.exists() && stale.exists(),
        "a dry run removes nothing"
    );

    let (done, _) = s.json(&["archive", "gc"]);
    assert_eq!(done["objects"], 1);
    assert!(!orphan.exists() && !stale.exists());
    assert!(stale_derived.iter().all(|p| !p.exists()));
    assert!(
        fresh.exists() && fresh_derived.exists(),
        "a young temp file may belong to a write in progress"
    );
    fs::remove_file(&fresh).unwrap();
    fs::remove_file(&fresh_derived).unwrap();
    assert_eq!(objects(&s), before, "every referenced object is kept");
    let (verify, code) = s.json(&["archive", "verify"]);
    assert_eq!(code, 0, "{verify}");
    assert!(
        verify["warnings"].as_array().unwrap().is_empty(),
        "{verify}"
    );
}

#[test]
fn verify_of_a_missing_archive_cannot_run() {
    let s = Sandbox::empty();
    let out = s.run(&["archive", "verify"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Every object `archive objects` lists, as (sha256, where).
fn listed(s: &Sandbox) -> Vec<(String, String)> {
    let (list, code) = s.json(&["archive", "objects"]);
    assert_eq!(code, 0, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["sha256"].as_str().unwrap().to_string(),
                o["where"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn packs(s: &Sandbox) -> Vec<std::path::PathBuf> {
    crate::common::files_under(&s.archive.join("objects/packs"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .collect()
}

#[test]
fn a_large_first_scan_packs_its_objects_and_each_stays_inspectable_and_unpackable() {
    let s = Sandbox::empty();
    crate::common::copy_dir(&crate::common::data("vaults/dendron"), &s.vault);
    s.scan();
    assert_eq!(packs(&s).len(), 1, "one pack for the one batch");
    let objects = listed(&s);
    assert!(objects.len() > 256, "{}", objects.len());
    assert!(
        objects
            .iter()
            .all(|(_, at)| at.starts_with("objects/packs/"))
    );
    // `archive cat` prints each object; sha256sum agrees with its name (also by a prefix).
    for (sha, _) in &objects {
        let out = s.run(&["archive", "cat", sha]);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(&crate::common::sha256sum(&out.stdout), sha);
    }
    let out = s.run(&["archive", "cat", &objects[0].0[..12]]);
    assert_eq!(crate::common::sha256sum(&out.stdout), objects[0].0);
    let out = s.run(&["archive", "cat", &"0".repeat(64)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(crate::common::stderr(&out).contains("archive objects"));
    // Every recorded version names a listed object; verify re-hashes them all.
    let names: std::collections::HashSet<&str> = objects.iter().map(|(d, _)| d.as_str()).collect();
    let log = fs::read_to_string(s.archive.join("versions.jsonl")).unwrap();
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(names.contains(v["sha256"].as_str().unwrap()), "{line}");
    }
    let (r, code) = s.json(&["archive", "verify"]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["objects"], objects.len());
    // A recorded note comes back from its pack.
    let note = "dendron.md";
    let out = s.run(&["recover", note, "--output", "-"]);
    assert_eq!(out.stdout, fs::read(s.vault.join(note)).unwrap());

    // Unpacked: one file per object again, checked the old way.
    let (r, code) = s.json(&["archive", "unpack"]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["objects"], objects.len());
    assert!(packs(&s).is_empty());
    let on_disk = crate::common::files_under(&s.archive.join("objects"));
    assert_eq!(on_disk.len(), objects.len());
    let out = Command::new("sha256sum").args(&on_disk).output().unwrap();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (sum, path) = line.split_once("  ").unwrap();
        assert!(path.ends_with(sum), "{line}");
    }
    let (r, code) = s.json(&["archive", "verify"]);
    assert_eq!(
        (code, r["objects"].as_u64()),
        (0, Some(objects.len() as u64)),
        "{r}"
    );
}

#[test]
fn gc_rewrites_packs_left_by_interrupted_scans_and_verify_names_them() {
    let s = Sandbox::empty();
    crate::common::copy_dir(&crate::common::data("vaults/dendron"), &s.vault);
    // A scan killed after its pack was written, before anything was recorded.
    let mut child = s
        .cmd(&["scan", "-q"])
        .env("VAULTKEEP_PAUSE_AT", "scan:objects-written")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    assert!(lines.any(|l| l.is_ok_and(|l| l.contains("paused at scan:objects-written"))));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(packs(&s).len(), 1);
    let (dry, code) = s.json(&["archive", "gc", "--dry-run"]);
    assert_eq!(code, 0, "{dry}");
    let orphans = dry["objects"].as_u64().unwrap();
    assert!(orphans > 256, "{dry}");
    assert_eq!(dry["packs_rewritten"], 1);
    assert_eq!(packs(&s).len(), 1, "a dry run changes nothing");
    let (done, _) = s.json(&["archive", "gc"]);
    assert_eq!(done["objects"].as_u64(), Some(orphans));
    assert!(packs(&s).is_empty(), "nothing in it was referenced");

    // The next scan records everything (in a new pack); a pack then left without its index
    // and with a torn end is a warning, its complete objects still read.
    s.scan();
    let pack = packs(&s).remove(0);
    fs::remove_file(pack.with_extension("idx")).unwrap();
    let mut bytes = fs::read(&pack).unwrap();
    bytes.extend_from_slice(&[7u8; 50]);
    fs::remove_file(&pack).unwrap();
    fs::write(&pack, &bytes).unwrap();
    let (r, code) = s.json(&["archive", "verify"]);
    assert_eq!(code, 0, "{r}");
    assert!(
        r["warnings"]
            .to_string()
            .contains("pack of an interrupted write"),
        "{r}"
    );
    let out = s.run(&["recover", "dendron.md", "--output", "-"]);
    assert_eq!(out.stdout, fs::read(s.vault.join("dendron.md")).unwrap());
    let (done, _) = s.json(&["archive", "gc"]);
    assert_eq!(
        (done["objects"].as_u64(), done["packs_rewritten"].as_u64()),
        (Some(0), Some(1))
    );
    let (r, code) = s.json(&["archive", "verify"]);
    assert_eq!(code, 0, "{r}");
    assert!(r["warnings"].as_array().unwrap().is_empty(), "{r}");
}

#[test]
fn gc_merges_small_packs_into_one_and_every_object_stays() {
    let s = Sandbox::empty();
    crate::common::copy_dir(&crate::common::data("vaults/dendron"), &s.vault);
    s.scan();
    // A second burst of edits to every note: a second pack.
    for note in crate::common::files_under(&s.vault) {
        if note.extension().is_some_and(|e| e == "md") {
            let mut text = fs::read(&note).unwrap();
            text.extend_from_slice(b"\nedited\n");
            fs::write(&note, text).unwrap();
        }
    }
    s.scan();
    assert_eq!(packs(&s).len(), 2);
    let before = listed(&s);

    let (dry, code) = s.json(&["archive", "gc", "--dry-run"]);
    assert_eq!(code, 0, "{dry}");
    assert_eq!(
        (
            dry["packs_rewritten"].as_u64(),
            dry["packs_merged"].as_u64()
        ),
        (Some(2), Some(2))
    );
    assert_eq!(packs(&s).len(), 2, "a dry run changes nothing");
    let (done, _) = s.json(&["archive", "gc"]);
    assert_eq!(
        (done["objects"].as_u64(), done["packs_merged"].as_u64()),
        (Some(0), Some(2)),
        "{done}"
    );
    assert_eq!(packs(&s).len(), 1);
    // The same objects, each read back intact (verify hashes them), every version recoverable.
    let after = listed(&s);
    let digests = |l: &[(String, String)]| {
        let mut d: Vec<String> = l.iter().map(|(sha, _)| sha.clone()).collect();
        d.sort();
        d
    };
    assert_eq!(digests(&after), digests(&before));
    let (r, code) = s.json(&["archive", "verify"]);
    assert_eq!(
        (code, r["objects"].as_u64()),
        (0, Some(before.len() as u64)),
        "{r}"
    );
    let out = s.run(&["recover", "dendron.md", "--output", "-"]);
    assert_eq!(out.stdout, fs::read(s.vault.join("dendron.md")).unwrap());
    // One small pack is left as it is.
    let (again, _) = s.json(&["archive", "gc"]);
    assert_eq!(again["packs_rewritten"].as_u64(), Some(0), "{again}");
}
