"""The lean Space: the fp32 ONNX exports of the shipped models are committed and current, and the app and
the serve CLIs run with torch absent (a subprocess in which every `import torch` raises ImportError)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from common.paths import PROJECT_ROOT
from export.onnx_files import REGENERATE, current_reason, read_onnx_record, shipped_problems, shipped_variants
from models import REGISTRY

BLOCKER = textwrap.dedent('''
    import sys

    class _NoTorch:
        """Every import of torch (and what needs it) fails, as on a Space without it installed."""

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision", "pytorch_msssim"):
                raise ImportError(f"No module named {name!r} (blocked by tests/test_lean.py)")
            return None

    sys.meta_path.insert(0, _NoTorch())
''')


def test_every_shipped_export_is_current():
    """CI's check that weights/onnx matches weights/: each sidecar's source SHA-256 is the safetensors' own."""
    problems = shipped_problems()
    assert not problems, f"stale or missing shipped ONNX exports; run `{REGENERATE}` and commit:\n" + "\n".join(
        problems)


def test_shipped_sidecars_say_what_serving_needs():
    assert {name for name, _ in shipped_variants()} == {n for n, s in REGISTRY.items() if s.has_weights()}
    for name, mc in shipped_variants():
        out, _ = current_reason(name, REGISTRY[name].weights_path, mc=mc)
        record = read_onnx_record(out)
        assert record["source"]["path"] == f"weights/{name}.safetensors"  # no machine-specific folder
        assert record["variant"] == ("mc" if mc else "standard") and record["parity"] is not None
        if mc:  # the uncertainty map draws its masks from these when torch is absent
            assert record["mc"]["mask_channels"] > 0 and 0 < record["mc"]["dropout_p"] < 1


def test_a_changed_checkpoint_makes_its_export_stale(tmp_path):
    name = "esrcnn_x2"
    shipped, _ = current_reason(name, REGISTRY[name].weights_path)
    for path in (shipped, shipped.with_name(shipped.name + ".json")):
        shutil.copy(path, tmp_path / path.name)
    weights = tmp_path / f"{name}.safetensors"
    weights.write_bytes(REGISTRY[name].weights_path.read_bytes())
    assert current_reason(name, weights, tmp_path)[1] is None
    weights.write_bytes(weights.read_bytes() + b"\0")
    assert current_reason(name, weights, tmp_path)[1] == "the weights changed since it was exported"
    (tmp_path / shipped.name).write_bytes(b"junk")
    weights.write_bytes(REGISTRY[name].weights_path.read_bytes())
    assert current_reason(name, weights, tmp_path)[1] == "the ONNX file changed since its sidecar was written"
    shutil.copy(shipped, tmp_path / shipped.name)
    sidecar = tmp_path / (shipped.name + ".json")
    sidecar.write_text(sidecar.read_text().replace(REGISTRY[name].code_fingerprint(), "0" * 64))
    assert current_reason(name, weights, tmp_path)[1] == "the model's code changed since it was exported"


@pytest.mark.skipif(shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists(), reason="not a git checkout")
def test_the_fp32_exports_and_measured_low_precision_files_are_committed():
    names = ["flashsr_x2.onnx", "flashsr_x2.onnx.json", "flashsr_x2_mc.onnx", "flashsr_x2_mc.onnx.json",
             "flashsr_x2.int8.onnx", "flashsr_x2.int8.onnx.json", "flashsr_x2.bf16.json", "flashsr_x2_fp16.onnx",
             "flashsr_x2_fp16.onnx.json"]
    ignored = subprocess.run(["git", "check-ignore", *[f"weights/onnx/{n}" for n in names]], cwd=PROJECT_ROOT,
                             capture_output=True, text=True).stdout.split()
    assert sorted(Path(p).name for p in ignored) == sorted(names[7:])


SHIPPED_INT8 = ["flashsr_x2", "flashsr_x2_mc", "flashsr_x4", "flashsr_x4_mc", "flashsr_real_x2", "flashsr_real_x4"]


@pytest.mark.parametrize("stem", SHIPPED_INT8)
def test_shipped_int8_and_bf16_records_are_current(stem):
    """The app's SR models ship their int8 file and bf16 record (`python -m export int8` needs torch, so a
    lean Space could not make them); one measured on an older export would quietly leave `auto` at fp32."""
    from serve.precision import read_record

    fp32 = PROJECT_ROOT / "weights" / "onnx" / f"{stem}.onnx"
    for precision in ("int8", "bf16"):
        record, why = read_record(fp32, precision)
        assert record is not None, f"{stem} {precision}: {why}; run `python -m export int8 --model " \
                                   f"{stem.removesuffix('_mc')}{' --mc' * stem.endswith('_mc')}` and commit " \
                                   "weights/onnx"
    if not read_record(fp32, "int8")[0]["refused"]:
        assert (fp32.parent / f"{stem}.int8.onnx").is_file()


def _without_torch(tmp_path: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(PROJECT_ROOT)]),
           "GRADIO_ANALYTICS_ENABLED": "False", "STSR_CACHE": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_blocker_blocks(tmp_path):
    run = _without_torch(tmp_path, "-c", "import torch")
    assert run.returncode == 1 and "blocked by tests/test_lean.py" in run.stderr
    run = _without_torch(tmp_path, "-m", "export", "onnx", "--check")
    assert run.returncode == 0, run.stderr
    assert f"all {len(shipped_variants())} shipped ONNX exports are current" in run.stdout


def test_torch_only_commands_say_they_need_torch(tmp_path):
    run = _without_torch(tmp_path, "-m", "export", "onnx", "--model", "flashsr_x2", "--out-dir", str(tmp_path))
    assert run.returncode == 1 and "needs PyTorch" in run.stderr and "Traceback" not in run.stderr
    run = _without_torch(tmp_path, "-c", "import train.sr")
    assert run.returncode == 1 and "train/ needs PyTorch" in run.stderr
    run = _without_torch(tmp_path, "-m", "serve.sr", "examples/sr_car_lr.png", "--backend", "torch", "--out",
                         str(tmp_path / "x.png"))
    assert run.returncode == 2 and "PyTorch is not installed" in run.stderr


@pytest.mark.slow  # starts the app and runs every endpoint once (~1 min on 2 cores)
def test_app_and_clis_run_without_torch(tmp_path):
    run = _without_torch(tmp_path, str(PROJECT_ROOT / "tests" / "lean_app_driver.py"))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert "torch" not in report["backend_choices"] and "onnx" in report["backend_choices"]
    got = report["endpoints"]
    assert "using onnx-cpu" in got["upscale"] and "2 " in got["upscale_batch"]
    assert got["uncertainty"] == 4 and got["interpolate"] == 1 and got["video"] == 4
    assert isinstance(got["benchmark"]["onnx"], float) and "PyTorch is not installed" in got["benchmark"]["torch"]
    assert report["clis"] == {"serve.sr": 0, "serve.colorize": 0, "serve.uncertainty": 0, "serve.interpolate": 0,
                              "serve.video": 0}
    assert report["torch_loaded"] == []


def test_serving_colour_conversion_matches_the_models_torch_one():
    """serve.colorize recombines L and chroma in numpy (common.lab); it must equal the graphs' torch formulas."""
    import numpy as np
    torch = pytest.importorskip("torch")
    from common.lab import lab_to_rgb
    from models.lab_color import lab_to_rgb as torch_lab_to_rgb

    rng = np.random.default_rng(0)
    lab = np.stack([rng.uniform(0, 100, (32, 48)), rng.uniform(-110, 110, (32, 48)),
                    rng.uniform(-110, 110, (32, 48))], axis=-1).astype(np.float32)
    want = torch_lab_to_rgb(torch.from_numpy(lab.transpose(2, 0, 1))[None])[0].numpy().transpose(1, 2, 0)
    assert np.abs(lab_to_rgb(lab) - want).max() < 1e-4
