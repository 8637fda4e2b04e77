#!/usr/bin/env bash
# GPU check, < 5 minutes, installs nothing: which GPU backends import, parity against the PyTorch CPU
# reference, and a short GPU benchmark. Writes $OUT/gpu_check.json, $OUT/parity.txt and the bench
# table/JSON/plot under $OUT/bench (OUT defaults to runs/gpu_check).
#   bash scripts/gpu_check.sh            # run from the project root on a machine with a CUDA GPU
# Written without a GPU to run it on (the dev machine has none); its first real run is its test.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu_check}"
mkdir -p "$OUT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi: none") \
  > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"

timeout 150 python - "$OUT" <<'PY' 2>&1 | tee "$OUT/parity.txt"
"""Parity of every GPU backend that loads (fp32 and fp16) against torch-cpu fp32, on 3 sizes + the MC variant."""
import json, sys, time
from pathlib import Path
import numpy as np
from serve.backends import module_available
from serve.runtime import RECOVERABLE_ERRORS, create_backend

out = Path(sys.argv[1])
report = {"modules": {m: module_available(m) for m in ("torch", "onnxruntime", "tensorrt", "openvino")}, "rows": []}
try:
    import torch
    report["cuda"] = torch.cuda.is_available()
    report["torch"] = torch.__version__
    report["gpu"] = torch.cuda.get_device_name(0) if report["cuda"] else None
except ImportError:
    report["cuda"] = False
import onnxruntime as ort
report["ort_providers"] = ort.get_available_providers()
model = "flashsr_x4"
sizes = [(64, 64), (37, 53), (256, 256)]
rng = np.random.default_rng(0)
t0 = time.perf_counter()
for mc in (False, True):
    ref = create_backend(model, "torch-cpu", mc=mc)
    cases = []
    for h, w in sizes:
        feeds = {"lr": rng.random((1, 3, h, w), dtype=np.float32)}
        if mc:
            feeds["masks"] = (rng.random((8, 64)) > 0.1).astype(np.float32) / 0.9
        cases.append((feeds, ref.run(feeds)["sr"]))
    for kind in ("torch-cuda", "onnx-gpu", "trt"):
        for fp16 in (False, True):
            row = {"model": model + ("_mc" if mc else ""), "kind": kind, "fp16": fp16}
            if time.perf_counter() - t0 > 120:  # engine builds are the slow part; keep the whole script < 5 min
                row["skipped"] = "not run: the check's 120 s parity budget was spent (engine builds)"
                report["rows"].append(row)
                continue
            try:
                started = time.perf_counter()
                backend = create_backend(model, kind, fp16=fp16, mc=mc)
                row["load_s"] = round(time.perf_counter() - started, 1)
                row["provider"] = backend.provider
                errors, psnrs = [], []
                for feeds, want in cases:
                    got = backend.run(feeds)["sr"]
                    errors.append(float(np.abs(got - want).max()))
                    mse = float(np.mean((np.clip(got, 0, 1) - np.clip(want, 0, 1)) ** 2))
                    psnrs.append(99.0 if mse < 1e-10 else 10 * np.log10(1 / mse))
                row["max_abs_error"], row["min_psnr_db"] = max(errors), round(min(psnrs), 2)
                # fp32 on GPU may use TF32 convs (~1e-3); fp16 is judged by PSNR against fp32
                row["ok"] = bool(row["min_psnr_db"] >= 40.0 if fp16 else row["max_abs_error"] <= 2e-3)
                backend.close()
            except RECOVERABLE_ERRORS as exc:
                row["skipped"] = str(exc)[:300]
            report["rows"].append(row)
            print(json.dumps(row), flush=True)
(out / "gpu_check.json").write_text(json.dumps(report, indent=2))
bad = [r for r in report["rows"] if r.get("ok") is False]
print(f"parity: {sum('ok' in r for r in report['rows'])} backends ran, {len(bad)} over tolerance")
PY

BACKENDS=torch-cuda,onnx-gpu,trt
timeout 60 python -m serve.bench --models flashsr_x4 --backends "$BACKENDS" --sizes 256,720p --runs 10 --warmup 3 \
  --out-dir "$OUT/bench" 2>&1 | tee "$OUT/bench_fp32.txt"
timeout 60 python -m serve.bench --models flashsr_x4 --backends "$BACKENDS" --sizes 256,720p --runs 10 --warmup 3 \
  --fp16 --out-dir "$OUT/bench_fp16" 2>&1 | tee "$OUT/bench_fp16.txt"
echo "wrote $OUT/gpu_check.json, $OUT/parity.txt, $OUT/bench*/ (TensorRT engine builds not finished in time show as timeouts)"
