#!/usr/bin/env python3
"""Benchmark: vaultkeep's first scan against `git add -A`, and its unchanged rescan against
`git status`, on one large vault built by shared/bench/make-vault, in one run.

    cargo build --release && python3 bench/scan.py [--notes 20000] [--runs 5]

Both tools read the same files from a warm page cache (each file is read once before timing),
and `sync` runs before every timed command so none pays for another's pending writes.
git keeps its repository inside the vault (`.git`, which vaultkeep ignores as a dot-folder);
vaultkeep's archive lives beside the vault. Prints a Markdown table of medians and ratios.
Targets (issue 2): first scan at most 0.5x `git add -A`; rescan at most 1x `git status`.
"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("VAULTKEEP_SHARED", os.path.join(ROOT, "..", "shared"))
BIN = os.path.join(ROOT, "target", "release", "vaultkeep")

def timed(cmd, cwd=None):
    # Flush pending writes first, so no command pays for another's (or make-vault's) data.
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    rc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL).returncode
    elapsed = time.perf_counter() - start
    if rc not in (0, 1):  # vaultkeep exits 1 when it lists problem files (the kepano templates)
        sys.exit(f"{cmd} failed with exit code {rc}")
    return elapsed

def warm(path):
    for dirpath, _, names in os.walk(path):
        for n in names:
            with open(os.path.join(dirpath, n), "rb") as f:
                while f.read(1 << 20):
                    pass

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--notes", type=int, default=20000)
    p.add_argument("--runs", type=int, default=5, help="runs of each first scan and rescan (median)")
    p.add_argument("--dir", help="where to build the vault and archives (default: a temp folder)")
    a = p.parse_args()
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="vaultkeep-bench-", dir=a.dir)
    try:
        vault = os.path.join(work, "vault")
        made = subprocess.run([sys.executable, os.path.join(SHARED, "bench", "make-vault"), vault, "--notes", str(a.notes)],
                              check=True, capture_output=True, text=True).stdout.strip()
        print(f"vault: {made}", file=sys.stderr)
        warm(vault)
        git = ["git", "-c", "core.autocrlf=false", "-c", "gc.auto=0"]
        add, first = [], []
        for run in range(a.runs):
            shutil.rmtree(os.path.join(vault, ".git"), ignore_errors=True)
            subprocess.run(git + ["init", "-q"], cwd=vault, check=True)
            add.append(timed(git + ["add", "-A"], cwd=vault))
            archive = os.path.join(work, f"archive-{run}")
            first.append(timed([BIN, "--vault", vault, "--archive", archive, "-q", "scan"]))
        status, rescan = [], []
        archive = os.path.join(work, "archive-0")
        for _ in range(a.runs + 2):
            status.append(timed(git + ["status", "--porcelain"], cwd=vault))
            rescan.append(timed([BIN, "--vault", vault, "--archive", archive, "-q", "scan"]))
        status, rescan = status[2:], rescan[2:]  # the first runs settle git's and our index
        m = statistics.median
        rows = [
            ("first scan", "`git add -A` (after `git init`)", m(first), m(add), 0.5),
            ("unchanged rescan", "`git status`", m(rescan), m(status), 1.0),
        ]
        print(f"| what ({made.split(' in ')[0]}) | vaultkeep | baseline | baseline time | ratio | target |")
        print("|---|---|---|---|---|---|")
        for what, base, ours, theirs, target in rows:
            ok = "met" if ours / theirs <= target else "missed"
            print(f"| {what} | {ours*1000:.0f} ms | {base} | {theirs*1000:.0f} ms | **{ours/theirs:.2f}x** | ≤ {target}x ({ok}) |")
    finally:
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
