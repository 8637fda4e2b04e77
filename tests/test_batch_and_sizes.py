"""Any output size (serve.resize_plan) and folder batches through the serve CLIs (serve.batch)."""
import numpy as np
import pytest
from PIL import Image

from common.images import read_image
from serve import runtime
from serve.batch import plan_outputs, run_batch
from serve.contract import InputError
from serve.resize_plan import plan_resize, target_size
from serve.sr import upscale_to


@pytest.fixture(autouse=True)
def _fresh_backends():
    yield
    runtime.clear_cache()


@pytest.mark.parametrize("model, scale, run", [
    ("flashsr_x4", 1.5, "flashsr_x2 (x2), then area resize 200x120 -> 150x90 (x1.5)"),
    ("flashsr_x4", 2, "flashsr_x2 (x2)"),
    ("flashsr_x2", 3, "flashsr_x4 (x4), then area resize 400x240 -> 300x180 (x3)"),
    ("flashsr_x4", 6, "flashsr_x2 (x2) then flashsr_x4 (x4), then area resize 800x480 -> 600x360 (x6)"),
    ("flashsr_x4", 8, "flashsr_x2 (x2) then flashsr_x4 (x4)"),
    ("srgan_x4", 6, "srgan_x4 (x4), then lanczos resize 400x240 -> 600x360 (x6)"),  # x16 would overshoot 2.7x
    ("srgan_x4", 16, "srgan_x4 (x4) then srgan_x4 (x4)"),
])
def test_plan_chains_the_family_then_resizes(model, scale, run):
    assert plan_resize(100, 60, model, outscale=scale).describe() == run


def test_plan_respects_output_limit_by_enlarging_the_rest():
    # x3 of 3000x3000 = 81 MP fits 100 MP, but the x4 pass (144 MP) would not: x2 then Lanczos
    assert plan_resize(3000, 3000, "flashsr_x4", outscale=3).describe().startswith("flashsr_x2 (x2), then lanczos")
    with pytest.raises(InputError, match=r"over the output limit of 100\.0 MP; ask for a smaller size"):
        plan_resize(3000, 3000, "flashsr_x4", outscale=4)


@pytest.mark.parametrize("kwargs, size", [
    ({"out_width": 250}, (250, 150)), ({"out_height": 33}, (55, 33)), ({"long_side": 1000}, (1000, 600)),
    ({"outscale": 0.5}, (50, 30)),
])
def test_target_sizes(kwargs, size):
    assert target_size(100, 60, **kwargs)[:2] == size


@pytest.mark.parametrize("kwargs, message", [
    ({"outscale": 0}, "outscale must be greater than 0, got 0"),
    ({"outscale": -2}, "outscale must be greater than 0"),
    ({"outscale": 17}, "outscale: x17; the most is x16"),
    ({"outscale": "big"}, "outscale must be a number, got 'big'"),
    ({"outscale": float("nan")}, "outscale must be a finite number"),
    ({"out_width": 2000}, "width: 2000 px is x20.00 of 100 px; the most is x16"),
    ({"out_width": 10.5}, "width must be a whole number of pixels above 0"),
    ({}, "give exactly one of outscale, width, height or long_side"),
    ({"outscale": 2, "long_side": 300}, r"\(got outscale, long_side\)"),
])
def test_bad_size_requests_are_clear(kwargs, message):
    with pytest.raises(InputError, match=message):
        target_size(100, 60, **kwargs)


def test_upscale_to_runs_the_plan(rng):
    image = rng.random((10, 14, 4)).astype(np.float32)  # RGBA: alpha follows through both passes
    result = upscale_to(image, "flashsr_x4", "torch-cpu", outscale=6, tile=0)
    assert result.image.shape == (60, 84, 4)
    info = result.info
    assert info["run"].startswith("flashsr_x2 (x2) then flashsr_x4 (x4), then area resize 112x80 -> 84x60")
    assert [p["model"] for p in info["passes"]] == ["flashsr_x2", "flashsr_x4"] and info["model_scale"] == 8
    assert info["output_size"] == [84, 60] and info["scale"] == 6
    with pytest.raises(InputError, match="custom weights file only replaces flashsr_x4"):
        upscale_to(image, "flashsr_x4", "torch-cpu", outscale=6, weights_path="x.safetensors")


def test_plan_outputs_mirrors_the_tree_and_avoids_collisions(tmp_path):
    files = [tmp_path / "a.jpg", tmp_path / "a.png", tmp_path / "sub" / "b.tif"]
    planned = plan_outputs(files, tmp_path, tmp_path / "out", ".webp")
    assert [p[1].relative_to(tmp_path / "out").as_posix() for p in planned] == ["a.webp", "a_png.webp", "sub/b.webp"]
    assert [p[2] for p in planned] == ["a.jpg", "a.png", "sub/b.tif"]


def test_run_batch_cancel_and_unexpected_errors(tmp_path):
    files = [tmp_path / f"{i}.png" for i in range(4)]
    calls = []

    def process(source, out):
        calls.append(source.name)
        if source.name == "1.png":
            raise ZeroDivisionError("boom")
        out.write_bytes(b"x")
        return {}

    report = run_batch(files, tmp_path / "out", process, root=tmp_path, progress=False,
                       cancel=lambda: len(calls) >= 3)
    assert [r.status for r in report.results] == ["done", "failed", "done", "cancelled"]
    assert report.failed[0].message == "ZeroDivisionError: boom" and not report.ok
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "2.png"]  # no .partial left


def _folder_of_images(root, n=20, broken=("sub/broken_1.png", "sub/deeper/broken_2.jpg")):
    rng = np.random.default_rng(0)
    for i in range(n - len(broken)):
        path = root / ("sub" if i % 3 == 0 else ".") / (f"img_{i:02d}.png" if i % 2 else f"img_{i:02d}.jpg")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((12, 16, 3)) * 255).astype(np.uint8)).save(path)
    for name in broken:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes((root / "img_01.png").read_bytes()[:80])
    return root


def test_sr_cli_folder_batch(tmp_path, capsys):
    from serve.sr import main

    source = _folder_of_images(tmp_path / "in")
    out = tmp_path / "out"
    args = [str(source), "--out", str(out), "--model", "flashsr_x2", "--backend", "torch-cpu", "--tile", "0",
            "--format", "jpeg", "--quality", "90", "--outscale", "3"]
    assert main(args) == 1  # two files failed
    summary = capsys.readouterr().out
    assert "20 files: 18 done, 0 skipped (already done), 2 failed" in summary
    assert "failed: sub/broken_1.png: truncated PNG" in summary and "failed: sub/deeper/broken_2.jpg:" in summary
    assert str(tmp_path) not in summary  # names relative to the input folder
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert len(written) == 18 and all(name.endswith(".jpg") for name in written) and "sub/img_00.jpg" in written
    assert Image.open(out / "img_01.jpg").size == (48, 36)

    assert main(args) == 1
    assert "0 done, 18 skipped (already done), 2 failed" in capsys.readouterr().out
    (source / "sub" / "broken_1.png").unlink()
    (source / "sub" / "deeper" / "broken_2.jpg").unlink()
    assert main(args + ["--overwrite"]) == 0
    assert "18 files: 18 done, 0 skipped (already done), 0 failed" in capsys.readouterr().out


def test_sr_cli_output_folder_inside_or_equal_to_the_input(tmp_path, capsys):
    """Inside: the earlier results are not fed back in (they were: sub/x/sub/x/a.png on the second run);
    the same folder: refused (it reported every input as 'already done')."""
    from serve.sr import main

    source = _folder_of_images(tmp_path / "in", n=4, broken=())
    common = ["--model", "flashsr_x2", "--backend", "torch-cpu", "--tile", "0"]
    inner = source / "sub" / "x"
    for _ in range(2):
        assert main([str(source), "--out", str(inner), *common]) == 0
    written = sorted(p.relative_to(inner).as_posix() for p in inner.rglob("*") if p.is_file())
    assert len(written) == 4 and not any(name.startswith("sub/x") for name in written), written
    assert main([str(source), "--out", str(source), *common]) == 2
    assert "is the input folder itself" in capsys.readouterr().err
    one = next(source.glob("*.png"))
    assert main([str(one), "--out", str(tmp_path), *common]) == 2  # was a raw "[Errno 21] Is a directory"
    assert "is a folder; give the output file's name" in capsys.readouterr().err


def test_sr_cli_single_file_with_format_and_size(tmp_path, capsys):
    from serve.sr import main

    Image.fromarray(np.full((10, 20, 3), 120, np.uint8)).save(tmp_path / "in.png")
    assert main([str(tmp_path / "in.png"), "--out", str(tmp_path / "o.webp"), "--model", "flashsr_x2",
                 "--backend", "torch-cpu", "--format", "webp-lossless", "--long-side", "50"]) == 0
    assert Image.open(tmp_path / "o.webp").size == (50, 25)
    assert main([str(tmp_path / "in.png"), "--out", str(tmp_path / "o.png"), "--format", "jpeg"]) == 2
    assert "--format jpeg does not match the output name o.png" in capsys.readouterr().err
    assert main([str(tmp_path / "in.png"), "--out", str(tmp_path / "o.png"), "--outscale", "20"]) == 2
    assert main([str(tmp_path / "in.png"), "--out", str(tmp_path / "o.jpg"), "--quality", "0"]) == 2
    assert "quality must be from 1 to 100" in capsys.readouterr().err


def test_colorize_cli_folder(tmp_path, capsys):
    from serve.colorize import main

    source = _folder_of_images(tmp_path / "in", n=3, broken=("bad.png",))
    assert main([str(source), "--out", str(tmp_path / "out"), "--backend", "torch-cpu", "--format", "tiff"]) == 1
    assert "3 files: 2 done, 0 skipped (already done), 1 failed" in capsys.readouterr().out
    assert read_image(tmp_path / "out" / "img_01.tif").rgb.shape == (12, 16, 3)


def test_uncertainty_cli_folder(tmp_path, capsys):
    from serve.uncertainty import main

    source = _folder_of_images(tmp_path / "in", n=2, broken=())
    args = [str(source), "--out", str(tmp_path / "out"), "--passes", "2", "--backend", "torch-cpu", "--no-crop",
            "--patch", "4", "--top-n", "1"]
    assert main(args) == 0
    assert (tmp_path / "out" / "sub" / "img_00" / "summary.json").exists()
    assert main(args) == 0 and "0 done, 2 skipped" in capsys.readouterr().out
