#!/usr/bin/env python3
"""Generate the sample vault's assets: the homepage pictures, logos and PDFs its profiles embed.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install pillow
    /tmp/venv/bin/python tests/data/make-sample-assets.py vault

The real files are not redistributable, so each is a stand-in drawn here: a PNG or JPEG an image
viewer opens, an SVG a browser opens, a PDF a reader opens (text, one page per section). One
embed is left broken on purpose (see BROKEN), so users see how an unresolved link is reported.
"""
import os, re, sys, zlib
from PIL import Image, ImageDraw

BROKEN = {"sustainable-activism-ulex-signature-trainings.pdf"}

def targets(vault):
    """Every asset path the profiles reference, relative to the vault."""
    found = set()
    for dirpath, _, names in os.walk(os.path.join(vault, "ecosystem")):
        for name in names:
            if not name.endswith(".md"):
                continue
            note_dir = os.path.relpath(dirpath, vault)
            text = open(os.path.join(dirpath, name), encoding="utf-8").read()
            for m in re.finditer(r"!?\[\[([^\]|#]+)", text):
                found.add(os.path.normpath(os.path.join(note_dir, m.group(1).strip())))
            for m in re.finditer(r"^(?:image|logo):\s*(/assets/.+?)\s*$", text, re.M):
                found.add(m.group(1).lstrip("/"))
    return sorted(p for p in found if p.startswith("assets/"))

def title_of(path):
    base = os.path.splitext(os.path.basename(path))[0]
    return re.sub(r"[-_]+", " ", base).strip()

def colour(path):
    h = zlib.crc32(path.encode())
    return ((h >> 16) & 0x7F) + 60, ((h >> 8) & 0x7F) + 60, (h & 0x7F) + 60

def picture(path, out, fmt):
    logo = "logo" in path.lower()
    w, h = (320, 120) if logo else (1200, 750)
    bg = colour(path)
    img = Image.new("RGB", (w, h), (250, 250, 246))
    d = ImageDraw.Draw(img)
    if logo:
        d.ellipse((12, 12, 108, 108), fill=bg)
        d.text((124, 52), title_of(path), fill=(30, 30, 30))
    else:
        # A homepage: navigation bar, hero band with a title, three columns of text lines.
        d.rectangle((0, 0, w, 64), fill=(34, 34, 40))
        for i, item in enumerate(["About", "Projects", "Network", "Contact"]):
            d.text((w - 420 + i * 100, 26), item, fill=(235, 235, 235))
        d.rectangle((0, 64, w, 360), fill=bg)
        d.text((60, 190), title_of(path), fill=(255, 255, 255))
        for col in range(3):
            x = 60 + col * 380
            d.rectangle((x, 400, x + 320, 520), fill=tuple(min(255, c + 90) for c in bg))
            for line in range(5):
                d.rectangle((x, 540 + line * 26, x + 320 - (line % 3) * 60, 552 + line * 26), fill=(190, 190, 190))
    img.save(out, fmt)

def svg(path, out):
    r, g, b = colour(path)
    text = title_of(path)
    with open(out, "w", encoding="utf-8") as f:
        f.write(
            f'<svg xmlns="http://www.w3.org/2000/svg" width="320" height="120" viewBox="0 0 320 120">\n'
            f'  <circle cx="60" cy="60" r="48" fill="rgb({r},{g},{b})"/>\n'
            f'  <text x="124" y="66" font-family="sans-serif" font-size="16" fill="#1e1e1e">{text}</text>\n'
            f'</svg>\n'
        )

def pdf(path, out):
    """A one-page PDF with real text, xref offsets computed as the format requires."""
    title = title_of(path)
    lines = [title, "", "Stand-in document for the vaultkeep sample vault.",
             "The original is referenced by an organization profile of the", "Second Renaissance ecosystem map (CC-BY-SA-4.0)."]
    esc = lambda s: s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    ops = ["BT", "/F1 20 Tf", "72 740 Td", f"({esc(lines[0])}) Tj", "/F1 12 Tf"]
    for line in lines[1:]:
        ops += ["0 -20 Td", f"({esc(line)}) Tj"]
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1", "replace")
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Title (%s) /Producer (vaultkeep sample vault) >>" % esc(title).encode("latin-1", "replace"),
    ]
    body = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(body))
        body += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        body += b"%010d 00000 n \n" % off
    body += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    with open(out, "wb") as f:
        f.write(body)

def main():
    vault = sys.argv[1] if len(sys.argv) > 1 else "vault"
    for rel in targets(vault):
        out = os.path.join(vault, rel)
        name = os.path.basename(rel)
        if name in BROKEN or os.path.exists(out):
            continue
        os.makedirs(os.path.dirname(out), exist_ok=True)
        ext = name.rsplit(".", 1)[-1].lower()
        if ext == "png":
            picture(rel, out, "PNG")
        elif ext in ("jpg", "jpeg"):
            picture(rel, out, "JPEG")
        elif ext == "svg":
            svg(rel, out)
        elif ext == "pdf":
            pdf(rel, out)
        else:
            print(f"skipped {rel}: no generator for .{ext}", file=sys.stderr)
            continue
        print(rel)

if __name__ == "__main__":
    main()
