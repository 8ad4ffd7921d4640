"""The web page in a real browser: Debian's chromium (Playwright, headless) against a real
``pixelmind serve`` app (uvicorn on loopback) with the tiny real weights of ``conftest.py``: a
classifier trained one epoch on the built-in digits, an x2 ESPCN enhancer and a small codec.

Skipped when /usr/bin/chromium or the playwright package is missing (``.ci/run`` installs chromium).
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")

IN_W, IN_H = 24, 20  # the uploaded image; non-square so swapped sides show
TIMEOUT_MS = 20_000


def _png_bytes(w: int = IN_W, h: int = IN_H) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(start_server, serve_models, serve_weights) -> str:
    """Base URL of a real server with the three tasks; its runs folder holds the classifier's training run."""
    from pixelmind.serve import ServeSettings

    runs = serve_weights["classify"].parents[3]  # runs/classify/c/weights/best.safetensors
    models = {"digits": serve_models["classify"], "sr_x2": serve_models["enhance"], "codec": serve_models["compress"]}
    return start_server(models, ServeSettings(runs_dir=runs, max_wait_ms=0))


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture()
def page(browser, server):
    ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server + "/")
    pg.wait_for_selector("#model option[value=digits]", state="attached")
    yield pg
    ctx.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "sample.png"
    path.write_bytes(_png_bytes())
    return path


def _message(page) -> str | None:
    box = page.locator("#message")
    return box.inner_text() if box.is_visible() else None


def test_classify_draws_topk_bars(page, image):
    page.select_option("#model", "digits")
    assert page.locator("#topk-field").is_visible()
    page.fill("#topk", "3")
    page.set_input_files("#file", str(image))
    page.wait_for_selector("#result[data-task=classify] .bars")
    bars = page.locator("#result .bar")
    assert bars.count() == 3, _message(page)
    labels = bars.locator(".bar-label").all_inner_texts()
    assert all(label.strip() for label in labels) and len(set(labels)) == 3
    values = bars.locator(".bar-value").all_inner_texts()
    assert all(re.fullmatch(r"\d{1,3}\.\d%", v) for v in values), values
    probs = [float(v[:-1]) for v in values]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 100.5
    widths = bars.locator(".bar-fill").evaluate_all("els => els.map(e => e.getBoundingClientRect().width)")
    assert widths[0] >= widths[-1] and widths[0] > 0
    assert page.locator("#result .thumb img").get_attribute("alt").startswith("Input image")
    assert _message(page) is None


def test_explain_shows_the_overlay_next_to_the_prediction(page, image):
    page.select_option("#model", "digits")
    assert page.locator("#explain-field").is_visible()
    methods = page.locator("#explain-method option").all_inner_texts()
    assert "gradcam" in methods and "rollout" not in methods  # a CNN: no attention to roll out
    page.select_option("#explain-method", "gradcam++")
    page.check("#explain")  # runs again once a file is set
    page.set_input_files("#file", str(image))
    page.wait_for_selector("#result .explain figure.explanation img")
    assert page.locator("#result .bars").count() == 1, _message(page)  # the prediction stays beside it
    assert page.locator("#result .explain h2").inner_text() == "Explanation (gradcam++)"
    overlay = page.locator("#result .explanation img")
    size = overlay.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size == [IN_W, IN_H]  # the map covers the uploaded image, at its size
    caption = page.locator("#result .explanation figcaption").inner_text()
    assert caption.startswith("class ") and re.search(r"deletion AUC \d\.\d{3} \(random \d\.\d{3}\)", caption), caption
    page.select_option("#model", "sr_x2")
    assert page.locator("#explain-method option").all_inner_texts() == ["difference", "gradient", "ig"]
    assert _message(page) is None


def test_enhance_before_after_slider(page, image):
    page.set_input_files("#file", str(image))
    page.wait_for_selector("#result[data-task=classify] .bars")
    page.select_option("#model", "sr_x2")  # a new model re-runs the loaded image
    page.wait_for_selector("#result[data-task=enhance] .compare")
    page.wait_for_function(
        "[...document.querySelectorAll('.compare img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    sizes = page.eval_on_selector_all(
        ".compare img", "els => els.map(i => [i.className, i.naturalWidth, i.naturalHeight])"
    )
    assert sorted(sizes) == [["after", 2 * IN_W, 2 * IN_H], ["before", IN_W, IN_H]]
    assert all(page.locator(".compare img").evaluate_all("els => els.map(i => !!i.alt)"))
    slider = page.locator(".compare-range")
    assert slider.get_attribute("aria-label")
    slider.fill("20")  # input left of 20%, enhanced right of it
    assert "80%" in page.locator(".before-clip").get_attribute("style")
    assert page.locator(".divider").evaluate("d => d.style.left") == "20%"
    box = page.locator(".compare").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)  # click-drag the divider
    left = float(page.locator(".divider").evaluate("d => d.style.left")[:-1])
    assert 65 < left < 85
    assert page.locator("#result a[download$='_enhanced.png']").count() == 1
    assert _message(page) is None


def test_bad_upload_shows_the_error(page, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("#message:not([hidden])")
    assert re.search(r"\b4\d\d\b", page.locator("#message-text").inner_text())


def test_runs_view_draws_curves(page):
    page.click("#tab-runs")
    assert page.locator("#view-runs").is_visible() and not page.locator("#view-predict").is_visible()
    item = page.locator(".run-item[data-id='classify/c']")
    item.click()
    page.wait_for_selector("#run-detail canvas.chart")
    page.wait_for_selector("#run-detail .plot img")
    page.wait_for_function(
        "[...document.querySelectorAll('#run-detail .plot img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    alts = page.locator("#run-detail .plot img").evaluate_all("els => els.map(i => i.alt)")
    assert any("curves" in a for a in alts)
    page.wait_for_timeout(100)  # the charts draw on the next animation frame
    inked = page.locator("#run-detail canvas.chart").evaluate_all(
        """cs => cs.map(c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                              let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 200) n++; return n; })"""
    )
    labels = page.locator("#run-detail canvas.chart").evaluate_all(
        "cs => cs.map(c => c.getAttribute('aria-label'))"
    )
    assert labels[0].startswith("Loss") and any(label.startswith("val/top1") for label in labels)
    assert len(inked) >= 2 and all(n > 100 for n in inked), inked
    assert _message(page) is None


def test_compress_shows_the_real_file(page, image, server):
    """The page shows the server's own figures for the codec and offers its .pmc bytes for download."""
    import httpx

    expected = httpx.post(f"{server}/v1/models/codec/predict", content=image.read_bytes(), timeout=30).json()
    page.select_option("#model", "codec")
    page.set_input_files("#file", str(image))
    page.wait_for_selector("#result[data-task=compress] .stats")
    stats = page.locator("#result .stats").inner_text()
    result = expected["result"]
    shown_psnr = float(re.search(r"PSNR\s+([\d.]+) dB", stats).group(1))
    assert f"{result['bytes']} bytes" in stats and abs(shown_psnr - result["psnr"]) < 0.01, stats
    link = page.locator("#result a[download='sample.pmc']")
    with page.expect_download() as dl:
        link.click()
    assert Path(dl.value.path()).read_bytes() == base64.b64decode(expected["bitstream_base64"])  # encoding is deterministic
    page.wait_for_function(f"document.querySelector('#result .decoded img').naturalWidth === {IN_W}")
    assert _message(page) is None


def test_a_task_the_page_does_not_know_and_the_api_key(page, image):
    """A future task (no such model exists yet, so the API answers are canned in the browser): its
    rendered image and its result as a table; the API key is stored and sent as X-API-Key."""
    png = _png_bytes(IN_W, IN_H)
    models = [{"name": "boxes", "task": "detect", "model": "d", "classes": ["cat"], "input_size": 64}]
    detect = {"boxes": [{"label": "cat", "score": 0.9, "box": [1, 2, 3, 4]}], "count": 1}
    keys: list[str | None] = []

    def predict(route):
        keys.append(route.request.headers.get("x-api-key"))
        if "render=true" in route.request.url:
            route.fulfill(status=200, body=png, headers={"content-type": "image/png", "X-Pixelmind-Result": json.dumps(detect)})
        else:
            body = {"model": "boxes", "task": "detect", "result": detect, "ms": 3.0, "batch_size": 1}
            route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route("**/v1/models", lambda r: r.fulfill(status=200, content_type="application/json", body=json.dumps(models)))
    page.route("**/v1/models/*/predict*", predict)
    page.fill("#api-key", "s3cret")
    page.dispatch_event("#api-key", "change")  # stored in localStorage, sent as X-API-Key
    page.reload()
    page.wait_for_selector("#model option[value=boxes]", state="attached")
    assert page.input_value("#api-key") == "s3cret"
    page.select_option("#model", "boxes")
    page.set_input_files("#file", str(image))
    page.wait_for_selector("#result[data-task=detect] table.json")
    table = page.locator("#result table.json").inner_text()
    assert "boxes" in table and '"label":"cat"' in table and "count" in table
    page.wait_for_function(f"document.querySelector('#result .decoded img').naturalWidth === {IN_W}")
    assert keys and all(k == "s3cret" for k in keys)
    assert _message(page) is None
