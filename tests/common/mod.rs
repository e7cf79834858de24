//! Helpers for tests that run the real binary on temp copies of real data.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Test data kept in the repository (`tests/data/`, see its ATTRIBUTION.md).
pub fn data(rel: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel);
    assert!(path.exists(), "test data missing: {}", path.display());
    path
}

/// Copies a folder (dot-folders included), making the copy writable.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
            let mut perms = fs::metadata(&target).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            fs::set_permissions(&target, perms).unwrap();
        }
    }
}

/// A temp folder with a vault and an archive beside it.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub vault: PathBuf,
    pub archive: PathBuf,
}

impl Sandbox {
    /// An empty vault.
    pub fn empty() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault");
        let archive = dir.path().join("archive");
        fs::create_dir_all(&vault).unwrap();
        Sandbox {
            dir,
            vault,
            archive,
        }
    }

    /// A copy of `tests/data/vaults/<name>`.
    pub fn with_data_vault(name: &str) -> Sandbox {
        let s = Sandbox::empty();
        copy_dir(&data(&format!("vaults/{name}")), &s.vault);
        s
    }

    /// A copy of the project's sample vault.
    pub fn with_sample_vault() -> Sandbox {
        let s = Sandbox::empty();
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("vault"),
            &s.vault,
        );
        s
    }

    /// Writes a vault file, creating folders.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) {
        let path = self.vault.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    /// Writes `vaultkeep.toml` in the sandbox folder, where the binary runs (so it reads it).
    pub fn config(&self, toml: &str) {
        fs::write(self.dir.path().join("vaultkeep.toml"), toml).unwrap();
    }

    /// The binary, pointed at this vault and archive, run from the sandbox folder.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vaultkeep"));
        self.on_this_sandbox(&mut c, args);
        c
    }

    /// The binary run through another program (`strace`, `setpriv`), given its own arguments
    /// first.
    pub fn cmd_under<S: AsRef<std::ffi::OsStr>>(
        &self,
        program: &str,
        its_args: impl IntoIterator<Item = S>,
        args: &[&str],
    ) -> Command {
        let mut c = Command::new(program);
        c.args(its_args).arg(env!("CARGO_BIN_EXE_vaultkeep"));
        self.on_this_sandbox(&mut c, args);
        c
    }

    fn on_this_sandbox(&self, c: &mut Command, args: &[&str]) {
        c.arg("--vault")
            .arg(&self.vault)
            .arg("--archive")
            .arg(&self.archive)
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG");
    }

    /// Runs the binary.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs the binary with `--json` and parses stdout; returns the JSON and the exit code.
    pub fn json(&self, args: &[&str]) -> (Value, i32) {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.run(&args);
        let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not JSON ({e})\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (value, out.status.code().unwrap_or(-1))
    }

    /// `scan --json`.
    pub fn scan(&self) -> (Value, i32) {
        self.json(&["scan"])
    }
}

/// Strings of a JSON array.
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Content files of a folder as Obsidian sees them: no dot-files or dot-folders.
/// Returns (notes, assets). Computed here, independently of the binary.
pub fn count_content(dir: &Path) -> (usize, usize) {
    let mut notes = 0;
    let mut assets = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            let (n, a) = count_content(&entry.path());
            notes += n;
            assets += a;
        } else if name.ends_with(".md") {
            notes += 1;
        } else {
            assets += 1;
        }
    }
    (notes, assets)
}

/// The sha256 of some bytes as coreutils computes it, independently of vaultkeep.
pub fn sha256sum(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, bytes).unwrap();
    let out = Command::new("sha256sum").arg(&f).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// Asserts that no file under `dir` holds `secret`: what a refused request would have
/// brought never reached the archive.
pub fn assert_no_file_holds(dir: &Path, secret: &str) {
    for f in files_under(dir) {
        let bytes = fs::read(&f).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{} holds the secret",
            f.display()
        );
    }
}

/// Every file under a folder, recursively (folders not listed).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Whether the tests run as root (who reads and writes any file whatever its permissions).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Sets a path's permission bits.
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Lets every user enter and read a folder tree (to run vaultkeep as another user).
pub fn open_to_all(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(dir).unwrap().permissions().mode();
    chmod(dir, mode | 0o755);
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let meta = fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            open_to_all(&p);
        } else if meta.is_file() {
            chmod(&p, meta.permissions().mode() | 0o444);
        }
    }
}

/// Exit code and stderr of a run, for messages.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
pub mod daemon;
pub mod dns;
pub mod ns;
pub mod offline;
pub mod s3;
pub mod server;

/// A finished run of the binary, with its wall time and peak memory.
pub struct Measured {
    pub output: Output,
    pub elapsed: std::time::Duration,
    /// The process's peak resident memory (`VmHWM`), in KiB, read from /proc while it ran.
    pub peak_kib: u64,
}

/// Runs a command, polling `/proc/PID/status` for its peak memory until it exits.
pub fn measure(mut cmd: Command) -> Measured {
    use std::io::Read;
    let started = std::time::Instant::now();
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    // Drain the pipes on threads so a large record cannot block the child.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let mut peak_kib = 0;
    let status = loop {
        if let Ok(text) = fs::read_to_string(&status_file)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kib: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    Measured {
        output: Output {
            status,
            stdout: out_thread.join().unwrap(),
            stderr: err_thread.join().unwrap(),
        },
        elapsed: started.elapsed(),
        peak_kib,
    }
}

/// The web-archiving world's own tools (warcio, wacz, pywb), from the Python package
/// registry, in a virtual environment under `target/py-tools` (made once; `.ci/run` makes it
/// before the tests). Returns the path of the named command.
pub fn py_tool(name: &str) -> PathBuf {
    use std::sync::OnceLock;
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    let venv = VENV.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let venv = root.join("target/py-tools");
        let wanted = fs::read_to_string(root.join("tests/py-tools.txt")).unwrap();
        // What was installed last, so that a change of the list installs again.
        let stamp = venv.join(".installed");
        if fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
            let made = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success());
            assert!(made, "python3 -m venv {} failed", venv.display());
            let pip = Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "-r"])
                .arg(root.join("tests/py-tools.txt"))
                .status()
                .is_ok_and(|s| s.success());
            assert!(pip, "pip install -r tests/py-tools.txt failed (the tests need the Python package registry once)");
            fs::write(&stamp, &wanted).unwrap();
        }
        venv
    });
    venv.join("bin").join(name)
}

/// The sha256 of some bytes, in hex, from `sha256sum` (independent of vaultkeep's own hashing).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)[..64].to_string()
}
