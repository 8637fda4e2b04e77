"""Deployment artifacts from registered checkpoints: ONNX (+ MC-dropout variant), TensorRT
engines and Triton repositories. CLI: `python -m export --help`.

Entry points for serve/ (export on first use; import the module you need, nothing is imported
here so that `export.onnx_export` loads without TensorRT):
  export.onnx_export.ensure_onnx / export_onnx / onnx_path
  export.tensorrt_build.build_engine
Running an engine is serve's (serve/trt_runtime.py); MC-dropout masks are models' (models/mc_dropout.py).
"""
