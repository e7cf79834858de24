//! A real S3 server for the remote's tests: SeaweedFS (`weed mini`: master, volume, filer and
//! S3 gateway in one process, from `tests/py-tools.txt`), on loopback inside the test's own
//! network namespace (so its fixed ports are the test's alone), with its data in a temp folder.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::py_tool;

pub const KEY: &str = "vaultkeep-test-key";
pub const SECRET: &str = "vaultkeep-test-secret-never-printed";
pub const BUCKET: &str = "vault";
pub const ENDPOINT: &str = "http://127.0.0.1:8333";
/// Credentials that may read and list, not write: a read-only bucket, as far as they go.
pub const READER_KEY: &str = "vaultkeep-test-reader";
pub const READER_SECRET: &str = "vaultkeep-test-reader-secret";

/// A running SeaweedFS; killed when dropped.
pub struct Weed {
    child: Option<Child>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Weed {
    /// Starts SeaweedFS with a fresh data folder (inside a network namespace: call
    /// `ns::inside` first and bring `lo` up).
    pub fn start() -> Weed {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = Weed {
            child: None,
            dir: tmp.path().to_path_buf(),
            _tmp: Some(tmp),
        };
        w.run();
        w
    }

    /// Runs the server until it takes a write. SeaweedFS now and then comes up unable to
    /// write ("volume 1 not found") and stays so; then it is started again, up to three
    /// times.
    fn run(&mut self) {
        let mut last = String::new();
        for _ in 0..3 {
            match self.try_run(Duration::from_secs(20)) {
                Ok(()) => return,
                Err(why) => {
                    last = why;
                    self.kill();
                }
            }
        }
        panic!("SeaweedFS did not start: {last}");
    }

    fn try_run(&mut self, within: Duration) -> Result<(), String> {
        let log = self.dir.join("log");
        std::fs::create_dir_all(&log).unwrap();
        let identities = self.dir.join("s3.json");
        std::fs::write(
            &identities,
            format!(
                r#"{{"identities":[
                {{"name":"owner","credentials":[{{"accessKey":"{KEY}","secretKey":"{SECRET}"}}],"actions":["Admin","Read","List","Tagging","Write"]}},
                {{"name":"reader","credentials":[{{"accessKey":"{READER_KEY}","secretKey":"{READER_SECRET}"}}],"actions":["Read","List"]}}]}}"#
            ),
        )
        .unwrap();
        let child = Command::new(py_tool("weed"))
            .arg(format!("-logdir={}", log.display()))
            .args(["mini", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-dir={}", self.dir.display()))
            .arg(format!("-bucket={BUCKET}"))
            .arg(format!("-s3.config={}", identities.display()))
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .stdout(Stdio::from(
                std::fs::File::create(log.join("out.txt")).unwrap(),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(log.join("err.txt")).unwrap(),
            ))
            .spawn()
            .unwrap();
        self.child = Some(child);
        // Up when a signed write succeeds (the gateway answers before the bucket is made, and
        // before its volumes take writes).
        let started = Instant::now();
        loop {
            let code = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user"])
                .arg(format!("{KEY}:{SECRET}"))
                .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
                .args(["-X", "PUT", "--data", "ready"])
                .arg(format!("{ENDPOINT}/{BUCKET}/ready-probe"))
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default();
            if code == "200" {
                return Ok(());
            }
            if started.elapsed() > within {
                let err = std::fs::read_to_string(log.join("err.txt")).unwrap_or_default();
                let tail: Vec<&str> = err.lines().rev().take(5).collect();
                return Err(format!("last answer {code}: {}", tail.join("\n")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server outright (a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same data.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `vaultkeep.toml` for a device sharing `s3://vault/<prefix>`.
pub fn config(prefix: &str, device: &str) -> String {
    format!(
        "[remote]\nurl = \"s3://{BUCKET}/{prefix}\"\nendpoint = \"{ENDPOINT}\"\npath_style = true\n\
         device = \"{device}\"\npush_after = \"1s\"\npull_every = \"2s\"\n"
    )
}
