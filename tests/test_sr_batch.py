"""The SR tab's batch endpoint: several files or zips in, a zip of results out; unsafe zips refused."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from ui.inputs import RefusedInput
from ui.sr_batch import MAX_MEMBER_BYTES, gather_inputs


def _png(side: int = 24, value: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((side, side, 3), value, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _zip(path, members: dict):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_zip_members_with_unsafe_names_are_skipped_and_bombs_refused(upload_dir, tmp_path):
    archive = _zip(upload_dir / "photos.zip", {"a/one.png": _png(), "../../evil.png": _png(), "/abs.png": _png(),
                                               "notes.txt": b"hello"})
    paths, notes = gather_inputs([{"path": str(archive), "orig_name": "photos.zip"}], tmp_path / "in")
    assert [p.relative_to(tmp_path / "in").as_posix() for p in paths] == ["photos/a/one.png"]
    assert any("../../evil.png" in n and "unsafe" in n for n in notes) and any("/abs.png" in n for n in notes)
    assert not (tmp_path / "evil.png").exists() and not (tmp_path.parent / "evil.png").exists()
    bomb = _zip(upload_dir / "bomb.zip", {"big.png": b"\0" * (MAX_MEMBER_BYTES + 1)})
    with pytest.raises(RefusedInput, match="decompression bomb"):
        gather_inputs([{"path": str(bomb), "orig_name": "bomb.zip"}], tmp_path / "in2")
    with pytest.raises(RefusedInput, match="at least one image"):
        gather_inputs([], tmp_path / "in3")
    with pytest.raises(RefusedInput, match="not an uploaded file"):
        gather_inputs([{"path": "/etc/passwd"}], tmp_path / "in4")


@pytest.mark.slow
def test_a_twenty_file_batch_returns_a_zip_and_names_the_broken_files(client, upload_dir):
    from gradio_client import handle_file

    files = []
    for i in range(18):
        (upload_dir / f"photo_{i:02d}.png").write_bytes(_png(16 + i, 10 * i))
        files.append(handle_file(str(upload_dir / f"photo_{i:02d}.png")))
    (upload_dir / "broken.png").write_bytes(_png()[:50])
    (upload_dir / "text.jpg").write_bytes(b"not an image")
    files += [handle_file(str(upload_dir / "broken.png")), handle_file(str(upload_dir / "text.jpg"))]
    archive, summary, rows = client.predict(files, "flashsr", "2", 0, "auto", "jpeg", 90, 0,
                                            api_name="/upscale_batch")
    with zipfile.ZipFile(archive) as zf:
        names = sorted(zf.namelist())
        assert len(names) == 18 and all(n.endswith(".jpg") for n in names)
        with Image.open(io.BytesIO(zf.read("photo_03.jpg"))) as img:
            assert img.size == (38, 38) and img.format == "JPEG"
    failed = {r["file"]: r["message"] for r in rows if r["status"] == "failed"}
    assert set(failed) == {"broken.png", "text.jpg"}
    assert "truncated" in failed["broken.png"] and "not an image" in failed["text.jpg"]
    assert "18 done" in summary and "2 failed" in summary
