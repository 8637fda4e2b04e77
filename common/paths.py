"""Where things live: the data root (env STSR_DATA) and the shipped weights folder."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = Path(os.environ.get("STSR_WEIGHTS", PROJECT_ROOT / "weights"))


def data_root() -> Path:
    """Root of the shared data (default ../shared/data next to the project)."""
    return Path(os.environ.get("STSR_DATA", PROJECT_ROOT.parent / "shared" / "data"))


def benchmark_dir(name: str) -> Path:
    return data_root() / "benchmark" / name
