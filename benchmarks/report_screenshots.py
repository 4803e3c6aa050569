"""Render evalkit's HTML reports in headless Chromium at 800 and 1400 px: a PNG of each page at each width,
and the document's scroll width against the viewport's (its client width: the window less any vertical
scroll bar; a page wider than that overflows).

    .venv/bin/python benchmarks/report_screenshots.py --demo results/demo --out /tmp/shots
    .venv/bin/python benchmarks/report_screenshots.py results/demo/tax.html board.html --out /tmp/shots

`--demo DIR` takes DIR/tax.html, DIR/visual_stage/tax.html and a leaderboard of DIR/eval (written to the
output folder). Needs Chromium (`apt-get install chromium`); exits 1 when a page overflows. The width is
measured on a copy of the page with a one-line script that writes `scrollWidth` and `innerWidth` into the
DOM, read back with `--dump-dom`; the PNG is taken from the page itself, at its full height.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTHS = (800, 1400)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)
PROBE = (
    "<script>document.body.insertAdjacentHTML('beforeend','<output id=\"evalkit-width\" data-scroll=\"'"
    "+document.documentElement.scrollWidth+'\" data-view=\"'+document.documentElement.clientWidth"
    "+'\" data-height=\"'+document.documentElement.scrollHeight+'\"></output>')</script>"
)
FOUND = re.compile(r'data-scroll="(\d+)" data-view="(\d+)" data-height="(\d+)"')


def chromium() -> str | None:
    """The Chromium binary (Debian's /usr/bin/chromium, or one on PATH), None when there is none."""
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(binary: str, width: int, height: int, *args: str) -> str:
    with tempfile.TemporaryDirectory(prefix="evalkit-chromium-") as profile:
        cmd = [binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


def measure(page: Path, width: int, binary: str) -> tuple[int, int, int]:
    """(document scroll width, viewport width, document height) of `page` in a window `width` px wide."""
    text = page.read_text(encoding="utf-8")
    at = text.rfind("</body>")
    probed = text[:at] + PROBE + text[at:] if at >= 0 else text + PROBE
    with tempfile.TemporaryDirectory(prefix="evalkit-probe-") as tmp:
        copy = Path(tmp) / page.name
        copy.write_text(probed, encoding="utf-8")
        dom = _run(binary, width, 900, "--dump-dom", copy.resolve().as_uri())
    found = FOUND.search(dom)
    if not found:
        raise RuntimeError(f"{page}: the width probe did not run (no measurement in the DOM)")
    scroll, view, height = map(int, found.groups())
    return scroll, view, height


def screenshot(page: Path, width: int, height: int, out: Path, binary: str) -> Path:
    _run(
        binary, width, min(max(height, 200), 16000), f"--screenshot={out.resolve()}", page.resolve().as_uri()
    )
    if not out.exists():
        raise RuntimeError(f"{page}: chromium wrote no screenshot")
    return out


def demo_pages(demo: Path, out: Path) -> list[Path]:
    """The demo's two tax reports and a leaderboard of its evaluation runs (written into `out`)."""
    from evalkit.analysis.leaderboard import build_leaderboard, render

    pages = [p for p in (demo / "tax.html", demo / "visual_stage" / "tax.html") if p.exists()]
    board = out / "leaderboard.html"
    board.write_text(render(build_leaderboard([demo / "eval"]), "html"), encoding="utf-8")
    return [*pages, board]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pages", nargs="*", type=Path, help="HTML files to render")
    ap.add_argument(
        "--demo", type=Path, help="an `evalkit demo --work` folder: its reports and a leaderboard"
    )
    ap.add_argument("--out", type=Path, default=Path("report-screenshots"), help="folder for the PNGs")
    ap.add_argument("--no-png", action="store_true", help="measure the widths only")
    args = ap.parse_args(argv)
    binary = chromium()
    if binary is None:
        print("no Chromium found (apt-get install chromium)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    pages = list(args.pages) + (demo_pages(args.demo, args.out) if args.demo else [])
    if not pages:
        ap.error("name HTML files or --demo DIR")
    overflow = False
    for page in pages:
        stem = "-".join(page.with_suffix("").parts[-2:]).replace("/", "-")
        for width in WIDTHS:
            scroll, view, height = measure(page, width, binary)
            shot = (
                ""
                if args.no_png
                else screenshot(page, width, height, args.out / f"{stem}-{width}.png", binary)
            )
            ok = scroll <= view
            overflow |= not ok
            print(
                f"{page}: window {width} px, viewport {view} px, document {scroll} px wide, {height} px high"
                f" {'ok' if ok else 'OVERFLOWS'}" + (f" -> {shot}" if shot else "")
            )
    return 1 if overflow else 0


if __name__ == "__main__":
    sys.exit(main())
