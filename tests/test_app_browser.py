"""The app in a real browser: headless Chromium (Debian's `chromium` package) driven by Playwright.

Loads the page, uploads an image in the Super-resolution tab, clicks Upscale and waits for the
before/after slider; then uploads a file that is not an image and expects the error message, and a
good image again. Skips with the reason when Playwright or Chromium is missing (.ci/run installs
both). STSR_SCREENSHOTS=DIR keeps the screenshots.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    for candidate in (os.environ.get("STSR_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.skip("no Chromium found (apt-get install -y chromium, or set STSR_CHROMIUM)")


@pytest.fixture(scope="module")
def page(app_url):
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    executable = chromium_path()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(app_url, wait_until="networkidle")
        yield page
        browser.close()


def shot(page, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("STSR_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def upload(page, path: Path) -> None:
    clear = page.locator("#sr-input button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    page.locator("#sr-input input[type=file]").set_input_files(str(path))


def test_upscale_in_the_browser(page, tmp_path):
    assert "Spatio-temporal super-resolution" in page.title()
    upload(page, EXAMPLES / "sr_car_lr.png")
    page.wait_for_selector("#sr-input img")
    page.click("#sr-run")
    page.wait_for_selector("#sr-output img")
    page.wait_for_function("document.querySelector('#sr-summary').innerText.includes('flashsr')")
    assert page.locator("#sr-output img").count() == 2  # before and after
    summary = page.inner_text("#sr-summary")
    assert "136×70 → 544×280" in summary and "Backend" in summary
    natural = page.eval_on_selector_all("#sr-output img", "imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])")
    assert [544, 280] in natural
    assert page.locator("#sr-download a, #sr-download [download]").count() >= 1
    assert shot(page, "sr_tab", tmp_path).stat().st_size > 10_000


def test_bad_upload_shows_a_message_and_the_next_run_works(page, tmp_path):
    bad = tmp_path / "holiday.png"
    bad.write_bytes(b"this is not an image\n" * 20)
    upload(page, bad)
    page.click("#sr-run")
    toast = page.get_by_text("holiday.png: not an image file")
    toast.first.wait_for()
    shot(page, "sr_tab_error", tmp_path)
    upload(page, EXAMPLES / "sr_tents_lr.png")
    page.wait_for_selector("#sr-input img")
    page.click("#sr-run")
    page.wait_for_function("document.querySelector('#sr-summary').innerText.includes('200×90')")


@pytest.mark.parametrize("tab, note, button, models", [
    ("Colorization", "#colorize-note", "#colorize-run", "ui.colorize_tab:available_models"),
    ("Frame interpolation", "#interpolate-note", "#interpolate-run", "ui.video_tab:interpolation_models"),
])
def test_tabs_say_whether_their_model_is_available(page, tab, note, button, models):
    import importlib

    module, function = models.split(":")
    available = getattr(importlib.import_module(module), function)()
    page.get_by_role("tab", name=tab).click()
    page.wait_for_selector(button)
    if available:
        assert page.locator(note).count() == 0 and page.locator(button).is_enabled()
    else:
        assert "Not available yet" in page.inner_text(note) and page.locator(button).is_disabled()


def test_video_result_plays_in_the_browser(page, tmp_path):
    from test_app import write_clip

    clip = write_clip(tmp_path / "pan.webm", frames=6, fps=12)
    page.get_by_role("tab", name="Frame interpolation").click()
    page.locator("#video-input input[type=file]").set_input_files(str(clip))
    page.wait_for_selector("#video-input video")
    page.click("#video-run")
    page.wait_for_function("document.querySelector('#video-summary').innerText.includes('6 frames')")
    page.wait_for_function("(() => { const v = document.querySelector('#video-output video');"
                           " return v && v.readyState >= 1 && v.videoWidth > 0; })()")
    size = page.eval_on_selector("#video-output video", "v => [v.videoWidth, v.videoHeight, v.duration]")
    assert size[:2] == [128, 96] and 0.3 < size[2] < 1.0, size  # decoded by Chromium: 6 frames at 12 fps
