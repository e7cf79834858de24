//! Killing a scan never damages the archive (issue 2, item 8), tested deterministically: the
//! scan is stopped at each named phase of its work (`VAULTKEEP_PAUSE_AT`) and killed with
//! SIGKILL there (issue 9, item 11).

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::common::{Sandbox, copy_dir, count_content, data, stderr};

/// The phases of a scan, in order: files listed and nothing written; objects written but not
/// synced; objects synced but not recorded; records appended but the index not saved.
const PHASES: [&str; 4] = [
    "scan:listed",
    "scan:objects-written",
    "scan:objects-synced",
    "scan:records-appended",
];

/// Runs a scan that stops at `phase`, and kills it there with SIGKILL.
fn scan_killed_at(s: &Sandbox, phase: &str) {
    scan_in_batches_killed_at(s, phase, "8192");
}

/// The same, with batches of `batch` files to read (a scan takes up to four at a time).
fn scan_in_batches_killed_at(s: &Sandbox, phase: &str, batch: &str) {
    let mut child = s
        .cmd(&["scan", "-q"])
        .env("VAULTKEEP_PAUSE_AT", phase)
        .env("VAULTKEEP_SCAN_BATCH", batch)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let reached = lines.any(|l| l.is_ok_and(|l| l.contains(&format!("paused at {phase}"))));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(reached, "the scan never reached {phase}");
}

/// A scan with batches of `batch` files to read, run to its end.
fn scan_in_batches(s: &Sandbox, batch: &str) {
    let out = s
        .cmd(&["scan", "-q"])
        .env("VAULTKEEP_SCAN_BATCH", batch)
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
}

fn verify_is_clean(s: &Sandbox, when: &str) {
    let verify = s.run(&["archive", "verify", "--json"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{when}: {}\n{}",
        String::from_utf8_lossy(&verify.stdout),
        stderr(&verify)
    );
}

#[test]
fn a_scan_killed_at_any_phase_leaves_a_verifiable_archive_and_loses_nothing() {
    let s = Sandbox::empty();
    copy_dir(&data("vaults/dendron"), &s.vault);
    let notes = notes_of(&s);
    // The first scan, killed at each phase in turn; then edits, killed again.
    for round in 0..2 {
        for (i, phase) in PHASES.iter().enumerate() {
            if round == 1 {
                for note in notes.iter().skip(i * 50).take(50) {
                    let mut text = fs::read(note).unwrap();
                    text.extend_from_slice(format!("\nedit at {phase}\n").as_bytes());
                    fs::write(note, text).unwrap();
                }
            }
            scan_killed_at(&s, phase);
            verify_is_clean(&s, &format!("round {round}, killed at {phase}"));
        }
        // Forget the index, as if it was lost: every file is hashed again.
        let _ = fs::remove_file(s.archive.join("index"));
    }
    let (done, code) = s.scan();
    assert!(code == 0 || code == 1, "{done}");
    let (again, _) = s.scan();
    assert_eq!(again["recorded"], 0);
    verify_is_clean(&s, "after the last scan");
    // The newest recorded version of every note is what is on disk.
    for note in notes.iter().step_by(37) {
        let rel = note.file_name().unwrap().to_str().unwrap();
        let out = s.run(&["recover", rel, "--output", "-"]);
        assert_eq!(out.stdout, fs::read(note).unwrap(), "{rel}");
    }
}

#[test]
fn a_first_scan_killed_after_a_batch_keeps_that_batch_and_the_next_scan_finishes() {
    let s = Sandbox::empty();
    copy_dir(&data("vaults/dendron"), &s.vault);
    let (notes, assets) = count_content(&s.vault);
    let files = notes + assets;
    assert!(
        files > 300,
        "the vault needs several batches: {files} files"
    );
    let mut child = s
        .cmd(&["scan", "-q"])
        .env("VAULTKEEP_SCAN_BATCH", "100")
        .env("VAULTKEEP_PAUSE_AT", "scan:records-appended")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    assert!(lines.any(|l| l.is_ok_and(|l| l.contains("paused at scan:records-appended"))));
    child.kill().unwrap();
    child.wait().unwrap();
    // The first batch is recorded, durable and verifiable, though the scan never finished.
    let log = fs::read_to_string(s.archive.join("versions.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 100);
    verify_is_clean(&s, "killed after the first batch");
    // The next scan (batches again) records the rest, each file once.
    scan_in_batches(&s, "100");
    let log = fs::read_to_string(s.archive.join("versions.jsonl")).unwrap();
    assert_eq!(log.lines().count(), files);
    let (again, _) = s.scan();
    assert_eq!(again["recorded"], 0);
    verify_is_clean(&s, "after the scan that finished");
}

/// The version log's records, in order: (event, path, from, sha256).
fn records(s: &Sandbox) -> Vec<(String, String, String, String)> {
    fs::read_to_string(s.archive.join("versions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            let field = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (
                field("event"),
                field("path"),
                field("from"),
                field("sha256"),
            )
        })
        .collect()
}

#[test]
fn a_rescan_in_rounds_killed_at_any_phase_records_each_change_once_and_renames_as_renames() {
    let s = Sandbox::empty();
    copy_dir(&data("vaults/dendron"), &s.vault);
    let (done, code) = s.scan();
    assert!(code == 0 || code == 1, "{done}");
    let mut notes = notes_of(&s);
    // Batches of 10 files to read: the rescan takes many rounds, holds its records until half
    // of the known files are seen, and is killed mid-way at each phase in turn.
    let mut moved = Vec::new();
    for (i, phase) in PHASES.iter().enumerate() {
        for note in notes.iter().skip(i).step_by(40).take(25) {
            let mut text = fs::read(note).unwrap();
            text.extend_from_slice(format!("\nedit at {phase}\n").as_bytes());
            fs::write(note, text).unwrap();
        }
        // A note listed last moves to a path listed first: its new path is met long before
        // its old one is found gone.
        let last = notes.pop().unwrap();
        let to = s.vault.join(format!("0-moved-{i}.md"));
        fs::rename(&last, &to).unwrap();
        moved.push((last, to));
        scan_in_batches_killed_at(&s, phase, "10");
        verify_is_clean(&s, &format!("rescan killed at {phase}"));
    }
    scan_in_batches(&s, "10");
    let (again, _) = s.scan();
    assert_eq!(again["recorded"], 0);
    verify_is_clean(&s, "after the scan that finished");
    let log = records(&s);
    // No version is recorded twice: a path's records each bring a new content or event.
    let mut last_of: std::collections::HashMap<&str, (&str, &str)> = Default::default();
    for (event, path, _, sha) in &log {
        assert_ne!(
            last_of.insert(path, (event, sha)),
            Some((event.as_str(), sha.as_str())),
            "{path} recorded twice as {event}"
        );
    }
    for (from, to) in &moved {
        let name = |p: &std::path::Path| p.file_name().unwrap().to_str().unwrap().to_string();
        let (from, to) = (name(from), name(to));
        assert!(
            log.iter()
                .any(|(event, path, f, _)| event == "renamed" && *path == to && *f == from),
            "{from} -> {to} recorded as a rename"
        );
        assert!(
            !log.iter()
                .any(|(event, path, _, _)| event == "deleted" && *path == from),
            "{from} recorded as deleted"
        );
    }
    // The newest recorded version of every note is what is on disk.
    for note in notes
        .iter()
        .step_by(37)
        .chain(moved.iter().map(|(_, to)| to))
    {
        let rel = note.file_name().unwrap().to_str().unwrap();
        let out = s.run(&["recover", rel, "--output", "-"]);
        assert_eq!(out.stdout, fs::read(note).unwrap(), "{rel}");
    }
}

/// The vault's notes at its top, sorted.
fn notes_of(s: &Sandbox) -> Vec<std::path::PathBuf> {
    let mut notes: Vec<_> = fs::read_dir(&s.vault)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    notes.sort();
    notes
}

/// Appends a line to ten notes picked at random.
fn edit_some(notes: &[std::path::PathBuf], dice: &mut Dice, when: &str) {
    for _ in 0..10 {
        let note = &notes[dice.below(notes.len() as u64) as usize];
        let mut text = fs::read(note).unwrap();
        text.extend_from_slice(format!("\nedit in {when}\n").as_bytes());
        fs::write(note, text).unwrap();
    }
}

/// A small random sequence (xorshift), seeded so that a failure names how to replay its
/// choices (the instants themselves depend on the machine).
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
fn scans_killed_at_random_instants_never_damage_the_archive_or_lose_a_version() {
    let s = Sandbox::empty();
    copy_dir(&data("vaults/dendron"), &s.vault);
    let mut notes = notes_of(&s);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut dice = Dice(seed);
    // How long a first scan and a rescan after a few edits take here, in batches of 25 files:
    // each kill falls within the kind of scan it stops.
    let probe = Sandbox::empty();
    copy_dir(&data("vaults/dendron"), &probe.vault);
    let timed = || {
        let started = std::time::Instant::now();
        scan_in_batches(&probe, "25");
        started.elapsed().as_micros() as u64
    };
    let first_span = timed();
    edit_some(&notes_of(&probe), &mut dice, "probe");
    let rescan_span = timed();
    for round in 0..12 {
        // From the second round on, a few edits and a move before each scan; every fourth
        // round, the index is lost too, so that every file is read again.
        let whole = round % 4 == 0;
        if round > 0 {
            edit_some(&notes, &mut dice, &format!("round {round}"));
            let i = dice.below(notes.len() as u64) as usize;
            let to = s.vault.join(format!("moved-{round}.md"));
            fs::rename(&notes[i], &to).unwrap();
            notes[i] = to;
            if whole {
                let _ = fs::remove_file(s.archive.join("index"));
            }
        }
        let mut child = s
            .cmd(&["scan", "-q"])
            .env("VAULTKEEP_SCAN_BATCH", "25")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let wait = dice.below(if whole { first_span } else { rescan_span });
        std::thread::sleep(std::time::Duration::from_micros(wait));
        let _ = child.kill();
        child.wait().unwrap();
        verify_is_clean(
            &s,
            &format!("seed {seed}, round {round}, killed {wait} µs after its start"),
        );
    }
    let (done, code) = s.scan();
    assert!(code == 0 || code == 1, "seed {seed}: {done}");
    let (again, _) = s.scan();
    assert_eq!(again["recorded"], 0, "seed {seed}");
    verify_is_clean(&s, &format!("seed {seed}, after the scan that finished"));
    // Every note's newest recorded version is what is on disk, and none is recorded twice.
    for note in notes.iter().step_by(11) {
        let rel = note.file_name().unwrap().to_str().unwrap();
        let out = s.run(&["recover", rel, "--output", "-"]);
        assert_eq!(out.stdout, fs::read(note).unwrap(), "seed {seed}: {rel}");
    }
    let mut last_of: std::collections::HashMap<String, (String, String)> = Default::default();
    for (event, path, _, sha) in records(&s) {
        let again = last_of.insert(path.clone(), (event.clone(), sha.clone()));
        assert_ne!(
            again,
            Some((event.clone(), sha)),
            "seed {seed}: {path} recorded twice as {event}"
        );
    }
}
