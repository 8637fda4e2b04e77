"""The model registry: a name -> (constructor, kwargs, scale, task, abilities; the tensor contract follows).

Constructor defaults match the shipped weights; a spec's kwargs only name what differs
between registered variants (e.g. the scale). Architectures are looked up by the `arch` string
stored in checkpoint sidecars, so a checkpoint always rebuilds the module it was saved from.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Mapping, Optional, Tuple

from common.paths import WEIGHTS_DIR

from .checkpoint import CheckpointError, load_checkpoint, load_state_into, read_sidecar
from .fingerprint import code_fingerprint
from .io import DEFAULT_VIVIDNESS, VIVIDNESS, ModelIO, contract

if TYPE_CHECKING:  # torch is only needed to build a module: the registry itself loads without it
    from torch import nn


class LazyArchitectures(Mapping):
    """name -> constructor, given as "module:Class" and imported on first lookup, so that serving from the
    shipped ONNX files (torch not installed) can read every spec. Without torch a lookup raises ImportError."""

    def __init__(self, paths: Dict[str, str]):
        self._paths = dict(paths)

    def __getitem__(self, name: str) -> Callable[..., nn.Module]:
        module, _, attr = self._paths[name].partition(":")
        try:
            return getattr(import_module(module, __package__), attr)
        except ImportError as exc:
            raise ImportError(f"architecture '{name}' could not be imported ({exc}); building a model needs "
                              "PyTorch: pip install -r requirements-torch.txt") from exc

    def source_of(self, name: str) -> str:
        """The ".module:Class" entry of `name` (models/fingerprint.py hashes that module's code)."""
        return self._paths[name]

    def __contains__(self, name: object) -> bool:  # Mapping's default would import the module
        return name in self._paths

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)


# a new architecture is one entry "arch": ".module:Class" (imported on first use, so the registry needs no torch)
ARCHITECTURES = LazyArchitectures({
    "flashsr": ".flashsr:FlashSR",
    "flowinterp": ".flowinterp:FlowInterp",
    "convlstm_interp": ".convlstm_interp:ConvLSTMInterpolator",
    "grey2rgb": ".grey2rgb:Grey2RGBAutoEncoder",
    "colorize_lab": ".colorize_lab:ColorizeLab",
    "colorize_hint": ".colorize_hint:ColorizeHint",
    "srgan": ".srgan:SRGANGenerator",
    "swift_srgan": ".swift_srgan:SwiftSRGANGenerator",
    "esrcnn": ".esrcnn:ESRCNN",
    "conv_autoencoder": ".conv_autoencoder:ConvAutoEncoder",
    "vae_sr": ".vae_sr:VAESR",
    "vsr": ".vsr:VideoFlashSR",
})
# the discriminator train/gan.py pits against each GAN generator architecture
DISCRIMINATORS = LazyArchitectures({
    "srgan": ".srgan:SRGANDiscriminator",
    "swift_srgan": ".swift_srgan:SwiftSRGANDiscriminator",
    "flashsr": ".unet_discriminator:UNetDiscriminator",  # the real-photo GANs (Real-ESRGAN's U-Net, spectral norm)
})

DEFAULT_STRENGTH = 0.5  # denoise strength of strength models when a caller gives none
SCALAR_DEFAULTS = {"strength": DEFAULT_STRENGTH, VIVIDNESS: DEFAULT_VIVIDNESS}  # what a caller that sets none gets


HR_FEATURE_ARCHS = frozenset({"srgan", "swift_srgan", "conv_autoencoder", "vae_sr"})


@dataclass(frozen=True)
class ModelSpec:
    name: str
    arch: str
    task: str
    scale: int
    kwargs: Dict[str, Any] = field(default_factory=dict)
    in_channels: int = 3
    out_channels: int = 3
    # what the model can do, declared here only (models/io.py turns it into tensors):
    pad_multiple: int = 1  # input H and W must be multiples of this (tiling pads to it)
    min_size: int = 1  # smallest input side
    mc_dropout: bool = False  # explicit dropout masks: mask_channels, dropout_p, forward_mc (models/mc_dropout.py)
    timestep_input: bool = False  # frame interpolation: (frame0, frame1, t) -> frame at t
    recurrent_hidden: int = 0  # video SR step model: channels of the hidden features carried between frames
    hint_inputs: bool = False  # colorizers taking sparse colour hints: hint_ab [N,2,H,W] + hint_mask [N,1,H,W]
    scalar_inputs: Tuple[str, ...] = ()  # per-image controls, shape [N, 1], after the images (io.scalar: ranges)
    min_patch: int = 8  # smallest LR training patch that covers the receptive field / downsampling
    adversarial: bool = False  # weights come from GAN training (train/gan.py); PSNR under-rates it
    psnr_twin: str = ""  # GAN models: the pixel-loss model they are fine-tuned from (compared side by side)
    description: str = ""

    @property
    def max_tile(self) -> int:
        """Largest input tile side to serve (0: no cap of the model's own). Architectures that compute
        64-channel features at the OUTPUT size (SRGAN-type, the up-converters) get 1024 / scale: a 64-channel
        float map of 1024x1024 is 268 MB, while one untiled 1024-px tile at x4 held over 4 GB per tensor."""
        return 1024 // self.scale if self.arch in HR_FEATURE_ARCHS else 0

    @property
    def weights_path(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}.safetensors"

    def has_weights(self) -> bool:
        return self.weights_path.exists()

    def build(self, **overrides) -> nn.Module:
        return ARCHITECTURES[self.arch](**{**self.kwargs, **overrides})

    @property
    def vividness_input(self) -> bool:
        """Takes a colour strength [N,1] in [0, MAX_VIVIDNESS] after the images (colorizers; models.io)."""
        return VIVIDNESS in self.scalar_inputs

    @property
    def strength_input(self) -> bool:
        """Takes a denoise strength [N,1] in [0,1] after the image (FlashSR real variants)."""
        return "strength" in self.scalar_inputs

    def code_fingerprint(self, mc: bool = False) -> str:
        """SHA-256 of the code that builds this model's graph (models/fingerprint.py); export sidecars
        record it so a graph change re-exports even when the weights did not change."""
        return code_fingerprint(ARCHITECTURES.source_of(self.arch), self.kwargs, ("mc_wrapper",) * mc)

    @property
    def io(self) -> ModelIO:
        """The tensor contract (models/io.py): names, shapes, dtype, range, pad multiple, min size."""
        return contract(self)


def positional_module(spec: ModelSpec, model: nn.Module) -> nn.Module:
    """The module as exporters and backends call it, inputs in contract order: (lr, strength) for
    strength models (FlashSR's own second positional argument is its dropout masks), else the model."""
    from .flashsr import StrengthInput

    if spec.recurrent_hidden:
        from .vsr import VSRStep

        return VSRStep(model)
    return StrengthInput(model) if spec.strength_input else model


_SPECS = [
    ModelSpec("flashsr_x2", "flashsr", "sr", 2, {"scale": 2}, mc_dropout=True,
              description="Flagship fast CNN, x2 (residual 3x3 blocks, PixelShuffle, bilinear skip)"),
    ModelSpec("flashsr_x4", "flashsr", "sr", 4, {"scale": 4}, mc_dropout=True,
              description="Flagship fast CNN, x4 (residual 3x3 blocks, PixelShuffle, bilinear skip)"),
    ModelSpec("flashsr_real_x2", "flashsr", "sr", 2, {"scale": 2, "strength": True}, scalar_inputs=("strength",),
              description="FlashSR for real photos, x2: trained on Real-ESRGAN-style blur/noise/JPEG, "
                          "with a denoise strength input (0 keeps texture, 1 cleans hard)"),
    ModelSpec("flashsr_real_x4", "flashsr", "sr", 4, {"scale": 4, "strength": True}, scalar_inputs=("strength",),
              description="FlashSR for real photos, x4: trained on Real-ESRGAN-style blur/noise/JPEG, "
                          "with a denoise strength input (0 keeps texture, 1 cleans hard)"),
    ModelSpec("flashsr_real_gan_x2", "flashsr", "sr", 2, {"scale": 2, "strength": True}, scalar_inputs=("strength",),
              adversarial=True, psnr_twin="flashsr_real_x2",
              description="flashsr_real_x2 fine-tuned as a GAN (U-Net discriminator): sharper texture on real "
                          "photos, a little lower PSNR; same strength input and speed"),
    ModelSpec("flashsr_real_gan_x4", "flashsr", "sr", 4, {"scale": 4, "strength": True}, scalar_inputs=("strength",),
              adversarial=True, psnr_twin="flashsr_real_x4",
              description="flashsr_real_x4 fine-tuned as a GAN (U-Net discriminator): sharper texture on real "
                          "photos, a little lower PSNR; same strength input and speed"),
    ModelSpec("colorize_lab", "colorize_lab", "colorize", 1, in_channels=1, pad_multiple=32, min_size=8,
              scalar_inputs=(VIVIDNESS,),
              description="The first colorizer: U-Net predicts Lab chroma from L, recombined with the exact L"),
    ModelSpec("colorize_hint_cls", "colorize_hint", "colorize", 1, {"head": "classify"}, in_channels=1, pad_multiple=32,
              min_size=8, hint_inputs=True, scalar_inputs=(VIVIDNESS,),
              description="Colorizer with user colour hints (clicked points; none = automatic): ColorizeLab warm "
                          "start, ab-bin classification with rebalancing and annealed mean, 1.5k images"),
    ModelSpec("colorize_hint_l1", "colorize_hint", "colorize", 1, {"head": "regress"}, in_channels=1,
              pad_multiple=32, min_size=8, hint_inputs=True, scalar_inputs=(VIVIDNESS,),
              description="The hint colorizer trained with the L1 + saturation loss instead (loss comparison)"),
    ModelSpec("grey2rgb_mse", "grey2rgb", "colorize", 1, in_channels=1, pad_multiple=8, min_size=8,
              description="Seed 000 Grey2RGB autoencoder trained with MSE"),
    ModelSpec("grey2rgb_mep", "grey2rgb", "colorize", 1, in_channels=1, pad_multiple=8, min_size=8,
              description="Seed 000 Grey2RGB autoencoder trained with MSE + entropy (MEP)"),
    ModelSpec("grey2rgb_ssim", "grey2rgb", "colorize", 1, in_channels=1, pad_multiple=8, min_size=8,
              description="Seed 000 Grey2RGB autoencoder trained with 1 - SSIM"),
]
_SEED = "seed {}: ".format
_SPECS += [
    ModelSpec("srresnet_x4", "srgan", "sr", 4, {"scale": 4}, min_patch=12,
              description=_SEED("004") + "SRGAN generator (8 residual blocks, BN, PixelShuffle, bicubic skip) "
                                         "trained on pixel loss only (SRResNet)"),
    ModelSpec("srgan_x4", "srgan", "sr", 4, {"scale": 4}, min_patch=12, adversarial=True, psnr_twin="srresnet_x4",
              description=_SEED("004") + "SRGAN: the SRResNet generator fine-tuned adversarially"),
    ModelSpec("swift_srgan_psnr_x4", "swift_srgan", "sr", 4, {"scale": 4}, min_patch=12,
              description=_SEED("001") + "Swift-SRGAN generator (16 depthwise-separable residual blocks) "
                                         "trained on pixel loss only"),
    ModelSpec("swift_srgan_x4", "swift_srgan", "sr", 4, {"scale": 4}, min_patch=12, adversarial=True,
              psnr_twin="swift_srgan_psnr_x4",
              description=_SEED("001") + "Swift-SRGAN: the depthwise-separable generator fine-tuned adversarially"),
    ModelSpec("swift_srgan_psnr_x2", "swift_srgan", "sr", 2, {"scale": 2}, min_patch=12,
              description=_SEED("001") + "Swift-SRGAN generator, x2, pixel loss only"),
    ModelSpec("swift_srgan_x2", "swift_srgan", "sr", 2, {"scale": 2}, min_patch=12, adversarial=True,
              psnr_twin="swift_srgan_psnr_x2",
              description=_SEED("001") + "Swift-SRGAN x2 fine-tuned adversarially"),
    ModelSpec("esrcnn_x2", "esrcnn", "sr", 2, {"scale": 2}, mc_dropout=True, min_patch=8,
              description=_SEED("003") + "ESRCNN: small CNN with two (channel) dropout layers, MC-dropout model"),
    ModelSpec("convae_x2", "conv_autoencoder", "sr", 2, {"scale": 2}, min_patch=32,
              description=_SEED("002") + "CNN encoder-decoder (strided convs, ConvTranspose2d), x2 up-conversion"),
    ModelSpec("vae_x2", "vae_sr", "sr", 2, {"scale": 2, "residual": False}, min_patch=32,
              description=_SEED("002") + "VAE up-conversion, no encoder->decoder connections"),
    ModelSpec("vae_res_x2", "vae_sr", "sr", 2, {"scale": 2, "residual": True}, min_patch=32,
              description=_SEED("002") + "VAE up-conversion with residual encoder->decoder connections"),
]
_SPECS += [
    ModelSpec("flowinterp", "flowinterp", "interpolate", 1, timestep_input=True,
              description="Fast frame interpolator: coarse-to-fine intermediate flow (RIFE-style), "
                          "grid_sample warping, fusion mask, refinement; any t in (0,1)"),
    ModelSpec("flowinterp_wide", "flowinterp", "interpolate", 1,
              {"channels": [128, 96, 64], "refine_channels": 48, "ensemble": True}, timestep_input=True,
              description="flowinterp with twice the flow channels at every level and a wider refinement net, "
                          "grown from flowinterp's weights and trained on real video; runs each pair also "
                          "mirrored and time-reversed and averages (RIFE's ensemble)"),
    ModelSpec("convlstm_interp", "convlstm_interp", "interpolate", 1, timestep_input=True,
              description="Seed 000 ConvLSTM baseline: the seed's ConvLSTM cells at 1/2 resolution with a flow + "
                          "fusion-mask head (the seed's residual head never left the blend)"),
]
_SPECS += [
    ModelSpec("vsr_x4", "vsr", "vsr", 4, {"scale": 4}, recurrent_hidden=64, min_patch=16, min_size=2,
              description="Video SR x4 (multi-frame, causal): FlashSR x4 plus LR flow (flowinterp's blocks), "
                          "backward-warped hidden features fused into the trunk; exported as one time step"),
    ModelSpec("vsr_x2", "vsr", "vsr", 2, {"scale": 2}, recurrent_hidden=64, min_patch=16, min_size=2,
              description="Video SR x2 (multi-frame, causal): FlashSR x2 plus LR flow (flowinterp's blocks), "
                          "backward-warped hidden features fused into the trunk; exported as one time step"),
]
REGISTRY: Dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}


def get_spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        raise KeyError(f"unknown model '{name}'; registered: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def resolve_name(model: str, scale: Optional[int] = None) -> ModelSpec:
    """Accept 'flashsr_x4' or ('flashsr', 4); reject a scale the model does not have."""
    if model in REGISTRY:
        spec = REGISTRY[model]
        if scale is not None and spec.scale != scale:
            raise ValueError(f"model '{model}' is x{spec.scale}; --scale {scale} does not apply")
        return spec
    candidates = sorted(s.scale for s in REGISTRY.values() if s.name.rsplit("_x", 1)[0] == model)
    if not candidates:
        raise KeyError(f"unknown model '{model}'; registered: {', '.join(sorted(REGISTRY))}")
    if scale is None:
        if len(candidates) > 1:
            raise ValueError(f"model '{model}' comes in scales {candidates}: pass --scale")
        scale = candidates[0]
    if scale not in candidates:
        raise ValueError(f"model '{model}' has no x{scale} variant (available: {candidates})")
    return REGISTRY[f"{model}_x{scale}"]


def model_from_checkpoint(weights_path: Path, expected_arch: Optional[str] = None) -> nn.Module:
    """Rebuild the architecture named in the sidecar and load the weights (eval mode)."""
    state, info = load_checkpoint(weights_path, expected_arch)
    if info["arch"] not in ARCHITECTURES:
        raise CheckpointError(f"{weights_path}: unknown architecture '{info['arch']}'")
    try:
        model = ARCHITECTURES[info["arch"]](**info.get("args", {}))
    except TypeError as exc:
        raise CheckpointError(f"{weights_path}: sidecar args do not fit '{info['arch']}' ({exc})") from None
    load_state_into(model, state, str(weights_path), info["arch"])
    return model.eval()


def load_model(name: str, weights_path: Optional[Path] = None) -> nn.Module:
    """The registered model with its shipped (or given) weights, in eval mode."""
    spec = get_spec(name)
    path = Path(weights_path) if weights_path else spec.weights_path
    if not path.exists():
        raise CheckpointError(f"model '{name}' has no weights at {path} (train it with train/ first)")
    info = read_sidecar(path)
    clashes = {k: (info.get("args", {}).get(k), v) for k, v in spec.kwargs.items()
               if info.get("args", {}).get(k, v) != v}
    if clashes:
        detail = ", ".join(f"{k}={got} (expected {want})" for k, (got, want) in clashes.items())
        raise CheckpointError(f"{path}: checkpoint does not fit '{name}': {detail}")
    return model_from_checkpoint(path, expected_arch=spec.arch)


def describe(spec: ModelSpec) -> Dict[str, Any]:
    """The `python -m models --json` record for one model."""
    weights, metrics, params = None, None, None
    try:
        params = sum(p.numel() for p in spec.build().parameters())
    except ImportError:  # no torch: the count the checkpoint's sidecar recorded
        try:
            params = read_sidecar(spec.weights_path).get("params")
        except CheckpointError:
            params = None
    if spec.has_weights():
        weights = str(spec.weights_path.relative_to(WEIGHTS_DIR.parent)) if spec.weights_path.is_relative_to(
            WEIGHTS_DIR.parent) else str(spec.weights_path)
        try:
            metrics = read_sidecar(spec.weights_path).get("metrics")
        except CheckpointError:
            metrics = None
    return {"name": spec.name, "task": spec.task, "scale": spec.scale,
            "params": None if params is None else int(params), "weights": weights, "metrics": metrics}
