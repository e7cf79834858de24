#!/usr/bin/env python3
"""Benchmark: `vaultkeep archive export --wacz` against `wacz create`, in one run (issue 10).

    cargo build --release && python3 bench/export.py [--pages 500,2000] [--runs 3]

For each size, generates a site of that many pages (text, a shared style sheet, script and
logo, one image of its own per page), serves it on 127.0.0.1, and captures it twice:
`vaultkeep archive snapshot --depth` into an archive, and warcio's `capture_http` around plain
HTTP requests into a WARC (the WARCs `wacz create` is made for). Then times the two packagers
on the same content:

- `vaultkeep archive export --wacz out.wacz --all`
- `wacz create --detect-pages --text -o ref.wacz site.warc.gz` (both list pages with text)

and prints a Markdown table of median times and peak memory (the child's maximum resident set
size, from wait4). Target: faster than `wacz create`, and peak memory independent of the
archive's size (compare the rows). The Python tools come from target/py-tools, the venv the
tests create (`cargo test wacz` makes it).
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, threading, time
import http.server, functools

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "vaultkeep")
VENV = os.path.join(ROOT, "target", "py-tools")
PY = os.path.join(VENV, "bin", "python")
WACZ = os.path.join(VENV, "bin", "wacz")

WORDS = ("cooperative commons governance agreement member steward proposal consent budget "
         "network venture contributor handbook practice retreat facilitation").split()


def make_site(root, pages):
    """`pages` pages in a tree (each links to its children and back to the index)."""
    os.makedirs(os.path.join(root, "img"))
    with open(os.path.join(root, "style.css"), "w") as f:
        f.write("body{font-family:sans-serif;max-width:50em;margin:auto}\n"
                "header{background:url(img/logo.png) no-repeat}\n" * 20)
    with open(os.path.join(root, "site.js"), "w") as f:
        f.write("document.addEventListener('DOMContentLoaded',()=>{});\n" * 50)
    with open(os.path.join(root, "img", "logo.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + os.urandom(8_000))
    for i in range(pages):
        children = [c for c in (2 * i + 1, 2 * i + 2) if c < pages]
        text = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(800))
        links = "".join(f'<li><a href="/p{c}.html">Page {c}</a></li>' for c in children)
        name = "index.html" if i == 0 else f"p{i}.html"
        with open(os.path.join(root, name), "w") as f:
            f.write(f"<!doctype html><html><head><title>Page {i}</title>"
                    f'<link rel="stylesheet" href="/style.css"><script src="/site.js"></script>'
                    f'</head><body><header><img src="/img/logo.png"></header><h1>Page {i}</h1>'
                    f'<p>{text}</p><img src="/img/p{i}.png"><ul>{links}'
                    f'<li><a href="/">Home</a></li></ul></body></html>')
        with open(os.path.join(root, "img", f"p{i}.png"), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + os.urandom(30_000))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(root):
    handler = functools.partial(QuietHandler, directory=root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run_measured(cmd, **kw):
    """Seconds and peak resident memory (MiB) of `cmd`, which must succeed."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024, out


def warcio_capture(url, files, warc):
    """The site fetched with requests inside warcio's capture_http."""
    script = (
        "import sys\n"
        "from warcio.capture_http import capture_http\n"
        "import requests\n"
        "urls = sys.stdin.read().split()\n"
        "with capture_http(sys.argv[1]):\n"
        "    with requests.Session() as s:\n"
        "        for u in urls:\n"
        "            s.get(u)\n")
    urls = "\n".join(url + f for f in files)
    subprocess.run([PY, "-c", script, warc], input=urls.encode(), check=True)


def bench_size(work, pages, runs):
    site = os.path.join(work, f"site-{pages}")
    make_site(site, pages)
    server = serve(site)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    archive = os.path.join(work, f"archive-{pages}")
    result = subprocess.run([BIN, "--archive", archive, "-q", "archive", "snapshot", url,
                             "--depth", "30", "--max-pages", str(pages + 10), "--allow-private",
                             "--ignore-robots", "--json"], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"snapshot failed: {result.stderr[-2000:]}")
    files = []
    for d, _, names in os.walk(site):
        for n in names:
            rel = os.path.relpath(os.path.join(d, n), site)
            files.append("" if rel == "index.html" else rel)
    warc = os.path.join(work, f"site-{pages}.warc.gz")
    warcio_capture(url, sorted(files), warc)
    server.shutdown()
    ours, theirs = [], []
    for run in range(runs):
        out = os.path.join(work, f"ours-{pages}-{run}.wacz")
        ours.append(run_measured([BIN, "--archive", archive, "-q", "archive", "export",
                                  "--wacz", out, "--all", "--json"]))
        ref = os.path.join(work, f"ref-{pages}-{run}.wacz")
        theirs.append(run_measured([WACZ, "create", "--detect-pages", "--text", "-o", ref, warc]))
    report = json.loads(ours[0][2])
    return {
        "pages": pages,
        "captures": report["captures"],
        "pages_listed": report["pages"],
        "archive_mb": sum(os.path.getsize(os.path.join(d, n))
                          for d, _, ns in os.walk(os.path.join(archive, "objects")) for n in ns) / 1e6,
        "ours_s": statistics.median(t for t, _, _ in ours),
        "ours_mb": max(m for _, m, _ in ours),
        "ref_s": statistics.median(t for t, _, _ in theirs),
        "ref_mb": max(m for _, m, _ in theirs),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pages", default="500,2000", help="site sizes, comma-separated")
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    if not os.path.exists(WACZ):
        sys.exit("the Python tools are missing: run `cargo test wacz` once (it creates target/py-tools)")
    work = tempfile.mkdtemp(prefix="vaultkeep-exportbench-")
    try:
        rows = [bench_size(work, int(n), a.runs) for n in a.pages.split(",")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| pages | captures | archive | `wacz create` | vaultkeep export | ratio | peak memory, wacz create | peak memory, vaultkeep |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['pages']} | {r['captures']} | {r['archive_mb']:.0f} MB | {r['ref_s']:.2f} s | "
              f"{r['ours_s']:.2f} s | {r['ref_s'] / r['ours_s']:.1f}x faster | {r['ref_mb']:.0f} MiB | "
              f"{r['ours_mb']:.0f} MiB |")


if __name__ == "__main__":
    main()
