"""End to end in a real browser: Playwright drives Debian's Chromium against `streamlit run`.

Screenshots go to test-output/browser/.
"""

import os
from pathlib import Path

import pytest

from tools import appserver
from tools.appserver import CHROMIUM, CHROMIUM_FLAGS, start

from .conftest import ROOT, make_random_run

SHOTS = ROOT / "test-output" / "browser"

if not Path(CHROMIUM).exists() and os.environ.get("CI"):  # CI installs it: a missing browser is a failure there
    raise RuntimeError(f"{CHROMIUM} is missing; .ci/run installs it with apt-get install chromium")
pytestmark = [pytest.mark.slow,  # Chromium against a real server
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)")]


@pytest.fixture(scope="module")
def server(tmp_path_factory, timed_speeds):
    from charmodel.run.corpus import clean, read_text

    weights = tmp_path_factory.mktemp("browser") / "weights"
    weights.mkdir()
    make_random_run(weights / "alice", clean(read_text(ROOT / "data" / "alice.txt"))[:20000], layers=2, units=24)
    proc, url = start({"CHARMODEL_WEIGHTS": str(weights)})
    yield url, weights, proc.pid
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()


def settle(page, timeout_ms=60000):
    appserver.settle(page, timeout_ms)
    page.wait_for_timeout(300)


def import_as(page, label: str, name: str, done: str, timeout_ms: int = 60000):
    """On the Train page's import: type the run's name, press Import, wait for the success line.

    Streamlit can drop a click that lands while a rerun is starting (seen once in a full run: no
    import, no error); the name's own rerun is awaited first, and a click that started nothing
    within 30 s is made once more. A second import of the same name would be refused, so a
    success line means exactly one import ran."""
    box = page.get_by_label(label, exact=True)
    box.fill(name)
    box.press("Enter")
    settle(page)
    page.wait_for_timeout(1000)
    settle(page)
    button = page.get_by_role("button", name="Import", exact=True)
    button.click()
    started = page.get_by_text(done).or_(page.get_by_text("Reading the Keras file"))
    try:
        started.first.wait_for(timeout=30000)
    except Exception:
        settle(page)
        if not page.get_by_text(done).count():
            button.click()
    try:
        page.get_by_text(done).wait_for(timeout=timeout_ms)
    except Exception:
        page.screenshot(path=SHOTS / f"import-{name}-failed.png", full_page=True)
        raise AssertionError(f"no {done!r} on the page; it reads:\n" + page.locator("[data-testid='stMain']").inner_text()[-3000:])


def test_generate_then_visualise_a_cell(server, page):
    url, _, _ = server
    page.goto(f"{url}/generate")
    settle(page)
    code = page.locator("[data-testid='stCode']").first
    code.wait_for()
    assert code.inner_text().startswith("Alice ")
    page.screenshot(path=SHOTS / "generate.png", full_page=True)

    page.goto(f"{url}/visualise?layer=2&cell=3&kind=h")
    settle(page)
    spans = page.locator(".cm-text span[class^='cm-']")
    spans.first.wait_for()
    assert spans.count() > 500  # one span per character, with hover text
    colour = spans.first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour.startswith("rgb(") and colour != "rgba(0, 0, 0, 0)"  # the stylesheet survived sanitising
    assert "layer 2 cell 3 h" in page.locator(".cm-legend").first.inner_text()
    # readable colours: the darkest bins carry white text (the legend's swatches hold every bin)
    swatch = page.locator(".cm-legend .cm-bar span.cm-20").first
    assert swatch.evaluate("e => getComputedStyle(e).color") == "rgb(255, 255, 255)"
    assert page.locator(".cm-legend .cm-bar span.cm-10").first.evaluate("e => getComputedStyle(e).color") == "rgb(17, 17, 17)"
    # hover: a styled tooltip drawn at once from the span's data-tip, naming the guesses
    target = page.locator(".cm-text span[data-tip]").nth(5)
    target.hover()
    tip = target.evaluate("e => getComputedStyle(e, '::after').content")
    assert tip.startswith('"#5 ') and "next: " in tip
    chart = page.locator("[data-testid='stVegaLiteChart']").first
    chart.wait_for()
    assert chart.locator("canvas, svg").count() >= 1
    page.screenshot(path=SHOTS / "visualise.png", full_page=True)

    # brushing a range on the plot outlines the same characters in the text
    box = chart.locator("canvas, svg").first.bounding_box()
    y = box["y"] + box["height"] * 0.5
    page.mouse.move(box["x"] + box["width"] * 0.35, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.45, y, steps=8)
    page.mouse.up()
    from playwright.sync_api import expect

    expect(page.get_by_text("Selected characters")).to_be_visible(timeout=30000)
    assert page.locator(".cm-text .cm-sel").count() > 20
    page.screenshot(path=SHOTS / "visualise-brushed.png", full_page=True)

    # the next-cell button moves to cell 4 and the URL follows
    page.get_by_role("button", name="▶").click()
    expect(page.locator(".cm-legend").first).to_contain_text("layer 2 cell 4 h", timeout=30000)
    assert "cell=4" in page.url


def test_train_a_tiny_model_and_watch_it(server, page):
    url, weights, _ = server
    page.goto(f"{url}/train")
    settle(page)

    def set_number(label, value):
        box = page.get_by_label(label, exact=True).and_(page.locator("input"))
        box.fill(str(value))
        box.press("Enter")
        settle(page)

    name = page.get_by_label("Run name", exact=True).and_(page.locator("input"))
    name.fill("browser-tiny")
    name.press("Enter")
    settle(page)
    # the budget's recipe fills in the size; untick it to set a tiny one (the 5 minutes stay a cap)
    page.get_by_role("radio", name="5 minutes", exact=True).click(force=True)
    settle(page)
    page.get_by_text("Choose the size, batch and learning rate for this budget").click()
    settle(page)
    for label, value in [("LSTM layers", 1), ("Units per layer", 8), ("Embedding size", 4),
                         ("Sequence length", 50), ("Batch size", 256), ("Epochs", 2)]:
        set_number(label, value)
    page.get_by_role("button", name="Start").click()
    # while the job runs, the sidebar names it (on every page)
    page.locator("[data-testid='stSidebar']").get_by_text("Training browser-tiny").wait_for(timeout=60000)
    # the live fragment redraws every second: wait for the loss chart and the checkpoint table
    page.wait_for_selector("[data-testid='stVegaLiteChart']", timeout=120000)
    page.screenshot(path=SHOTS / "train-running.png", full_page=True)
    console, errors = [], []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.wait_for_selector("text=finished", timeout=180000)
    page.wait_for_selector("[data-testid='stDataFrame']", timeout=30000)
    # the app reruns once when the job's process is gone: the links appear outside the live view,
    # and the sidebar says the job finished instead of naming its last batch
    link = page.get_by_role("link", name="Open in Generate")
    link.wait_for(timeout=60000)
    settle(page)
    sidebar = page.locator("[data-testid='stSidebar']")
    sidebar.get_by_text("Training browser-tiny finished after epoch 2").wait_for(timeout=30000)
    assert not sidebar.get_by_text("batch 10/10").count() and not sidebar.get_by_role("button", name="Stop training").count()
    page.screenshot(path=SHOTS / "train-finished.png", full_page=True)
    # the atlas builds by itself once training ends; the page and the sidebar link to it when it is ready
    page.get_by_role("link", name="The atlas of browser-tiny is ready: every cell explained").wait_for(timeout=120000)
    sidebar.get_by_role("link", name="Its atlas is ready").wait_for(timeout=30000)
    assert (weights / "browser-tiny" / "atlas-best.npz").is_file()
    link.click()
    page.get_by_role("heading", name="Generate").wait_for(timeout=60000)
    settle(page)
    assert "run=browser-tiny" in page.url
    page.get_by_text("Run browser-tiny, checkpoint").wait_for(timeout=60000)  # the page's own caption
    page.locator("[data-testid='stCode']").first.wait_for(timeout=60000)  # the main area drew: a sample
    page.screenshot(path=SHOTS / "train-opened-generate.png", full_page=True)
    (SHOTS / "train-console.txt").write_text("\n".join(console), encoding="utf-8")
    assert not errors, f"page errors in the browser: {errors}"
    assert (weights / "browser-tiny" / "latest.npz").is_file()
    assert (weights / "browser-tiny" / "checkpoints" / "epoch-0002.npz").is_file()


def test_atlas_builds_in_the_background_and_a_dossier_links_to_visualise(server, page):
    url, weights, _ = server
    page.goto(f"{url}/atlas")
    settle(page)
    page.get_by_role("button", name="Build the atlas in the background").click()
    page.get_by_text("cells explained").wait_for(timeout=120000)  # the job finished and the page reran
    assert (weights / "alice" / "atlas-best.npz").is_file()
    heading = page.get_by_role("heading", name="Layer ").first
    heading.wait_for(timeout=60000)
    _, layer, kind, _, cell = heading.inner_text().split()  # "Layer 2 c cell 7", the dossier's cell
    page.screenshot(path=SHOTS / "atlas.png", full_page=True)
    page.get_by_role("link", name="Open this cell in Visualise").click()
    page.get_by_role("heading", name="Visualise").wait_for(timeout=60000)
    settle(page)
    # the widgets show the linked cell (the URL then keeps only values that differ from the defaults)
    main = page.locator("[data-testid='stMain']")
    box = main.locator("[data-testid='stSelectbox']").filter(has_text="Layer").first
    assert box.locator("input").input_value() == layer
    cell_box = page.get_by_label("Cell", exact=True).and_(page.locator("input"))
    assert cell_box.input_value() == cell
    assert page.locator("[data-testid='stRadio']").filter(has_text="Kind").get_by_role("radio", name=kind,
                                                                                        exact=True).is_checked()
    assert not page.locator("[data-testid='stException']").count()


def test_a_run_archive_uploaded_on_the_train_page_becomes_a_run(server, page, tmp_path):
    from charmodel.exchange.archive import export_run

    url, weights, _ = server
    archive = export_run(weights / "alice", tmp_path / "alice.zip")
    page.goto(f"{url}/train")
    settle(page)
    page.get_by_text("Move runs between machines").click()
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(archive))
    import_as(page, "Import as (optional)", "uploaded", "Imported uploaded")
    assert (weights / "uploaded" / "best.npz").is_file()
    assert not [p for p in weights.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_a_keras_file_uploaded_on_the_train_page_becomes_a_windowed_run(server, page, post_files):
    """The post's shape as a legacy .h5 and its training text: the page imports it (the check's
    Keras in a child process), and Home says what the run is."""
    url, weights, _ = server
    root = post_files[0]
    page.goto(f"{url}/train")
    settle(page)
    page.get_by_text("Move runs between machines").click()
    uploaders = page.locator("[data-testid='stFileUploader']")
    uploaders.filter(has_text="Keras char-LSTM").locator("input[type=file]").set_input_files(str(root / "post.h5"))
    settle(page)
    uploaders.filter(has_text="or the training text").locator("input[type=file]").set_input_files(str(root / "post.txt"))
    settle(page)
    import_as(page, "Import as", "post", "Imported post: it is in the", timeout_ms=240000)
    assert page.get_by_text("checked against Keras").count()
    assert (weights / "post" / "best.npz").is_file()
    assert not [p for p in weights.iterdir() if p.name.startswith(".")]  # no temporary folder left
    page.goto(f"{url}/?run=post")
    settle(page)
    page.get_by_text("Imported from the Keras file").wait_for(timeout=60000)
    assert page.get_by_text("windows of 20 characters").count()
    assert not page.locator("[data-testid='stException']").count()
    page.screenshot(path=SHOTS / "home-imported.png", full_page=True)


def test_every_page_and_cells_tab_leaves_tensorflow_out_of_the_server(server, page):
    """Runs after the training test: the job trained in a child process, so even now the server
    has never mapped TensorFlow."""
    url, _, pid = server
    for path, text in [("", "See what an LSTM's cells learned"), ("/generate", "Generate"),
                       ("/visualise", "Visualise"), ("/train", "Train"), ("/atlas", "Atlas"), ("/cells", "Cells")]:
        page.goto(url + path)
        settle(page)
        page.get_by_role("heading", name=text).first.wait_for(timeout=60000)
        assert not page.locator("[data-testid='stException']").count(), path
    page.locator("[data-testid='stTable']").first.wait_for(timeout=60000)  # the ranked table
    for tab in ["Select and match", "One cell", "Gate saturation", "Intervene", "Ablation", "Probe", "Export"]:
        page.get_by_role("tab", name=tab).click()
        settle(page)
        assert not page.locator("[data-testid='stException']").count(), tab
    page.get_by_role("button", name="Prepare the LSTMVis files").click()
    page.get_by_text("lstmvis.zip is ready").wait_for(timeout=60000)
    page.screenshot(path=SHOTS / "cells-export.png", full_page=True)
    maps = Path(f"/proc/{pid}/maps").read_text()
    assert "libtensorflow" not in maps and "_pywrap_tensorflow" not in maps


def test_underscores_show_in_coloured_text_at_normal_resolution(page):
    """`__init__` must not read as "  init  ": every underscore's box holds pixels far from its
    background colour, at a device scale of 1 (the font's own underscore falls below the box)."""
    import io

    import numpy as np
    from PIL import Image

    from charmodel.view.render import coloured_text, css

    text = "def __init__(self, a_b):"
    page.set_content(css() + coloured_text(text, np.linspace(-1, 1, len(text)), -1, 1))
    boxes = page.locator(".cm-us")
    assert boxes.count() == text.count("_")
    for i in range(boxes.count()):
        box = boxes.nth(i)
        # the coloured span around it: its background is what an invisible underscore would leave
        bg = box.evaluate("e => getComputedStyle(e.parentElement).backgroundColor")
        background = np.array([int(x) for x in bg[bg.index("(") + 1 : -1].split(",")[:3]])
        pixels = np.asarray(Image.open(io.BytesIO(box.screenshot())).convert("RGB"), dtype=int)
        assert np.abs(pixels - background).sum(axis=2).max() > 150, f"underscore {i} is not visible"
