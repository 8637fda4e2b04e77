"""Training of the registered models (needs PyTorch: requirements-torch.txt)."""

try:
    import torch  # noqa: F401
except ImportError as exc:  # the lean runtime (requirements.txt) serves ONNX files without torch
    raise ImportError(f"{__name__}/ needs PyTorch, which requirements.txt leaves out: "
                      "pip install -r requirements-torch.txt") from exc
