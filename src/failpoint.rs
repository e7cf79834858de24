//! Named points where a test can stop the process, to kill it at a known phase instead of at a
//! random instant (issue 9). With `VAULTKEEP_PAUSE_AT=<name>` set, reaching that point prints
//! `vaultkeep: paused at <name>` on stderr and sleeps until the process is killed, or, with
//! `VAULTKEEP_PAUSE_FOR=<seconds>`, that long (while the test pulls the ground from under it:
//! a server killed mid-push). Without them, each point costs one comparison.

use std::sync::OnceLock;

/// Stops here forever if the environment names this point.
pub(crate) fn pause_at(name: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("VAULTKEEP_PAUSE_AT").ok());
    if at.as_deref() == Some(name) {
        eprintln!("vaultkeep: paused at {name}");
        let secs = std::env::var("VAULTKEEP_PAUSE_FOR")
            .ok()
            .and_then(|s| s.parse::<u64>().ok());
        match secs {
            Some(s) => std::thread::sleep(std::time::Duration::from_secs(s)),
            None => loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            },
        }
    }
}
