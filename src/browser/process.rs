//! The Chromium process: started headless with a fresh temporary profile, the DevTools
//! protocol on a pipe (descriptors 3 and 4: no port that another program or a page could
//! reach), no network of its own, in a process group of its own, killed with that group and
//! its descendants when dropped. It dies with vaultkeep too, however vaultkeep ends: the
//! kernel closes the pipe, and Chromium quits when its pipe closes.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use command_fds::{CommandFdExt, FdMapping};
use tokio::net::unix::pipe;

/// The window every page is rendered in, in CSS pixels.
pub const WINDOW: (u32, u32) = (1280, 800);

/// How often the browser's memory is measured.
const MEMORY_EVERY: Duration = Duration::from_millis(250);

/// A running browser. Dropping it kills every process it started.
pub struct Process {
    pid: i32,
    alive: Arc<AtomicBool>,
    over_memory: Arc<AtomicBool>,
    profile: tempfile::TempDir,
    /// The browser's proxy: a port held without listening, so every connection to it is
    /// refused.
    _dead_end: socket2::Socket,
}

/// The two ends of the protocol pipe, on vaultkeep's side.
pub struct Pipes {
    /// Commands go here (the browser's descriptor 3).
    pub commands: pipe::Sender,
    /// Answers and events come from here (the browser's descriptor 4).
    pub messages: pipe::Receiver,
}

impl Process {
    /// Starts `executable` headless. Every request it makes is meant to be intercepted: its
    /// own network goes to a proxy that refuses, so nothing escapes interception (service
    /// workers, WebSockets, DNS prefetching, the browser's own updates).
    pub fn start(executable: &Path, max_memory: u64) -> io::Result<(Process, Pipes)> {
        let profile = tempfile::Builder::new()
            .prefix("vaultkeep-browser-")
            .tempdir()?;
        let dead_end = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        dead_end.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
        let proxy_port = dead_end.local_addr()?.as_socket().map_or(9, |a| a.port());
        let (to_browser_read, to_browser_write) = io::pipe()?;
        let (from_browser_read, from_browser_write) = io::pipe()?;
        let mut command = Command::new(executable);
        command
            .args(flags(profile.path(), proxy_port))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(profile.path())?)
            .process_group(0)
            .fd_mappings(vec![
                FdMapping {
                    parent_fd: OwnedFd::from(to_browser_read),
                    child_fd: 3,
                },
                FdMapping {
                    parent_fd: OwnedFd::from(from_browser_write),
                    child_fd: 4,
                },
            ])
            .map_err(io::Error::other)?;
        let alive = Arc::new(AtomicBool::new(true));
        let over_memory = Arc::new(AtomicBool::new(false));
        // A thread starts the browser and waits for it, to know when it is gone.
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let alive_in_thread = alive.clone();
        std::thread::Builder::new()
            .name("vaultkeep-browser".into())
            .spawn(move || {
                let child = command.spawn();
                // The browser's ends of the pipes, closed on this side once it holds them.
                drop(command);
                let mut child = match child {
                    Ok(c) => {
                        let _ = started_tx.send(Ok(c.id() as i32));
                        c
                    }
                    Err(e) => {
                        alive_in_thread.store(false, Ordering::SeqCst);
                        let _ = started_tx.send(Err(e));
                        return;
                    }
                };
                let _ = child.wait();
                alive_in_thread.store(false, Ordering::SeqCst);
            })?;
        let pid = started_rx
            .recv()
            .map_err(|_| io::Error::other("the browser's thread ended"))??;
        watch_memory(pid, max_memory, alive.clone(), over_memory.clone());
        let pipes = Pipes {
            commands: pipe::Sender::from_owned_fd(OwnedFd::from(to_browser_write))?,
            messages: pipe::Receiver::from_owned_fd(OwnedFd::from(from_browser_read))?,
        };
        Ok((
            Process {
                pid,
                alive,
                over_memory,
                profile,
                _dead_end: dead_end,
            },
            pipes,
        ))
    }

    /// Whether it still runs.
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Whether it was killed for using more than its memory.
    pub fn over_memory(&self) -> bool {
        self.over_memory.load(Ordering::SeqCst)
    }

    /// The last lines the browser wrote on stderr, for an error message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.profile.path().join(LOG)).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.contains("unexpected operator"))
            .collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        kill_tree(self.pid);
    }
}

/// The browser's stderr, in its profile folder.
const LOG: &str = "stderr.log";

fn log_file(profile: &Path) -> io::Result<std::fs::File> {
    std::fs::File::create(profile.join(LOG))
}

/// The command line: headless, a fresh profile, the protocol on the pipe, a window of fixed
/// size, no network of its own, none of the background services a desktop browser runs.
fn flags(profile: &Path, proxy_port: u16) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--headless",
        "--remote-debugging-pipe",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-breakpad",
        "--disable-crash-reporter",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,AutofillServerCommunication",
        "--metrics-recording-only",
        "--mute-audio",
        "--hide-scrollbars",
        "--force-color-profile=srgb",
        "--font-render-hinting=none",
        "--disable-dev-shm-usage",
        // Loopback is not exempt from the proxy below.
        "--proxy-bypass-list=<-loopback>",
    ]
    .map(String::from)
    .to_vec();
    // Everything it does not hand to vaultkeep goes to a proxy that refuses.
    flags.push(format!("--proxy-server=http://127.0.0.1:{proxy_port}"));
    flags.push(format!("--user-data-dir={}", profile.display()));
    flags.push(format!("--window-size={},{}", WINDOW.0, WINDOW.1));
    // Chromium refuses to run as root with its sandbox; root (containers, CI) runs it
    // without, as every headless tool must.
    if rustix::process::geteuid().is_root() {
        flags.push("--no-sandbox".into());
    }
    flags
}

/// The browser's processes: its group, and its descendants wherever they went (the crash
/// handler starts a session of its own).
fn tree(pid: i32) -> Vec<i32> {
    let mut all: Vec<(i32, i32, i32)> = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // After the command name, which may hold spaces: state, ppid, pgrp, ...
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (Some(ppid), Some(pgrp)) = (
            fields.get(1).and_then(|f| f.parse().ok()),
            fields.get(2).and_then(|f| f.parse().ok()),
        ) else {
            continue;
        };
        all.push((p, ppid, pgrp));
    }
    let mut members: Vec<i32> = vec![pid];
    let mut i = 0;
    while i < members.len() {
        let parent = members[i];
        for &(p, ppid, pgrp) in &all {
            if (ppid == parent || pgrp == pid) && !members.contains(&p) {
                members.push(p);
            }
        }
        i += 1;
    }
    members
}

/// Memory the processes use, counted as the kernel shares it out: each process's
/// proportional set size (pages shared between the browser's processes counted once).
fn memory(members: &[i32]) -> u64 {
    members
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).ok())
        .filter_map(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .sum()
}

/// Kills the browser's group and every descendant.
fn kill_tree(pid: i32) {
    use rustix::process::{Pid, Signal, kill_process, kill_process_group};
    let members = tree(pid);
    // A process that is gone already is no error worth seeing.
    if let Some(group) = Pid::from_raw(pid) {
        let _ = kill_process_group(group, Signal::KILL);
    }
    for p in members {
        if let Some(p) = Pid::from_raw(p) {
            let _ = kill_process(p, Signal::KILL);
        }
    }
}

/// Measures the browser's memory while it runs; kills it when it passes `max`.
fn watch_memory(pid: i32, max: u64, alive: Arc<AtomicBool>, over: Arc<AtomicBool>) {
    let _ = std::thread::Builder::new()
        .name("vaultkeep-browser-memory".into())
        .spawn(move || {
            while alive.load(Ordering::SeqCst) {
                let used = memory(&tree(pid));
                if used > max {
                    tracing::warn!(
                        used = %crate::report::human_bytes(used),
                        max = %crate::report::human_bytes(max),
                        "the browser used more memory than [browser] max_memory: stopped"
                    );
                    over.store(true, Ordering::SeqCst);
                    kill_tree(pid);
                    return;
                }
                std::thread::sleep(MEMORY_EVERY);
            }
        });
}

/// The executable to run: the configured one, or the first of the usual names on PATH.
pub fn find(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = configured {
        if path.components().count() > 1 {
            return path.is_file().then(|| path.to_path_buf());
        }
        return on_path(path.as_os_str());
    }
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .find_map(|name| on_path(name.as_ref()))
}

fn on_path(name: &std::ffi::OsStr) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
