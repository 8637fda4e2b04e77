"""The colorization tab's hints in a real browser (headless Chromium via Playwright, as test_app_browser):
a brush stroke painted on the grey photo becomes hints along it, in the photo's pixels and the brush's
colour; a click still adds a point hint; Colorize then uses them all, at the vividness slider's value.
Skips without Playwright/Chromium."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_app_browser import page  # noqa: F401  (the shared browser page fixture)

pytestmark = pytest.mark.slow

PHOTO = Path(__file__).resolve().parent.parent / "examples" / "grey_old_tom_morris.png"  # 206x270


def hints_shown(page) -> list:  # noqa: F811
    """The gr.JSON's list: its text after the label line, one token per line."""
    body = page.inner_text("#colorize-hints").split("\n", 1)[1].replace("\n", "")
    return json.loads(body) if body.strip() else []


def test_strokes_and_clicks_become_hints_and_reach_the_model(page, tmp_path):  # noqa: F811
    from ui.colorize_tab import available_models

    if "colorize_hint_cls" not in available_models():
        pytest.skip("colorize_hint_cls has no weights")
    page.get_by_role("tab", name="Colorization").click()
    page.locator("#colorize-input input[type=file]").set_input_files(str(PHOTO))
    page.wait_for_selector("#colorize-hint-canvas img")
    page.get_by_role("tab", name="Paint strokes").click()
    editor = page.locator("#colorize-hint-strokes")
    editor.locator("canvas").first.wait_for()
    editor.scroll_into_view_if_needed()
    editor.locator("button[aria-label='Brush']").click()
    box = editor.locator("canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2  # the photo is shown centred
    page.mouse.move(cx - 30, cy)
    page.mouse.down()
    for i in range(13):
        page.mouse.move(cx - 30 + i * 5, cy, steps=2)
    page.mouse.up()
    page.click("#colorize-use-strokes")
    page.wait_for_function("document.querySelector('#colorize-stroke-note').innerText.includes('from the strokes')")
    hints = hints_shown(page)
    assert len(hints) >= 4 and {c for _, _, c in hints} == {"#3070d0"}  # the brush's default colour
    xs, ys = [x for x, _, _ in hints], [y for _, y, _ in hints]
    assert min(xs) < 103 < max(xs) and max(xs) - min(xs) > 30  # a horizontal stroke across the centre...
    assert all(abs(y - 135) < 20 for y in ys)  # ...at the photo's mid-height (photo pixels, not screen)
    page.get_by_role("tab", name="Click points").click()
    canvas = page.locator("#colorize-hint-canvas img")
    box = canvas.bounding_box()
    canvas.click(position={"x": box["width"] * 0.5, "y": box["height"] * 0.2})
    page.wait_for_function(f"document.querySelector('#colorize-hints').innerText.split('#').length > {len(hints) + 1}")
    assert len(hints_shown(page)) == len(hints) + 1
    vividness = page.locator("#colorize-vividness input[type=number]")
    vividness.fill("1.5")
    vividness.press("Enter")
    page.click("#colorize-run")
    page.wait_for_function("document.querySelector('#colorize-output img') !== null")
    page.get_by_text(f"{len(hints) + 1} colour hint(s) used").first.wait_for()
    page.get_by_text("Vividness 1.5").first.wait_for()  # the slider's value reached the model


def test_a_clip_is_colorized_in_the_browser(page, tmp_path):  # noqa: F811
    from test_app import write_clip

    from ui.colorize_tab import available_models

    if "colorize_hint_cls" not in available_models():
        pytest.skip("colorize_hint_cls has no weights")
    clip = write_clip(tmp_path / "pan.webm", frames=4, fps=8)
    page.get_by_role("tab", name="Colorization").click()
    page.locator("#colorize-video-input input[type=file]").set_input_files(str(clip))
    page.wait_for_selector("#colorize-video-input video")
    page.click("#colorize-video-run")
    page.wait_for_function("document.querySelector('#colorize-video-summary').innerText.includes('carried along')")
    assert "4 frames (64×48)" in page.inner_text("#colorize-video-summary")  # not the progress line "1/4 frames"
    page.wait_for_function("(() => { const v = document.querySelector('#colorize-video-output video');"
                           " return v && v.readyState >= 1 && v.videoWidth > 0; })()")
    size = page.eval_on_selector("#colorize-video-output video", "v => [v.videoWidth, v.videoHeight]")
    assert size == [64, 48], size
