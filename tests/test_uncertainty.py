"""Uncertainty maps: MC dropout through serve backends (torch == ORT), tiling, outputs, bad input, calibration."""
import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from evaluate.uncertainty import ause, evaluate_uncertainty, rank_correlation, sparsification_curve
from export import onnx_export
from export.mc import MC_GRAPH
from models import get_spec, save_checkpoint
from models.mc_dropout import MCDropoutWrapper, sample_masks
from serve import runtime
from serve.contract import InputError
from serve.uncertainty import (
    DIHEDRAL,
    _Moments,
    _tta_passes,
    estimate_uncertainty,
    main,
    max_batch,
    write_outputs,
    zip_outputs,
)

X2 = "flashsr_x2"
SMALL = {"channels": 8, "blocks": 1}  # the registered architecture at a fraction of the compute


def small_model(seed=0):
    torch.manual_seed(seed)
    model = get_spec(X2).build(**SMALL)
    with torch.no_grad():
        torch.nn.init.normal_(model.upsample[0].weight, std=0.05)  # the shipped init zeroes it: masks would not matter
    return model.eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uncertainty")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STSR_CACHE", str(folder / "cache"))
        path = folder / f"{X2}.safetensors"
        save_checkpoint(path, small_model(), arch="flashsr", args={**get_spec(X2).kwargs, **SMALL})
        yield str(path)
        runtime.clear_cache()


def picture(h, w, seed=0):
    """Smooth colours plus a few hard edges, float RGB in [0, 1]."""
    rng = np.random.default_rng(seed)
    small = (rng.random((max(2, h // 8), max(2, w // 8), 3)) * 255).astype(np.uint8)
    img = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), np.float32) / 255
    img[h // 3: h // 2, :, 1] = 0.95
    img[:, w // 2: w // 2 + 3] = 0.05
    return img


def test_shared_trunk_mc_forward_equals_the_model_on_k_copies():
    model = small_model()
    lr, masks = torch.rand(1, 3, 19, 23), torch.from_numpy(sample_masks(5, model.mask_channels, 0.3, 1))
    wrapper = MCDropoutWrapper(model)
    with torch.no_grad():
        assert torch.allclose(wrapper(lr, masks), model(lr.expand(5, -1, -1, -1), dropout_masks=masks), atol=1e-6)


def test_an_mc_export_of_an_older_graph_layout_is_rebuilt(ckpt, tmp_path):
    path = onnx_export.ensure_onnx(X2, ckpt, tmp_path, mc=True)
    sidecar = onnx_export.onnx_sidecar_path(path)
    record = json.loads(sidecar.read_text())
    assert record["mc_graph"] == MC_GRAPH
    del record["mc_graph"]  # as written before the shared-trunk graph
    sidecar.write_text(json.dumps(record))
    onnx_export.ensure_onnx(X2, ckpt, tmp_path, mc=True)
    assert json.loads(sidecar.read_text())["mc_graph"] == MC_GRAPH


def test_torch_and_onnxruntime_give_the_same_mean_and_std_for_the_same_masks(ckpt):
    img = picture(70, 90)
    results = [estimate_uncertainty(img, X2, passes=6, backend=kind, chunk=4, crop_to_patches=False, patch=16,
                                    weights_path=ckpt) for kind in ("torch-cpu", "onnx-cpu")]
    torch_result, ort_result = results
    assert torch_result.summary["backend"].startswith("torch") and ort_result.summary["backend"].startswith("onnx")
    assert torch_result.std_map.max() > 1e-4  # the masks do move the output
    for field in ("mean_prediction", "one_prediction", "std_map"):
        assert np.abs(getattr(torch_result, field) - getattr(ort_result, field)).max() <= 1e-4, field


def test_tiles_and_chunks_do_not_change_the_result(ckpt):
    img = picture(60, 75, seed=3)
    whole = estimate_uncertainty(img, X2, passes=5, backend="onnx-cpu", chunk=5, tile=0, crop_to_patches=False,
                                 patch=16, weights_path=ckpt)
    tiled = estimate_uncertainty(img, X2, passes=5, backend="onnx-cpu", chunk=2, tile=32, crop_to_patches=False,
                                 patch=16, weights_path=ckpt)
    assert tiled.summary["tiles"] > 1 and whole.summary["tiles"] == 1
    assert np.abs(tiled.std_map - whole.std_map).max() <= 1e-5
    assert np.abs(tiled.mean_prediction - whole.mean_prediction).max() <= 1e-5


def test_outputs_have_the_seeds_shapes_and_file_layout(ckpt, tmp_path):
    steps = []
    result = estimate_uncertainty(picture(100, 140), X2, passes=4, backend="onnx-cpu", patch=32, top_n=2,
                                  progress=lambda f, text: steps.append(f), weights_path=ckpt)
    assert result.cropped_lr.shape == (96, 128, 3)  # centre crop to whole 32x32 patches
    assert result.mean_prediction.shape == result.one_prediction.shape == result.heatmap.shape == (192, 256, 3)
    assert result.std_map.shape == (192, 256) and result.std_map.dtype == np.float32
    assert result.colorbar.dtype == np.uint8 and result.colorbar.ndim == 3 and result.colorbar.shape[2] == 3
    assert 0 <= result.heatmap.min() and result.heatmap.max() <= 1
    assert steps and steps[-1] == pytest.approx(1.0) and steps == sorted(steps)
    for triplets in (result.most_certain, result.least_certain):
        assert len(triplets) == 2
        assert [a.shape for a in triplets[0]] == [(32, 32, 3), (64, 64, 3), (64, 64, 3)]
    summary = result.summary
    assert summary["passes"] == 4 and summary["estimator"] == "mc" and summary["dropout_p"] == pytest.approx(0.1)
    assert summary["most_certain"][0]["mean_std"] <= summary["least_certain"][0]["mean_std"]

    files = {p.relative_to(tmp_path / "out").as_posix() for p in write_outputs(result, tmp_path / "out")}
    expected = {"cropped_lr.png", "one_prediction.png", "mean_prediction.png", "uncertainty_map.png", "colorbar.png",
                "summary.json"}
    for folder in ("most_certain", "least_certain"):
        expected |= {f"details/{folder}/{stem}_{i}.png" for i in (1, 2)
                     for stem in ("original_lr_patch", "mean_pred_patch", "heatmap")}
    assert files == expected
    assert Image.open(tmp_path / "out" / "uncertainty_map.png").size == (256, 192)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["model"] == X2
    with zipfile.ZipFile(zip_outputs(result, tmp_path / "all.zip")) as archive:
        assert set(archive.namelist()) == expected


def test_tta_undoes_every_flip_and_rotation():
    """A model that commutes with flips/rotations (nearest upscaling) gives 8 equal predictions: std 0."""
    class Nearest:
        inputs = outputs = (type("T", (), {"name": "x"})(),)

        def run(self, feeds):
            return {"x": feeds["x"].repeat(2, axis=2).repeat(2, axis=3)}

    tile = np.random.default_rng(0).random((1, 3, 6, 9), dtype=np.float32)
    moments = _Moments()
    for chunk in _tta_passes(Nearest(), DIHEDRAL, chunk=3)(tile):
        assert chunk.shape[1:] == (3, 12, 18)
        moments.add(chunk)
    stats = moments.channels()
    assert moments.count == 8 and np.abs(stats[6]).max() < 1e-6
    assert np.allclose(stats[3:6], tile[0].repeat(2, axis=1).repeat(2, axis=2), atol=1e-6)


def test_tta_estimator_runs_end_to_end(ckpt):
    steps = []
    result = estimate_uncertainty(picture(64, 64), X2, passes=40, backend="onnx-cpu", estimator="tta",
                                  chunk=3, progress=lambda f, text: steps.append(f), weights_path=ckpt)
    assert steps == pytest.approx([0.25, 0.5, 0.75, 1.0])  # 2 shape groups of 4 transforms, 3 per call
    assert result.summary["passes"] == 8 and result.summary["estimator"] == "tta"
    assert result.std_map.shape == (128, 128) and result.std_map.max() > 0


def test_a_tensorrt_engines_profile_caps_the_passes_per_call():
    engine = type("Engine", (), {"profile": lambda self, name: ((1, 64), (2, 64), (4, 64))})()
    assert max_batch(type("Runner", (), {"engine": engine})(), "masks") == 4
    assert max_batch(object(), "masks") is None


@pytest.mark.parametrize("passes", [0, 1, 129, 2.5, True])
def test_passes_outside_2_to_128_are_refused(passes):
    with pytest.raises(InputError, match="passes must be a whole number from 2 to 128"):
        estimate_uncertainty(picture(64, 64), X2, passes=passes)


def test_an_image_smaller_than_one_patch_is_refused():
    with pytest.raises(InputError, match="smaller than one 64x64 patch"):
        estimate_uncertainty(picture(40, 200), X2, passes=4)


def test_an_enormous_image_is_refused_before_any_work():
    huge = np.zeros((2100, 2100, 3), np.uint8)
    with pytest.raises(InputError, match="over the limit"):
        estimate_uncertainty(huge, X2, passes=4)


def test_unknown_estimator_is_refused():
    with pytest.raises(InputError, match="estimator must be one of mc, tta"):
        estimate_uncertainty(picture(64, 64), X2, estimator="ensemble")


def test_cli_writes_the_layout_and_reports_bad_input(ckpt, tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray((picture(64, 128) * 255).astype(np.uint8)).save(src)
    out = tmp_path / "cli"
    assert main([str(src), "--passes", "3", "--out", str(out), "--weights", ckpt, "--backend", "onnx-cpu"]) == 0
    assert (out / "details" / "least_certain" / "heatmap_1.png").exists() and (out / "colorbar.png").exists()
    assert main([str(src), "--passes", "200", "--out", str(out)]) == 2
    assert "passes must be a whole number from 2 to 128" in capsys.readouterr().err


# ----------------------------------------------------------------------------- calibration

def test_a_perfect_predictor_has_zero_ause_and_rank_correlation_one():
    error = np.random.default_rng(0).random((40, 50))
    assert ause(error, error) == pytest.approx(0.0, abs=1e-12)
    assert ause(2 * error + 1, error) == pytest.approx(0.0, abs=1e-12)  # only the order matters
    assert rank_correlation(error ** 3, error) == pytest.approx(1.0)
    curve = sparsification_curve(error, error)
    assert curve[0] == pytest.approx(1.0) and np.all(np.diff(curve) <= 1e-12)


def test_wrong_and_random_predictors_score_worse():
    rng = np.random.default_rng(1)
    error = rng.random(20000)
    random_ause, inverted_ause = ause(rng.random(20000), error), ause(-error, error)
    assert 0 < random_ause < inverted_ause
    # U[0,1] errors: removing the top f leaves mean (1-f)/2, so oracle curve 1-f, random 1: area 0.98^2/2
    assert random_ause == pytest.approx((1 - 1 / 50) ** 2 / 2, abs=0.02)
    assert rank_correlation(-error, error) == pytest.approx(-1.0)
    assert rank_correlation(np.ones(10), np.arange(10.0)) == 0.0


def test_evaluate_uncertainty_reports_the_issue_keys(ckpt):
    hr = picture(66, 80, seed=5)
    (row,) = evaluate_uncertainty(X2, {"Tiny": [("a.png", hr)]}, passes=3, backend="onnx-cpu", weights=ckpt, log=None)
    assert {"model", "set", "spearman", "ause", "ause_proxy", "psnr_mean", "psnr_single"} <= set(row)
    assert row["set"] == "Tiny" and row["passes"] == 3 and -1 <= row["spearman"] <= 1 and row["ause"] >= 0


def test_float32_moments_match_a_float64_reference():
    """The running statistics are float32 (20x faster than float64); they stay within 1e-5 of float64."""
    from serve.uncertainty import LUMA, _Moments

    rng = np.random.default_rng(0)
    preds = rng.random((40, 3, 17, 23), dtype=np.float32) * 1.2 - 0.1
    moments = _Moments()
    for start in range(0, 40, 15):  # chunks, as the passes arrive
        moments.add(preds[start:start + 15].copy())
    got = moments.channels()
    clipped = np.clip(preds.astype(np.float64), 0, 1)
    y = np.tensordot(clipped, LUMA.astype(np.float64), axes=([1], [0]))
    assert got.dtype == np.float32 and got.shape == (7, 17, 23)
    assert np.allclose(got[:3], clipped[0], atol=1e-6)
    assert np.allclose(got[3:6], clipped.mean(axis=0), atol=1e-5)
    assert np.allclose(got[6], y.std(axis=0, ddof=1), atol=1e-5)


def test_auto_chunk_bounds_one_calls_memory_and_runs_few_calls():
    from serve.uncertainty import MC_CALL_BYTES, auto_chunk

    assert auto_chunk((64, 64), 256, 2, 40) == 40  # a small image: every pass in one call
    for size, scale in (((256, 256), 2), ((256, 256), 4), ((1414, 1414), 2)):
        chunk = auto_chunk(size, 256, scale, 128)
        side = min(256, size[0])
        assert 1 <= chunk < 128 and chunk * 4 * side * side * (64 + 9 * scale * scale) <= MC_CALL_BYTES
    assert auto_chunk((4000, 4000), 0, 4, 40) >= 1  # never zero
