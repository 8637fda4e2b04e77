"""SR evaluation protocol: Y channel (ITU-R BT.601), border crop, PSNR and SSIM.

PSNR is the closed form; SSIM is scikit-image's with the settings that reproduce the
MATLAB/papers' SSIM (11x11 Gaussian, sigma 1.5, population covariance). Inputs are arrays
in [0, 1] (HxWx3 RGB or HxW grey); they are quantised to 8-bit first, as saved images are.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import convolve
from skimage.metrics import structural_similarity


def quantize(img: np.ndarray) -> np.ndarray:
    """[0,1] float -> float64 in [0,255] with the rounding an 8-bit file applies."""
    return np.clip(np.rint(np.asarray(img, dtype=np.float64) * 255.0), 0, 255)


def rgb_to_y(img255: np.ndarray) -> np.ndarray:
    """RGB in [0,255] -> Y in [16,235] (BT.601, as MATLAB rgb2ycbcr). Grey passes through as-is."""
    if img255.ndim == 2:
        return img255
    r, g, b = img255[..., 0], img255[..., 1], img255[..., 2]
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def _prepare(sr: np.ndarray, hr: np.ndarray, crop: int):
    if sr.shape != hr.shape:
        raise ValueError(f"shape mismatch: prediction {sr.shape} vs reference {hr.shape}")
    sr_y, hr_y = rgb_to_y(quantize(sr)), rgb_to_y(quantize(hr))
    if crop > 0:
        sr_y, hr_y = sr_y[crop:-crop, crop:-crop], hr_y[crop:-crop, crop:-crop]
    return sr_y, hr_y


def psnr(a255: np.ndarray, b255: np.ndarray, data_range: float = 255.0) -> float:
    mse = float(np.mean((np.asarray(a255, np.float64) - np.asarray(b255, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def ssim(a255: np.ndarray, b255: np.ndarray, data_range: float = 255.0) -> float:
    return float(
        structural_similarity(
            a255, b255, data_range=data_range, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, channel_axis=-1 if a255.ndim == 3 else None,
        )
    )


def psnr_y(sr: np.ndarray, hr: np.ndarray, crop: int = 0) -> float:
    return psnr(*_prepare(sr, hr, crop))


def ssim_y(sr: np.ndarray, hr: np.ndarray, crop: int = 0) -> float:
    return ssim(*_prepare(sr, hr, crop))


GMSD_C = 170.0  # Xue et al.'s stability constant for 0-255 images
_PREWITT_X = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], dtype=np.float64) / 3.0


def gmsd(a255: np.ndarray, b255: np.ndarray) -> float:
    """Gradient Magnitude Similarity Deviation (Xue et al. 2014), 0 = identical, lower is better.

    As the reference implementation: 2x2 average and downsample, Prewitt gradient magnitudes,
    per-pixel similarity (2 m_a m_b + C) / (m_a^2 + m_b^2 + C), then its standard deviation. It
    needs no pretrained network and, unlike PSNR, does not reward blur over sharp but shifted detail.
    """
    def magnitude(img):
        img = convolve(np.asarray(img, np.float64), np.full((2, 2), 0.25), mode="nearest")[::2, ::2]
        return np.hypot(convolve(img, _PREWITT_X, mode="nearest"), convolve(img, _PREWITT_X.T, mode="nearest"))

    ma, mb = magnitude(a255), magnitude(b255)
    return float(((2 * ma * mb + GMSD_C) / (ma**2 + mb**2 + GMSD_C)).std())


def gmsd_y(sr: np.ndarray, hr: np.ndarray, crop: int = 0) -> float:
    return gmsd(*_prepare(sr, hr, crop))


def mean_gradient(y255: np.ndarray) -> float:
    """Mean gradient magnitude of one channel (0-255 scale): how much edge and texture detail it has."""
    gy, gx = np.gradient(np.asarray(y255, np.float64))
    return float(np.hypot(gx, gy).mean())


def detail_ratio_y(sr: np.ndarray, hr: np.ndarray, crop: int = 0) -> float:
    """mean_gradient of the output's Y over the truth's: 1 = as much detail as the truth, < 1 blurrier.

    The sharpness measure for GAN outputs, which PSNR and GMSD under-rate: it says how much
    high-frequency content there is, not whether it is the right content (read it beside GMSD).
    """
    sr_y, hr_y = _prepare(sr, hr, crop)
    return mean_gradient(sr_y) / max(mean_gradient(hr_y), 1e-12)


def ms_ssim_y(sr: np.ndarray, hr: np.ndarray, crop: int = 0) -> float:
    """Multi-scale SSIM (Wang et al. 2003; pytorch-msssim, 5 scales, 11x11 Gaussian) on Y.

    NaN when the cropped image is too small for 5 scales (side <= 160 px).
    """
    import torch
    from pytorch_msssim import ms_ssim

    sr_y, hr_y = _prepare(sr, hr, crop)
    if min(sr_y.shape) <= 160:
        return float("nan")
    as_tensor = lambda y: torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))[None, None]  # noqa: E731
    return float(ms_ssim(as_tensor(sr_y), as_tensor(hr_y), data_range=255.0))


def psnr_rgb(pred: np.ndarray, ref: np.ndarray, crop: int = 0) -> float:
    """PSNR over all channels (colorization and interpolation report this)."""
    a, b = quantize(pred), quantize(ref)
    if crop > 0:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    return psnr(a, b)


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colourfulness of an RGB image in [0,1], on the 0-255 scale.

    sigma_rgyb + 0.3 * mu_rgyb of the opponent channels rg = R - G, yb = (R + G)/2 - B; a grey
    image scores 0, typical photos 20-60. Colorization reports it beside PSNR because a model
    that outputs sepia can still score a good PSNR.
    """
    img = quantize(rgb)
    if img.ndim != 3 or img.shape[2] < 3:
        return 0.0
    rg = img[..., 0] - img[..., 1]
    yb = 0.5 * (img[..., 0] + img[..., 1]) - img[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
