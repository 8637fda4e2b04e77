"""common.degradations: each stage does what it claims, on tiny synthetic images."""
import math

import numpy as np
import pytest

from common import degradations as D


def smooth_image(h=64, w=64, seed=0):
    """A smooth colour image with some texture (gradients + low-amplitude sines)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 6, 3)
    img = np.stack([0.5 + 0.3 * np.sin(xx / 7 + p) * np.cos(yy / 9 - p) for p in phase], axis=2)
    return np.clip(img, 0, 1).astype(np.float32)


@pytest.mark.parametrize("kernel", [
    D.gaussian_kernel(11, 1.5), D.gaussian_kernel(15, 2.0, 0.7, 0.6),
    D.generalized_gaussian_kernel(13, 1.2, 2.5, 0.3, 0.5), D.generalized_gaussian_kernel(9, 1.0, 1.0, 0.0, 4.0),
    D.plateau_kernel(21, 2.0, 1.0, 1.0, 1.5), D.sinc_kernel(13, math.pi / 3), D.sinc_kernel(7, math.pi)])
def test_kernels_sum_to_one_and_are_odd(kernel):
    assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
    assert abs(float(kernel.sum()) - 1.0) < 1e-5


def test_random_kernels_sum_to_one():
    rng, cfg = np.random.default_rng(0), D.DegradationConfig()
    for level in (0.0, 0.5, 1.0):
        for _ in range(20):
            k = D.random_kernel(rng, cfg.blur_sigma, cfg, level, sinc_prob=0.3)
            assert abs(float(k.sum()) - 1.0) < 1e-5 and np.isfinite(k).all()


def test_sinc_rings_and_gaussian_does_not():
    assert D.sinc_kernel(21, math.pi / 4).min() < 0  # negative lobes: ringing
    assert D.gaussian_kernel(21, 2.0).min() >= 0


def test_anisotropic_kernel_is_wider_along_its_axis():
    k = D.gaussian_kernel(21, 3.0, 0.5, 0.0)
    assert k.sum(axis=0).std() < k.sum(axis=1).std()  # spread along x, narrow along y


def test_gaussian_noise_std_in_range():
    flat = np.full((128, 128, 3), 0.5, np.float32)
    for sigma in (2 / 255, 10 / 255, 25 / 255):
        noisy = D.add_gaussian_noise(flat, sigma, np.random.default_rng(1))
        assert abs(float((noisy - flat).std()) - sigma) < 0.05 * sigma
    grey = D.add_gaussian_noise(flat, 0.05, np.random.default_rng(1), grey=True)
    assert np.allclose(grey[..., 0], grey[..., 1]) and np.allclose(grey[..., 1], grey[..., 2])


def test_poisson_noise_grows_with_brightness_and_scale():
    rng = np.random.default_rng(2)
    dark, bright = np.full((128, 128, 3), 0.1, np.float32), np.full((128, 128, 3), 0.8, np.float32)
    std = lambda img, s: float((D.add_poisson_noise(img, s, rng) - img).std())  # noqa: E731
    assert abs(std(bright, 1.0) - math.sqrt(0.8 * 255) / 255) < 0.1 * math.sqrt(0.8 * 255) / 255
    assert std(bright, 1.0) > std(dark, 1.0)
    assert std(bright, 2.0) > 1.8 * std(bright, 1.0)


def test_drawn_parameters_stay_in_the_level_band():
    rng = np.random.default_rng(3)
    for level in (0.0, 0.3, 1.0):
        values = [D._draw(rng, (1.0, 30.0), level, 0.5) for _ in range(200)]
        assert min(values) >= 1.0 + 29.0 * 0.5 * level - 1e-9 and max(values) <= 1.0 + 29.0 * level + 1e-9
    quality = [D._draw(rng, (95, 30), 1.0, 0.5) for _ in range(100)]  # ranges may run downward
    assert 30 <= min(quality) and max(quality) <= 62.5


def test_jpeg_blocking_is_measurable_at_8px_boundaries():
    img = smooth_image(96, 96)
    assert D.blockiness(img) < 1.1
    assert D.blockiness(D.jpeg(img, 30)) > 1.3
    assert D.blockiness(D.jpeg(img, 30)) > D.blockiness(D.jpeg(img, 95))


@pytest.mark.parametrize("scale,hw", [(4, (64, 72)), (2, (50, 38)), (4, (67, 81))])
def test_output_size_exact_and_8bit(scale, hw):
    hr = smooth_image(*hw)
    for level in (0.0, 0.5, 1.0):
        lr = D.degrade_real(hr, scale, np.random.default_rng(4), level=level)
        assert lr.shape == (hw[0] // scale, hw[1] // scale, 3) and lr.dtype == np.float32
        assert lr.min() >= 0 and lr.max() <= 1
        assert np.allclose(lr * 255, np.rint(lr * 255), atol=1e-3)
    for preset in D.PRESETS:
        assert D.degrade_preset(hr, scale, preset).shape == (hw[0] // scale, hw[1] // scale, 3)


def test_same_seed_same_output():
    hr = smooth_image(64, 64)
    a = D.degrade_real(hr, 4, np.random.default_rng(7), level=0.8)
    b = D.degrade_real(hr, 4, np.random.default_rng(7), level=0.8)
    c = D.degrade_real(hr, 4, np.random.default_rng(8), level=0.8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    for preset in D.PRESETS:
        assert np.array_equal(D.degrade_preset(hr, 4, preset, seed=3), D.degrade_preset(hr, 4, preset, seed=3))


def test_higher_level_damages_more():
    hr = smooth_image(96, 96, seed=1)
    ref = D.degrade_preset(hr, 4, "real-light")  # a mildly blurred reference LR
    err = {lv: np.mean([np.abs(D.degrade_real(hr, 4, np.random.default_rng(s), level=lv) - ref).mean()
                        for s in range(12)]) for lv in (0.0, 1.0)}
    assert err[1.0] > 2 * err[0.0]


def test_presets_order_by_severity():
    hr = smooth_image(96, 96, seed=2)
    from common.resize import bicubic_downscale
    clean = bicubic_downscale(hr, 4)
    errs = [np.abs(D.degrade_preset(hr, 4, p) - clean).mean() for p in ("real-light", "real-medium", "real-heavy")]
    assert errs[0] < errs[1] < errs[2]


def test_bad_level_and_preset_fail_clearly():
    with pytest.raises(ValueError, match="level"):
        D.degrade_real(smooth_image(16, 16), 2, np.random.default_rng(0), level=1.5)
    with pytest.raises(ValueError, match="real-medium"):
        D.degrade_preset(smooth_image(16, 16), 2, "real-extreme")
