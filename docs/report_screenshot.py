"""Screenshot of a ``gflownet report`` page in headless Chromium (Playwright driving
the system's Chromium: ``apt-get install chromium``, ``pip install playwright``).

    python docs/report_screenshot.py        # trains a 2-D hypergrid, writes docs/assets/report-hypergrid.png
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


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


def main() -> None:
    import gflownet

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "assets" / "report-hypergrid.png"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = gflownet.train(env="hypergrid", objective="tb", out=Path(tmp) / "hypergrid-2d", dim=2, side=16,
                             batch_size=64, trajectories=32_000, log_every=10, eval_every=2_000)
        print(screenshot(run.report(top_k=10), Path(args.out)))


if __name__ == "__main__":
    main()
