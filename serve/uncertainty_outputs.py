"""What an uncertainty estimate is shown and saved as: heatmap, colorbar, ranked patches, the seed's files.

Kept apart from the estimation (serve/uncertainty.py) so the pictures can change without touching
the numbers. Colours come from a matplotlib colormap scaled to a robust maximum (a high percentile
of the std map), so one hot pixel does not turn the rest of the map black; the colorbar image says
which std each colour means.
"""
from __future__ import annotations

import json
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
from PIL import Image

from common.images import to_uint8

ROBUST_PERCENTILE = 99.5  # the heatmap's top colour: this percentile of the std map
Triplet = Tuple[np.ndarray, np.ndarray, np.ndarray]  # (LR patch, mean prediction patch, heatmap patch)


@dataclass
class UncertaintyResult:
    """What serve.uncertainty.estimate_uncertainty returns (defined here, with its writers, so the
    two modules do not import each other)."""

    cropped_lr: np.ndarray  # HxWx3 float [0,1]: the input the model saw
    one_prediction: np.ndarray  # sHxsWx3: one stochastic pass (MC) or the plain model (TTA)
    mean_prediction: np.ndarray  # sHxsWx3: mean of the K passes
    std_map: np.ndarray  # sHxsW float32: per-pixel std of luminance
    heatmap: np.ndarray  # sHxsWx3 float [0,1]: std_map through the colormap, 0..robust max
    colorbar: np.ndarray  # HxWx3 uint8: the heatmap's scale with tick labels
    most_certain: List[Triplet] = field(default_factory=list)  # (LR patch, mean patch, heatmap patch)
    least_certain: List[Triplet] = field(default_factory=list)  # most uncertain first
    summary: Dict[str, Any] = field(default_factory=dict)


def robust_max(std_map: np.ndarray, percentile: float = ROBUST_PERCENTILE) -> float:
    """The std shown as the hottest colour; never 0, so a flat map still divides safely."""
    value = float(np.percentile(std_map, percentile)) if std_map.size else 0.0
    if value <= 0.0:
        value = float(std_map.max()) if std_map.size else 0.0
    return value if value > 0.0 else 1e-6


def apply_colormap(std_map: np.ndarray, vmax: float, colormap: str = "inferno") -> np.ndarray:
    """HxW std -> HxWx3 float RGB in [0,1] through a matplotlib colormap on [0, vmax]."""
    from matplotlib import colormaps

    cmap = colormaps[colormap]
    return cmap(np.clip(std_map / vmax, 0.0, 1.0))[..., :3].astype(np.float32)


def render_colorbar(vmax: float, colormap: str = "inferno", height_px: int = 400,
                    label: str = "per-pixel std of luminance (0-1)") -> np.ndarray:
    """The heatmap's scale as an HxWx3 uint8 image (vertical bar, tick labels), drawn with matplotlib Agg."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(1.6, height_px / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes([0.12, 0.04, 0.18, 0.92])
    mappable = ScalarMappable(norm=Normalize(0.0, vmax), cmap=colormaps[colormap])
    bar = fig.colorbar(mappable, cax=ax, extend="max", format="%.3g")  # the arrow: stds above vmax
    bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=8)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])


def patch_scores(std_map: np.ndarray, patch_out: int) -> np.ndarray:
    """Mean std of each whole patch_out x patch_out output patch, as a (rows, cols) grid."""
    rows, cols = std_map.shape[0] // patch_out, std_map.shape[1] // patch_out
    grid = std_map[: rows * patch_out, : cols * patch_out].reshape(rows, patch_out, cols, patch_out)
    return grid.mean(axis=(1, 3))


def rank_patches(lr: np.ndarray, mean: np.ndarray, heatmap: np.ndarray, std_map: np.ndarray, patch: int,
                 scale: int, top_n: int) -> Tuple[List[Triplet], List[Triplet], List[Dict], List[Dict]]:
    """(most certain, least certain, their records): the top_n patches by lowest / highest mean std.

    Patches are the whole `patch` x `patch` LR squares of a grid from the top-left corner (with the
    seed's centre crop the grid covers the image exactly). Least certain comes most uncertain first.
    """
    scores = patch_scores(std_map, patch * scale)
    order = np.argsort(scores, axis=None, kind="stable")
    n = min(top_n, order.size)

    def take(indices) -> Tuple[List[Triplet], List[Dict]]:
        triplets, records = [], []
        for index in indices:
            row, col = divmod(int(index), scores.shape[1])
            y, x = row * patch, col * patch
            out = (slice(y * scale, (y + patch) * scale), slice(x * scale, (x + patch) * scale))
            triplets.append((lr[y:y + patch, x:x + patch], mean[out], heatmap[out]))
            records.append({"row": row, "col": col, "x": x, "y": y, "size": patch,
                            "mean_std": round(float(scores[row, col]), 7)})
        return triplets, records

    most, most_records = take(order[:n])
    least, least_records = take(order[::-1][:n])
    return most, least, most_records, least_records


def _save(image: np.ndarray, path: Path) -> Path:
    Image.fromarray(image if image.dtype == np.uint8 else to_uint8(image)).save(path)
    return path


def write_outputs(result: UncertaintyResult, out_dir) -> List[Path]:
    """The seed's layout under out_dir; returns the files written.

    cropped_lr.png, one_prediction.png, mean_prediction.png, uncertainty_map.png, colorbar.png,
    details/{most,least}_certain/{original_lr_patch_i,mean_pred_patch_i,heatmap_i}.png (i = rank,
    1 = most certain / least certain first) and summary.json.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [_save(result.cropped_lr, out / "cropped_lr.png"),
               _save(result.one_prediction, out / "one_prediction.png"),
               _save(result.mean_prediction, out / "mean_prediction.png"),
               _save(result.heatmap, out / "uncertainty_map.png"),
               _save(result.colorbar, out / "colorbar.png")]
    for folder, triplets in (("most_certain", result.most_certain), ("least_certain", result.least_certain)):
        details = out / "details" / folder
        details.mkdir(parents=True, exist_ok=True)
        for i, (lr_patch, mean_patch, heat_patch) in enumerate(triplets, start=1):
            written += [_save(lr_patch, details / f"original_lr_patch_{i}.png"),
                        _save(mean_patch, details / f"mean_pred_patch_{i}.png"),
                        _save(heat_patch, details / f"heatmap_{i}.png")]
    summary = out / "summary.json"
    summary.write_text(json.dumps(result.summary, indent=1) + "\n")
    return written + [summary]


def zip_outputs(result: UncertaintyResult, zip_path) -> Path:
    """write_outputs into a zip file (the app's download); returns its path."""
    zip_path = Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        files = write_outputs(result, tmp)
        with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                archive.write(path, path.relative_to(tmp).as_posix())
    return zip_path
