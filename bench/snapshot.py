#!/usr/bin/env python3
"""Benchmark: vaultkeep's snapshot of a whole site against `wget -m -p -np -E`, in one run.

    cargo build --release && python3 bench/snapshot.py [--runs 3] [--delay-ms 50]

Serves shared/data/sites/enspiral-handbook with shared/bench/slow-server (a delay per request,
like a distant server), then times `wget -m -p -np -E -e robots=off` and
`vaultkeep archive snapshot --depth 20` on it, checks that vaultkeep captured every file wget
got, and prints a Markdown table of medians. Target (issue 3): at least 5x faster than wget.

Then (issue 8) a hostile page: one page with 100,000 `<img>`, each image present on the server,
snapshotted under the default limits; prints its time, peak memory (GNU time's maximum resident
set size) and what the record says. Target: at most 150 MB, finishing within the limits.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time, urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("VAULTKEEP_SHARED", os.path.join(ROOT, "..", "shared"))
BIN = os.path.join(ROOT, "target", "release", "vaultkeep")

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--delay-ms", type=int, default=50)
    a = p.parse_args()
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    if not shutil.which("wget"):
        sys.exit("wget is needed (apt-get install wget)")
    work = tempfile.mkdtemp(prefix="vaultkeep-snapbench-")
    port_file = os.path.join(work, "port")
    server = subprocess.Popen([sys.executable, os.path.join(SHARED, "bench", "slow-server"),
                               os.path.join(SHARED, "data", "sites", "enspiral-handbook"),
                               "--delay-ms", str(a.delay_ms), "--port-file", port_file],
                              stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.05)
        port = open(port_file).read().strip()
        url = f"http://127.0.0.1:{port}/"
        wget_times, ours_times = [], []
        for run in range(a.runs):
            out = os.path.join(work, f"wget-{run}")
            os.makedirs(out)
            start = time.perf_counter()
            subprocess.run(["wget", "-q", "-m", "-p", "-np", "-E", "-e", "robots=off", url], cwd=out)
            wget_times.append(time.perf_counter() - start)
            archive = os.path.join(work, f"archive-{run}")
            start = time.perf_counter()
            result = subprocess.run([BIN, "--archive", archive, "-q", "archive", "snapshot", url, "--depth", "20",
                                     "--allow-private", "--ignore-robots", "--json"], capture_output=True, text=True)
            ours_times.append(time.perf_counter() - start)
            if run == 0:
                snap = json.loads(result.stdout)["snapshots"][0]
        wget_root = os.path.join(work, "wget-0", f"127.0.0.1:{port}")
        wget_files = set()
        for d, _, names in os.walk(wget_root):
            for n in names:
                wget_files.add("/" + os.path.relpath(os.path.join(d, n), wget_root))
        record = json.loads(subprocess.run([BIN, "--archive", os.path.join(work, "archive-0"), "archive", "show",
                                            snap["id"], "--json"], capture_output=True, text=True).stdout)
        ours = set()
        for c in record["captures"]:
            for u in (c["url"], c["final_url"]):
                s = urllib.parse.urlsplit(u)
                ours.add(urllib.parse.unquote(s.path) + ("?" + s.query if "?" in u else ""))
        def got(path):
            candidates = {path}
            if path.endswith("index.html"):
                candidates.add(path[: -len("index.html")])
            if path.endswith(".html"):
                candidates.add(path[: -len(".html")])  # wget -E added the extension
            return bool(candidates & ours)
        missing = sorted(f for f in wget_files if not got(f))
        m = statistics.median
        ratio = m(wget_times) / m(ours_times)
        print(f"| site (slow-server, {a.delay_ms} ms per request) | wget -m -p -np -E | vaultkeep snapshot --depth 20 | speed-up | target |")
        print("|---|---|---|---|---|")
        print(f"| enspiral handbook, {len(wget_files)} files | {m(wget_times):.2f} s, {len(wget_files)} files | "
              f"{m(ours_times):.2f} s, {len(record['captures'])} captures ({snap['failures']} failures recorded) | "
              f"**{ratio:.1f}x** | ≥ 5x ({'met' if ratio >= 5 else 'missed'}) |")
        if missing:
            print(f"\nfiles wget got that vaultkeep did not: {missing}")
            sys.exit(1)
        print(f"\nvaultkeep captured every one of the {len(wget_files)} files wget got.")
        heavy_page(work, a.runs)
    finally:
        server.terminate()
        shutil.rmtree(work, ignore_errors=True)

def heavy_page(work, runs):
    """One page of 100,000 images under the default limits: time and peak memory."""
    site = os.path.join(work, "heavy")
    os.makedirs(os.path.join(site, "i"))
    with open(os.path.join(site, "index.html"), "w") as f:
        f.write("<!doctype html><title>heavy</title>")
        f.write("".join(f'<img src="/i/{i}.png">' for i in range(100_000)))
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 60
    for i in range(100_000):
        with open(os.path.join(site, "i", f"{i}.png"), "wb") as f:
            f.write(png)
    port_file = os.path.join(work, "heavy-port")
    server = subprocess.Popen([sys.executable, os.path.join(SHARED, "bench", "slow-server"), site,
                               "--delay-ms", "0", "--port-file", port_file], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.05)
        url = f"http://127.0.0.1:{open(port_file).read().strip()}/"
        times, peaks = [], []
        for run in range(runs):
            archive = os.path.join(work, f"heavy-archive-{run}")
            start = time.perf_counter()
            r = subprocess.run(["/usr/bin/time", "-f", "%M", BIN, "--archive", archive, "-q", "archive", "snapshot",
                                url, "--allow-private", "--json"], capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            peaks.append(int(r.stderr.strip().splitlines()[-1]) / 1024)
            summary = json.loads(r.stdout)["snapshots"][0]
        m = statistics.median
        print()
        print("| page | time | peak memory | record | target |")
        print("|---|---|---|---|---|")
        print(f"| one page, 100,000 `<img>` (default limits, loopback) | {m(times):.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in times)}) | {m(peaks):.0f} MB | {summary['resources']} images "
              f"captured, {summary['failures']} recorded as `limit`, incomplete: {summary.get('incomplete')!r} | "
              f"≤ 150 MB ({'met' if max(peaks) <= 150 else 'missed'}) |")
    finally:
        server.terminate()

if __name__ == "__main__":
    main()
