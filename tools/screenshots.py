"""Remake the README's pictures: drive the app in Debian's Chromium and save small PNGs.

    python tools/screenshots.py [--out docs/img]

Starts `streamlit run streamlit_app.py` on a free port (the shipped weights/), then:
- home.png: the Home page, the Alice passage coloured by the run's headline cell;
- atlas.png: the Atlas page's dossier of one cell (its explanation, terms, simulated against actual);
- visualise.png: Visualise on the post's quotation cell (layer 2 c 492), text beside the line plot.
Each is cropped to the main area and quantised to a palette (Pillow comes with Streamlit), so the
repository stays small. Rerun it when a page changes.
"""

import argparse
import io
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.appserver import CHROMIUM, CHROMIUM_FLAGS, settle, start  # noqa: E402

WIDTH = 1280


def shot(page, out: Path, locator=None, height: int | None = None) -> None:
    """A PNG of the page (or one element), resized to 1,000 px wide and quantised to 128 colours."""
    png = (locator or page).screenshot(**({} if locator else {"full_page": False}))
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if height and image.height > height:
        image = image.crop((0, 0, image.width, height))
    if image.width > 1000:
        image = image.resize((1000, round(image.height * 1000 / image.width)), Image.LANCZOS)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"{out}: {image.width}x{image.height}, {out.stat().st_size / 1024:.0f} KB")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    proc, url = start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": WIDTH, "height": 900}, device_scale_factor=1)

            page.goto(url)
            settle(page)
            page.locator(".cm-text").first.wait_for(timeout=120000)
            settle(page)
            shot(page, args.out / "home.png")

            page.goto(f"{url}/visualise?run=alice&layer=2&cell=492&kind=c")
            settle(page)
            page.locator("[data-testid='stVegaLiteChart']").first.wait_for(timeout=120000)
            settle(page)
            page.wait_for_timeout(1000)  # the chart draws after the script ends
            shot(page, args.out / "visualise.png")

            page.goto(f"{url}/atlas?run=alice")
            settle(page)
            page.get_by_role("heading", name="Layer ").first.wait_for(timeout=120000)
            settle(page)
            page.wait_for_timeout(1500)
            dossier = page.get_by_role("heading", name="Layer ").first
            dossier.evaluate("e => e.scrollIntoView({block: 'start'})")  # the dossier at the top
            page.wait_for_timeout(500)
            shot(page, args.out / "atlas.png")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
