//! Running a test inside its own Linux namespaces (`unshare`), as root or not: a network with
//! no route out (a real offline laptop), a public-looking address on `lo`, a mount namespace to
//! point the resolver at a test DNS server, or a tmpfs for a full disk.
//!
//! The test calls [`inside`] first: outside, it runs the same test again under `unshare` and
//! checks that it passed; inside, it gets `true` and does the work. Everything the test starts
//! (servers, the vaultkeep binary) then lives in the namespaces.

use std::process::Command;

const MARK: &str = "VAULTKEEP_TEST_IN_NAMESPACE";

/// Whether the caller is inside the namespaces and should run. Outside, runs `test` (its path
/// as `cargo test` names it, e.g. `safety::offline_is_not_dead`) again under
/// `unshare FLAGS`, asserts that it passed, and returns false. Where user namespaces are not
/// available, says so and returns false (the only case where such a test skips).
pub fn inside(flags: &[&str], test: &str) -> bool {
    if std::env::var_os(MARK).is_some() {
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let probe = Command::new("unshare").args(flags).arg("true").output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!(
                "skipped {test}: user namespaces are not available here (unshare {}: {})",
                flags.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return false;
        }
        Err(e) => {
            eprintln!("skipped {test}: cannot run unshare ({e})");
            return false;
        }
    }
    let out = Command::new("unshare")
        .args(flags)
        .arg(&exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(MARK, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{test} failed inside the namespace:\n{text}"
    );
    assert!(
        text.contains("1 passed"),
        "{test} did not run inside the namespace:\n{text}"
    );
    false
}

/// Runs a command inside the namespace, asserting success (e.g. `ip link set lo up`).
pub fn sh(command: &str) {
    let out = Command::new("sh").args(["-c", command]).output().unwrap();
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
