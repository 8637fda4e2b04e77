"""No endpoint opens a file the user did not upload.

Gradio 6.31's image data model accepts {"path": ...} without the `meta` marker that makes Gradio
itself check the path; the app checks every file argument (ui.inputs.uploaded_file) and answers
every refused path with the same sentence, so nothing tells whether the path exists.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ui.inputs import NOT_UPLOADED, RefusedInput, uploaded_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from gauntlet import full_arguments  # noqa: E402  (one list of every endpoint's arguments)

ENDPOINTS = {  # api_name -> (every argument, the file ones as None; index of each file argument)
    api: ([None if a in ("FILE", "FILE2") else a for a in full_arguments(api)],
          [i for i, a in enumerate(full_arguments(api)) if a in ("FILE", "FILE2")])
    for api in ("/upscale", "/colorize", "/uncertainty", "/interpolate", "/video", "/colorize_video")}
ENDPOINTS["/upscale_batch"] = ([None] + full_arguments("/upscale_batch")[1:], [0])


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """Files outside the upload folder: a real image with a recognisable colour, and a folder."""
    folder = tmp_path_factory.mktemp("server_files")
    image = folder / "secret.png"
    Image.fromarray(np.full((64, 64, 3), (12, 200, 77), np.uint8)).save(image)
    return {"image": image, "folder": folder}


def hostile_paths(outside, upload_dir) -> dict:
    link = upload_dir / "innocent.png"
    link.symlink_to(outside["image"])
    dotdot = Path(str(upload_dir)) / ".." / ".." / os.path.relpath(outside["image"], upload_dir.parent.parent)
    return {"existing image": str(outside["image"]), "passwd": "/etc/passwd", "proc": "/proc/self/cmdline",
            "folder": str(outside["folder"]), "missing": str(outside["folder"] / "nope.png"),
            "symlink out of the upload folder": str(link), "dot-dot segments": str(dotdot), "empty": "\x00"}


def test_checked_paths_refuse_everything_outside_the_upload_folder(outside, upload_dir):
    for label, path in hostile_paths(outside, upload_dir).items():
        for payload in ({"path": path}, {"path": path, "orig_name": "x.png"}, {"video": {"path": path}}, path):
            with pytest.raises(RefusedInput) as err:
                uploaded_file(payload, "image")
            assert err.value.message == f"The image is {NOT_UPLOADED}.", label


def test_an_uploaded_file_and_a_pasted_image_are_accepted(upload_dir):
    import base64
    import io

    real = upload_dir / "photo.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(real)
    assert uploaded_file({"path": str(real), "orig_name": "../../My photo.png"}) == (str(real.resolve()), "My photo.png")
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buffer, format="PNG")
    pasted = {"path": None, "url": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()}
    data, name = uploaded_file(pasted)
    assert data == buffer.getvalue() and name == "pasted image"
    with pytest.raises(RefusedInput, match="Please upload an image first"):
        uploaded_file(None)


REVEALING = ("not found", "is a folder", "is empty", "not an image", "corrupt", "truncated", "MP")
GRADIO_REFUSALS = ("'meta' field must be explicitly provided", "is not in the cache folder", "was not uploaded by a user",
                   "embedded null byte")


@pytest.mark.parametrize("api_name", list(ENDPOINTS))
def test_every_endpoint_refuses_server_paths_with_one_message(client, app_url, api_name, outside, upload_dir):
    """Without `meta` the app refuses (Gradio's video/file data model refuses first, on the payload's shape);
    with `meta` Gradio's own upload-folder check or the app's refuses. Never a word about the file."""
    template, file_args = ENDPOINTS[api_name]
    ours = set()
    for label, path in hostile_paths(outside, upload_dir).items():
        for with_meta in (False, True):
            payload = {"path": path, **({"meta": {"_type": "gradio.FileData"}} if with_meta else {})}
            for index in file_args:
                args = list(template)
                for other in file_args:  # the other frame is a real upload, so only `index` is hostile
                    args[other] = payload if other == index else _real_upload(client, upload_dir)
                if api_name in ("/video", "/colorize_video"):
                    args[index] = {"video": payload, "subtitles": None}
                if api_name == "/upscale_batch":
                    args[index] = [payload]
                text = raw_call(app_url, api_name, args)
                assert NOT_UPLOADED in text or any(r in text for r in GRADIO_REFUSALS), (label, text)
                assert not any(r in text for r in REVEALING), (label, text)
                assert "secret" not in text or "secret" in path  # a name only where Gradio echoes the request
                if NOT_UPLOADED in text:
                    ours.add(text.replace("first frame", "X").replace("second frame", "X").replace("image", "X"))
    assert len(ours) <= 1, ours  # the same words whether the path exists, is a folder or a link
    if api_name not in ("/video", "/colorize_video", "/upscale_batch"):  # gr.Video/gr.File: Gradio's FileData refuses first
        assert ours, "the app's own check never ran"
    from test_bad_inputs import still_serving

    still_serving(client)


def _real_upload(client, upload_dir) -> dict:
    path = upload_dir / "frame.png"
    if not path.exists():
        Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(path)
    return {"path": str(path), "orig_name": "frame.png", "meta": {"_type": "gradio.FileData"}}


def raw_call(app_url: str, api_name: str, args: list) -> str:
    """POST the payload as-is (gradio_client would upload a local file named in a FileData dict) and
    return the error message the server streams back; fails if the call succeeds."""
    import json

    import httpx

    with httpx.Client(timeout=60) as http:
        event = http.post(f"{app_url}/gradio_api/call{api_name}", json={"data": args}).json()["event_id"]
        stream = http.get(f"{app_url}/gradio_api/call{api_name}/{event}").text
    assert "event: error" in stream, f"{api_name} answered {stream[:300]}"
    data = stream.split("event: error", 1)[1].split("data:", 1)[1].strip().splitlines()[0]
    return json.dumps(json.loads(data)) if data.startswith(("{", "[", '"')) else data
