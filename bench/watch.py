#!/usr/bin/env python3
"""Benchmark: the daemon on a 20,000-note vault built by shared/bench/make-vault.

    cargo build --release && python3 bench/watch.py [--notes 20000] [--edits 200] [--idle 60]

Measures, in one run: the daemon's memory (RSS) once its first scan of a fresh archive is done,
its CPU time while the vault is idle for --idle seconds, and the latency from writing a note to
its version appearing in versions.jsonl, p50 and p95 over --edits edits (debounce included).
Targets (issue 4): RSS at most 100 MB; idle CPU about 0; p95 at most 500 ms.
"""
import argparse, json, os, random, shutil, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("VAULTKEEP_SHARED", os.path.join(ROOT, "..", "shared"))
BIN = os.path.join(ROOT, "target", "release", "vaultkeep")
TICK = os.sysconf("SC_CLK_TCK")

def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0

def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime

def status(vault, archive):
    out = subprocess.run([BIN, "--vault", vault, "--archive", archive, "status", "--json"], capture_output=True, text=True)
    return json.loads(out.stdout) if out.stdout else {}

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--notes", type=int, default=20000)
    p.add_argument("--edits", type=int, default=200)
    p.add_argument("--idle", type=int, default=60)
    a = p.parse_args()
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="vaultkeep-watchbench-")
    vault, archive = os.path.join(work, "vault"), os.path.join(work, "archive")
    made = subprocess.run([sys.executable, os.path.join(SHARED, "bench", "make-vault"), vault, "--notes", str(a.notes)],
                          check=True, capture_output=True, text=True).stdout.strip()
    notes = [os.path.join(d, n) for d, _, names in os.walk(vault) for n in names if n.endswith(".md")]
    # Snapshots and scheduled jobs would measure the network, not the daemon.
    config = os.path.join(work, "vaultkeep.toml")
    with open(config, "w") as f:
        f.write('[watch]\nsnapshots = false\ncheck_links_every = "0"\ncompost_every = "0"\n')
    daemon = subprocess.Popen([BIN, "--vault", vault, "--archive", archive, "--config", config, "-q", "watch",
                               "--log-file", os.path.join(work, "watch.log")])
    try:
        start = time.perf_counter()
        while status(vault, archive).get("scans", 0) < 1:
            time.sleep(0.2)
        first_scan = time.perf_counter() - start
        time.sleep(1)
        rss = rss_mb(daemon.pid)
        cpu0 = cpu_seconds(daemon.pid)
        time.sleep(a.idle)
        idle_cpu = cpu_seconds(daemon.pid) - cpu0
        log = os.path.join(archive, "versions.jsonl")
        latencies = []
        rng = random.Random(1)
        for i in range(a.edits):
            note = rng.choice(notes)
            rel = os.path.relpath(note, vault)
            offset = os.path.getsize(log)
            with open(note, "a") as f:
                f.write(f"\nedit {i}\n")
            t0 = time.perf_counter()
            needle = json.dumps(rel)[1:-1]
            while True:
                with open(log, "rb") as f:
                    f.seek(offset)
                    tail = f.read().decode("utf-8", "replace")
                if f'"path":"{needle}"' in tail:
                    break
                if time.perf_counter() - t0 > 10:
                    sys.exit(f"edit {i} of {rel} not recorded within 10 s")
                time.sleep(0.002)
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.05)
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p95 = latencies[int(len(latencies) * 0.95) - 1] * 1000
        print(f"| daemon on {made.split(' in ')[0]} | measured | target |")
        print("|---|---|---|")
        print(f"| first scan of a fresh archive | {first_scan:.1f} s | - |")
        print(f"| memory (RSS) after the first scan | {rss:.0f} MB | ≤ 100 MB ({'met' if rss <= 100 else 'missed'}) |")
        print(f"| CPU while idle for {a.idle} s | {idle_cpu:.2f} s ({idle_cpu / a.idle * 100:.2f}%) | about 0 ({'met' if idle_cpu / a.idle < 0.005 else 'missed'}) |")
        print(f"| write → version recorded, p50 over {a.edits} edits | {p50:.0f} ms | - |")
        print(f"| write → version recorded, p95 | {p95:.0f} ms | ≤ 500 ms ({'met' if p95 <= 500 else 'missed'}) |")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
