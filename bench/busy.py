#!/usr/bin/env python3
"""Benchmark: the daemon's write -> recorded latency while another program fills the disk's
write-back cache (a large copy, a download, a build on the same file system).

    cargo build --release && python3 bench/busy.py [--edits 10] [--mb 8000] [--binary PATH]

The daemon watches a copy of the sample vault (snapshots and jobs off). First --edits appends
to a note, one at a time, each timed until its version line appears in versions.jsonl (the
150 ms debounce included): the quiet baseline, in the same run. Then `dd` writes --mb MB of
zeros to a file beside the vault, and the same edits are timed while it runs. Prints the
median and the worst of each, and their ratio. A daemon that synced the whole file system
(`syncfs`) to record a note waited for the copy's pending pages too; one that syncs the
objects its records name does not. `--binary` measures another build.
"""
import argparse, os, shutil, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "vaultkeep")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from watch import Lines, start_daemon, wait_for_lines  # noqa: E402  (the same as bench/watch.py)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--edits", type=int, default=10)
    p.add_argument("--mb", type=int, default=8000, help="MB the competing writer writes")
    p.add_argument("--binary", default=BIN)
    a = p.parse_args()
    if not os.path.exists(a.binary):
        sys.exit("build first: cargo build --release")
    run = tempfile.mkdtemp(prefix="vaultkeep-busy-")
    free_mb = shutil.disk_usage(run).free // (1 << 20)
    if free_mb < 2 * a.mb:
        shutil.rmtree(run)
        sys.exit(f"{free_mb} MB free beside {run}: the writer needs --mb {a.mb} and as much to spare; lower --mb")
    vault, archive = os.path.join(run, "vault"), os.path.join(run, "archive")
    shutil.copytree(os.path.join(ROOT, "vault"), vault)
    daemon = start_daemon(a.binary, vault, archive, run)
    log = Lines(os.path.join(archive, "versions.jsonl"))
    note = os.path.join(vault, "About this vault.md")

    def edit(tag):
        before = log.now()
        with open(note, "a") as f:
            f.write(f"\nedit {tag}\n")
        return wait_for_lines(log, before + 1, 60)

    try:
        while log.now() == 0:
            time.sleep(0.1)
        time.sleep(1)
        quiet = []
        for i in range(a.edits):
            quiet.append(edit(f"quiet {i}"))
            time.sleep(0.3)
        writer = subprocess.Popen(["dd", "if=/dev/zero", f"of={os.path.join(run, 'big')}", "bs=1M",
                                   f"count={a.mb}", "status=none"])
        time.sleep(1)
        busy = []
        for i in range(a.edits):
            busy.append(edit(f"busy {i}"))
            time.sleep(0.3)
        still_writing = writer.poll() is None
        writer.wait()
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        shutil.rmtree(run, ignore_errors=True)
    ms = lambda xs: f"{statistics.median(xs) * 1000:.0f} ms (worst {max(xs) * 1000:.0f} ms)"
    print("| edits | quiet disk | while dd writes %d MB | ratio of medians |" % a.mb)
    print("|---|---|---|---|")
    print(f"| {a.edits} | {ms(quiet)} | {ms(busy)} | **{statistics.median(busy) / statistics.median(quiet):.2f}x** |")
    if not still_writing:
        print("(the writer finished before the last edit: raise --mb)")


if __name__ == "__main__":
    main()
