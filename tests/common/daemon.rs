//! The real binary as a daemon over a temp vault, and waiting on observable results (history,
//! status) with generous deadlines, never on fixed sleeps.

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Sandbox;

const DEADLINE: Duration = Duration::from_secs(30);

/// A running daemon; killed if the test ends first.
pub struct Daemon {
    child: Child,
}

impl Daemon {
    pub fn start(s: &Sandbox, extra: &[&str]) -> Daemon {
        let log = s.dir.path().join("watch.log");
        let mut args = vec!["watch", "--log-file"];
        let log = log.to_string_lossy().to_string();
        args.push(&log);
        args.extend_from_slice(extra);
        let child = s
            .cmd(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let d = Daemon { child };
        // This daemon's first scan, not the last one's (whose status stays until it starts).
        let started = format!("(pid {})", d.pid());
        wait_in(s, &format!("the daemon's first scan ({log})"), || {
            let st = status(s);
            let this_run = st["last_events"].as_array().is_some_and(|events| {
                events
                    .iter()
                    .any(|e| e["text"].as_str().is_some_and(|t| t.ends_with(&started)))
            });
            this_run && st["scans"].as_u64().unwrap_or(0) >= 1 && st["daemon"]["running"] == true
        });
        d
    }

    /// A daemon started some other way, killed when the test ends (even by a panic).
    pub fn adopt(child: Child) -> Daemon {
        Daemon { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, and the exit code.
    pub fn terminate(mut self) -> (Option<i32>, Duration) {
        let started = Instant::now();
        Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        let code = self.child.wait().unwrap().code();
        (code, started.elapsed())
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn status(s: &Sandbox) -> Value {
    let out = s.run(&["status", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Polls until `ok` holds, or fails the test with `what` (and the daemon's log).
pub fn wait(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// `wait`, showing the daemon's log of `s` on failure.
pub fn wait_in(s: &Sandbox, what: &str, ok: impl FnMut() -> bool) {
    let log = s.dir.path().join("watch.log");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wait(what, ok)));
    if let Err(e) = result {
        eprintln!(
            "--- watch.log ---\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        std::panic::resume_unwind(e);
    }
}

/// The events of a file's history.
pub fn events(s: &Sandbox, path: &str) -> Vec<String> {
    let (h, _) = s.json(&["history", path]);
    h["versions"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|x| x["event"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}
