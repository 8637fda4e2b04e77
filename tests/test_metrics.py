"""The evaluation protocol: our PSNR/SSIM against scikit-image and an independent reference."""
import numpy as np
import pytest
from scipy.ndimage import correlate1d
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from common.metrics import detail_ratio_y, gmsd_y, ms_ssim_y, psnr_y, quantize, rgb_to_y, ssim_y
from common.resize import bicubic_downscale, bicubic_upscale, mod_crop


def reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """The papers' SSIM (11x11 Gaussian, sigma 1.5, 'valid' window), written independently."""
    x = np.arange(11) - 5
    g = np.exp(-(x**2) / (2 * 1.5**2))
    g /= g.sum()

    def blur(img):
        return correlate1d(correlate1d(img, g, axis=0, mode="reflect"), g, axis=1, mode="reflect")[5:-5, 5:-5]

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    smap = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(smap.mean())


@pytest.fixture
def pair(rng):
    hr = rng.random((40, 36, 3)).astype(np.float32)
    sr = np.clip(hr + rng.normal(0, 0.05, hr.shape), 0, 1).astype(np.float32)
    return sr, hr


def test_y_channel_bt601():
    white, black = np.full((1, 1, 3), 255.0), np.zeros((1, 1, 3))
    assert rgb_to_y(white)[0, 0] == pytest.approx(235.0, abs=0.01)
    assert rgb_to_y(black)[0, 0] == pytest.approx(16.0)


@pytest.mark.parametrize("crop", [0, 2, 4])
def test_psnr_matches_skimage(pair, crop):
    sr, hr = pair
    a, b = rgb_to_y(quantize(sr)), rgb_to_y(quantize(hr))
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    assert psnr_y(sr, hr, crop) == pytest.approx(peak_signal_noise_ratio(b, a, data_range=255), abs=1e-6)


@pytest.mark.parametrize("crop", [0, 4])
def test_ssim_matches_skimage_and_reference(pair, crop):
    sr, hr = pair
    a, b = rgb_to_y(quantize(sr)), rgb_to_y(quantize(hr))
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    ours = ssim_y(sr, hr, crop)
    sk = structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ours == pytest.approx(sk, abs=1e-9)
    assert ours == pytest.approx(reference_ssim(a, b), abs=1e-6)


def test_identical_images():
    img = np.random.default_rng(0).random((16, 16, 3))
    assert psnr_y(img, img) == float("inf")
    assert ssim_y(img, img) == pytest.approx(1.0)


def test_shape_mismatch_is_clear():
    with pytest.raises(ValueError, match="shape mismatch"):
        psnr_y(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))


def test_mod_crop_and_bicubic_shapes(rng):
    img = rng.random((37, 53, 3)).astype(np.float32)
    hr = mod_crop(img, 4)
    assert hr.shape == (36, 52, 3)
    lr = bicubic_downscale(hr, 4)
    assert lr.shape == (9, 13, 3)
    assert bicubic_upscale(lr, 4).shape == hr.shape
    grey = bicubic_downscale(hr[..., :1], 2)
    assert grey.shape == (18, 26, 1)


@pytest.mark.parametrize("scale,published", [(2, 33.66), (4, 28.42)])
@pytest.mark.slow
def test_bicubic_set5_reproduces_published(shared_data, scale, published):
    """The protocol check the papers allow: bicubic on Set5 within 0.3 dB of the published figure."""
    from evaluate.common import load_set
    from evaluate.sr import evaluate_sr

    row = evaluate_sr("bicubic", scale, {"Set5": load_set("Set5")})[0]
    assert abs(row["psnr_y"] - published) < 0.3, row


def _blurred(img, passes):
    from scipy.ndimage import uniform_filter
    for _ in range(passes):
        img = uniform_filter(img, size=(3, 3, 1), mode="nearest")
    return img


def test_gmsd_is_zero_for_identical_and_shifted_brightness_and_grows_with_blur(rng):
    """GMSD compares gradient magnitudes only: a constant offset costs nothing, blur costs more the more it blurs."""
    from tests.conftest import smooth_image

    hr = smooth_image(rng, 96, 128) * 0.8
    hr = np.clip(hr + rng.random(hr.shape).astype(np.float32) * 0.1, 0, 1)
    assert gmsd_y(hr, hr) == 0.0
    assert gmsd_y(hr + 10 / 255, hr) < 1e-3  # quantisation only
    scores = [gmsd_y(_blurred(hr, n), hr, crop=2) for n in (1, 2, 4)]
    assert 0 < scores[0] < scores[1] < scores[2]
    assert gmsd_y(_blurred(hr, 2), hr) == pytest.approx(gmsd_y(hr, _blurred(hr, 2)))


def test_ms_ssim_identical_blur_and_small_images(rng):
    from tests.conftest import smooth_image

    hr = np.clip(smooth_image(rng, 200, 220) + rng.random((200, 220, 3)).astype(np.float32) * 0.1, 0, 1)
    assert ms_ssim_y(hr, hr) == pytest.approx(1.0, abs=1e-6)
    light, heavy = ms_ssim_y(_blurred(hr, 1), hr), ms_ssim_y(_blurred(hr, 4), hr)
    assert 0 < heavy < light < 1
    assert np.isnan(ms_ssim_y(hr[:100], hr[:100]))  # too small for five scales


def test_detail_ratio_is_one_for_the_truth_below_for_blur_above_for_added_texture(rng):
    """The sharpness measure the GAN rows report: blur lowers it step by step, added grain raises it."""
    from tests.conftest import smooth_image

    hr = np.clip(smooth_image(rng, 96, 128) + rng.random((96, 128, 3)).astype(np.float32) * 0.1, 0, 1)
    assert detail_ratio_y(hr, hr) == pytest.approx(1.0)
    ratios = [detail_ratio_y(_blurred(hr, n), hr, crop=2) for n in (1, 2, 4)]
    assert 1 > ratios[0] > ratios[1] > ratios[2] > 0
    grain = np.clip(hr + rng.normal(0, 0.05, hr.shape).astype(np.float32), 0, 1)
    assert detail_ratio_y(grain, hr) > 1.2
    with pytest.raises(ValueError, match="shape mismatch"):
        detail_ratio_y(hr[:10], hr)
