"""Serving runtime: torch == ORT, backend cache and threads, clear errors, the SR pipeline and the bench."""
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from common.images import read_image
from models import CheckpointError, get_spec, save_checkpoint
from serve import bench, runtime
from serve.backends import OrtBackend, TorchBackend
from serve.contract import BackendUnavailable, InputError, ModelMismatch, ServeError
from serve.runtime import best_available, create_backend, get_backend
from serve.sr import main as sr_main
from serve.sr import resize_alpha, save_image, upscale

SMALL = {"channels": 8, "blocks": 1}  # same architecture, a fraction of the compute


def small_checkpoint(folder, name, in_channels=3):
    """Random-weight checkpoint of the registered arch; the sidecar args make load_model rebuild it small."""
    spec = get_spec(name)
    torch.manual_seed(0)
    args = {**spec.kwargs, **SMALL, **({"in_channels": in_channels} if in_channels != 3 else {})}
    model = spec.build(**args)
    with torch.no_grad():
        torch.nn.init.normal_(model.upsample[0].weight, std=0.05)  # the shipped init zeroes it
    path = folder / f"{name}{'' if in_channels == 3 else f'-{in_channels}ch'}.safetensors"
    save_checkpoint(path, model, arch=spec.arch, args=args)
    return path, model.eval()


def export_onnx(model, path, in_channels=3, names=("lr", "sr")):
    torch.onnx.export(model, torch.rand(1, in_channels, 16, 16), str(path), input_names=[names[0]],
                      output_names=[names[1]], dynamic_axes={names[0]: {0: "n", 2: "h", 3: "w"},
                                                             names[1]: {0: "n", 2: "H", 3: "W"}},
                      opset_version=17, dynamo=False)
    return path


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STSR_CACHE", str(folder / "cache"))
        x4, model4 = small_checkpoint(folder, "flashsr_x4")
        x2, model2 = small_checkpoint(folder, "flashsr_x2")
        onnx4 = export_onnx(model4, folder / "x4.onnx")
        onnx2 = export_onnx(model2, folder / "x2.onnx")
        yield {"dir": folder, "x4": str(x4), "x2": str(x2), "onnx4": str(onnx4), "onnx2": str(onnx2),
               "model4": model4}
        runtime.clear_cache()


def rand(*shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


@pytest.mark.parametrize("shape", [(1, 3, 16, 16), (2, 3, 17, 9), (1, 3, 31, 40), (1, 3, 1, 1), (3, 3, 5, 64)])
def test_torch_and_onnxruntime_agree_on_cpu(assets, shape):
    torch_backend = TorchBackend("flashsr_x4", weights_path=assets["x4"])
    ort_backend = OrtBackend("flashsr_x4", assets["onnx4"], providers="cpu", threads=1)
    assert ort_backend.provider == "CPUExecutionProvider" and ort_backend.device == "cpu"
    x = rand(*shape)
    a, b = torch_backend.run({"lr": x})["sr"], ort_backend.run({"lr": x})["sr"]
    assert a.shape == (shape[0], 3, shape[2] * 4, shape[3] * 4) and a.dtype == np.float32
    assert np.abs(a - b).max() <= 1e-4
    assert torch_backend.receptive_radius == ort_backend.receptive_radius == 5  # read from module / ONNX graph


def test_onnx_of_a_checkpoint_comes_from_export_and_matches_torch(assets):
    """create_backend exports a non-shipped checkpoint once (via export/) into the serve cache."""
    ort_backend = create_backend("flashsr_x2", "onnx-cpu", weights_path=assets["x2"])
    path = ort_backend.onnx_path
    assert assets["dir"] / "cache" in path.parents
    built = path.stat().st_mtime_ns
    assert runtime.onnx_path_for("flashsr_x2", assets["x2"]) == path and path.stat().st_mtime_ns == built
    x = rand(1, 3, 13, 21, seed=1)
    ref = TorchBackend("flashsr_x2", weights_path=assets["x2"]).run({"lr": x})["sr"]
    assert np.abs(ort_backend.run({"lr": x})["sr"] - ref).max() <= 1e-4
    with pytest.raises(ModelMismatch, match="exported from 'flashsr_x2', not 'flashsr_x4'"):
        OrtBackend("flashsr_x4", path, providers="cpu")


def test_onnx_backends_need_export_only_when_no_file_is_given(assets, monkeypatch):
    monkeypatch.setitem(sys.modules, "export.onnx_export", None)  # as if export/ were not there
    with pytest.raises(BackendUnavailable, match="ONNX export is unavailable"):
        create_backend("flashsr_x4", "onnx-cpu", weights_path=assets["x4"])
    assert create_backend("flashsr_x4", "onnx-cpu", onnx_path=assets["onnx4"]).provider == "CPUExecutionProvider"


def test_cache_returns_one_backend_per_model_and_kind(assets):
    a = get_backend("flashsr_x4", "onnx-cpu", weights_path=assets["x4"])
    assert get_backend("flashsr_x4", "onnx-cpu", weights_path=assets["x4"]) is a
    auto = get_backend("flashsr_x4", "auto", weights_path=assets["x4"])
    assert auto is get_backend("flashsr_x4", "auto", weights_path=assets["x4"])
    t = get_backend("flashsr_x4", "torch-cpu", weights_path=assets["x4"])
    assert t is get_backend("flashsr_x4", "torch", weights_path=assets["x4"]) or torch.cuda.is_available()
    assert t is not a


@pytest.mark.parametrize("kind", ["onnx-cpu", "torch-cpu"])
def test_concurrent_calls_create_once_and_answer_correctly(assets, monkeypatch, kind):
    runtime.clear_cache()
    created = []
    real_create = runtime.create_backend

    def counting_create(*args, **kwargs):
        created.append(args)
        return real_create(*args, **kwargs)

    monkeypatch.setattr(runtime, "create_backend", counting_create)
    inputs = [rand(1, 3, 8 + i, 12, seed=i) for i in range(8)]
    with torch.inference_mode():
        expected = [assets["model4"](torch.from_numpy(x)).numpy() for x in inputs]
    barrier = threading.Barrier(8)

    def work(i):
        barrier.wait()  # all threads ask for the (not yet created) backend at once
        backend = get_backend("flashsr_x4", kind, weights_path=assets["x4"])
        return backend, backend.run({"lr": inputs[i]})["sr"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    assert len(created) == 1
    assert len({id(b) for b, _ in results}) == 1
    for (_, out), ref in zip(results, expected):
        assert np.abs(out - ref).max() <= 1e-4


def test_best_available_explains_its_choice(assets):
    backend, reason = best_available("flashsr_x2", weights_path=assets["x2"])
    assert backend.kind in ("trt", "onnx", "torch") and backend.provider in reason
    if not torch.cuda.is_available():
        assert backend.provider == "CPUExecutionProvider"
        assert "skipped trt" in reason and "torch-cuda" in reason
    prefer_torch, reason = best_available("flashsr_x2", prefer="torch-cpu", weights_path=assets["x2"])
    assert prefer_torch.kind == "torch" and "using torch-cpu" in reason


def test_gpu_only_backends_say_why_they_cannot_run():
    import importlib.util

    import onnxruntime as ort
    if importlib.util.find_spec("tensorrt") is None:
        with pytest.raises(BackendUnavailable, match="TensorRT is not installed"):
            create_backend("flashsr_x4", "trt")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(BackendUnavailable, match="no GPU provider"):
            create_backend("flashsr_x4", "onnx-gpu")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="CUDA"):
            create_backend("flashsr_x4", "torch-cuda")
    with pytest.raises(ValueError, match="unknown backend"):
        get_backend("flashsr_x4", "tensorflow")
    with pytest.raises(KeyError, match="unknown model"):
        get_backend("nosuch_x4", "torch")


@pytest.mark.parametrize("inputs,message", [
    ({"lr": np.zeros((3, 8, 8), np.float32)}, "4-D"),
    ({"lr": np.zeros((1, 1, 8, 8), np.float32)}, "3 channels"),
    ({"lr": np.zeros((1, 3, 0, 8), np.float32)}, "empty"),
    ({"image": np.zeros((1, 3, 8, 8), np.float32)}, "missing \\['lr'\\]"),
    ({"lr": np.zeros((1, 3, 8, 8), np.complex64)}, "dtype"),
])
def test_bad_inputs_get_clear_errors(assets, inputs, message):
    backend = get_backend("flashsr_x4", "onnx-cpu", weights_path=assets["x4"])
    with pytest.raises(InputError, match=message):
        backend.run(inputs)


def test_onnx_of_another_model_is_refused(assets):
    _, grey_model = small_checkpoint(assets["dir"], "flashsr_x4", in_channels=1)
    grey_onnx = export_onnx(grey_model, assets["dir"] / "grey.onnx", in_channels=1)
    with pytest.raises(ModelMismatch, match="another model.*1 channels, expected 3"):
        OrtBackend("flashsr_x4", grey_onnx, providers="cpu")
    renamed = export_onnx(assets["model4"], assets["dir"] / "renamed.onnx", names=("input", "output"))
    with pytest.raises(ModelMismatch, match="inputs are \\['input'\\], expected \\['lr'\\]"):
        OrtBackend("flashsr_x4", renamed, providers="cpu")
    x2_as_x4 = OrtBackend("flashsr_x4", assets["onnx2"], providers="cpu")  # same names and channels...
    with pytest.raises(ModelMismatch, match="another model"):  # ...caught by the output size
        x2_as_x4.run({"lr": rand(1, 3, 8, 8)})


def test_missing_or_corrupt_files_are_reported(assets):
    garbage = assets["dir"] / "garbage.onnx"
    garbage.write_bytes(b"definitely not protobuf" * 10)
    with pytest.raises(ModelMismatch, match="not a loadable ONNX"):
        OrtBackend("flashsr_x4", garbage, providers="cpu")
    with pytest.raises(ServeError, match="not found"):
        OrtBackend("flashsr_x4", assets["dir"] / "absent.onnx")
    with pytest.raises(CheckpointError, match="not found|no weights"):
        TorchBackend("flashsr_x4", weights_path=assets["dir"] / "absent.safetensors")
    broken = assets["dir"] / "broken.safetensors"
    broken.write_bytes(b"\x00" * 64)
    (assets["dir"] / "broken.json").write_text((assets["dir"] / "flashsr_x4.json").read_text())
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        TorchBackend("flashsr_x4", weights_path=broken)
    with pytest.raises(CheckpointError):  # a bad checkpoint wins over "no TensorRT here"
        best_available("flashsr_x4", weights_path=str(broken))


def test_upscale_rgb_float_array_tiled_matches_untiled(assets):
    image = rand(37, 45, 3, seed=3)
    tiled = upscale(image, "flashsr_x4", "onnx-cpu", tile=24, weights_path=assets["x4"])
    whole = upscale(image, "flashsr_x4", "torch-cpu", tile=0, weights_path=assets["x4"])
    assert tiled.image.shape == (148, 180, 3) and tiled.info["tiles"] > 1 and whole.info["tiles"] == 1
    assert tiled.info["backend"] == "onnx" and tiled.info["seconds"] >= 0
    assert tiled.info["output_size"] == [180, 148]
    assert np.abs(tiled.image - whole.image).max() <= 1e-3
    assert 0.0 <= tiled.image.min() and tiled.image.max() <= 1.0


def test_grey_image_runs_as_rgb_and_comes_back_grey(assets, tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray((rand(12, 10, seed=4) * 255).astype(np.uint8), mode="L").save(path)
    decoded = read_image(path)
    assert decoded.was_grey
    as_rgb = upscale(decoded, "flashsr_x2", "torch-cpu", weights_path=assets["x2"])
    single = upscale(decoded, "flashsr_x2", "torch-cpu", grey="single", weights_path=assets["x2"])
    assert as_rgb.image.shape == (24, 20, 3) and single.image.shape == (24, 20, 1)
    assert np.array_equal(as_rgb.image[..., 0], as_rgb.image[..., 2])
    np.testing.assert_allclose(single.image[..., 0], as_rgb.image[..., 1])
    assert upscale(rand(12, 10, seed=4), "flashsr_x2", "torch-cpu", weights_path=assets["x2"]).image.shape[2] == 3


def test_alpha_is_resized_beside_the_model(assets):
    rgba = rand(11, 14, 4, seed=5)
    result = upscale(rgba, "flashsr_x2", "torch-cpu", weights_path=assets["x2"])
    rgb_only = upscale(rgba[..., :3], "flashsr_x2", "torch-cpu", weights_path=assets["x2"])
    assert result.image.shape == (22, 28, 4)
    np.testing.assert_allclose(result.image[..., :3], rgb_only.image, atol=1e-6)
    np.testing.assert_allclose(result.image[..., 3], resize_alpha(rgba[..., 3], (22, 28)), atol=1e-6)


def test_sixteen_bit_input_keeps_sixteen_bit_output(assets, tmp_path):
    import cv2

    src = (rand(9, 13, 3, seed=6) * 65535).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "in16.png"), src[..., ::-1])
    decoded = read_image(tmp_path / "in16.png")
    assert decoded.bit_depth == 16
    result = upscale(decoded, "flashsr_x2", "torch-cpu", weights_path=assets["x2"])
    assert result.bit_depth == 16
    out = save_image(result, tmp_path / "out16.png")
    back = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert back.dtype == np.uint16 and np.array_equal(back, result.to_uint16())
    assert upscale(src, "flashsr_x2", "torch-cpu", weights_path=assets["x2"]).bit_depth == 16  # uint16 arrays too
    with pytest.raises(ValueError, match="16-bit"):
        save_image(result, tmp_path / "out16.jpg", bits=16)  # asked for 16 bits explicitly: refused
    save_image(result, tmp_path / "out8.jpg")  # bits="auto": reduced to 8 bits, and the report says so
    assert result.info["saved"]["bit_depth"] == 8 and "reduced to 8 bits" in result.info["saved"]["notes"][0]


def test_pixel_limits_and_empty_images_are_refused_before_running(assets):
    with pytest.raises(InputError, match="over the limit"):
        upscale(np.zeros((100, 100, 3), np.float32), "flashsr_x4", max_input_pixels=5_000)
    with pytest.raises(InputError, match="output limit"):
        upscale(np.zeros((100, 100, 3), np.float32), "flashsr_x4", max_output_pixels=100_000)
    with pytest.raises(InputError, match="empty"):
        upscale(np.zeros((0, 5, 3), np.float32), "flashsr_x4")
    with pytest.raises(InputError, match="HxWx3"):
        upscale(np.zeros((4, 5, 2), np.float32), "flashsr_x4")


def test_sr_cli_writes_the_image_and_reports_errors(assets, tmp_path, capsys):
    Image.fromarray((rand(10, 12, 3, seed=7) * 255).astype(np.uint8)).save(tmp_path / "in.png")
    code = sr_main([str(tmp_path / "in.png"), "--model", "flashsr_x2", "--out", str(tmp_path / "out.png"),
                    "--backend", "onnx", "--tile", "24", "--weights", assets["x2"]])
    assert code == 0 and Image.open(tmp_path / "out.png").size == (24, 20)
    assert "24x20 from 12x10" in capsys.readouterr().out
    # a tile this small would step 1 px at a time and lose exactness (4096 tiles and 195 levels off at tile 1)
    assert sr_main([str(tmp_path / "in.png"), "--model", "flashsr_x2", "--out", str(tmp_path / "small.png"),
                    "--backend", "onnx", "--tile", "8", "--weights", assets["x2"]]) == 2
    assert "tile 8 is too small for flashsr_x2 (receptive radius 5 px): use 0 (the whole image) or at least 24 px" \
        in capsys.readouterr().err and not (tmp_path / "small.png").exists()
    assert sr_main([str(tmp_path / "absent.png"), "--out", str(tmp_path / "x.png")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_bench_smoke_prints_json_rows_and_writes_files(assets, tmp_path, capsys):
    code = bench.main(["--models", "flashsr_x2", "--backends", "torch,onnx,trt", "--sizes", "16,20x12", "--runs", "1",
                       "--warmup", "0", "--json", "--weights", assets["x2"], "--out-dir", str(tmp_path)])
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(rows) == 6 and {r["size"] for r in rows} == {"16", "20x12"}
    for row in rows:
        assert {"model", "backend", "size", "median_ms", "p90_ms", "mpix_per_s"} <= set(row)
        assert row["skipped"] or row["median_ms"] > 0
    assert all(not r["skipped"] for r in rows if r["backend"] in ("torch", "onnx"))
    assert bench.parse_size("1080p") == (1920, 1080) and bench.parse_size("256") == (256, 256)
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert len(saved["results"]) == 6 and (tmp_path / "bench.png").stat().st_size > 0


def test_bench_compares_the_tiled_outputs_it_timed(assets, tmp_path, capsys):
    """With --tile the quality column compares the tiled outputs (no extra untiled pass: #22's memory)."""
    code = bench.main(["--models", "flashsr_x2", "--backends", "torch,onnx", "--sizes", "40", "--runs", "1",
                       "--warmup", "0", "--json", "--tile", "24", "--weights", assets["x2"], "--out-dir", str(tmp_path)])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert code == 0 and [r["backend"] for r in rows] == ["torch", "onnx"]
    assert rows[1]["psnr_vs_fp32_db"] > 60


def test_bench_runs_models_with_a_strength_input(tmp_path, capsys):
    """flashsr_real_* take a (N,1) strength beside the image; the benchmark fed (N,1,1,1) (load test, #22)."""
    code = bench.main(["--models", "flashsr_real_x2", "--backends", "onnx", "--sizes", "40", "--runs", "1",
                       "--warmup", "0", "--json", "--tile", "32", "--out-dir", str(tmp_path)])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert code == 0 and len(rows) == 1 and not rows[0]["skipped"] and rows[0]["median_ms"] > 0


@pytest.mark.parametrize("args, message", [
    (["--backends", "bogus"], "unknown backend 'bogus'"), (["--precisions", "bogus"], "precision must be one of"),
    (["--threads", "-1"], "--threads must be at least 1"), (["--input", "/no/such.png"], "no such image file"),
    (["--sizes", ","], "need at least one entry"), (["--models", "nope"], "unknown model 'nope'"),
    (["--sizes", "100000"], "at most 33 MP"),  # it allocated 10 GP and ran until killed
])
def test_bench_refuses_bad_arguments_with_a_sentence(args, message, tmp_path, capsys):
    """A CLI bug hunt found tracebacks (and one hang) here; each is now one line."""
    base = {"--models": "flashsr_x2", "--backends": "onnx", "--sizes": "32", "--runs": "1", "--warmup": "0",
            "--out-dir": str(tmp_path)}
    base.update(dict(zip(args[::2], args[1::2])))
    try:
        code = bench.main([item for pair in base.items() for item in pair])
    except SystemExit as exc:  # argparse's own
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err


@pytest.fixture
def fake_tensorrt(assets, monkeypatch):
    """Stand-ins for the tensorrt package and serve.trt_runtime, so TrtBackend's wiring runs on CPU."""
    import importlib.machinery
    import types

    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.fake"
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    runtime_module = types.ModuleType("serve.trt_runtime")

    class TrtEngine:
        input_names, output_names = ["lr"], ["sr"]

        def __init__(self, path):
            if b"broken" in path.read_bytes():
                raise RuntimeError("engine was built by another TensorRT version")
            self.shapes = {"lr": [-1, 3, -1, -1], "sr": [-1, 3, -1, -1]}

        def infer(self, feeds):
            with torch.inference_mode():
                return {"sr": assets["model4"](torch.from_numpy(feeds["lr"])).numpy()}

    runtime_module.TrtEngine = TrtEngine
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "serve.trt_runtime", runtime_module)
    engine = assets["dir"] / "x4.engine"
    engine.write_bytes(b"plan")
    return TrtEngine, engine


def test_trt_backend_runs_an_engine_through_serve_trt_runtime(assets, fake_tensorrt):
    engine_class, engine = fake_tensorrt
    backend = create_backend("flashsr_x4", "trt", engine_path=str(engine))
    assert backend.kind == "trt" and backend.provider == "TensorRT 10.fake" and backend.device == "cuda"
    x = rand(2, 3, 9, 7, seed=8)
    ref = TorchBackend("flashsr_x4", weights_path=assets["x4"]).run({"lr": x})["sr"]
    assert np.abs(backend.run({"lr": x})["sr"] - ref).max() <= 1e-5
    chosen, reason = best_available("flashsr_x4", engine_path=str(engine), weights_path=assets["x4"])
    assert chosen.kind == "trt" and "using trt" in reason
    with pytest.raises(BackendUnavailable, match="no TensorRT engine"):
        create_backend("flashsr_x4", "trt", engine_path=str(assets["dir"] / "absent.engine"))
    broken = assets["dir"] / "broken.engine"
    broken.write_bytes(b"broken plan")
    with pytest.raises(BackendUnavailable, match="another TensorRT version"):
        create_backend("flashsr_x4", "trt", engine_path=str(broken))
    engine_class.input_names = ["image"]
    with pytest.raises(ModelMismatch, match="another model"):
        create_backend("flashsr_x4", "trt", engine_path=str(engine))


@pytest.mark.parametrize("module", ["serve.sr", "serve.colorize", "serve.uncertainty", "serve.interpolate"])
def test_every_serve_cli_reports_request_errors_as_one_line(module, tmp_path, capsys):
    """cli_main: a missing input or an unknown model is one "error: ..." line and exit 2, no traceback."""
    import importlib

    main = importlib.import_module(module).main
    image = tmp_path / "in.png"
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(image)
    inputs = [str(image), str(image)] if module == "serve.interpolate" else [str(image)]
    out = ["--out", str(tmp_path / "o.png")]
    cases = [([str(tmp_path / "absent.png")] * len(inputs) + out, "absent.png"),
             (inputs + out + ["--model", "nope"], "unknown model 'nope'")]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err
