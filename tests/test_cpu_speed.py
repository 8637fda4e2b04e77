"""CPU speed (issue #15) and bounded memory (#22): OpenVINO parity, bf16/int8 quality, precision choice,
the LRU backend cache, ORT without its arena, ORT-TensorRT profiles."""
import numpy as np
import pytest

from export.onnx_export import export_onnx
from serve import runtime
from serve.backends import BackendUnavailable, OrtBackend, TorchBackend, module_available, trt_profile_shapes
from serve.precision import parse_precision

needs_openvino = pytest.mark.skipif(not module_available("openvino"), reason="openvino is not installed")
OV_MODELS = [("flashsr_x2", False), ("flashsr_x2", True), ("colorize_lab", False), ("flowinterp", False),
             ("convlstm_interp", False)]


class FakeBackend:
    """Stands in for a loaded session: what runtime's cache and best_available look at."""

    def __init__(self, name, kind, precision="fp32"):
        self.model_name, self.kind, self.precision = name, kind, precision
        self.provider, self.skipped, self.precision_note, self.selection_reason = f"fake {kind}", [], "", ""
        self.closed = False
        self.released = 0

    def close(self):
        self.closed = True

    def release_memory(self):
        self.released += 1


@pytest.fixture
def fake_runtime(monkeypatch):
    """create_backend that only records what it was asked for (no runtime loads)."""
    runtime.clear_cache()
    made = []

    def create(model_name, kind, **options):
        if kind in ("trt", "onnx-gpu", "torch-cuda"):
            raise BackendUnavailable(f"no GPU for {kind} in this test")
        made.append((model_name, kind, options.get("precision")))
        return FakeBackend(model_name, kind, options.get("precision") or "fp32")

    monkeypatch.setattr(runtime, "create_backend", create)
    yield made
    runtime.clear_cache()


def test_cache_keeps_at_most_the_cap_and_drops_the_least_recently_used(fake_runtime, monkeypatch):
    monkeypatch.setenv("STSR_MAX_SESSIONS", "2")
    a = runtime.get_backend("flashsr_x2", "onnx-cpu")
    b = runtime.get_backend("flashsr_x4", "onnx-cpu")
    assert runtime.get_backend("flashsr_x2", "onnx-cpu") is a  # a is now the most recently used
    c = runtime.get_backend("esrcnn_x2", "onnx-cpu")
    loaded = runtime.loaded_backends()
    assert len(loaded) == 2 and b not in loaded and a in loaded and c in loaded
    assert runtime.get_backend("flashsr_x4", "onnx-cpu") is not b  # dropped: created again
    assert len(fake_runtime) == 4 and len(runtime.loaded_backends()) == 2


def test_after_a_request_every_loaded_backend_gives_back_its_buffers(fake_runtime):
    """#22: the app's request wrapper (ui.common.user_errors) releases what runtimes keep between calls."""
    from ui.common import user_errors

    loaded = [runtime.get_backend(name, "onnx-cpu") for name in ("flashsr_x2", "flashsr_x4")]
    user_errors(lambda: "done")()
    assert [b.released for b in loaded] == [1, 1]


@needs_openvino
def test_openvino_releases_its_buffers_and_runs_the_same_afterwards(exported):
    backend = runtime.create_backend("flashsr_x2", "openvino-cpu", onnx_path=str(exported[("flashsr_x2", False)]))
    feeds = _feeds(backend, 48, 40)
    before = backend.run(feeds)["sr"]
    backend.release_memory()
    assert np.array_equal(backend.run(feeds)["sr"], before)


def test_one_backend_under_two_keys_counts_once(fake_runtime, monkeypatch):
    monkeypatch.setenv("STSR_MAX_SESSIONS", "1")
    chosen = runtime.get_backend("flashsr_x2", "auto")  # cached as 'auto' and as its concrete kind
    assert runtime.loaded_backends() == [chosen]
    assert runtime.get_backend("flashsr_x2", chosen.kind) is chosen


def test_precision_labels():
    assert [parse_precision(v) for v in ("exact fp32", "fast bf16", "fastest int8", "auto", None, "INT8")] == \
        ["fp32", "bf16", "int8", "auto", "fp32", "int8"]
    with pytest.raises(ValueError, match="precision must be one of"):
        parse_precision("fp8")


def test_auto_takes_the_fastest_precision_within_the_quality_limit(fake_runtime, monkeypatch, tmp_path):
    losses = {("openvino-cpu", "int8"): (0.2, "-0.200 dB"), ("onnx-cpu", "int8"): (None, "no measured int8"),
              ("openvino-cpu", "bf16"): (0.004, "-0.004 dB")}
    monkeypatch.setattr(runtime, "onnx_path_for", lambda *a, **k: tmp_path / "m.onnx")
    monkeypatch.setattr(runtime, "measured_loss", lambda path, kind, p: losses[(kind, p)])
    backend, reason = runtime.best_available("flashsr_x4", precision="auto")
    assert (backend.kind, backend.precision) == ("openvino-cpu", "bf16")
    assert "within 0.05 dB (-0.004 dB)" in reason
    assert "openvino-cpu int8: measured loss -0.200 dB is over auto's 0.05 dB" in reason
    assert "onnx-cpu int8: no measured int8" in reason
    losses[("openvino-cpu", "bf16")] = (0.3, "-0.300 dB")
    runtime.clear_cache()
    backend, reason = runtime.best_available("flashsr_x4", precision="auto")
    assert (backend.kind, backend.precision) == ("onnx-cpu", "fp32") and "exact fp32" in reason


def test_an_8_bit_weight_int8_file_is_not_trusted_on_a_cpu_without_vnni(monkeypatch, tmp_path):
    """Full 8-bit weights saturate ONNX Runtime's AVX2 int8 kernels (common/cpu.py): the record's
    quality, measured on a VNNI/AMX CPU, does not hold there, so auto must not rely on it."""
    import json

    from serve import precision
    from serve.precision import measured_loss

    fp32 = tmp_path / "m.onnx"
    fp32.write_bytes(b"graph")
    from models.checkpoint import file_sha256

    record = {"source_onnx_sha256": file_sha256(fp32), "refused": False, "held_out": {"count": 24},
              "psnr_change_db": {"onnxruntime": -0.02}, "calibration": {}}
    (tmp_path / "m.int8.onnx.json").write_text(json.dumps(record))
    monkeypatch.setattr(precision, "has_int8_dot_product", lambda: True)
    assert measured_loss(fp32, "onnx-cpu", "int8")[0] == 0.02
    monkeypatch.setattr(precision, "has_int8_dot_product", lambda: False)
    loss, why = measured_loss(fp32, "onnx-cpu", "int8")
    assert loss is None and "without VNNI/AMX" in why
    record["calibration"]["reduce_range"] = True
    (tmp_path / "m.int8.onnx.json").write_text(json.dumps(record))
    assert measured_loss(fp32, "onnx-cpu", "int8")[0] == 0.02


def test_precision_a_kind_cannot_run_is_refused_with_the_runtimes_that_can():
    with pytest.raises(BackendUnavailable, match="bf16 runs on openvino-cpu"):
        runtime.create_backend("flashsr_x2", "onnx-cpu", precision="bf16")
    with pytest.raises(BackendUnavailable, match="int8 runs on openvino-cpu, onnx-cpu"):
        runtime.create_backend("flashsr_x2", "torch-cpu", precision="int8")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Shipped models exported once into a scratch folder: {(name, mc): path}."""
    folder = tmp_path_factory.mktemp("onnx")
    return {(name, mc): export_onnx(name, out_dir=folder, check=False, mc=mc) for name, mc in OV_MODELS}


def _feeds(backend, h, w, seed=0):
    rng = np.random.default_rng(seed)
    mult = backend.spec.pad_multiple
    h, w = -(-h // mult) * mult, -(-w // mult) * mult
    feeds = {}
    for t in backend.inputs:
        if t.name == "masks":
            feeds[t.name] = (rng.random((3, 64)) > 0.1).astype(np.float32) / 0.9
        elif t.channels is None:  # a per-image scalar: t, or a colorizer's vividness
            feeds[t.name] = np.full(t.concrete_shape(1, h, w), 0.5, np.float32)
        else:
            feeds[t.name] = rng.random((1, t.channels, h, w), dtype=np.float32)
    return feeds


def test_ort_sessions_run_without_the_cpu_arena(exported):
    backend = OrtBackend("flashsr_x2", exported[("flashsr_x2", False)], providers="cpu")
    assert backend.session.get_session_options().enable_cpu_mem_arena is False


def test_tensorrt_profile_covers_tiles_batches_and_mc_samples(exported):
    plain = trt_profile_shapes(exported[("flashsr_x2", False)])
    assert plain == {"trt_profile_min_shapes": "lr:1x3x16x16", "trt_profile_opt_shapes": "lr:1x3x256x256",
                     "trt_profile_max_shapes": "lr:8x3x1088x1920"}
    assert trt_profile_shapes(exported[("flashsr_x2", True)])["trt_profile_max_shapes"] == \
        "lr:1x3x1088x1920,masks:64x64"


@needs_openvino
@pytest.mark.parametrize("name,mc", OV_MODELS, ids=[f"{n}{'_mc' if m else ''}" for n, m in OV_MODELS])
def test_openvino_fp32_matches_pytorch(exported, name, mc):
    from serve.openvino_backend import OpenVinoBackend

    ov = OpenVinoBackend(name, exported[(name, mc)], mc=mc, threads=2)
    reference = TorchBackend(name, mc=mc)
    assert ov.precision == "fp32"
    if ov.spec.task == "sr":  # tiling's overlap
        assert ov.receptive_radius == reference.receptive_radius
    for i, (h, w) in enumerate(((32, 32), (37, 53), (64, 48))):  # one compiled model, three shapes
        feeds = _feeds(reference, h, w, seed=i)
        got, want = ov.run(feeds), reference.run(feeds)
        assert max(float(np.abs(got[k] - want[k]).max()) for k in want) <= 1e-4


@needs_openvino
def test_bf16_without_cpu_support_falls_back_to_fp32_and_says_why(exported, monkeypatch):
    from serve import openvino_backend

    monkeypatch.setattr(openvino_backend, "cpu_capabilities", lambda: ["FP32", "INT8", "BIN", "EXPORT_IMPORT"])
    backend = openvino_backend.OpenVinoBackend("flashsr_x2", exported[("flashsr_x2", False)], precision="bf16")
    assert backend.precision == "fp32" and backend.describe()["precision"] == "fp32"
    assert "bf16 skipped" in backend.precision_note and "no native bf16" in backend.precision_note
    assert "bf16 skipped" in backend.selection_reason


def _psnr(a, b):
    return 10 * np.log10(1.0 / float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2)))


def _real_lr(shared_data, count=3, size=48):
    from PIL import Image

    files = sorted((shared_data / "benchmark" / "Set5").glob("*.png"))[:count]
    crops = []
    for f in files:
        im = np.asarray(Image.open(f).convert("RGB"), np.float32)[:size * 2, :size * 2] / 255.0
        crops.append(np.ascontiguousarray(im[::2, ::2].transpose(2, 0, 1)[None]))
    return crops


@needs_openvino
def test_bf16_stays_close_to_fp32_on_real_images(exported, shared_data):
    from serve.openvino_backend import OpenVinoBackend, bf16_support

    if not bf16_support()[0]:
        pytest.skip(bf16_support()[1])
    fp32 = OpenVinoBackend("flashsr_x2", exported[("flashsr_x2", False)])
    bf16 = OpenVinoBackend("flashsr_x2", exported[("flashsr_x2", False)], precision="bf16")
    for lr in _real_lr(shared_data):
        assert _psnr(bf16.run({"lr": lr})["sr"], fp32.run({"lr": lr})["sr"]) > 40.0


@pytest.mark.slow
def test_int8_export_records_its_quality_and_runs_on_both_runtimes(exported, shared_data, tmp_path):
    from export.int8 import quantize_model
    from serve.precision import measured_loss

    record = quantize_model("flashsr_x2", out_dir=tmp_path, calibration=16, held_out=6)
    assert record["calibration"]["count"] == 16 and record["held_out"]["count"] == 6
    assert not set(record["calibration"]["images"]) & set(record["held_out"]["images"])
    assert all(not p.startswith("benchmark") for p in record["calibration"]["images"] + record["held_out"]["images"])
    assert not record["refused"], record
    assert record["calibration"]["reduce_range"] and isinstance(record["measured_on_cpu_flags"], list)
    fp32_onnx = tmp_path / "flashsr_x2.onnx"
    loss, why = measured_loss(fp32_onnx, "onnx-cpu", "int8")
    assert loss == max(-record["psnr_change_db"]["onnxruntime"], 0.0) and "held-out" in why
    kinds = ["onnx-cpu"] + (["openvino-cpu"] if module_available("openvino") else [])
    fp32 = runtime.create_backend("flashsr_x2", "onnx-cpu", onnx_path=str(fp32_onnx))
    for kind in kinds:
        int8 = runtime.create_backend("flashsr_x2", kind, precision="int8", onnx_path=str(fp32_onnx))
        assert int8.precision == "int8" and int8.receptive_radius == fp32.receptive_radius
        for lr in _real_lr(shared_data):
            assert _psnr(int8.run({"lr": lr})["sr"], fp32.run({"lr": lr})["sr"]) > 35.0


@pytest.mark.slow
def test_int8_export_of_the_mc_variant(shared_data, tmp_path):
    """`python -m export int8 --mc` (the uncertainty map's graph, masks as an input) quantizes and runs."""
    from export.int8 import quantize_model

    record = quantize_model("flashsr_x2", mc=True, out_dir=tmp_path, calibration=4, held_out=2)
    assert record["calibration"]["count"] == 4 and "onnxruntime" in record["psnr_change_db"], record
    if not record["refused"]:
        int8 = runtime.create_backend("flashsr_x2", "onnx-cpu", precision="int8", mc=True,
                                      onnx_path=str(tmp_path / "flashsr_x2_mc.onnx"))
        feeds = _feeds(int8, 24, 24)
        assert int8.run(feeds)["sr"].shape == (3, 3, 48, 48)


def test_non_sr_models_are_refused_for_int8_and_auto_says_why(tmp_path):
    from export.int8 import quantize_model

    record = quantize_model("colorize_lab", out_dir=tmp_path)
    assert record["refused"] and "only built for SR models" in record["reason"]
    assert not (tmp_path / "colorize_lab.int8.onnx").exists()

    from serve.precision import read_record

    for precision in ("int8", "bf16"):  # auto's reason for skipping them must not send the user to export int8
        record, why = read_record(tmp_path / "colorize_hint_cls.onnx", precision)
        assert record is None and why == f"{precision} is measured for SR models only; colorize_hint_cls (colorize) " \
                                         "runs in fp32"
    assert "run `python -m export int8 --model flashsr_x2`" in read_record(tmp_path / "flashsr_x2.onnx", "int8")[1]


@pytest.mark.parametrize("args, message", [
    (["--model", "colorize_lab"], "int8 is built for SR models only; colorize_lab is a colorize model"),
    (["--model", "flashsr_x2", "--seed", "-1"], "--seed must be 0 or more"),  # was a numpy traceback
    (["--model", "flashsr_x2", "--max-loss", "nan"], "--max-loss must be"),  # NaN refused nothing
])
def test_int8_cli_refuses_bad_requests_before_writing_anything(args, message, capsys):
    from export.__main__ import main

    assert main(["int8", *args]) == 1 and message in capsys.readouterr().err
