//! `history` and `recover`: every version of a file, deleted or renamed, comes back.

use std::fs;

use crate::common::{Sandbox, sha256sum, stderr};

#[test]
fn history_lists_created_modified_and_deleted_with_their_content() {
    let s = Sandbox::empty();
    s.write("Ouishare.md", "v1");
    s.scan();
    s.write("Ouishare.md", "version two");
    s.scan();
    fs::remove_file(s.vault.join("Ouishare.md")).unwrap();
    // The vault's only file is gone: that needs the user's word (issue 9).
    assert_eq!(s.run(&["scan"]).status.code(), Some(2));
    s.json(&["scan", "--accept-deletions"]);
    let (h, code) = s.json(&["history", "Ouishare.md"]);
    assert_eq!(code, 0);
    let versions = h["versions"].as_array().unwrap();
    let got: Vec<_> = versions
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["event"].as_str().unwrap(),
                v["sha256"].as_str().unwrap().to_string(),
                v["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "created", sha256sum(b"v1"), 2),
            (2, "modified", sha256sum(b"version two"), 11),
            (3, "deleted", sha256sum(b"version two"), 11),
        ]
    );
    assert!(versions.iter().all(|v| v["time"].as_str().is_some()));
}

#[test]
fn a_deleted_note_is_recovered_to_its_place() {
    let s = Sandbox::with_sample_vault();
    let path = "ecosystem/cohere/profiles/Ouishare.md";
    let original = fs::read(s.vault.join(path)).unwrap();
    s.scan();
    fs::remove_file(s.vault.join(path)).unwrap();
    s.scan();
    let out = s.run(&["recover", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read(s.vault.join(path)).unwrap(), original);
}

#[test]
fn recover_never_overwrites_a_different_file_without_force() {
    let s = Sandbox::empty();
    s.write("a.md", "one");
    s.scan();
    s.write("a.md", "two");
    s.scan();
    let out = s.run(&["recover", "a.md", "--version", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(s.vault.join("a.md")).unwrap(), "two");
    let elsewhere = s.dir.path().join("old.md");
    let out = s
        .cmd(&["recover", "a.md", "--version", "1", "--output"])
        .arg(&elsewhere)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "one");
    assert_eq!(
        s.run(&["recover", "a.md", "--version", "1", "--force"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(fs::read_to_string(s.vault.join("a.md")).unwrap(), "one");
    let out = s.run(&["recover", "a.md", "--version", "9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no version 9"));
}

#[test]
fn a_renamed_asset_keeps_its_history_under_the_new_name() {
    let s = Sandbox::empty();
    s.write("assets/logo.png", b"\x89PNG one");
    s.scan();
    s.write("assets/logo.png", b"\x89PNG two");
    s.scan();
    fs::create_dir_all(s.vault.join("img")).unwrap();
    fs::rename(
        s.vault.join("assets/logo.png"),
        s.vault.join("img/logo.png"),
    )
    .unwrap();
    let (r, _) = s.scan();
    assert_eq!(r["events"]["renamed"], 1, "{r}");
    let (h, _) = s.json(&["history", "img/logo.png"]);
    let events: Vec<_> = h["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["event"].as_str().unwrap(), v["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        events,
        vec![
            ("created", "assets/logo.png"),
            ("modified", "assets/logo.png"),
            ("renamed", "img/logo.png")
        ]
    );
    let out = s.run(&["recover", "img/logo.png", "--version", "1", "--output", "-"]);
    assert_eq!(out.stdout, b"\x89PNG one");
}

#[test]
fn history_of_an_unknown_file_is_empty_and_exits_1() {
    let s = Sandbox::empty();
    s.write("a.md", "x");
    s.scan();
    let (h, code) = s.json(&["history", "nope.md"]);
    assert_eq!(code, 1);
    assert_eq!(h["versions"].as_array().unwrap().len(), 0);
}
