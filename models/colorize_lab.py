"""ColorizeLab: the first colorizer (colorize_hint's base). Grey (N,1,H,W) = L/100 -> RGB (N,3,H,W) in [0,1].

A small U-Net predicts only the chroma (a, b of CIE Lab) from the lightness; the output is that
chroma recombined with the exact input L and converted to RGB inside the module
(models.lab_color), so structure is never lost and ONNX/TensorRT return final RGB.

Why this shape: chroma is low-frequency, so the net works from quarter resolution (two strided
stem convs) and its ab map is bilinearly upsampled; a global-average context vector at the bottleneck gives
every pixel a scene-level cue (sky, foliage). `chroma_gain` scales the predicted ab: regression
towards the conditional mean desaturates, and the shipped gain was chosen on held-out training
images (train/colorize.py --calibrate-gain), stored in the checkpoint's args. An optional per-image
`vividness` [N,1] (models.io.VIVIDNESS) multiplies that gain: the user's colour-strength control.
H and W must be multiples of 2**(len(widths)+1) (the spec's pad_multiple; serving pads).
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from common.lab import AB_RANGE

from .lab_color import lab_to_rgb


def vivid_gain(chroma_gain: float, vividness: Optional[torch.Tensor]) -> Union[float, torch.Tensor]:
    """The chroma gain of each image: the calibrated `chroma_gain` times its vividness ([N,1]; None = 1)."""
    return chroma_gain if vividness is None else chroma_gain * vividness.reshape(-1, 1, 1, 1)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))


class ColorizeLab(nn.Module):
    def __init__(self, widths: Sequence[int] = (32, 64, 96, 128), chroma_gain: float = 0.9):
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) < 2:
            raise ValueError("ColorizeLab needs at least two widths (one level and a bottleneck)")
        self.chroma_gain = float(chroma_gain)
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.LeakyReLU(0.1, inplace=True),
                                  nn.Conv2d(16, widths[0], 3, stride=2, padding=1), nn.LeakyReLU(0.1, inplace=True))
        self.down = nn.ModuleList()
        self.enc = nn.ModuleList()
        for i, w in enumerate(widths):
            self.down.append(nn.Identity() if i == 0 else nn.Conv2d(widths[i - 1], w, 3, stride=2, padding=1))
            self.enc.append(_block(w, w))
        self.context = nn.Conv2d(widths[-1], widths[-1], 1)
        self.dec = nn.ModuleList(_block(widths[i] + widths[i + 1], widths[i]) for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], 2, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def pad_multiple(self) -> int:
        return 2 ** (len(self.enc) + 1)

    def predict_ab(self, grey: torch.Tensor) -> torch.Tensor:
        """(N,1,H,W) L/100 -> (N,2,H,W) a, b in Lab units (before chroma_gain)."""
        ab = torch.tanh(self.head(self.features(grey - 0.5))) * AB_RANGE
        return F.interpolate(ab, size=grey.shape[-2:], mode="bilinear", align_corners=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem input (N,C,H,W) -> the decoder's quarter-resolution features (N,widths[0],H/4,W/4)."""
        x = self.stem(x)
        skips = []
        for down, enc in zip(self.down, self.enc):
            x = enc(down(x))
            skips.append(x)
        x = x + self.context(x.mean(dim=(2, 3), keepdim=True))
        for dec, skip in zip(self.dec, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = dec(torch.cat([x, skip], dim=1))
        return x

    def forward(self, grey: torch.Tensor, vividness: Optional[torch.Tensor] = None) -> torch.Tensor:
        ab = self.predict_ab(grey) * vivid_gain(self.chroma_gain, vividness)
        return lab_to_rgb(torch.cat([grey * 100.0, ab], dim=1))
