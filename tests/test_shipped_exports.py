"""Every shipped model exports to ONNX and matches PyTorch (ORT CPU, three sizes incl. 37x53, fp32 ≤ 1e-4)."""
import json

import pytest

from export.onnx_export import export_onnx, onnx_sidecar_path
from models import REGISTRY

SHIPPED = sorted(name for name, spec in REGISTRY.items() if spec.has_weights())
VARIANTS = [(name, False) for name in SHIPPED] + [(name, True) for name in SHIPPED if REGISTRY[name].mc_dropout]


@pytest.mark.slow  # the shipped-export parity sweep
@pytest.mark.parametrize("name,mc", VARIANTS, ids=[f"{n}{'_mc' if mc else ''}" for n, mc in VARIANTS])
def test_shipped_model_onnx_parity(tmp_path, name, mc):
    path = export_onnx(name, out_dir=tmp_path, check=True, mc=mc)  # raises ParityError above 1e-4
    errors = json.loads(onnx_sidecar_path(path).read_text())["parity"]["max_abs_error"]
    assert len(errors) >= 3
    if REGISTRY[name].pad_multiple == 1:  # models that need padded sizes get 37x53 rounded up (serving pads)
        assert any("37x53" in size for size in errors)
    assert max(errors.values()) <= 1e-4


def test_every_registered_model_ships_weights():
    missing = sorted(set(REGISTRY) - set(SHIPPED))
    assert not missing, f"registered without weights: {missing}"
