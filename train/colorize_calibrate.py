"""Re-run the chroma-gain rule on an existing colorization checkpoint, without training.

    python -m train.colorize_calibrate --model colorize_hint_cls \
        --weights runs/soup/colorize_hint_cls_alpha0.3.safetensors [--hinted-share 0.125]

Why: a checkpoint that was not trained by train.colorize --calibrate-gain (a weight soup of two runs,
train.soup) still needs the gain the rule picks on its own held-out images. The images are the ones its
sidecar lists as held out (`data.val_images`, the same 256-px centre crops as training's validation). A
hint model keeps its hinted mix: gain x hinted_share stays what it was (train.colorize.set_gain, as
training's own --calibrate-gain).
The checkpoint is rewritten in place with the new args, the validation scores and a lineage line.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from common.images import read_image
from models import CheckpointError, get_spec, load_model
from models.checkpoint import carried_meta, read_sidecar, save_checkpoint

from .colorize import COLOUR_TARGET, VAL_HINTS, calibrate_gain, set_gain, validate, validation_crops


def held_out_images(info: dict) -> list:
    """The checkpoint's held-out images, full size, from the folders its training read (train.colorize
    names them relative to its one folder, or as FOLDER_NAME/... with --also-data)."""
    names = info.get("data", {}).get("val_images") or []
    if not names:
        raise CheckpointError("the sidecar lists no held-out images (data.val_images): nothing to calibrate on")
    folders = [Path(info["data"]["train_dir"]), *map(Path, info.get("training", {}).get("also_data") or [])]
    by_name = {f.name: f for f in folders}

    def path_of(name: str) -> Path:
        head, _, rest = name.partition("/")
        return by_name[head] / rest if len(folders) > 1 and head in by_name else folders[0] / name
    return [read_image(path_of(n)).rgb for n in names]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.colorize_calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="registered colorization model (colorize_lab, colorize_hint_*)")
    p.add_argument("--weights", type=Path, required=True, help="the checkpoint to calibrate (rewritten in place)")
    p.add_argument("--colour-target", type=float, default=COLOUR_TARGET)
    p.add_argument("--hinted-share", type=float, default=None,
                   help="hint models: set the network's share on hinted images after the gain rule (e.g. the one "
                        "scripts/colorize_hint_spread.py --weights picks) instead of keeping gain x share")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    spec = get_spec(args.model)
    if spec.arch not in ("colorize_lab", "colorize_hint"):
        raise SystemExit("error: the gain rule applies to the Lab models (colorize_lab, colorize_hint_*) only")
    if args.hinted_share is not None and (spec.arch != "colorize_hint" or not 0 <= args.hinted_share <= 1):
        raise SystemExit("error: --hinted-share is a hint model's share in [0, 1]")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        model, info = load_model(spec.name, args.weights), read_sidecar(args.weights)
        crops = validation_crops(held_out_images(info), spec.pad_multiple)
    except (CheckpointError, OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"error: {exc}") from None
    hint_model = spec.arch == "colorize_hint"
    old_gain = model.chroma_gain
    gain = calibrate_gain(model, crops, "cpu", target=args.colour_target)
    model_args = dict(info.get("args", {}))
    set_gain((model,), model_args, gain, args.hinted_share)
    scores = validate(model, crops, "cpu", VAL_HINTS if hint_model else 0)
    meta = carried_meta(info)
    meta.update({k: round(v, 3) for k, v in scores.items()})
    meta["lineage"] = list(info.get("lineage", [])) + [
        f"train.colorize_calibrate: chroma gain {old_gain:g} -> {gain:g} (colour target {args.colour_target:g})"
        + (f", hinted share {model.hinted_share:g}" if hint_model else "")]
    save_checkpoint(args.weights, model, arch=spec.arch, args=model_args, meta=meta)
    print(f"chroma gain {gain:g}" + (f", hinted share {model.hinted_share:g}" if hint_model else "") + ": "
          + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
