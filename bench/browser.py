#!/usr/bin/env python3
"""Benchmark: `vaultkeep archive snapshot --browser` against SingleFile (`single-file-cli`), with
the same Chromium, on the same script-built pages, in one run (issue 11).

    cargo build --release && python3 bench/browser.py [--pages 10] [--delay-ms 20]

Serves tests/data/sites/script-site (a page built entirely by its script: text from a fetch()
of JSON, a client-side route, a web font added by script, images loaded when scrolled into
view) on 127.0.0.1, each request delayed like a distant server's, at `--pages` addresses (/,
/about, then /p1, /p2... which the app renders too). For each page, each tool captures it in a
process of its own (a cold browser each time, as a person or a daemon runs them):

- vaultkeep: `vaultkeep archive snapshot --browser URL` (the offline copy's entry page)
- SingleFile: `single-file --browser-executable-path=<chromium> URL page.html`

Fidelity: Chromium's own `--screenshot` (window 1280 x 1000, scripts given 5 s of virtual time)
of the live page, then of each tool's offline copy opened from the file system with the network
cut off (a proxy that refuses); the share of pixels that differ (a channel by more than 8 of
255), as in bench/render-check.py. Prints a Markdown table of median seconds per page and the
mean and worst pixel difference. Target: at least SingleFile's fidelity, and no slower.

Needs Chromium (`apt-get install chromium`) and Node (SingleFile is fetched with npm into
target/single-file the first time).
"""
import argparse, functools, http.server, json, os, shutil, statistics, struct, subprocess, sys
import tempfile, threading, time, zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "vaultkeep")
SITE = os.path.join(ROOT, "tests", "data", "sites", "script-site")
SF_DIR = os.path.join(ROOT, "target", "single-file")
SF_VERSION = "2.0.83"


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("Chromium is needed: apt-get install chromium")


def single_file():
    exe = os.path.join(SF_DIR, "node_modules", ".bin", "single-file")
    if not os.path.exists(exe):
        os.makedirs(SF_DIR, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--prefix", SF_DIR, f"single-file-cli@{SF_VERSION}"],
                       check=True)
    return exe


def serve(delay):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            time.sleep(delay)
            last = self.path.split("?")[0].rsplit("/", 1)[-1]
            if "." not in last:
                self.path = "/index.html"  # the app's routes
            return super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=SITE))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def sandbox_flags():
    return ["--no-sandbox"] if os.geteuid() == 0 else []


def screenshot(url, out, offline):
    profile = tempfile.mkdtemp(prefix="bench-chromium-")
    flags = ["--headless", "--hide-scrollbars", "--force-color-profile=srgb", "--font-render-hinting=none",
             "--window-size=1280,1000", "--virtual-time-budget=5000", f"--user-data-dir={profile}",
             f"--screenshot={out}"] + sandbox_flags()
    if offline:
        flags += ["--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]
    subprocess.run([chromium()] + flags + [url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True, timeout=120)
    shutil.rmtree(profile, ignore_errors=True)


def png_pixels(path):
    """(width, height, rows of RGB bytes) of an 8-bit RGB or RGBA PNG."""
    data = open(path, "rb").read()
    pos, idat = 8, b""
    while pos < len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
    channels = {2: 3, 6: 4}[color]
    raw = zlib.decompress(idat)
    stride = w * channels
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line) if channels == 3 else bytes(v for j, v in enumerate(line) if j % 4 != 3))
        prev = line
    return w, h, rows


def differing(a, b):
    wa, ha, ra = png_pixels(a)
    wb, hb, rb = png_pixels(b)
    if (wa, ha) != (wb, hb):
        return 1.0
    bad = 0
    for x, y in zip(ra, rb):
        for i in range(0, len(x), 3):
            if abs(x[i] - y[i]) > 8 or abs(x[i + 1] - y[i + 1]) > 8 or abs(x[i + 2] - y[i + 2]) > 8:
                bad += 1
    return bad / (wa * ha)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pages", type=int, default=10)
    p.add_argument("--delay-ms", type=int, default=20)
    a = p.parse_args()
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    sf = single_file()
    server = serve(a.delay_ms / 1000)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    paths = ["/", "/about"] + [f"/p{i}" for i in range(1, max(0, a.pages - 2) + 1)]
    paths = paths[:a.pages]
    work = tempfile.mkdtemp(prefix="vaultkeep-browserbench-")
    ours_t, theirs_t, ours_d, theirs_d = [], [], [], []
    try:
        for n, path in enumerate(paths):
            url = base + path
            live = os.path.join(work, f"live-{n}.png")
            screenshot(url, live, offline=False)

            archive = os.path.join(work, f"archive-{n}")
            start = time.perf_counter()
            out = subprocess.run([BIN, "--archive", archive, "-q", "archive", "snapshot", "--browser",
                                  "--allow-private", "--json", url], capture_output=True, text=True)
            ours_t.append(time.perf_counter() - start)
            entry = json.loads(out.stdout)["snapshots"][0]["offline"]
            shot = os.path.join(work, f"ours-{n}.png")
            screenshot("file://" + entry, shot, offline=True)
            ours_d.append(differing(live, shot))

            saved = os.path.join(work, f"singlefile-{n}.html")
            start = time.perf_counter()
            subprocess.run([sf, f"--browser-executable-path={chromium()}",
                            "--browser-args=" + json.dumps(sandbox_flags()), url, saved],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=300)
            theirs_t.append(time.perf_counter() - start)
            shot = os.path.join(work, f"singlefile-{n}.png")
            screenshot("file://" + saved, shot, offline=True)
            theirs_d.append(differing(live, shot))
            print(f"{path}: vaultkeep {ours_t[-1]:.2f} s, {ours_d[-1]:.3%}; "
                  f"SingleFile {theirs_t[-1]:.2f} s, {theirs_d[-1]:.3%}", file=sys.stderr)
    finally:
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    om, tm = statistics.median(ours_t), statistics.median(theirs_t)
    print(f"| tool ({len(paths)} script-built pages, {a.delay_ms} ms per request) | seconds per page (median) "
          f"| pixels differing from the live page, mean | worst |")
    print("|---|---|---|---|")
    print(f"| SingleFile {SF_VERSION} | {tm:.2f} s | {statistics.mean(theirs_d):.3%} | {max(theirs_d):.3%} |")
    print(f"| vaultkeep --browser | {om:.2f} s ({tm / om:.1f}x faster) | {statistics.mean(ours_d):.3%} "
          f"| {max(ours_d):.3%} |")


if __name__ == "__main__":
    main()
