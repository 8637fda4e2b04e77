"""The seed lineage (SRGAN, Swift-SRGAN, ESRCNN, CNN / VAE up-converters): modules, registry, GAN losses."""
import pytest
import torch
import torch.nn.functional as F

from models import REGISTRY, get_spec, resolve_name
from models.conv_autoencoder import ConvAutoEncoder
from models.esrcnn import ESRCNN
from models.registry import DISCRIMINATORS
from models.srgan import SRGANDiscriminator, SRGANGenerator
from models.swift_srgan import SeparableConv2d, SwiftSRGANDiscriminator, SwiftSRGANGenerator
from models.vae_sr import VAESR

SEED_SR = [n for n, s in REGISTRY.items() if s.task == "sr" and not n.startswith("flashsr")]


def test_every_seed_system_is_registered():
    assert {"srresnet_x4", "srgan_x4", "swift_srgan_psnr_x4", "swift_srgan_x4", "swift_srgan_psnr_x2",
            "swift_srgan_x2", "esrcnn_x2", "convae_x2", "vae_x2", "vae_res_x2"} <= set(SEED_SR)
    for name in SEED_SR:
        spec = get_spec(name)
        assert spec.adversarial == (spec.arch in DISCRIMINATORS and "psnr" not in name and name != "srresnet_x4")
    assert resolve_name("swift_srgan", 2).name == "swift_srgan_x2"
    with pytest.raises(ValueError, match="no x3 variant"):
        resolve_name("srgan", 3)


@pytest.mark.parametrize("name", SEED_SR)
def test_untrained_seed_generators_start_at_bicubic(name):
    """Zero-initialised last layer + bicubic skip: step 0 is exactly the bicubic baseline."""
    spec = get_spec(name)
    model = spec.build().eval()
    x = torch.rand(1, 3, 13, 18)
    with torch.no_grad():
        y = model(x)
    bicubic = F.interpolate(x, scale_factor=spec.scale, mode="bicubic", align_corners=False)
    assert y.shape == bicubic.shape
    assert torch.allclose(y, bicubic, atol=1e-6)


def test_swift_srgan_is_depthwise_separable_with_16_blocks():
    g = SwiftSRGANGenerator(scale=4)
    assert len(g.body) == 16
    convs = [m for m in g.modules() if isinstance(m, torch.nn.Conv2d)]
    depthwise = [m for m in convs if m.groups == m.in_channels and m.groups > 1]
    assert depthwise and all(m.kernel_size == (1, 1) or m.groups > 1 for m in convs)
    dense = sum(p.numel() for p in SRGANGenerator(scale=4, blocks=16).parameters())
    assert sum(p.numel() for p in g.parameters()) < dense / 5
    sep = SeparableConv2d(8, 16, 3)
    assert sep(torch.rand(1, 8, 5, 5)).shape == (1, 16, 5, 5)


@pytest.mark.parametrize("cls", [SRGANDiscriminator, SwiftSRGANDiscriminator])
@pytest.mark.parametrize("side", [24, 96])
def test_discriminators_take_any_patch_and_return_features(cls, side):
    d = cls(channels=8)
    logits, feats = d(torch.rand(3, 3, side, side))
    assert logits.shape == (3, 1) and len(feats) == 8
    assert feats[-1].shape[1] == 64 and feats[1].shape[-1] == side // 2


def test_esrcnn_masks_are_explicit_and_split_over_two_dropouts():
    torch.manual_seed(0)
    model = ESRCNN().eval()
    for p in model.reconstruct.parameters():
        torch.nn.init.normal_(p, std=0.05)  # untrained: the last conv is zero and masks would not show
    x = torch.rand(1, 3, 10, 12)
    ones = torch.ones(2, model.mask_channels)
    assert model.mask_channels == 64 + 32 and model.dropout_p == pytest.approx(0.1)
    with torch.no_grad():
        assert torch.allclose(model(x.expand(2, -1, -1, -1), ones), model(x).expand(2, -1, -1, -1), atol=1e-6)
        first_only = ones.clone()
        first_only[:, :10] = 0
        second_only = ones.clone()
        second_only[:, 70:] = 0
        base = model(x)
        assert not torch.allclose(model(x, first_only[:1]), base)
        assert not torch.allclose(model(x, second_only[:1]), base)


def test_vae_exposes_kl_in_training_and_is_deterministic_in_eval():
    torch.manual_seed(0)
    for residual in (False, True):
        vae = VAESR(residual=residual)
        x = torch.rand(2, 3, 16, 20)
        vae.train()
        with torch.enable_grad():  # other tests may leave autograd off globally
            vae(x)
        assert vae.last_kl is not None and vae.last_kl.item() >= 0 and vae.last_kl.requires_grad
        vae.eval()
        with torch.no_grad():
            assert torch.equal(vae(x), vae(x)) and vae.last_kl is None


def test_vae_residual_connections_carry_encoder_detail():
    torch.manual_seed(0)
    plain, skip = VAESR(residual=False).eval(), VAESR(residual=True).eval()
    skip.load_state_dict(plain.state_dict())
    for m in (plain, skip):
        torch.nn.init.normal_(m.out.weight, std=0.05)
    skip.out.weight.data.copy_(plain.out.weight.data)
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert not torch.allclose(plain(x), skip(x))


def test_encoder_decoder_options_and_any_size():
    plain = ConvAutoEncoder(batch_norm=False, dropout=0.0, kaiming=False)
    rich = ConvAutoEncoder(batch_norm=True, dropout=0.2, kaiming=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert any(isinstance(m, torch.nn.Dropout2d) for m in rich.modules())
    assert rich.eval()(torch.rand(1, 3, 13, 7)).shape == (1, 3, 26, 14)


def test_results_table_has_params_structure_metrics_and_ort_latency(tmp_path):
    import json

    from evaluate.sr import ort_latency
    from evaluate.sr import sr_table as markdown_table

    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"results": [
        {"model": "esrcnn_x2", "backend": "onnx", "device": "cpu", "input_wh": [256, 256], "median_ms": 41.7},
        {"model": "esrcnn_x2", "backend": "torch", "device": "cpu", "input_wh": [256, 256], "median_ms": 99.0},
        {"model": "esrcnn_x2", "backend": "onnx", "device": "cpu", "input_wh": [512, 512], "median_ms": 160.0}]}))
    latency = ort_latency(bench)
    assert latency == {"esrcnn_x2": 41.7}
    rows = [{"model": m, "set": s, "scale": 2, "psnr_y": p, "ssim_y": 0.9, "gmsd_y": 0.01, "ms_ssim_y": 0.99,
             "detail_ratio_y": 0.9}
            for m, p in (("esrcnn_x2", 36.5), ("bicubic", 33.7)) for s in ("Set5", "BSD68")]
    table = markdown_table(rows, ["Set5", "BSD68"], latency).splitlines()
    assert "params" in table[0] and "BSD68 GMSD" in table[0] and "BSD68 detail" in table[0]
    assert "ORT CPU 256²" in table[0] and table[1].count("---") == table[0].count("|") - 1
    assert table[2].startswith("| bicubic | x2 | - |") and table[3].startswith("| esrcnn_x2 | x2 | 63,724 |")
    assert table[3].endswith("| 0.0100 / 0.9900 | 0.900 | 42 |")


GANS = [name for name, s in REGISTRY.items() if s.adversarial]


@pytest.mark.parametrize("name", GANS)
@pytest.mark.slow
def test_shipped_gan_has_more_detail_than_its_psnr_twin_on_a_real_frame(name):
    """The issue's "GAN visibly sharper than its PSNR version", measured: on the example frame crop
    (a real video frame, not a training image) the GAN output has a higher detail ratio than the
    pixel-loss generator it was fine-tuned from, which has the same architecture and scale."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from common.metrics import detail_ratio_y
    from common.resize import bicubic_downscale, mod_crop
    from models import load_model

    gan, twin = get_spec(name), get_spec(get_spec(name).psnr_twin)
    assert (twin.arch, twin.scale, twin.adversarial) == (gan.arch, gan.scale, False)
    hr = np.asarray(Image.open(Path(__file__).parent.parent / "examples" / "hr_frame_crop.png").convert("RGB"))
    hr = mod_crop(hr.astype(np.float32) / 255.0, gan.scale)
    lr = torch.from_numpy(np.ascontiguousarray(bicubic_downscale(hr, gan.scale).transpose(2, 0, 1)))[None]
    with torch.inference_mode():
        details = {spec.name: detail_ratio_y(load_model(spec.name)(lr).clamp(0, 1)[0].numpy().transpose(1, 2, 0),
                                             hr, crop=gan.scale) for spec in (gan, twin)}
    assert details[gan.name] > details[twin.name] + 0.02, details
