"""Tiled inference for images too large to run in one pass, without visible seams.

Tiles of `tile` x `tile` input pixels overlap by `overlap`; each tile's output is weighted by a
separable window and the weighted sum is divided by the summed weights. The window is 0 for the
outer `(overlap - blend) // 2` pixels at every cut edge (where the tile lacked context), ramps up over
`blend` pixels (linear or cosine), and is 1 elsewhere and right up to true image borders.

Exactness rule: a conv net with receptive radius r (r = number of 3x3 convs on the longest path)
gives the untiled result exactly when (overlap - blend) // 2 >= r, because every output pixel that
gets weight then saw its whole receptive field. `plan_for(radius)` picks such an overlap. Tiles are
placed inside the image (the last one flush with the border) so that border pixels see the same
zero padding as an untiled run; the image is reflect-padded only up to the model's pad_multiple.
All tiles of one image have the same shape, so they batch (and suit fixed-shape TensorRT engines).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from typing import Callable, List, Optional, Tuple

import numpy as np

from .contract import InputError

RunBatch = Callable[[np.ndarray], np.ndarray]  # (N,C,h,w) -> (N,C',h*s,w*s)
MAX_TILE = int(os.environ.get("STSR_MAX_TILE", 1024))  # the largest tile side "whole image" (tile=0) runs at
# Input pixels one runtime call may take (tiles x tile area). A call's activations grow with it (64 float
# channels per pixel: 4 tiles of 512 px held ~1.3 GB in ORT, one 0.45 GB), and batching large tiles does
# not make a CPU faster, so large tiles run one per call. Raise it on a GPU for throughput.
MAX_CALL_PIXELS = int(os.environ.get("STSR_MAX_CALL_PIXELS", 512 * 512))


def bounded_tile(tile: int, height: int, width: int) -> int:
    """The tile side to run: `tile`, or for tile=0 the whole image up to MAX_TILE px per side.

    Tiling is exact (see the exactness rule), so capping the whole-image pass only bounds the peak
    memory of one request (a runtime's buffers grow with the pixels of one call), never the result.
    """
    if tile > 0:
        return tile
    return min(max(height, width) + 1, MAX_TILE)


@dataclass(frozen=True)
class TilePlan:
    tile: int = 256
    overlap: int = 52
    blend: int = 8
    batch_size: int = 4
    window: str = "cosine"  # or "linear"

    def __post_init__(self):
        if self.tile < 1 or self.batch_size < 1:
            raise ValueError(f"tile and batch_size must be >= 1 (got tile={self.tile}, batch={self.batch_size})")
        if not 0 <= self.blend <= self.overlap < self.tile:
            raise ValueError(f"need 0 <= blend <= overlap < tile, got blend={self.blend} overlap={self.overlap} "
                             f"tile={self.tile}")
        if self.window not in ("cosine", "linear"):
            raise ValueError(f"window must be 'cosine' or 'linear', not '{self.window}'")

    @property
    def margin(self) -> int:
        """Pixels at each cut edge whose output is discarded (weight 0)."""
        return (self.overlap - self.blend) // 2


def receptive_radius(module) -> int:
    """Upper bound on a CNN's receptive radius in input pixels: sum of every conv's half-kernel x dilation.

    Exact for nets whose convs lie on one path (FlashSR); an over-estimate for branchy ones, which
    only makes the tiling overlap larger than needed, never wrong.
    """
    from torch import nn

    radius = 0
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            dh, dw = m.dilation
            radius += max((kh - 1) // 2 * dh, (kw - 1) // 2 * dw)
    return radius


def onnx_receptive_radius(path) -> int:
    """The same bound read from an ONNX graph's Conv nodes (kernel_shape, or the weight's dims, x dilations)."""
    import onnx
    from onnx import helper, numpy_helper

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {init.name: init for init in graph.initializer}
    radius = 0
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        kernel = list(attrs.get("kernel_shape") or [])
        if not kernel and node.input[1] in weights:
            kernel = list(numpy_helper.to_array(weights[node.input[1]]).shape[2:])
        dilation = list(attrs.get("dilations") or [1] * len(kernel))
        radius += max(((k - 1) // 2 * d for k, d in zip(kernel, dilation)), default=0)
    return radius


@cache
def spec_radius(model_name: str) -> int:
    """Receptive radius of a registered model as built with its default (shipped) arguments."""
    from models import get_spec

    return receptive_radius(get_spec(model_name).build())


def plan_for(radius: int, tile: int = 256, blend: int = 8, batch_size: int = 4, window: str = "cosine",
             overlap: Optional[int] = None) -> TilePlan:
    """A plan that satisfies the exactness rule for a net of receptive `radius` when the tile allows.

    The overlap is capped below the tile; when that leaves too little room, the blend shrinks first
    (exactness over feathering), and only a tile under ~2 x radius gives up exactness.
    """
    if overlap is None:
        overlap = min(2 * radius + blend, max(tile - 1, 0))
    spare = overlap - 2 * radius
    blend = min(blend, spare) if spare >= 0 else min(blend, overlap)
    return TilePlan(tile=tile, overlap=overlap, blend=blend, batch_size=batch_size, window=window)


def useful_plan(plan: TilePlan, radius: int) -> bool:
    """Exact (every kept pixel saw its whole receptive field) and not mostly overlap (the stride is at least
    a quarter of the tile): smaller tiles give seams, or step a few pixels at a time and take hours."""
    return plan.margin >= radius and plan.tile - plan.overlap >= plan.tile / 4


def check_tile(tile: int, radius: int, model: str, height: int, width: int) -> None:
    """Refuse (InputError with the smallest tile that works) a tile too small for `radius` under plan_for's
    automatic overlap; 0, a tile that covers the height x width image (one tile, no cut) and large tiles pass."""
    if tile <= 0 or tile >= max(height, width) or useful_plan(plan_for(radius, tile=tile), radius):
        return
    smallest = next(t for t in range(tile + 1, tile + 16 * radius + 64)
                    if useful_plan(plan_for(radius, tile=t), radius))
    raise InputError(f"tile {tile} is too small for {model} (receptive radius {radius} px): use 0 (the whole image) "
                     f"or at least {smallest} px; smaller tiles would be inexact or mostly overlap")


def tile_starts(length: int, tile: int, overlap: int) -> List[int]:
    """Start offsets covering [0, length) with tiles of `tile` (or one of `length` if shorter)."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)  # the last tile sits flush with the border
    return starts


def edge_weights(size: int, scale: int, cut_before: bool, cut_after: bool, plan: TilePlan) -> np.ndarray:
    """1-D window over one output tile side; ramps only on cut edges (not at image borders)."""
    pos = np.arange(size, dtype=np.float64) + 0.5  # output pixel centres
    weights = np.ones(size, dtype=np.float64)
    zero, ramp = plan.margin * scale, plan.blend * scale
    for cut, dist in ((cut_before, pos), (cut_after, size - pos)):
        if not cut:
            continue
        if ramp == 0:
            w = (dist > zero).astype(np.float64)
        else:
            t = np.clip((dist - zero) / ramp, 0.0, 1.0)
            w = t if plan.window == "linear" else 0.5 - 0.5 * np.cos(np.pi * t)
        weights *= w
    return weights.astype(np.float32)


def pad_to_multiple(image: np.ndarray, multiple: int) -> Tuple[np.ndarray, Tuple[int, int]]:
    """Reflect-pad (N,C,H,W) bottom/right so H and W are multiples; returns (padded, (H, W))."""
    h, w = image.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return image, (h, w)
    mode = "reflect" if ph < h and pw < w else "edge"  # reflect needs the pad smaller than the side
    return np.pad(image, ((0, 0), (0, 0), (0, ph), (0, pw)), mode=mode), (h, w)


def call_pixel_budget(spec) -> int:
    """Input pixels one call of `spec`'s model may take: MAX_CALL_PIXELS, over scale^2 for architectures
    with 64-channel features at the output size (spec.max_tile): their memory per input pixel is scale^2
    higher (four 256 px tiles of srresnet_x4 in one call held 3.2 GB, one ~0.8 GB)."""
    return MAX_CALL_PIXELS // (spec.scale ** 2) if spec.max_tile else MAX_CALL_PIXELS


def tiled_apply(run_batch: RunBatch, image: np.ndarray, scale: int, plan: TilePlan, pad_multiple: int = 1,
                progress: Optional[Callable[[int, int], None]] = None,
                max_call_pixels: Optional[int] = None) -> Tuple[np.ndarray, int]:
    """Run `run_batch` over (N,C,H,W) `image` in tiles; returns ((N,C',H*s,W*s) float32, tiles run).

    `progress(done, total)` is called after each batch (for UI progress bars). A batch holds at most
    `plan.batch_size` tiles and at most `max_call_pixels` (default MAX_CALL_PIXELS, see call_pixel_budget)
    input pixels, but always one tile.
    """
    if image.ndim != 4 or 0 in image.shape:
        raise ValueError(f"tiled_apply needs a non-empty (N,C,H,W) array, got shape {image.shape}")
    padded, (h, w) = pad_to_multiple(np.ascontiguousarray(image, dtype=np.float32), pad_multiple)
    hp, wp = padded.shape[-2:]
    tile = max(pad_multiple, plan.tile // pad_multiple * pad_multiple)
    th, tw = min(tile, hp), min(tile, wp)
    ys, xs = tile_starts(hp, th, plan.overlap), tile_starts(wp, tw, plan.overlap)
    boxes = [(n, y, x) for n in range(padded.shape[0]) for y in ys for x in xs]
    weight_y = {y: edge_weights(th * scale, scale, y > 0, y + th < hp, plan) for y in ys}
    weight_x = {x: edge_weights(tw * scale, scale, x > 0, x + tw < wp, plan) for x in xs}
    budget = MAX_CALL_PIXELS if max_call_pixels is None else max_call_pixels
    per_call = max(1, min(plan.batch_size, budget // (th * tw)))
    acc: Optional[np.ndarray] = None
    weight_sum = np.zeros((hp * scale, wp * scale), dtype=np.float32)
    for first in range(0, len(boxes), per_call):
        chunk = boxes[first:first + per_call]
        batch = np.stack([padded[n, :, y:y + th, x:x + tw] for n, y, x in chunk])
        out = np.asarray(run_batch(batch), dtype=np.float32)
        if out.shape[0] != len(chunk) or out.shape[-2:] != (th * scale, tw * scale):
            raise ValueError(f"tile runner returned {out.shape} for tiles {batch.shape} at scale {scale}")
        if acc is None:
            acc = np.zeros((padded.shape[0], out.shape[1], hp * scale, wp * scale), dtype=np.float32)
        for (n, y, x), tile_out in zip(chunk, out):
            win = weight_y[y][:, None] * weight_x[x][None, :]
            region = (slice(y * scale, (y + th) * scale), slice(x * scale, (x + tw) * scale))
            acc[(n, slice(None)) + region] += tile_out * win
            if n == 0:
                weight_sum[region] += win
        if progress is not None:
            progress(min(first + per_call, len(boxes)), len(boxes))
    acc /= np.maximum(weight_sum, 1e-12, out=weight_sum)
    return acc[:, :, : h * scale, : w * scale], len(boxes)
