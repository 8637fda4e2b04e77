"""Deployment artifacts from registered checkpoints: ONNX (+ MC-dropout variant), TensorRT
engines and Triton repositories. CLI: `python -m export --help`.

Entry points for serve/ and the app (import the module you need; nothing is imported here so
that `export.trt_runtime` loads without onnx and `export.onnx_export` without TensorRT):
  export.onnx_export.ensure_onnx / export_onnx / onnx_path
  export.mc.sample_masks
  export.tensorrt_build.build_engine / find_engine
  export.trt_runtime.TrtEngine
"""
