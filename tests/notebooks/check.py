"""Checks the notebooks executed by tests/notebooks/run.sh and the export's output.

usage: check.py notebooks EXECUTED_DIR
       check.py export EXECUTED_DIR EXPORT_STDOUT
       check.py screenshot PNG
"""
import json
import re
import struct
import sys
import zlib


def fail(msg):
    print("check.py: FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def outputs(nb):
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            for out in cell.get("outputs", []):
                yield cell, out


def text_of(out):
    if out["output_type"] == "stream":
        t = out["text"]
        return "".join(t) if isinstance(t, list) else t
    return ""


def html_of(out):
    d = out.get("data", {})
    h = d.get("text/html", "")
    return "".join(h) if isinstance(h, list) else h


def load(path):
    with open(path) as f:
        return json.load(f)


def check_notebooks(d):
    want = {
        "01_data": ["<img src=\"data:image/", "image tokens", "&lt;|image_pad|&gt;"],
        "02_grpo_train": ["<img src=\"data:image/", "<svg", "<progress", "mean reward"],
        "03_eval": ["accuracy", "format rate", "used", "adapter"],
    }
    for name, needles in want.items():
        nb = load(f"{d}/{name}.ipynb")
        html, text = "", ""
        displays = 0
        for cell, out in outputs(nb):
            if out["output_type"] == "error":
                fail(f"{name}: cell {cell.get('id')} failed: {out.get('ename')}: {out.get('evalue')}")
            if out["output_type"] in ("display_data", "update_display_data", "execute_result"):
                displays += 1
            html += html_of(out)
            text += text_of(out)
        for cell in nb["cells"]:
            if cell["cell_type"] == "code" and cell.get("execution_count") is None:
                fail(f"{name}: cell {cell.get('id')} did not run")
        if displays < 2:
            fail(f"{name}: {displays} displays, want at least 2")
        for n in needles:
            if n not in html:
                fail(f"{name}: no display contains {n!r}")
        print(f"{name}: {displays} displays, {len(html)} bytes of HTML, no error")
    m = metrics(load(f"{d}/02_grpo_train.ipynb"))
    if len(m) < 2:
        fail(f"02_grpo_train: metrics line holds {m}")
    print("02_grpo_train: rewards per step", m)
    t = "".join(text_of(o) for _, o in outputs(load(f"{d}/03_eval.ipynb")))
    for key in ("base accuracy", "adapter accuracy"):
        if key not in t:
            fail(f"03_eval: no {key!r} line")


def metrics(nb):
    t = "".join(text_of(o) for _, o in outputs(nb))
    return metrics_of(t)


def metrics_of(t):
    m = re.search(r"^metrics reward (.*)$", t, re.M)
    if not m:
        fail("no 'metrics reward' line")
    return [float(x) for x in m.group(1).split()]


def check_export(d, stdout_path):
    a = metrics(load(f"{d}/02_grpo_train.ipynb"))
    with open(stdout_path) as f:
        b = metrics_of(f.read())
    if len(a) != len(b) or any(abs(x - y) > 1e-4 for x, y in zip(a, b)):
        fail(f"the export's rewards per step {b} differ from the notebook's {a}")
    print("export reproduces the notebook's rewards per step:", b)


def png_pixels(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail(f"{path} is not a PNG")
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    if depth != 8 or ctype not in (2, 6):
        fail(f"{path}: unsupported PNG (depth {depth}, color type {ctype})")
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def check_screenshot(path):
    w, h, bpp, rows = png_pixels(path)
    colors, dark = set(), 0
    for row in rows[::4]:
        for x in range(0, w * bpp, bpp * 4):
            px = row[x:x + 3]
            colors.add(px)
            if sum(px) < 3 * 160:
                dark += 1
    total = len(rows[::4]) * len(range(0, w * bpp, bpp * 4))
    if len(colors) < 20 or dark < total // 200:
        fail(f"{path}: looks blank ({len(colors)} colors, {dark} dark pixels of {total} sampled)")
    print(f"screenshot {w}x{h}: {len(colors)} colors, {100 * dark / total:.1f}% dark pixels")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "notebooks":
        check_notebooks(sys.argv[2])
    elif cmd == "export":
        check_export(sys.argv[2], sys.argv[3])
    elif cmd == "screenshot":
        check_screenshot(sys.argv[2])
    else:
        fail("unknown command " + cmd)
