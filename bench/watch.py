#!/usr/bin/env python3
"""Benchmark: the daemon on vaults of several sizes built by shared/bench/make-vault.

    cargo build --release && python3 bench/watch.py [--sizes 6000,22000,84000] [--edits 200] [--idle 30] [--burst 5000] [--dir DIR]

For each size, in one run: the daemon's memory (RSS) 2 s after its first scan of a fresh archive
and 15 s after the last burst (steady), its peak (VmHWM), its CPU time while the vault is
idle for --idle seconds, the latency from writing a note to its version appearing in
versions.jsonl (p50 and p95 over --edits edits, one at a time, debounce included), and the time
to record a burst of --burst notes changed at once (and a tenth of that burst, to show the time
follows the burst, not the vault). Baseline in the same run: `git status` on the same vault
(what any tool that notices changes must at least do).
Targets (issue 14): steady RSS at most 100 MB; idle CPU about 0; p95 at most 500 ms; a burst
recorded in a time proportional to the burst.
"""
import argparse, json, os, random, signal, statistics, subprocess, sys, tempfile, time, shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("VAULTKEEP_SHARED", os.path.join(ROOT, "..", "shared"))
BIN = os.path.join(ROOT, "target", "release", "vaultkeep")
TICK = os.sysconf("SC_CLK_TCK")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scan import vault_of, timed  # noqa: E402  (the same vaults as bench/scan.py)


def proc_mb(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def status(vault, archive):
    out = subprocess.run([BIN, "--vault", vault, "--archive", archive, "status", "--json"], capture_output=True, text=True)
    return json.loads(out.stdout) if out.stdout else {}


class Lines:
    """Counts the lines of a growing file, reading only what was appended since the last
    count (reading the whole log at each poll would cost the large vault more than the small,
    and take CPU from the daemon being measured)."""

    def __init__(self, path):
        self.path, self.offset, self.count = path, 0, 0

    def now(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:  # no version recorded yet
            return 0
        self.offset += len(data)
        self.count += data.count(b"\n")
        return self.count


def start_daemon(binary, vault, archive, run):
    """`binary watch` on `vault`, with snapshots and scheduled jobs off: they would measure the
    network, not the daemon."""
    config = os.path.join(run, "vaultkeep.toml")
    with open(config, "w") as f:
        f.write('[watch]\nsnapshots = false\ncheck_links_every = "0"\ncompost_every = "0"\n')
    return subprocess.Popen([binary, "--vault", vault, "--archive", archive, "--config", config, "-q", "watch",
                             "--log-file", os.path.join(run, "watch.log")])


def wait_for_lines(log, count, limit):
    start = time.perf_counter()
    while log.now() < count:
        if time.perf_counter() - start > limit:
            sys.exit(f"{log.path}: {count} lines not reached within {limit} s")
        time.sleep(0.01)
    return time.perf_counter() - start


def burst(notes, log, size, tag):
    """Appends a line to `size` notes at once; seconds until all their versions are recorded."""
    before = log.now()
    for note in notes[:size]:
        with open(note, "a") as f:
            f.write(f"\nburst {tag}\n")
    return wait_for_lines(log, before + size, 600)


def measure(work, size, a):
    built, made = vault_of(work, size)
    run = tempfile.mkdtemp(prefix=f"watch-{size}-", dir=work)
    # The edits change notes: they go to a copy, the built vault stays for the next run.
    vault = os.path.join(run, "vault")
    shutil.copytree(built, vault)
    files = sum(len(names) for _, _, names in os.walk(vault))
    notes = sorted(os.path.join(d, n) for d, _, names in os.walk(vault) for n in names if n.endswith(".md"))
    archive = os.path.join(run, "archive")
    git_env = dict(os.environ, GIT_DIR=os.path.join(run, "git"), GIT_WORK_TREE=vault)
    subprocess.run(["git", "init", "-q"], env=git_env, check=True)
    subprocess.run(["git", "add", "-A"], env=git_env, check=True, cwd=vault)
    daemon = start_daemon(BIN, vault, archive, run)
    try:
        start = time.perf_counter()
        while status(vault, archive).get("scans", 0) < 1:
            time.sleep(0.2)
        first_scan = time.perf_counter() - start
        time.sleep(2)
        rss_first = proc_mb(daemon.pid, "VmRSS")
        cpu0 = cpu_seconds(daemon.pid)
        time.sleep(a.idle)
        idle_cpu = cpu_seconds(daemon.pid) - cpu0
        log = Lines(os.path.join(archive, "versions.jsonl"))
        latencies = []
        rng = random.Random(1)
        for i in range(a.edits):
            note = rng.choice(notes)
            before = log.now()
            with open(note, "a") as f:
                f.write(f"\nedit {i}\n")
            latencies.append(wait_for_lines(log, before + 1, 10))
            time.sleep(0.05)
        small = burst(notes, log, a.burst // 10, "small")
        time.sleep(1)
        big = burst(notes, log, a.burst, "big")
        # Steady: once the allocator has handed back what the last scans freed (jemalloc
        # purges unused pages about 10 s after they are freed).
        time.sleep(15)
        rss_steady = proc_mb(daemon.pid, "VmRSS")
        hwm = proc_mb(daemon.pid, "VmHWM")
        status_time, _ = timed(["git", "status", "--porcelain"], cwd=vault, env=git_env)
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p95 = latencies[int(len(latencies) * 0.95) - 1] * 1000
        return {
            "files": files, "first": first_scan, "rss_first": rss_first, "rss": rss_steady, "hwm": hwm,
            "idle": idle_cpu, "p50": p50, "p95": p95, "small": small, "big": big, "status": status_time,
        }
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        shutil.rmtree(run, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="6000,22000,84000", help="notes per vault, comma-separated")
    p.add_argument("--edits", type=int, default=200)
    p.add_argument("--idle", type=int, default=30)
    p.add_argument("--burst", type=int, default=5000)
    p.add_argument("--dir", help="where to build vaults and archives")
    a = p.parse_args()
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    work = a.dir or tempfile.mkdtemp(prefix="vaultkeep-watchbench-")
    os.makedirs(work, exist_ok=True)
    rows = []
    try:
        for size in [int(s) for s in a.sizes.split(",")]:
            r = measure(work, size, a)
            print(f"{size}: {r}", file=sys.stderr)
            rows.append(r)
    finally:
        if not a.dir:
            shutil.rmtree(work, ignore_errors=True)
    n = a.burst
    print(f"| files | first scan | RSS after it | steady RSS | peak RSS | idle CPU ({a.idle} s) | write → recorded p50 / p95 | burst of {n // 10} | burst of {n} | `git status` |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['files']:,} | {r['first']:.1f} s | {r['rss_first']:.0f} MB | {r['rss']:.0f} MB | {r['hwm']:.0f} MB "
              f"| {r['idle']:.2f} s ({r['idle'] / a.idle * 100:.2f}%) | {r['p50']:.0f} / {r['p95']:.0f} ms "
              f"| {r['small']:.2f} s | {r['big']:.2f} s | {r['status']:.2f} s |")


if __name__ == "__main__":
    main()
