//! Named points where a test can stop the process, to kill it at a known phase instead of at a
//! random instant (issue 9). With `VAULTKEEP_PAUSE_AT=<name>` set, reaching that point prints
//! `vaultkeep: paused at <name>` on stderr and sleeps until the process is killed. Without it,
//! each point costs one comparison.

use std::sync::OnceLock;

/// Stops here forever if the environment names this point.
pub(crate) fn pause_at(name: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("VAULTKEEP_PAUSE_AT").ok());
    if at.as_deref() == Some(name) {
        eprintln!("vaultkeep: paused at {name}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}
