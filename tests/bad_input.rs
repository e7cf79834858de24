//! Bad input gets one clear message naming the file, and the run goes on.

use std::fs;
use std::process::Command;

use crate::common::{Sandbox, is_root, ns, stderr};

fn problem_for<'a>(report: &'a serde_json::Value, path: &str) -> &'a str {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == path)
        .unwrap_or_else(|| panic!("no problem reported for {path}: {}", report["problems"]))["message"]
        .as_str()
        .unwrap()
}

#[test]
fn broken_notes_are_named_recorded_and_the_rest_is_read() {
    let s = Sandbox::empty();
    s.write("good.md", "[[other]] https://example.org/page\n");
    s.write("other.md", "---\ntitle: other\n---\n");
    s.write("bad-yaml.md", "---\ntitle: [unclosed\n---\n[[good]]\n");
    s.write("latin1.md", b"caf\xe9 [[good]]\n");
    s.write("image.md", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    s.write("huge.md", vec![b'a'; 30 * 1024 * 1024]);
    let (r, code) = s.scan();
    assert_eq!(code, 1, "problems make the exit code 1");
    assert!(problem_for(&r, "bad-yaml.md").contains("invalid YAML frontmatter at line"));
    assert!(problem_for(&r, "latin1.md").contains("invalid UTF-8 at line 1"));
    assert!(problem_for(&r, "image.md").contains("binary"));
    assert!(problem_for(&r, "huge.md").contains("30.0 MiB"));
    assert_eq!(r["problems"].as_array().unwrap().len(), 4);
    // Every file, broken or not, is recorded: nothing is lost.
    assert_eq!(r["recorded"], 6);
    // The good notes' links, and the body of the note with bad YAML, are still read.
    assert_eq!(r["urls"][0], "https://example.org/page");
    assert_eq!(r["links"]["wikilink"], 2);
    // The huge note can be recovered byte for byte.
    let out = s.run(&["recover", "huge.md", "--output", "-"]);
    assert_eq!(out.stdout.len(), 30 * 1024 * 1024);
}

#[cfg(unix)]
#[test]
fn symlinks_out_of_the_vault_and_loops_are_reported_not_followed() {
    use std::os::unix::fs::symlink;
    let s = Sandbox::empty();
    s.write("a.md", "[[b]]");
    let secret = s.dir.path().join("secret.md");
    fs::write(&secret, "outside").unwrap();
    symlink(&secret, s.vault.join("escape.md")).unwrap();
    fs::create_dir(s.vault.join("sub")).unwrap();
    symlink(&s.vault, s.vault.join("sub/loop")).unwrap();
    symlink(s.vault.join("x"), s.vault.join("y")).unwrap();
    symlink(s.vault.join("y"), s.vault.join("x")).unwrap();
    let (r, code) = s.scan();
    assert_eq!(code, 1);
    assert!(problem_for(&r, "escape.md").contains("outside the vault"));
    assert!(problem_for(&r, "x").contains("broken or loops"));
    assert_eq!(r["notes"], 1);
    let versions = fs::read_to_string(s.archive.join("versions.jsonl")).unwrap();
    assert!(
        !versions.contains("escape.md"),
        "the outside file was not recorded"
    );
}

#[test]
fn a_link_that_climbs_out_of_the_vault_is_reported_never_read() {
    let s = Sandbox::empty();
    fs::write(s.dir.path().join("outside.png"), "not yours").unwrap();
    s.write("note.md", "![[../outside.png]] [x](../../etc/passwd)\n");
    let (r, _) = s.scan();
    let reasons: Vec<_> = r["unresolved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, vec!["outside the vault", "outside the vault"]);
    assert_eq!(r["assets"], 0);
}

/// `vaultkeep` on the sandbox, as the owner of its files (see [`as_owner`]).
fn owner_cmd(s: &Sandbox, args: &[&str]) -> Command {
    if !is_root() {
        return s.cmd(args);
    }
    let owned = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(s.dir.path())
        .status()
        .unwrap();
    assert!(owned.success());
    let user = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    s.cmd_under("setpriv", user, args)
}

/// Runs vaultkeep on the sandbox as the owner of its files. Root reads any file whatever its
/// permissions: as root, the sandbox is handed to `nobody` and vaultkeep runs as `nobody`
/// (setpriv), for whom mode 000 means unreadable.
fn as_owner(s: &Sandbox, args: &[&str]) -> std::process::Output {
    owner_cmd(s, args).output().unwrap()
}

#[test]
fn an_unreadable_file_is_named_and_keeps_its_last_version() {
    use std::os::unix::fs::PermissionsExt;
    let s = Sandbox::empty();
    s.write("a.md", "first");
    s.write("b.md", "b");
    assert_eq!(as_owner(&s, &["scan"]).status.code(), Some(0));
    s.write("a.md", "second");
    fs::set_permissions(s.vault.join("a.md"), fs::Permissions::from_mode(0o000)).unwrap();
    let out = as_owner(&s, &["scan", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(problem_for(&r, "a.md").contains("cannot read"));
    assert_eq!(r["events"].get("deleted"), None, "not taken for deleted");
}

#[test]
fn the_files_of_a_folder_that_cannot_be_read_are_not_taken_for_deleted() {
    use std::os::unix::fs::PermissionsExt;
    let s = Sandbox::empty();
    for i in 0..3 {
        s.write(&format!("locked/deeper/n{i}.md"), format!("note {i}"));
        s.write(&format!("open/n{i}.md"), format!("note {i}"));
    }
    s.write(
        "locked.md",
        "a note beside the folder, with its name as a prefix",
    );
    std::os::unix::fs::symlink("locked/deeper/n1.md", s.vault.join("link.md")).unwrap();
    assert_eq!(as_owner(&s, &["scan"]).status.code(), Some(0));
    s.write("open/n0.md", "changed");
    let locked = s.vault.join("locked");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    let out = as_owner(&s, &["scan", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        problem_for(&r, "locked").contains("cannot read the folder"),
        "{r}"
    );
    assert_eq!(
        r["events"]["modified"], 1,
        "the rest of the scan goes on: {r}"
    );
    assert_eq!(
        r["events"].get("deleted"),
        None,
        "nothing taken for deleted: {r}"
    );
    assert!(
        problem_for(&r, "link.md").contains("cannot follow the symlink"),
        "{r}"
    );
    assert_eq!(r["notes"], 8, "the unseen notes as last recorded: {r}");
    // Readable again: nothing to record (no deletion to undo, no file created again).
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    let out = as_owner(&s, &["scan", "--json"]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["recorded"], 0, "{r}");
    let log = fs::read_to_string(s.archive.join("versions.jsonl")).unwrap();
    assert!(!log.contains("\"deleted\""), "{log}");
}

#[test]
fn a_folder_the_daemon_can_no_longer_read_is_not_taken_for_deleted() {
    use crate::common::daemon::{Daemon, events, status, wait_in};
    use std::os::unix::fs::PermissionsExt;
    let s = Sandbox::empty();
    for i in 0..3 {
        s.write(&format!("locked/n{i}.md"), format!("note {i}"));
        s.write(&format!("locked/deeper/n{i}.md"), format!("note {i}"));
    }
    s.write("open.md", "first");
    // More files elsewhere: three deletions would not be a mass deletion.
    for i in 0..10 {
        s.write(&format!("others/n{i}.md"), format!("note {i}"));
    }
    let log = s.dir.path().join("watch.log").to_string_lossy().to_string();
    let child = owner_cmd(&s, &["watch", "--log-file", &log])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _daemon = Daemon::adopt(child);
    wait_in(&s, "the daemon's first scan", || {
        status(&s)["scans"].as_u64().unwrap_or(0) >= 1
    });
    // The folder's mode changes: the watcher reports it, the daemon looks at it and cannot
    // read it.
    fs::set_permissions(s.vault.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    wait_in(&s, "the daemon to say it cannot read the folder", || {
        status(&s)["last_errors"].as_array().is_some_and(|e| {
            e.iter().any(|l| {
                l["text"]
                    .as_str()
                    .unwrap()
                    .contains("locked: cannot read the folder")
            })
        })
    });
    // A note under it changes (root writes there whatever the mode; the daemon, as `nobody`,
    // cannot reach it); then a note elsewhere changes, so that once its version is recorded
    // the other change was dealt with too.
    if is_root() {
        s.write("locked/deeper/n0.md", "changed where the daemon cannot see");
    }
    s.write("open.md", "second");
    wait_in(&s, "the note's second version", || {
        events(&s, "open.md").len() == 2
    });
    let log = fs::read_to_string(s.archive.join("versions.jsonl")).unwrap();
    assert!(!log.contains("\"deleted\""), "{log}");
}

#[test]
fn a_deep_vault_is_walked_whole_under_a_low_limit_on_open_files() {
    let s = Sandbox::empty();
    let mut folder = String::new();
    for depth in 0..100 {
        folder.push_str("d/");
        s.write(&format!("{folder}n{depth}.md"), format!("note {depth}"));
    }
    // A walk keeps each folder open while it reads its subfolders: 100 deep needs more than
    // the 48 open files this shell allows, until vaultkeep raises its own limit.
    let out = s
        .cmd_under(
            "sh",
            ["-c", "ulimit -Sn 48 && exec \"$@\"", "sh"],
            &["scan", "--json"],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["notes"], 100, "{r}");
    assert_eq!(r["problems"], serde_json::json!([]), "{r}");
}

#[test]
fn files_vanishing_during_a_scan_are_named_and_the_archive_stays_consistent() {
    let s = Sandbox::empty();
    for i in 0..3000 {
        s.write(&format!("n/{i:04}.md"), format!("note {i} [[{}]]\n", i + 1));
    }
    let child = s
        .cmd(&["scan", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Delete files from the end of the walk order while the scan runs.
    for i in (0..3000).rev().step_by(3) {
        let _ = fs::remove_file(s.vault.join(format!("n/{i:04}.md")));
    }
    let out = child.wait_with_output().unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for p in r["problems"].as_array().unwrap() {
        assert!(p["message"].as_str().unwrap().contains("vanished"), "{p}");
    }
    assert_eq!(s.run(&["archive", "verify"]).status.code(), Some(0));
    let (again, code) = s.scan();
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["notes"], 2000);
    let (third, _) = s.scan();
    assert_eq!(third["recorded"], 0);
}

/// A small file system for the archive, mounted for the test: as root directly, otherwise
/// inside the test's own user and mount namespace.
struct TinyDisk {
    path: std::path::PathBuf,
}

impl TinyDisk {
    fn mount(path: &std::path::Path, size: &str) -> TinyDisk {
        fs::create_dir_all(path).unwrap();
        ns::sh(&format!(
            "mount -t tmpfs -o size={size} tmpfs {}",
            path.display()
        ));
        TinyDisk {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

#[test]
fn a_full_disk_stops_the_scan_with_a_clear_error_and_a_consistent_archive() {
    if !is_root()
        && !ns::inside(
            &["-rm"],
            "bad_input::a_full_disk_stops_the_scan_with_a_clear_error_and_a_consistent_archive",
        )
    {
        return;
    }
    let s = Sandbox::empty();
    let _disk = TinyDisk::mount(&s.archive, "2m");
    s.write("small.md", "[[big]]");
    let scan = s.run(&["scan"]);
    assert_eq!(scan.status.code(), Some(0), "{}", stderr(&scan));
    // 3 MiB of new, incompressible content cannot fit on a 2 MiB disk.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let noise: Vec<u8> = (0..3 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    s.write("big.png", &noise);
    let out = s.run(&["scan"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("disk is full") && err.contains("big.png"),
        "{err}"
    );
    let verify = s.run(&["archive", "verify"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    // Once the big file is gone, scans work again and record only what fits.
    fs::remove_file(s.vault.join("big.png")).unwrap();
    s.write("small.md", "[[big]] edited");
    let (r, code) = s.scan();
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["events"]["modified"], 1);
}
