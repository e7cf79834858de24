#!/usr/bin/env python3
"""Rendering check: a handbook page served live and its offline copy opened from the file system
must look the same in Chromium.

    apt-get install -y chromium && cargo build --release && python3 bench/render-check.py

Serves shared/data/sites/enspiral-handbook on 127.0.0.1, snapshots a few pages with vaultkeep,
screenshots each page live (http://) and offline (file://) with headless Chromium, and compares
the two pictures pixel by pixel. A pixel differs when a channel differs by more than 8 (of 255).
Passes when at most 0.5% of the pixels differ on every page. Needs Pillow (installed into a venv
under target/ when missing).
"""
import functools, http.server, json, os, subprocess, sys, tempfile, threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("VAULTKEEP_SHARED", os.path.join(ROOT, "..", "shared"))
SITE = os.path.join(SHARED, "data", "sites", "enspiral-handbook")
BIN = os.path.join(ROOT, "target", "release", "vaultkeep")
PAGES = ["", "agreements/decisions.html", "money/index.html", "resources.html"]
THRESHOLD = 0.005
TOLERANCE = 8

def pillow():
    try:
        from PIL import Image  # noqa: F401
        return sys.executable
    except ImportError:
        venv = os.path.join(ROOT, "target", "render-venv")
        python = os.path.join(venv, "bin", "python")
        if not os.path.exists(python):
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
            subprocess.run([python, "-m", "pip", "install", "-q", "pillow"], check=True)
        return python

COMPARE = r"""
import sys
from PIL import Image, ImageChops
a, b = Image.open(sys.argv[1]).convert("RGB"), Image.open(sys.argv[2]).convert("RGB")
if a.size != b.size:
    print(1.0); sys.exit()
if len(b.getcolors(1 << 24) or []) < 10:
    print(1.0); sys.exit()  # a blank offline page proves nothing
diff = ImageChops.difference(a, b).point(lambda v: 255 if v > int(sys.argv[3]) else 0).convert("L")
print(sum(1 for v in diff.getdata() if v) / (a.size[0] * a.size[1]))
"""

class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

def screenshot(url, out, profile):
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--hide-scrollbars", f"--user-data-dir={profile}", "--window-size=1280,1600",
                    "--virtual-time-budget=5000", f"--screenshot={out}", url],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def main():
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    python = pillow()
    work = tempfile.mkdtemp(prefix="vaultkeep-render-")
    handler = functools.partial(Quiet, directory=SITE)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    archive = os.path.join(work, "archive")
    worst = 0.0
    print("| page | pixels that differ, live vs offline |")
    print("|---|---|")
    for page in PAGES:
        result = subprocess.run([BIN, "--archive", archive, "-q", "archive", "snapshot", base + page,
                                 "--allow-private", "--json"], capture_output=True, text=True, check=True)
        offline = json.loads(result.stdout)["snapshots"][0]["offline"]
        live_png, offline_png = os.path.join(work, "live.png"), os.path.join(work, "offline.png")
        screenshot(base + page, live_png, os.path.join(work, "profile-live"))
        screenshot("file://" + offline, offline_png, os.path.join(work, "profile-offline"))
        share = float(subprocess.run([python, "-c", COMPARE, live_png, offline_png, str(TOLERANCE)],
                                     capture_output=True, text=True, check=True).stdout)
        worst = max(worst, share)
        if page == "":
            os.replace(offline_png, os.path.join(ROOT, "target", "render-offline-index.png"))
        print(f"| /{page} | {share * 100:.3f}% |")
    server.shutdown()
    verdict = "pass" if worst <= THRESHOLD else "FAIL"
    print(f"\n{verdict}: worst page {worst * 100:.3f}% (threshold {THRESHOLD * 100:.1f}%)")
    sys.exit(0 if worst <= THRESHOLD else 1)

if __name__ == "__main__":
    main()
