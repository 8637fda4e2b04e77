"""Brush strokes -> colour hints (serve.colorize_hints.stroke_hints, ui.colorize_hints_ui), and the
strokes reaching the model through the app's /colorize endpoint."""
from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from serve.colorize_hints import MAX_HINTS, check_hints, stroke_hints
from serve.contract import InputError


def layer(h: int, w: int) -> np.ndarray:
    return np.zeros((h, w, 4), np.uint8)


def test_a_stroke_becomes_hints_along_it_in_photo_pixels():
    paint = layer(20, 40)
    paint[10, 4:36] = (0, 0, 255, 255)  # a horizontal blue line, 32 px long
    hints, note = stroke_hints([paint], width=80, height=40, step=8)
    assert note == "" and len(hints) == 5  # one per 8-px cell it crosses (x 4..35: cells 0..4)
    assert all(c == "#0000ff" for _, _, c in hints)
    assert all(y == 21 for _, y, _ in hints)  # row 10 of 20 -> (10 + 0.5) * 40 / 20 = 21 in the 80x40 photo
    xs = [x for x, _, _ in hints]
    assert xs == [9, 25, 41, 57, 71]  # the pixel nearest each cell's centre, (x + 0.5) * 2  # inside the painted span, scaled x2
    assert check_hints(hints, 80, 40)  # valid API hints


def test_faint_pixels_are_ignored_and_later_layers_win():
    under, over = layer(8, 8), layer(8, 8)
    under[2, 2] = (255, 0, 0, 255)
    over[2, 2] = (0, 255, 0, 255)
    faint = layer(8, 8)
    faint[5, 5] = (0, 0, 255, 60)  # anti-aliased edge: not paint
    hints, _ = stroke_hints([under, over, faint], 8, 8, step=8)
    assert hints == [[2, 2, "#00ff00"]]
    assert stroke_hints([layer(8, 8)], 8, 8) == ([], "")
    assert stroke_hints([], 8, 8) == ([], "")


def test_too_many_stroke_hints_are_thinned_evenly_with_a_note():
    paint = layer(64, 64)
    paint[..., 2], paint[..., 3] = 200, 255  # the whole layer painted: 64*64 cells of 1 px
    hints, note = stroke_hints([paint], 64, 64, step=1)
    assert len(hints) == MAX_HINTS and "4096 hint points" in note and f"{MAX_HINTS} evenly spaced" in note
    rows = sorted({y for _, y, _ in hints})
    assert rows[0] == 0 and rows[-1] == 63 and len(rows) > 32  # spread over the whole image, not the top
    fewer, note = stroke_hints([paint], 64, 64, step=1, limit=10)
    assert len(fewer) == 10 and "10 evenly spaced" in note
    none, note = stroke_hints([paint], 64, 64, step=1, limit=0)
    assert none == [] and "0 evenly spaced" in note


def test_bad_layers_are_clear_errors():
    with pytest.raises(InputError, match="RGBA"):
        stroke_hints([np.zeros((4, 4, 3), np.uint8)], 4, 4)
    with pytest.raises(InputError, match="differ in size"):
        stroke_hints([layer(4, 4), layer(4, 5)], 4, 4)


def _png(arr: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="PNG")
    return buffer.getvalue()


def test_editor_layers_come_from_blobs_or_uploads_only(upload_dir, tmp_path):
    from ui.colorize_hints_ui import editor_layers
    from ui.inputs import RefusedInput

    paint = layer(6, 9)
    paint[3, 4] = (10, 20, 30, 255)
    editor = SimpleNamespace(blob_storage={"abc": SimpleNamespace(layers=[_png(paint), None])})
    got = editor_layers(editor, {"id": "abc", "layers": []})
    assert len(got) == 1 and np.array_equal(got[0], paint) and "abc" not in editor.blob_storage
    (upload_dir / "layer.png").write_bytes(_png(paint))
    got = editor_layers(editor, {"layers": [{"path": str(upload_dir / "layer.png")}]})
    assert np.array_equal(got[0], paint)
    (tmp_path / "secret.png").write_bytes(_png(paint))
    with pytest.raises(RefusedInput, match="not an uploaded file"):
        editor_layers(editor, {"layers": [{"path": str(tmp_path / "secret.png")}]})
    assert editor_layers(editor, None) == []


@pytest.mark.slow
def test_strokes_reach_the_model_through_the_app(client, upload_dir):
    """A blue stroke painted over the photo's left half, turned into hints by the tab's own code, sent as
    /colorize's hints: the left half comes out bluer than automatic colour, the right half barely moves."""
    from gradio_client import handle_file

    from ui.colorize_hints_ui import editor_layers
    from ui.colorize_tab import available_models

    if "colorize_hint_cls" not in available_models():
        pytest.skip("colorize_hint_cls has no weights")
    grey = np.asarray(Image.open("examples/grey_old_tom_morris.png").convert("L"))
    h, w = grey.shape
    photo = upload_dir / "photo.png"
    Image.fromarray(grey).save(photo)
    paint = layer(h // 2, w // 2)  # the editor's preview at half size
    for row in range(h // 8, h * 3 // 8, 6):
        paint[row:row + 3, 2:w // 4 - 2] = (30, 90, 230, 255)
    (upload_dir / "strokes.png").write_bytes(_png(paint))
    hints, note = stroke_hints(editor_layers(None, {"layers": [{"path": str(upload_dir / "strokes.png")}]}), w, h)
    assert hints and note == ""
    results = {}
    for label, given in (("auto", []), ("strokes", hints)):
        (_, colour), _, summary, info = client.predict(handle_file(str(photo)), "colorize_hint_cls", "auto",
                                                       "auto", given, api_name="/colorize")
        results[label] = np.asarray(Image.open(colour).convert("RGB"), np.float32)
        assert info["hints"] == len(given)
    blueness = {k: (v[..., 2] - v[..., 0]) for k, v in results.items()}
    left = (slice(h // 4, h * 3 // 4), slice(0, w // 2))
    assert blueness["strokes"][left].mean() > blueness["auto"][left].mean() + 10
