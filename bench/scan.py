#!/usr/bin/env python3
"""Benchmark: vaultkeep's first scan against `git add -A`, and its unchanged rescan against
`git status`, on vaults of several sizes built by shared/bench/make-vault, in one run.

    cargo build --release && python3 bench/scan.py [--sizes 6000,22000,84000] [--runs 3] [--dir DIR]

For each size, both tools read the same files from a warm page cache, alternating run by run,
and `sync` runs before every timed command so none pays for another's pending writes. Every
run writes into a folder of its own, and nothing is deleted until the end: on ext4, files
created soon after many were deleted cost more (the inode allocator skips recently freed
inodes), which would punish whichever tool runs after a deletion. git's repository lives
beside the vault (GIT_DIR), vaultkeep's archive too. Peak memory is each process's
`ru_maxrss`, read with wait4.

Prints one Markdown table: medians with the spread (min-max) of time and peak RSS, and the
ratio of the medians. The unchanged rescan runs twice: alone (a `stat` of every file), and
beside the running daemon (`vaultkeep watch`, which says which paths changed and vouches for
the rest, as git's fsmonitor would; the baseline stays plain `git status`). With
--after-itself, each rescan and `git status` is timed right after an untimed run of the same
command, so that neither pays for the other's after-effects. Targets (issue
14): first scan at most 0.5x `git add -A`, unchanged rescan at most 0.5x `git status`;
first-scan peak RSS at most 150 MB and rescan at most 60 MB at 84,000 files.
"""
import argparse, json, os, shlex, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("VAULTKEEP_SHARED", os.path.join(ROOT, "..", "shared"))
BIN = os.path.join(ROOT, "target", "release", "vaultkeep")


def timed(cmd, cwd=None, env=None):
    """Runs cmd; its wall time in seconds and its peak RSS in MiB."""
    # Flush pending writes first, so no command pays for another's (or make-vault's) data.
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    rc = os.waitstatus_to_exitcode(status)
    if rc not in (0, 1):  # vaultkeep exits 1 when it lists problem files (the kepano templates)
        sys.exit(f"{cmd} failed with exit code {rc}")
    return elapsed, usage.ru_maxrss / 1024


def timed_after_itself(cmd, cwd=None, env=None):
    """Runs cmd once untimed, then times it: each command right after a run of its own, as
    hyperfine's warm-up runs do. On this machine a short command runs slower right after
    another program, or after the processor was idle (see the README's benchmarks)."""
    subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return timed(cmd, cwd=cwd, env=env)


def warm(path):
    for dirpath, _, names in os.walk(path):
        for n in names:
            with open(os.path.join(dirpath, n), "rb") as f:
                while f.read(1 << 20):
                    pass


def vault_of(work, notes):
    """A vault of about `notes` notes, built once (kept across runs when --dir is given)."""
    vault = os.path.join(work, f"vault-{notes}")
    made = os.path.join(work, f"vault-{notes}.made")
    if not os.path.exists(made):
        shutil.rmtree(vault, ignore_errors=True)
        out = subprocess.run([sys.executable, os.path.join(SHARED, "bench", "make-vault"), vault, "--notes", str(notes)],
                             check=True, capture_output=True, text=True).stdout.strip()
        with open(made, "w") as f:
            f.write(out)
    with open(made) as f:
        return vault, f.read().strip()


def seconds(v):
    """A time as a person reads it: milliseconds below a second (a rescan is tens of them)."""
    return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"


def spread(values, fmt):
    m = statistics.median(values)
    return m, f"{fmt(m)} ({fmt(min(values))}-{fmt(max(values))})"


def measure(work, notes, runs, after_itself=False):
    vault, made = vault_of(work, notes)
    files = sum(len(names) for _, _, names in os.walk(vault))
    print(f"{notes}: {made}", file=sys.stderr)
    warm(vault)
    runs_dir = tempfile.mkdtemp(prefix=f"runs-{notes}-", dir=work)
    git = ["git", "-c", "core.autocrlf=false", "-c", "gc.auto=0"]
    first, add = [], []
    for run in range(runs):
        env = dict(os.environ, GIT_DIR=os.path.join(runs_dir, f"git-{run}"), GIT_WORK_TREE=vault)
        subprocess.run(git + ["init", "-q"], env=env, check=True)
        add.append(timed(git + ["add", "-A"], cwd=vault, env=env))
        archive = os.path.join(runs_dir, f"archive-{run}")
        first.append(timed([BIN, "--vault", vault, "--archive", archive, "-q", "scan"]))
    env = dict(os.environ, GIT_DIR=os.path.join(runs_dir, "git-0"), GIT_WORK_TREE=vault)
    archive = os.path.join(runs_dir, "archive-0")
    rescan_timed = timed_after_itself if after_itself else timed
    status, rescan = [], []
    for _ in range(runs + 1):
        status.append(rescan_timed(git + ["status", "--porcelain"], cwd=vault, env=env))
        rescan.append(rescan_timed([BIN, "--vault", vault, "--archive", archive, "-q", "scan"]))
    # Beside the running daemon, which vouches for the files it saw not change (as git's
    # fsmonitor does); its snapshots and jobs are off, so that it only watches.
    config = os.path.join(runs_dir, "quiet.toml")
    with open(config, "w") as f:
        f.write('[watch]\nsnapshots = false\ncheck_links_every = "0"\ncompost_every = "0"\n')
    vk = [BIN, "--config", config, "--vault", vault, "--archive", archive]
    daemon = subprocess.Popen(vk + ["watch", "--log-file", os.path.join(runs_dir, "watch.log")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Until it vouches (its first scan done). The report is not read here: a large one
        # would grow this process, and with it every later child's ru_maxrss, which starts
        # from the parent's at fork.
        deadline = time.time() + 120
        # First the daemon holds the archive: a scan before that would record, holding it,
        # and the daemon would refuse to start.
        while not json.loads(subprocess.run(vk + ["status", "--json"], capture_output=True).stdout)["daemon"]["running"]:
            if daemon.poll() is not None or time.time() > deadline:
                sys.exit("the daemon did not start")
            time.sleep(0.1)
        vouched = f"{' '.join(map(shlex.quote, vk))} -q scan --json | grep -q daemon_reported"
        while subprocess.run(["sh", "-c", vouched]).returncode != 0:
            if time.time() > deadline:
                why = subprocess.run(vk + ["-v", "-q", "scan"], capture_output=True, text=True).stderr
                with open(os.path.join(runs_dir, "watch.log")) as log:
                    sys.exit(f"the daemon did not start vouching within 2 minutes:\n{why}\n{log.read()[-3000:]}")
            time.sleep(0.2)
        status2, beside = [], []
        for _ in range(runs):
            status2.append(rescan_timed(git + ["status", "--porcelain"], cwd=vault, env=env))
            beside.append(rescan_timed(vk + ["-q", "scan"]))
    finally:
        daemon.terminate()
        daemon.wait()
    # The first rescan and status settle each tool's index (racily clean entries).
    return files, runs_dir, [("first scan", "`git add -A`", first, add, 0.5),
                             ("unchanged rescan", "`git status`", rescan[1:], status[1:], 0.5),
                             ("unchanged rescan beside the daemon", "`git status`", beside, status2, 0.5)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="6000,22000,84000", help="notes per vault, comma-separated")
    p.add_argument("--runs", type=int, default=3, help="runs of each command (median and spread)")
    p.add_argument("--dir", help="where to build vaults (kept for the next run) and write archives")
    p.add_argument("--after-itself", action="store_true",
                   help="time each rescan and `git status` right after an untimed run of the same command")
    a = p.parse_args()
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    work = a.dir or tempfile.mkdtemp(prefix="vaultkeep-bench-")
    os.makedirs(work, exist_ok=True)
    rows, made = [], []
    try:
        for notes in [int(s) for s in a.sizes.split(",")]:
            files, runs_dir, results = measure(work, notes, a.runs, a.after_itself)
            made.append(runs_dir)
            for what, base, ours, theirs, target in results:
                t, t_s = spread([x[0] for x in ours], seconds)
                r, r_s = spread([x[1] for x in ours], lambda v: f"{v:.0f} MB")
                bt, bt_s = spread([x[0] for x in theirs], seconds)
                br, br_s = spread([x[1] for x in theirs], lambda v: f"{v:.0f} MB")
                ok = "met" if t / bt <= target else "missed"
                rows.append(f"| {files:,} | {what} | {t_s} | {r_s} | {base} | {bt_s} | {br_s} | **{t/bt:.3f}x** ({ok}: ≤ {target}x) |")
        print(f"| files | what | vaultkeep time | vaultkeep peak RSS | baseline | baseline time | baseline peak RSS | time ratio |")
        print("|---|---|---|---|---|---|---|---|")
        print("\n".join(rows))
    finally:
        for d in made:
            shutil.rmtree(d, ignore_errors=True)
        if not a.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
