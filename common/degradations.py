"""Real-world degradations: HR photo -> a realistic low-quality LR (Real-ESRGAN / BSRGAN style).

Real photos are not bicubic-downscaled: they are blurred by optics and motion, resized by
cameras and websites, noisy (sensor Gaussian and Poisson shot noise) and JPEG-compressed, often
more than once. `degrade_real` simulates that with the two-stage model of Real-ESRGAN (Wang et al.
2021): blur -> random resize -> noise -> JPEG, twice with their own ranges, then the final
resize to the exact LR size and a sinc (ringing) filter in random order with a last JPEG.

`level` in [0, 1] scales every severity range (0: barely touched, 1: the full ranges) and each
parameter is drawn from the band [band * level, level] of its range, so the level a patch was
made with says how much damage it holds; train.sr feeds it to the network as its denoise
strength. Everything is seeded (numpy Generator) and runs on HxWx3 float32 [0,1] arrays.

`degrade_preset` gives the fixed benchmark degradations real-light / real-medium / real-heavy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Tuple

import cv2
import numpy as np
from PIL import Image
from scipy import special

from .resize import bicubic_resize

Range = Tuple[float, float]  # (mild end, severe end); may run downward (JPEG quality 95 -> 30)

_RESIZE_MODES = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


@dataclass(frozen=True)
class DegradationConfig:
    """Ranges of the two-stage model; sigmas in pixels of the image at that stage, noise in [0,1] units."""

    kernel_sizes: Tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    kernel_probs: Dict[str, float] = field(default_factory=lambda: {
        "iso": 0.45, "aniso": 0.25, "generalized_iso": 0.12, "generalized_aniso": 0.03,
        "plateau_iso": 0.12, "plateau_aniso": 0.03})
    # stage 1
    blur_sigma: Range = (0.2, 3.0)
    sinc_prob: float = 0.1  # a sinc kernel instead of the blur kernel (ringing / over-sharpening)
    resize_probs: Tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_up: Range = (1.0, 1.5)
    resize_down: Range = (1.0, 0.3)
    noise_sigma: Range = (1 / 255, 30 / 255)
    poisson_scale: Range = (0.05, 3.0)
    gaussian_noise_prob: float = 0.5  # else Poisson
    grey_noise_prob: float = 0.4
    jpeg_quality: Range = (95, 30)
    # stage 2 (its resize is relative to the final LR size)
    second_blur_prob: float = 0.8
    blur_sigma2: Range = (0.2, 1.5)
    sinc_prob2: float = 0.1
    resize_up2: Range = (1.0, 1.2)
    resize_down2: Range = (1.0, 0.5)
    noise_sigma2: Range = (1 / 255, 25 / 255)
    poisson_scale2: Range = (0.05, 2.5)
    jpeg_quality2: Range = (95, 30)
    # final
    final_sinc_prob: float = 0.8
    sinc_cutoff: Range = (math.pi, math.pi / 3)  # pi: no ringing
    generalized_beta: Range = (0.5, 4.0)
    plateau_beta: Range = (1.0, 2.0)
    band: float = 0.5  # parameters come from [band * level, level] of each range
    classic_prob: float = 0.4  # the classic model y = JPEG((x * k_gauss) downscaled + n), SRMD/BSRGAN's basis
    single_stage_prob: float = 0.2  # one round of the random model only (blur, resize to LR, noise, JPEG)
    classic_blur_sigma: Range = (0.3, 2.6)  # isotropic Gaussian, HR pixels
    classic_noise_sigma: Range = (0.0, 20 / 255)  # colour Gaussian at LR (grey with grey_noise_prob / 2)
    classic_jpeg_quality: Range = (95, 35)


# ---------------------------------------------------------------- kernels (each sums to 1)

def _grid(size: int) -> Tuple[np.ndarray, np.ndarray]:
    half = size // 2
    ax = np.arange(-half, half + 1, dtype=np.float64)
    return np.meshgrid(ax, ax)


def _inverse_covariance(sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    cov = rot @ np.diag([sigma_x ** 2, sigma_y ** 2]) @ rot.T
    return np.linalg.inv(cov)


def _quadratic(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    xx, yy = _grid(size)
    inv = _inverse_covariance(sigma_x, sigma_y, theta)
    return inv[0, 0] * xx * xx + 2 * inv[0, 1] * xx * yy + inv[1, 1] * yy * yy


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0) -> np.ndarray:
    """Bivariate Gaussian (isotropic when sigma_y is None), normalised to sum 1."""
    k = np.exp(-0.5 * _quadratic(size, sigma_x, sigma_x if sigma_y is None else sigma_y, theta))
    return (k / k.sum()).astype(np.float32)


def generalized_gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    """exp(-0.5 (x' S^-1 x)^beta): beta < 1 peakier, > 1 flatter than a Gaussian."""
    k = np.exp(-0.5 * np.power(_quadratic(size, sigma_x, sigma_y, theta), beta))
    return (k / k.sum()).astype(np.float32)


def plateau_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    """1 / (1 + (x' S^-1 x)^beta): a flat top with heavy tails (defocus-like)."""
    k = 1.0 / (1.0 + np.power(_quadratic(size, sigma_x, sigma_y, theta), beta))
    return (k / k.sum()).astype(np.float32)


def sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    """Circular low-pass (2-D sinc, Bessel J1) with cutoff in (0, pi]: ringing and overshoot artifacts."""
    xx, yy = _grid(size)
    r = np.sqrt(xx * xx + yy * yy)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = cutoff * special.j1(cutoff * r) / (2 * math.pi * r)
    k[r == 0] = cutoff ** 2 / (4 * math.pi)
    return (k / k.sum()).astype(np.float32)


def random_kernel(rng: np.random.Generator, sigma: Range, cfg: DegradationConfig, level: float,
                  sinc_prob: float) -> np.ndarray:
    """One blur kernel of a random type and size, its width drawn from `sigma` scaled by `level`."""
    size = int(rng.choice(cfg.kernel_sizes))
    if rng.random() < sinc_prob:
        lo = math.pi / 3 if size < 13 else math.pi / 5
        return sinc_kernel(size, _draw(rng, (math.pi, lo), level, cfg.band))
    kinds = list(cfg.kernel_probs)
    p = np.array([cfg.kernel_probs[k] for k in kinds], dtype=np.float64)
    kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
    sx = _draw(rng, sigma, level, cfg.band)
    sy, theta = (sx, 0.0) if kind.endswith("iso") and not kind.endswith("aniso") else (
        _draw(rng, sigma, level, cfg.band), float(rng.uniform(-math.pi, math.pi)))
    if kind.startswith("generalized"):
        return generalized_gaussian_kernel(size, sx, sy, theta, float(rng.uniform(*cfg.generalized_beta)))
    if kind.startswith("plateau"):
        return plateau_kernel(size, sx, sy, theta, float(rng.uniform(*cfg.plateau_beta)))
    return gaussian_kernel(size, sx, sy, theta)


# ---------------------------------------------------------------- operations on HxWx3 float32 [0,1]

def _draw(rng: np.random.Generator, span: Range, level: float, band: float) -> float:
    """A value from the part [band * level, level] of span (mild end -> severe end)."""
    lo, hi = span
    t = level * float(rng.uniform(band, 1.0))
    return lo + (hi - lo) * t


def apply_kernel(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


def resize(img: np.ndarray, size_hw: Tuple[int, int], mode: str) -> np.ndarray:
    h, w = max(1, int(size_hw[0])), max(1, int(size_hw[1]))
    return cv2.resize(img, (w, h), interpolation=_RESIZE_MODES[mode])


def add_gaussian_noise(img: np.ndarray, sigma: float, rng: np.random.Generator, grey: bool = False) -> np.ndarray:
    shape = img.shape[:2] + (1,) if grey else img.shape
    return img + rng.normal(0.0, sigma, shape).astype(np.float32)


def add_poisson_noise(img: np.ndarray, scale: float, rng: np.random.Generator, grey: bool = False) -> np.ndarray:
    """Shot noise of an 8-bit sensor (255 photon levels), its amplitude multiplied by `scale`."""
    base = np.clip(img, 0, 1)
    if grey:
        base = base @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        base = base[..., None]
    noisy = rng.poisson(base * 255.0).astype(np.float32) / 255.0
    return img + (noisy - base) * scale


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Round to 8 bits and JPEG-compress (OpenCV, 4:2:0 chroma) at `quality`."""
    u8 = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8[..., ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.0


def _random_noise(img, rng, cfg: DegradationConfig, level: float, sigma: Range, poisson: Range) -> np.ndarray:
    grey = rng.random() < cfg.grey_noise_prob
    if rng.random() < cfg.gaussian_noise_prob:
        return add_gaussian_noise(img, _draw(rng, sigma, level, cfg.band), rng, grey)
    return add_poisson_noise(img, _draw(rng, poisson, level, cfg.band), rng, grey)


def _random_resize(img, rng, size_hw, probs, up: Range, down: Range, level: float, band: float) -> np.ndarray:
    kind = int(rng.choice(3, p=np.asarray(probs) / np.sum(probs)))
    factor = 1.0 if kind == 2 else _draw(rng, up if kind == 0 else down, level, band)
    mode = str(rng.choice(list(_RESIZE_MODES)))
    return resize(img, (round(size_hw[0] * factor), round(size_hw[1] * factor)), mode)


def degrade_real(hr: np.ndarray, scale: int, rng: np.random.Generator, level: float = 1.0,
                 config: DegradationConfig = DegradationConfig()) -> np.ndarray:
    """HR (H,W,3) float32 [0,1] -> LR (H//scale, W//scale, 3) float32 on the 8-bit grid.

    With classic_prob the classic model (Gaussian blur, bicubic, noise, JPEG); with single_stage_prob one
    round of the random model (blur, resize to LR, noise, JPEG). Otherwise stage 1: blur,
    random resize, noise, JPEG. Stage 2 (its blur with second_blur_prob): the same
    with its own ranges, resized around the LR size. Final: resize to the exact LR size + sinc
    (final_sinc_prob) in random order against the last JPEG.
    """
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"level must be in [0, 1], got {level}")
    h, w = hr.shape[:2]
    lr_hw = (h // scale, w // scale)
    cfg = config
    img = np.ascontiguousarray(hr, dtype=np.float32)
    branch = rng.random()
    if branch < cfg.classic_prob:
        return _classic(img, lr_hw, rng, cfg, level)
    if branch < cfg.classic_prob + cfg.single_stage_prob:
        return _single_stage(img, lr_hw, rng, cfg, level)
    # stage 1
    img = apply_kernel(img, random_kernel(rng, cfg.blur_sigma, cfg, level, cfg.sinc_prob))
    img = _random_resize(img, rng, (h, w), cfg.resize_probs, cfg.resize_up, cfg.resize_down, level, cfg.band)
    img = _random_noise(img, rng, cfg, level, cfg.noise_sigma, cfg.poisson_scale)
    img = jpeg(np.clip(img, 0, 1), round(_draw(rng, cfg.jpeg_quality, level, cfg.band)))
    # stage 2
    if rng.random() < cfg.second_blur_prob:
        img = apply_kernel(img, random_kernel(rng, cfg.blur_sigma2, cfg, level, cfg.sinc_prob2))
    img = _random_resize(img, rng, lr_hw, cfg.resize_probs, cfg.resize_up2, cfg.resize_down2, level, cfg.band)
    img = _random_noise(img, rng, cfg, level, cfg.noise_sigma2, cfg.poisson_scale2)
    # final: [resize to LR + sinc] and JPEG, in random order
    mode = str(rng.choice(list(_RESIZE_MODES)))
    sinc = (sinc_kernel(int(rng.choice(cfg.kernel_sizes)), _draw(rng, cfg.sinc_cutoff, level, cfg.band))
            if rng.random() < cfg.final_sinc_prob else None)
    quality = round(_draw(rng, cfg.jpeg_quality2, level, cfg.band))
    if rng.random() < 0.5:
        img = resize(img, lr_hw, mode)
        img = apply_kernel(img, sinc) if sinc is not None else img
        img = jpeg(np.clip(img, 0, 1), quality)
    else:
        img = jpeg(np.clip(img, 0, 1), quality)
        img = resize(img, lr_hw, mode)
        img = apply_kernel(img, sinc) if sinc is not None else img
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.float32) / 255.0


def _classic(img: np.ndarray, lr_hw, rng: np.random.Generator, cfg: DegradationConfig, level: float) -> np.ndarray:
    """The classic degradation: isotropic Gaussian blur, PIL bicubic (antialiased) downscale, Gaussian
    noise, JPEG; the family the fixed presets come from (the presets' images are never trained on)."""
    sigma = _draw(rng, cfg.classic_blur_sigma, level, cfg.band)
    img = apply_kernel(img, gaussian_kernel(2 * math.ceil(3 * sigma) + 1, sigma))
    img = bicubic_resize(img, lr_hw)
    img = add_gaussian_noise(img, _draw(rng, cfg.classic_noise_sigma, level, cfg.band), rng,
                             grey=rng.random() < cfg.grey_noise_prob / 2)
    img = jpeg(np.clip(img, 0, 1), round(_draw(rng, cfg.classic_jpeg_quality, level, cfg.band)))
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.float32) / 255.0


def _single_stage(img: np.ndarray, lr_hw, rng: np.random.Generator, cfg: DegradationConfig,
                  level: float) -> np.ndarray:
    """The classic one-round model (BSRGAN without the shuffle): blur, resize to the LR size, noise
    (stage-2 ranges, at LR scale), JPEG."""
    img = apply_kernel(img, random_kernel(rng, cfg.blur_sigma, cfg, level, cfg.sinc_prob))
    img = resize(img, lr_hw, str(rng.choice(list(_RESIZE_MODES))))
    img = _random_noise(img, rng, cfg, level, cfg.noise_sigma2, cfg.poisson_scale2)
    img = jpeg(np.clip(img, 0, 1), round(_draw(rng, cfg.jpeg_quality2, level, cfg.band)))
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.float32) / 255.0


# ---------------------------------------------------------------- fixed benchmark presets

@dataclass(frozen=True)
class Preset:
    blur_sigma: float  # isotropic Gaussian on the HR image, HR pixels (kernel 2*ceil(3 sigma)+1)
    noise_sigma: float  # colour Gaussian noise on the LR image, [0,1] units
    jpeg_quality: int  # OpenCV JPEG (4:2:0) of the 8-bit LR, last


PRESETS: Dict[str, Preset] = {
    "real-light": Preset(blur_sigma=0.8, noise_sigma=0.0, jpeg_quality=90),
    "real-medium": Preset(blur_sigma=1.2, noise_sigma=5 / 255, jpeg_quality=75),
    "real-heavy": Preset(blur_sigma=2.0, noise_sigma=15 / 255, jpeg_quality=50),
}


def degrade_preset(hr: np.ndarray, scale: int, preset: str, seed: int = 0) -> np.ndarray:
    """A fixed benchmark degradation, HR (H,W,3) float [0,1] -> LR (H//scale, W//scale, 3) float32.

    Steps: isotropic Gaussian blur of the HR (sigma in HR pixels), PIL bicubic downscale with
    antialiasing (the clean benchmark's resize), rounding to 8 bits, colour Gaussian noise from
    numpy default_rng(seed), rounding, then JPEG. Exact values:
      real-light : blur sigma 0.8, no noise,          JPEG quality 90
      real-medium: blur sigma 1.2, noise sigma 5/255,  JPEG quality 75
      real-heavy : blur sigma 2.0, noise sigma 15/255, JPEG quality 50
    Same image + seed -> the same LR on every run and machine (OpenCV's JPEG is deterministic).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}' (choose from {', '.join(PRESETS)})")
    p = PRESETS[preset]
    h, w = hr.shape[:2]
    img = np.ascontiguousarray(hr[: h - h % scale, : w - w % scale], dtype=np.float32)
    size = 2 * math.ceil(3 * p.blur_sigma) + 1
    img = apply_kernel(img, gaussian_kernel(size, p.blur_sigma))
    u8 = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    lr_size = (img.shape[1] // scale, img.shape[0] // scale)
    lr = np.asarray(Image.fromarray(u8).resize(lr_size, Image.BICUBIC), dtype=np.float32) / 255.0
    if p.noise_sigma > 0:
        lr = add_gaussian_noise(lr, p.noise_sigma, np.random.default_rng(seed))
        lr = np.clip(np.rint(lr * 255.0), 0, 255) / 255.0
    return jpeg(lr.astype(np.float32), p.jpeg_quality)


def blockiness(img: np.ndarray, block: int = 8) -> float:
    """JPEG block-grid strength: mean |luma step| across `block`-pixel boundaries over the mean step
    elsewhere (rows and columns). ~1 for natural images; JPEG grids push it above 1."""
    y = np.asarray(img, dtype=np.float64)
    if y.ndim == 3:
        y = y[..., :3] @ np.array([0.299, 0.587, 0.114])
    ratios = []
    for d in (np.abs(np.diff(y, axis=1)), np.abs(np.diff(y, axis=0)).T):
        at = (np.arange(d.shape[1]) % block) == block - 1
        if at.any() and (~at).any():
            ratios.append(d[:, at].mean() / max(d[:, ~at].mean(), 1e-12))
    return float(np.mean(ratios)) if ratios else 1.0
