//! Killing a scan at random moments never damages the archive (issue 2, item 8).

use std::fs;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{Sandbox, copy_dir, data, stderr};

/// xorshift: enough randomness for kill times, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn scans_killed_at_random_moments_leave_a_verifiable_archive() {
    let s = Sandbox::empty();
    for copy in 0..3 {
        copy_dir(
            &data("vaults/dendron"),
            &s.vault.join(format!("copy-{copy}")),
        );
    }
    let notes: Vec<_> = fs::read_dir(s.vault.join("copy-0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test seed: {seed} (rerun with CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let mut killed_mid_run = 0;
    for round in 0..12 {
        if round % 2 == 0 {
            // New content to store and record.
            for _ in 0..300 {
                let note = &notes[(rng.next() % notes.len() as u64) as usize];
                let mut text = fs::read(note).unwrap();
                text.extend_from_slice(format!("\nedit {round}\n").as_bytes());
                fs::write(note, text).unwrap();
            }
        } else {
            // Forget the index, so every file is read and hashed again.
            let _ = fs::remove_file(s.archive.join("index"));
        }
        let mut child = s
            .cmd(&["scan", "-q"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.next() % 1500));
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let verify = s.run(&["archive", "verify", "--json"]);
        assert_eq!(
            verify.status.code(),
            Some(0),
            "round {round} (seed {seed}): {}\n{}",
            String::from_utf8_lossy(&verify.stdout),
            stderr(&verify)
        );
    }
    assert!(
        killed_mid_run >= 3,
        "too few kills landed inside a scan ({killed_mid_run}); seed {seed}"
    );
    let (done, code) = s.scan();
    assert!(code == 0 || code == 1, "{done}");
    let (again, _) = s.scan();
    assert_eq!(again["recorded"], 0);
    let (verify, code) = s.json(&["archive", "verify"]);
    assert_eq!(code, 0, "{verify}");
    // The newest recorded version of an edited note is what is on disk.
    let rel = format!("copy-0/{}", notes[0].file_name().unwrap().to_str().unwrap());
    let out = s.run(&["recover", &rel, "--output", "-"]);
    assert_eq!(out.stdout, fs::read(&notes[0]).unwrap());
}
