"""export/: ONNX export + parity, portable MC dropout, TensorRT engine keys/cache, Triton configs.

Models are randomly initialised (weights/ may not exist yet) and nudged so that every layer,
including the zero-initialised upsampler, matters. Nothing is written under the repo's
weights/: WEIGHTS_DIR points at a temporary folder for every test.
"""
from __future__ import annotations

import logging
import re
import sys
from unittest import mock

import numpy as np
import onnx
import pytest
import torch

import models
from common import paths
from export import onnx_export, tensorrt_build
from export.__main__ import main
from export.artifacts import ExportError, file_sha256
from export.mc import check_mc_parity, mc_io, stochastic_nodes
from export.parity import ParityError, check_parity, ort_session
from export.tensorrt_build import (
    Profile,
    build_engine,
    engine_is_current,
    engine_key,
    engine_path,
    parse_batch,
    parse_hw,
    profile_shapes,
)
from export.triton import write_triton_repo
from models.mc_dropout import MCDropoutWrapper, sample_masks
from serve.trt_runtime import TensorRTMissing, TrtEngine

X2 = "flashsr_x2"


def random_checkpoint(path, name=X2, seed=0):
    spec = models.get_spec(name)
    model = spec.build()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    models.save_checkpoint(path, model, arch=spec.arch, args=spec.kwargs)
    return path


@pytest.fixture(autouse=True)
def private_weights_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "WEIGHTS_DIR", tmp_path / "weights")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("ckpt") / f"{X2}.safetensors")


@pytest.fixture(scope="module")
def exported(ckpt, tmp_path_factory):
    """The standard and MC exports of one checkpoint, made once for the module."""
    out = tmp_path_factory.mktemp("onnx")
    return {"standard": onnx_export.export_onnx(X2, ckpt, out), "mc": onnx_export.export_onnx(X2, ckpt, out, mc=True)}


# ----------------------------------------------------------------------------- ONNX export

@pytest.mark.slow
def test_export_writes_dynamic_graph_stamp_and_sidecar(exported, ckpt):
    path = exported["standard"]
    assert path.name == f"{X2}.onnx"
    model = onnx.load(str(path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("lr", "sr")
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) and d for d in (dims[0], dims[2], dims[3]))
    assert onnx_export.read_metadata(path)["model"] == X2
    record = onnx_export.read_onnx_record(path)
    assert record["source"] == {"path": str(ckpt), "sha256": file_sha256(ckpt)}
    assert record["sha256"] == file_sha256(path)
    assert (record["task"], record["scale"], record["opset"]) == ("sr", 2, 17)
    assert record["inputs"][0]["layout"] == "NCHW" and {"torch", "onnx"} <= set(record["versions"])
    assert set(record["parity"]["max_abs_error"]) == {"1x32x32", "2x37x53", "1x64x48"}
    assert not stochastic_nodes(model)


def test_exported_graph_runs_at_sizes_it_was_not_traced_with(exported):
    session = ort_session(exported["standard"])
    (out,) = session.run(None, {"lr": np.random.rand(3, 3, 19, 23).astype(np.float32)})
    assert out.shape == (3, 3, 38, 46)


@pytest.mark.slow
def test_parity_reports_each_size_and_raises_above_tolerance(exported, ckpt):
    spec = models.get_spec(X2)
    model = models.load_model(X2, ckpt)
    errors = check_parity(exported["standard"], model, spec)
    assert list(errors) == ["1x32x32", "2x37x53", "1x64x48"] and max(errors.values()) < 1e-4
    with torch.no_grad():
        model.head.bias.add_(0.05)  # no longer the exported model
    with pytest.raises(ParityError, match="more than atol") as info:
        check_parity(exported["standard"], model, spec)
    assert min(info.value.errors.values()) > 1e-4


def test_ensure_onnx_reuses_current_export_and_rebuilds_when_weights_change(tmp_path, caplog):
    weights = random_checkpoint(tmp_path / "w.safetensors", seed=1)
    first = onnx_export.ensure_onnx(X2, weights, tmp_path, check=False)
    stamp = first.stat().st_mtime_ns
    assert onnx_export.ensure_onnx(X2, weights, tmp_path, check=False).stat().st_mtime_ns == stamp
    random_checkpoint(weights, seed=2)
    with caplog.at_level(logging.INFO, logger="export.onnx_export"):
        again = onnx_export.ensure_onnx(X2, weights, tmp_path, check=False)
    assert again == first and "weights changed" in caplog.text
    assert onnx_export.read_onnx_record(again)["source"]["sha256"] == file_sha256(weights)


# ----------------------------------------------------------------------------- MC dropout

def test_sample_masks_are_scaled_bernoulli_keeps():
    masks = sample_masks(64, 256, 0.25, seed=3)
    assert masks.shape == (64, 256) and masks.dtype == np.float32
    assert set(np.unique(masks)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((masks > 0).mean() - 0.75) < 0.02
    assert np.array_equal(masks, sample_masks(64, 256, 0.25, seed=3))
    assert not np.array_equal(masks, sample_masks(64, 256, 0.25, seed=4))


def test_mc_export_is_deterministic_and_masks_drive_the_output(exported, ckpt):
    path = exported["mc"]
    model = onnx.load(str(path))
    assert not stochastic_nodes(model), "MC graph must take masks as input, not draw them"
    assert [i.name for i in model.graph.input] == ["lr", "masks"]
    wrapper = MCDropoutWrapper(models.load_model(X2, ckpt))
    session = ort_session(path)
    lr = np.random.default_rng(0).random((1, 3, 21, 17), dtype=np.float32)
    masks_a, masks_b = (sample_masks(5, 64, 0.1, seed=s) for s in (0, 1))
    run = lambda m: session.run(None, {"lr": lr, "masks": m})[0]  # noqa: E731
    out_a = run(masks_a)
    assert out_a.shape == (5, 3, 42, 34)
    with torch.no_grad():
        want = wrapper(torch.from_numpy(lr), torch.from_numpy(masks_a)).numpy()
    assert np.abs(out_a - want).max() < 1e-4
    assert np.array_equal(run(masks_a), out_a)
    assert np.abs(run(masks_b) - out_a).max() > 1e-3
    errors, effect = check_mc_parity(path, wrapper, models.get_spec(X2))
    assert max(errors.values()) < 1e-4 and effect > 1e-3


def test_mc_io_pins_image_batch_and_adds_masks():
    io = mc_io(models.get_spec(X2), models.get_spec(X2).build())
    assert [t.shape for t in io.inputs] == [(1, 3, "height", "width"), ("samples", 64)]
    feeds = io.random_inputs(4, 8, 9)
    assert feeds["lr"].shape == (1, 3, 8, 9) and feeds["masks"].shape == (4, 64)


# ----------------------------------------------------------------------------- bad input

def test_bad_checkpoints_and_names_raise_export_error_naming_the_cause(tmp_path, ckpt):
    with pytest.raises(ExportError, match="unknown model 'nope'"):
        onnx_export.export_onnx("nope", ckpt, tmp_path)
    with pytest.raises(ExportError, match="no weights at"):
        onnx_export.export_onnx(X2, tmp_path / "missing.safetensors", tmp_path)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    models.checkpoint.sidecar_path(corrupt).write_text(models.checkpoint.sidecar_path(ckpt).read_text())
    with pytest.raises(ExportError, match="corrupt.safetensors: not a readable safetensors"):
        onnx_export.export_onnx(X2, corrupt, tmp_path)
    x4 = random_checkpoint(tmp_path / "x4.safetensors", "flashsr_x4")
    with pytest.raises(ExportError, match="does not fit 'flashsr_x2': scale=4"):
        onnx_export.export_onnx(X2, x4, tmp_path)
    with pytest.raises(ExportError, match="opset 13 is too old"):
        onnx_export.export_onnx(X2, ckpt, tmp_path, opset=13)


def test_onnx_of_another_model_or_variant_is_refused(exported, tmp_path):
    with pytest.raises(ExportError, match="exported from 'flashsr_x2', not 'flashsr_x4'"):
        onnx_export.check_onnx_for(exported["standard"], models.get_spec("flashsr_x4"))
    with pytest.raises(ExportError, match="'mc' variant"):
        onnx_export.check_onnx_for(exported["mc"], models.get_spec(X2))
    unstamped = tmp_path / "plain.onnx"
    model = onnx.load(str(exported["standard"]))
    del model.metadata_props[:]
    onnx.save(model, str(unstamped))
    with pytest.raises(ExportError, match="no export stamp"):
        onnx_export.check_onnx_for(unstamped, models.get_spec(X2))
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(ExportError, match="not a readable ONNX"):
        onnx_export.check_onnx_for(tmp_path / "junk.onnx", models.get_spec(X2))


def test_cli_reports_errors_in_one_line_without_traceback(capsys, tmp_path):
    assert main(["onnx", "-q", "--model", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model 'nope'") and "Traceback" not in err
    assert main(["onnx", "-q", "--all", "--weights", str(tmp_path / "w.safetensors")]) == 1


def test_cli_all_exports_models_with_weights_and_their_mc_variant(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(models.registry, "WEIGHTS_DIR", tmp_path)  # where specs look for shipped weights
    assert main(["onnx", "-q", "--all", "--no-check"]) == 1
    assert "no registered model has weights yet" in capsys.readouterr().err
    random_checkpoint(tmp_path / f"{X2}.safetensors")
    assert main(["onnx", "-q", "--all", "--no-check", "--out-dir", str(tmp_path / "onnx")]) == 0
    assert "skip flashsr_x4: no weights" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "onnx").glob("*.onnx")) == [f"{X2}.onnx", f"{X2}_mc.onnx"]


@pytest.mark.slow
def test_cli_onnx_exports_both_variants_and_prints_parity_table(capsys, ckpt, tmp_path):
    assert main(["onnx", "-q", "--model", X2, "--weights", str(ckpt), "--out-dir", str(tmp_path), "--mc"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / f"{X2}.onnx").exists() and (tmp_path / f"{X2}_mc.onnx.json").exists()
    assert re.search(r"flashsr_x2\s+mc\s+2x37x53\s+\S+\s+1e-04\s+yes", out)


# ----------------------------------------------------------------------------- TensorRT (no GPU needed)

def test_profile_parsing_and_validation():
    assert parse_hw("256x192") == (256, 192) and parse_hw(" 16X16 ") == (16, 16)
    for bad in ("256", "0x5", "axb", "1x2x3"):
        with pytest.raises(ExportError, match="HEIGHTxWIDTH"):
            parse_hw(bad, "--opt")
    assert parse_batch("1,2,8") == (1, 2, 8)
    with pytest.raises(ExportError, match="MIN,OPT,MAX"):
        parse_batch("1,2")
    with pytest.raises(ExportError, match="height must satisfy"):
        Profile(min_hw=(300, 16), opt_hw=(256, 256))
    with pytest.raises(ExportError, match="batch must satisfy"):
        Profile(batch=(2, 1, 4))


def test_profile_shapes_cover_every_dynamic_input():
    spec = models.get_spec(X2)
    profile = Profile(batch=(1, 2, 8), min_hw=(16, 16), opt_hw=(256, 240), max_hw=(1088, 1920))
    assert profile_shapes(spec.io, profile) == {
        "lr": ((1, 3, 16, 16), (2, 3, 256, 240), (8, 3, 1088, 1920))}
    assert profile_shapes(mc_io(spec, spec.build()), profile) == {
        "lr": ((1, 3, 16, 16), (1, 3, 256, 240), (1, 3, 1088, 1920)),
        "masks": ((1, 64), (2, 64), (8, 64))}


def test_engine_key_names_everything_the_engine_depends_on(tmp_path):
    base = dict(gpu_name="NVIDIA H100 80GB HBM3", trt_version="10.13.0.35", onnx_sha256="ab" * 32,
                precision="fp16", profile=Profile())
    key = engine_key(**base)
    assert key == engine_key(**base) and re.fullmatch(r"[a-z0-9._-]+", key)
    assert "nvidia-h100-80gb-hbm3" in key and "trt10.13.0.35" in key and "fp16" in key
    for change in (dict(gpu_name="NVIDIA A10G"), dict(trt_version="11.0.0"), dict(onnx_sha256="cd" * 32),
                   dict(precision="fp32"), dict(profile=Profile(max_hw=(720, 1280)))):
        assert engine_key(**{**base, **change}) != key
    with pytest.raises(ExportError, match="precision"):
        engine_key(**{**base, "precision": "int8"})
    path = engine_path(tmp_path, X2, key)
    assert path.parent == tmp_path and path.name == f"{X2}.{key}.engine"
    assert engine_path(None, X2, key).parent == paths.WEIGHTS_DIR / "trt"


def test_trt_command_without_tensorrt_exits_2_with_install_hint(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` fail here
    assert main(["trt", "-q", "--model", X2, "--fp16"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: TensorRT is not installed: pip install tensorrt") and "Traceback" not in err
    with pytest.raises(TensorRTMissing):
        TrtEngine(__file__)


def fake_tensorrt(weak_typing: bool = True):
    """Just enough of the tensorrt module for build_engine's bookkeeping (no GPU, no real engine)."""
    trt = mock.MagicMock(name="tensorrt")
    trt.__version__ = "10.9.0.34" if weak_typing else "11.1.0.5"
    if not weak_typing:
        del trt.BuilderFlag.FP16, trt.BuilderFlag.BF16
    builder = trt.Builder.return_value
    network = builder.create_network.return_value
    network.num_inputs = 1
    network.get_input.return_value.name = "lr"
    trt.OnnxParser.return_value.parse_from_file.return_value = True
    builder.build_serialized_network.return_value = b"fake plan"
    builder.create_builder_config.return_value.get_timing_cache.return_value.serialize.return_value = b"timings"
    return trt


def test_engine_cache_reuses_matching_and_rebuilds_foreign_engines(monkeypatch, ckpt, tmp_path):
    trt = fake_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(tensorrt_build, "cuda_device_name", lambda: "NVIDIA Fake GPU")
    build = lambda **kw: build_engine(X2, weights_path=ckpt, cache_dir=tmp_path, check=False, **kw)  # noqa: E731
    engine = build(precision="fp16")
    key = engine_key("NVIDIA Fake GPU", "10.9.0.34", file_sha256(paths.WEIGHTS_DIR / f"onnx/{X2}.onnx"), "fp16",
                     Profile())
    assert engine == engine_path(tmp_path, X2, key) and engine.read_bytes() == b"fake plan"
    assert engine_is_current(engine, key) and not engine_is_current(engine, key + "x")
    trt.Builder.return_value.create_builder_config.return_value.set_flag.assert_called_with(trt.BuilderFlag.FP16)
    assert list(tmp_path.glob("timing.nvidia-fake-gpu.trt10.9.0.34.cache"))[0].read_bytes() == b"timings"
    assert build(precision="fp16") == engine and trt.Builder.call_count == 1  # cache hit: nothing built
    assert build(precision="fp16", profile=Profile(max_hw=(512, 512))) != engine  # other profile, other engine
    sidecar = tensorrt_build.engine_sidecar(engine)
    sidecar.write_text(sidecar.read_text().replace('"key": "', '"key": "foreign-'))
    calls = trt.Builder.call_count
    assert build(precision="fp16") == engine and trt.Builder.call_count == calls + 1  # foreign: rebuilt


@pytest.mark.slow
def test_tensorrt_11_builds_fp16_from_half_precision_onnx(monkeypatch, ckpt, tmp_path):
    trt = fake_tensorrt(weak_typing=False)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(tensorrt_build, "cuda_device_name", lambda: "NVIDIA Fake GPU")
    engine = build_engine(X2, weights_path=ckpt, cache_dir=tmp_path, precision="fp16", check=False)
    parsed = trt.OnnxParser.return_value.parse_from_file.call_args.args[0]
    assert parsed.endswith(f"{X2}_fp16.onnx") and engine.name.startswith(f"{X2}_fp16.")
    record = onnx_export.read_onnx_record(parsed)
    assert max(record["parity"]["max_abs_error"].values()) < 2e-2  # fp16 weights vs the fp32 model
    with pytest.raises(ExportError, match="no BF16 builder flag"):
        build_engine(X2, weights_path=ckpt, cache_dir=tmp_path, precision="bf16", check=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="TensorRT engines need a CUDA GPU")
def test_real_tensorrt_engine_matches_onnx_runtime(ckpt, tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install tensorrt on a GPU machine)")
    profile = Profile(batch=(1, 1, 2), min_hw=(16, 16), opt_hw=(64, 64), max_hw=(128, 128))
    for precision in ("fp32", "fp16"):
        engine = build_engine(X2, weights_path=ckpt, cache_dir=tmp_path, precision=precision, profile=profile)
        runner = TrtEngine(engine)
        out = runner.infer({"lr": np.random.rand(2, 3, 37, 53).astype(np.float32)})["sr"]
        assert out.shape == (2, 3, 74, 106)


# ----------------------------------------------------------------------------- Triton

def parse_config(text):
    """name/platform/max_batch_size plus each input/output block's name, data_type and dims."""
    top = dict(re.findall(r'^(name|platform|max_batch_size): "?([^"\n]+)"?$', text, re.M))
    blocks = {}
    for kind in ("input", "output"):
        section = re.search(rf"^{kind} \[(.*?)^\]", text, re.M | re.S).group(1)
        blocks[kind] = [(name, dtype, [int(d) for d in dims.split(",")])
                        for name, dtype, dims in re.findall(
                            r'name: "(\w+)"\s+data_type: (\w+)\s+dims: \[ ([-\d, ]+) \]', section)]
    return top, blocks


def onnx_signature(path, drop_batch):
    model = onnx.load(str(path))
    types = {onnx.TensorProto.FLOAT: "TYPE_FP32"}
    def sig(v):
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
        return v.name, types[v.type.tensor_type.elem_type], dims[1:] if drop_batch else dims
    return {"input": [sig(v) for v in model.graph.input], "output": [sig(v) for v in model.graph.output]}


def test_triton_repository_configs_match_the_onnx_graph(exported, tmp_path):
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"plan")
    tensorrt_build.engine_sidecar(engine).write_text('{"model": "flashsr_x2", "mc": false, '
                                                     '"profile": {"batch": [1, 2, 4]}}')
    written = write_triton_repo(X2, tmp_path / "repo", onnx_file=exported["standard"], engine_file=engine)
    repo = tmp_path / "repo"
    assert (repo / f"{X2}_onnx/1/model.onnx").read_bytes() == exported["standard"].read_bytes()
    assert (repo / f"{X2}_trt/1/model.plan").read_bytes() == b"plan" and len(written) == 4
    for backend, platform, max_batch in (("onnx", "onnxruntime_onnx", "8"), ("trt", "tensorrt_plan", "4")):
        text = (repo / f"{X2}_{backend}/config.pbtxt").read_text()
        top, blocks = parse_config(text)
        assert top == {"name": f"{X2}_{backend}", "platform": platform, "max_batch_size": max_batch}
        assert blocks == onnx_signature(exported["standard"], drop_batch=True)
        assert blocks["input"][0][2] == [3, -1, -1] and "dynamic_batching" in text


def test_triton_mc_config_has_full_dims_and_no_batching(exported, tmp_path):
    write_triton_repo(X2, tmp_path, onnx_file=exported["mc"], mc=True)
    text = (tmp_path / f"{X2}_mc_onnx/config.pbtxt").read_text()
    top, blocks = parse_config(text)
    assert top["max_batch_size"] == "0" and "dynamic_batching" not in text
    assert blocks == onnx_signature(exported["mc"], drop_batch=False)
    assert blocks["input"] == [("lr", "TYPE_FP32", [1, 3, -1, -1]), ("masks", "TYPE_FP32", [-1, 64])]
    with pytest.raises(ExportError, match="'mc' variant"):
        write_triton_repo(X2, tmp_path, onnx_file=exported["mc"])
