"""Benchmark evaluation of the registered models: `python -m evaluate --task sr|colorize|interpolate|uncertainty`.

One command line (cli.py) over four tasks (sr.py, colorize.py, interpolate.py, uncertainty.py); every
model is run the same way (common.model_runner: the model's tensor contract, padded to its
multiple). evaluate/ imports common/, models/ and serve/ (the uncertainty pipeline), never train/.
"""

try:
    import torch  # noqa: F401
except ImportError as exc:  # the lean runtime (requirements.txt) serves ONNX files without torch
    raise ImportError(f"{__name__}/ needs PyTorch, which requirements.txt leaves out: "
                      "pip install -r requirements-torch.txt") from exc
