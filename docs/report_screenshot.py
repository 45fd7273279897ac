"""Screenshot of a ``gflownet report`` page in headless Chromium (Playwright driving
the system's Chromium: ``apt-get install chromium``, ``pip install playwright``).

    python docs/report_screenshot.py                     # a 2-D hypergrid -> docs/assets/report-hypergrid.png
    python docs/report_screenshot.py --family molecules  # fragments on QED -> docs/assets/report-molecules.png
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def screenshot(page_path: Path, png: Path, width: int = 1100) -> dict:
    """Open ``page_path`` in Chromium, save a full-page screenshot to ``png``; returns the
    console errors, the page errors and whether every image decoded."""
    from playwright.sync_api import sync_playwright

    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": 800})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(Path(page_path).resolve().as_uri(), wait_until="load")
        images_ok = page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        n_images = page.evaluate("document.images.length")
        page.screenshot(path=str(png), full_page=True)
        browser.close()
    return {"errors": errors, "images_ok": images_ok, "n_images": n_images}


RUNS = {  # family -> (environment, training parameters)
    "hypergrid": (
        "hypergrid",
        dict(dim=2, side=16, batch_size=16, trajectories=32_000, log_every=25, eval_every=2_000),
    ),
    "molecules": (
        "fragments",
        dict(max_blocks=4, reward="qed", batch_size=32, trajectories=3_200, log_every=10, threads=1),
    ),
}


def main() -> None:
    import gflownet

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=list(RUNS), default="hypergrid")
    parser.add_argument("--out", help="PNG (default: docs/assets/report-FAMILY.png)")
    args = parser.parse_args()
    out = Path(args.out or Path(__file__).parent / "assets" / f"report-{args.family}.png")
    with tempfile.TemporaryDirectory() as tmp:
        env, params = RUNS[args.family]
        run = gflownet.train(env=env, objective="tb", out=Path(tmp) / args.family, **params)
        print(screenshot(run.report(top_k=10), out))


if __name__ == "__main__":
    main()
