"""What the SR tab and its batch section share: the trained families, argument checks, running a model."""
from __future__ import annotations

from typing import Any, Dict, List

from models import get_spec, resolve_name

from .common import limits, models_for
from .inputs import RefusedInput, one_of, whole_number

DEFAULT_TILE = 256
MIN_TILE = 128  # FlashSR tiles overlap by ~52 px: smaller tiles would be mostly overlap
MAX_TILE = 1024
DEFAULT_QUALITY = 95
LOSSY = ("jpeg", "webp")  # the formats whose quality setting means something


PHOTO_FAMILY = "flashsr_real"  # trained on real-world degradations: the default for uploads


def sr_families() -> Dict[str, List[int]]:
    """{'flashsr_real': [2, 4], 'flashsr': [2, 4], ...}: trained SR models by family, with their scales:
    the real-photo model first (the default), then the flagship and the seed lineage in registry order."""
    families: Dict[str, List[int]] = {}
    for spec in models_for("sr"):
        families.setdefault(spec.name.rsplit("_x", 1)[0], []).append(spec.scale)
    order = sorted(families, key=lambda f: (f != PHOTO_FAMILY, not f.startswith(PHOTO_FAMILY)))
    return {k: sorted(families[k]) for k in order}


def family_label(family: str) -> str:
    """What the model dropdown shows: real-photo models as "Photo", the rest as clean/benchmark models."""
    if family == PHOTO_FAMILY:
        return f"Photo (real-world: noise, JPEG, blur) — {family}"
    if family.startswith(PHOTO_FAMILY):
        return f"Photo, sharper texture (GAN; lower PSNR) — {family}"
    return f"Clean / benchmark — {family}"


def takes_strength(family_or_name: str) -> bool:
    from models import REGISTRY

    return any(s.strength_input for n, s in REGISTRY.items() if n.rsplit("_x", 1)[0] == family_or_name
               or n == family_or_name)


def resolve_family(model: Any, scale: Any):
    """The spec of (family, scale) or of a full name; RefusedInput for anything not trained."""
    families = sr_families()
    full_names = [f"{family}_x{s}" for family, scales in families.items() for s in scales]
    model = one_of(model, "model", list(families) + full_names)
    family = model if model in families else model.rsplit("_x", 1)[0]
    return resolve_name(model, whole_number(scale, "scale", 1, 8, allowed=families[family]))


def check_tile(tile) -> int:
    tile = whole_number(tile, "tile", 0, MAX_TILE)
    if tile != 0 and tile < MIN_TILE:
        raise RefusedInput(f"Tile size {tile} is too small: use 0 (whole image at once) or at least {MIN_TILE}.")
    return tile


def run_sr(decoded, model: str, backend: str, tile: int, outscale: float, report, precision: str = "fp32",
           strength: float = 0.5):
    """The model at its scale, or (outscale set) the family chained and resized to any scale."""
    from serve import upscale
    from serve.sr import upscale_to

    lim = limits()
    kwargs = dict(tile=tile, max_input_pixels=lim.sr_input_pixels, max_output_pixels=lim.sr_output_pixels,
                  progress=report, precision=precision, strength=strength)
    if outscale and outscale != get_spec(model).scale:
        return upscale_to(decoded, model, backend, outscale=outscale, **kwargs)
    return upscale(decoded, model, backend, **kwargs)
