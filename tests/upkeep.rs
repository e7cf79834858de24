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
    fs::write(&stale, b"partial").unwrap();
    fs::write(&fresh, b"partial").unwrap();
    Command::new("touch")
        .args(["-d", "3 hours ago"])
        .arg(&stale)
        .status()
        .unwrap();

    let (dry, code) = s.json(&["archive", "gc", "--dry-run"]);
    assert_eq!(code, 0);
    assert_eq!(
        (dry["objects"].as_u64(), dry["temp_files"].as_u64()),
        (Some(1), Some(1)),
        "{dry}"
    );
    assert!(
        orphan.exists() && stale.exists(),
        "a dry run removes nothing"
    );

    let (done, _) = s.json(&["archive", "gc"]);
    assert_eq!(done["objects"], 1);
    assert!(!orphan.exists() && !stale.exists());
    assert!(
        fresh.exists(),
        "a young temp file may belong to a write in progress"
    );
    fs::remove_file(&fresh).unwrap();
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
