#!/usr/bin/env python3
"""Benchmark: `vaultkeep remote push` against `rclone copy` of the same archive folder to the
same bucket of a local SeaweedFS, in one run (issue 13).

    cargo build --release && python3 bench/remote.py [--notes 20000] [--transfers 32]

Builds a vault with shared/bench/make-vault, scans it into an archive, starts SeaweedFS
(`weed mini`, from target/py-tools; `cargo test remote` installs it) on 127.0.0.1, then times:

- vaultkeep's first push of the archive (prefix `vk/`), `[remote] concurrency` = --transfers;
- `rclone copy ARCHIVE s3:vault/rclone --transfers N --checkers N` (Debian's rclone) of the same
  folder: the same files, the same number of requests in flight;
- vaultkeep's incremental push after 100 edits (appended lines in 100 notes, then a scan).

Prints a Markdown table. Targets: the first push at least as fast as rclone; the incremental
push under 2 s.
"""
import argparse, os, random, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("VAULTKEEP_SHARED", os.path.join(ROOT, "..", "shared"))
BIN = os.path.join(ROOT, "target", "release", "vaultkeep")
WEED = os.path.join(ROOT, "target", "py-tools", "bin", "weed")
KEY, SECRET = "bench-key", "bench-secret"


def start_weed(work):
    data = os.path.join(work, "weed")
    os.makedirs(os.path.join(data, "log"))
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
    proc = subprocess.Popen([WEED, f"-logdir={data}/log", "mini", f"-dir={data}", "-ip=127.0.0.1",
                             "-ip.bind=127.0.0.1", "-bucket=vault"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        code = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--aws-sigv4",
                               "aws:amz:us-east-1:s3", "--user", f"{KEY}:{SECRET}", "-H",
                               "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-X", "PUT", "--data", "x",
                               "http://127.0.0.1:8333/vault/ready-probe"], capture_output=True,
                              text=True).stdout
        if code == "200":
            return proc
        time.sleep(0.1)
    proc.kill()
    sys.exit("SeaweedFS did not start (is something else on port 8333?)")


def timed(cmd, env, cwd=None):
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{cmd[:3]} failed ({out.returncode}): {out.stderr[-2000:]}")
    return elapsed, out.stdout


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--notes", type=int, default=20000)
    p.add_argument("--transfers", type=int, default=32)
    a = p.parse_args()
    for tool, hint in ((BIN, "cargo build --release"), (WEED, "cargo test remote (installs SeaweedFS)")):
        if not os.path.exists(tool):
            sys.exit(f"missing {tool}: run {hint}")
    if not shutil.which("rclone"):
        sys.exit("rclone is needed: apt-get install rclone")
    work = tempfile.mkdtemp(prefix="vaultkeep-remotebench-")
    weed = None
    try:
        vault, archive = os.path.join(work, "vault"), os.path.join(work, "archive")
        subprocess.run([sys.executable, os.path.join(SHARED, "bench", "make-vault"), vault,
                        "--notes", str(a.notes)], check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(work, "vaultkeep.toml"), "w") as f:
            f.write(f'vault = "vault"\narchive = "archive"\n[remote]\nurl = "s3://vault/vk"\n'
                    f'endpoint = "http://127.0.0.1:8333"\npath_style = true\nconcurrency = {a.transfers}\n')
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
        subprocess.run([BIN, "-q", "scan"], cwd=work, env=env, stdout=subprocess.DEVNULL)
        files = sum(len(n) for _, _, n in os.walk(archive))
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, n in os.walk(archive) for f in n)
        objects = sum(len(n) for _, _, n in os.walk(os.path.join(archive, "objects")))
        weed = start_weed(work)

        ours, out = timed([BIN, "-q", "remote", "push", "--json"], env, cwd=work)
        renv = dict(env, RCLONE_CONFIG_S3_TYPE="s3", RCLONE_CONFIG_S3_PROVIDER="Other",
                    RCLONE_CONFIG_S3_ENDPOINT="http://127.0.0.1:8333", RCLONE_CONFIG_S3_ACCESS_KEY_ID=KEY,
                    RCLONE_CONFIG_S3_SECRET_ACCESS_KEY=SECRET, RCLONE_CONFIG_S3_FORCE_PATH_STYLE="true")
        # A custom CA bundle in the environment trips rclone 1.60's S3 client (plain http here).
        renv.pop("AWS_CA_BUNDLE", None)
        theirs, _ = timed(["rclone", "copy", archive, "s3:vault/rclone", "--transfers", str(a.transfers),
                           "--checkers", str(a.transfers)], renv)

        notes = [os.path.join(d, f) for d, _, n in os.walk(vault) for f in n if f.endswith(".md")]
        random.seed(1)
        for path in random.sample(notes, 100):
            with open(path, "a") as f:
                f.write("\nan edit for the benchmark\n")
        subprocess.run([BIN, "-q", "scan"], cwd=work, env=env, stdout=subprocess.DEVNULL)
        incremental, _ = timed([BIN, "-q", "remote", "push", "--json"], env, cwd=work)
    finally:
        if weed:
            weed.kill()
            weed.wait()
        shutil.rmtree(work, ignore_errors=True)
    print(f"| archive ({a.notes} notes: {objects} objects, {files} files, {size / 1e6:.0f} MB) | "
          f"time | against rclone |")
    print("|---|---|---|")
    print(f"| `rclone copy --transfers {a.transfers}` of the archive folder | {theirs:.2f} s | 1x |")
    print(f"| `vaultkeep remote push` (first) | {ours:.2f} s | **{theirs / ours:.2f}x** |")
    print(f"| `vaultkeep remote push` after 100 edits | {incremental:.2f} s | target < 2 s |")


if __name__ == "__main__":
    main()
