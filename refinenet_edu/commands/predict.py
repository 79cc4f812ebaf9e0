"""``refinenet-edu predict``: segment image files with a checkpoint.

For every input image writes ``<out>/<name>.png`` (a palette PNG of class
indices) and ``<out>/overlays/<name>.png`` (the image with the classes
coloured over it). Images of any size work; one smaller than the network's
32-pixel minimum is scaled up for the network and its scores scaled back
(``predict_logits``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("images", type=Path, nargs="+", help="image files, or folders of them")
    parser.add_argument("--out", type=Path, default=Path("predictions"), help="output folder (default: predictions)")
    parser.add_argument("--multi-scale", action="store_true")
    parser.add_argument("--flip", action="store_true")
    parser.add_argument("--window", type=int, help="sliding-window inference for images larger than this")
    parser.add_argument("--device", default="auto")


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def _image_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise ValueError(f"{p}: no such image file or folder")
    if not files:
        raise ValueError(f"no images found in {[str(p) for p in paths]}")
    return files


def run(args: argparse.Namespace) -> int:
    import torch
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as TF

    from refinenet_edu.engine.checkpoints import load_checkpoint, load_model
    from refinenet_edu.datasets.transforms import IMAGENET_MEAN, IMAGENET_STD
    from refinenet_edu.engine.runtime import resolve_device
    from refinenet_edu.engine.evaluation import OFFICIAL_SCALES, predict_logits, save_predictions

    ckpt = load_checkpoint(args.checkpoint)
    device = resolve_device(args.device)
    model = load_model(args.checkpoint, device=device, checkpoint=ckpt)
    palette = (ckpt.get("dataset") or {}).get("palette")
    if not palette:
        from refinenet_edu.datasets.voc import VOC_PALETTE as palette  # noqa: N811
    scales = OFFICIAL_SCALES if args.multi_scale else (1.0,)
    files = _image_files(args.images)
    for path in files:
        try:
            with Image.open(path) as im:
                image = TF.pil_to_tensor(im.convert("RGB"))
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"{path}: cannot be read as an image ({err})") from err
        x = TF.normalize(TF.to_dtype(image, torch.float32, scale=True), IMAGENET_MEAN, IMAGENET_STD)[None]
        probs = predict_logits(model, x.to(device), scales=scales, flip=args.flip, window=args.window)
        save_predictions(probs.argmax(1).cpu(), [path.stem], args.out, palette, images=image[None])
    print(f"wrote {len(files)} masks to {args.out} and overlays to {args.out / 'overlays'}")
    return 0
