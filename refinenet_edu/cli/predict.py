"""``refinenet-edu predict``: segment image files with a checkpoint.

For every input image writes ``<out>/<name>.png`` (a palette PNG of class indices) and ``<out>/overlays/<name>.png``
(the image with the classes coloured over it). ``<name>`` is the file's stem, with its suffix where two inputs share a
stem (``photo_jpg``, ``photo_png``); two files of one name from two folders are refused. Nothing but predict's own
output of the same image is replaced: ``<out>/.refinenet-edu-predict.json`` (updated under the folder's lock) lists the
files each run wrote and the image each is of, and an output that would replace an input, a file predict did not write
or the prediction of another image is refused, as is an ``--out`` that is an input folder. Images of any size work; one
smaller than the network's 32-pixel minimum is scaled up for the network and its scores scaled back
(``predict_probabilities``).
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

from refinenet_edu.cli.options import require_checkpoint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("images", type=Path, nargs="+", help="image files, or folders of them")
    parser.add_argument("--out", type=Path, default=Path("predictions"), help="output folder (default: predictions)")
    parser.add_argument("--multi-scale", action="store_true")
    parser.add_argument("--flip", action="store_true")
    parser.add_argument("--window", type=int, help="sliding-window inference for images larger than this")
    parser.add_argument("--device", default="auto")


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}

#: The record of the files predict wrote in an output folder (paths relative to it).
RECORD = ".refinenet-edu-predict.json"


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


def output_names(files: list[Path]) -> list[str]:
    """One output stem per input file, never two alike (see the module docstring)."""
    stems = collections.Counter(f.stem for f in files)
    names = [f.stem if stems[f.stem] == 1 else f"{f.stem}_{f.suffix.lstrip('.').lower()}" for f in files]
    seen: dict[str, Path] = {}
    for f, name in zip(files, names):
        if name in seen:
            raise ValueError(f"{seen[name]} and {f} would both be written as {name}.png: "
                             "predict files of one name into separate --out folders")
        seen[name] = f
    return names


def _check_outputs(out: Path, files: list[Path], names: list[str], folders: list[Path]) -> None:
    """Refuse an ``--out`` that is an input folder, and any output that is an input (a file at ``--out`` is
    refused by :func:`~refinenet_edu.engine.locks.writing_folder`)."""
    resolved_out = out.resolve()
    for folder in folders:
        if folder.resolve() in (resolved_out, resolved_out / "overlays"):
            raise ValueError(f"--out {out}: is the input folder {folder}; the masks would mix with (and could "
                             "replace) your images: choose another --out")
    inputs = {f.resolve(): f for f in files}
    for name in names:
        for target in (out / f"{name}.png", out / "overlays" / f"{name}.png"):
            if target.resolve() in inputs:
                raise ValueError(f"--out {out}: {target} would replace the input {inputs[target.resolve()]}: "
                                 "choose another --out")


def run(args: argparse.Namespace) -> int:
    from refinenet_edu.datasets.voc import VOC_PALETTE
    from refinenet_edu.engine.checkpoints import load_checkpoint, load_model
    from refinenet_edu.engine.locks import writing_folder
    from refinenet_edu.engine.runtime import resolve_device
    from refinenet_edu.files import atomic_write_text

    require_checkpoint(args.checkpoint)
    files = _image_files(args.images)
    names = output_names(files)
    _check_outputs(args.out, files, names, [p for p in args.images if p.is_dir()])
    # the model is loaded before --out is touched: a refused checkpoint leaves nothing there
    ckpt = load_checkpoint(args.checkpoint)
    device = resolve_device(args.device)
    model = load_model(args.checkpoint, device=device, checkpoint=ckpt)
    palette = (ckpt.get("dataset") or {}).get("palette") or VOC_PALETTE
    with writing_folder(args.out, subfolders=("overlays",)):  # one writer (engine.locks)
        written = _written_before(args.out)
        targets = {f"{d}{name}.png": str(f.resolve()) for f, name in zip(files, names) for d in ("", "overlays/")}
        for target, source in targets.items():
            if not (args.out / target).exists():
                continue
            if target not in written:
                raise ValueError(f"--out {args.out}: {args.out / target} exists and was not written by "
                                 "refinenet-edu predict; it is left as it is: choose another --out (or move the file)")
            if written[target] != source:
                raise ValueError(f"--out {args.out}: {args.out / target} holds the prediction of another image, "
                                 f"{written[target]}; it is left as it is: predict {source} into another --out")
        record = {"written": dict(sorted({**written, **targets}.items()))}
        atomic_write_text(args.out / RECORD, json.dumps(record, indent=1) + "\n")  # a run cut short owns its files
        return _predict(args, files, names, model, device, palette)


def _written_before(out: Path) -> dict[str, str]:
    """The files earlier predict runs wrote in ``out`` -> the image each one is of."""
    path = out / RECORD
    if not path.is_file():
        return {}
    try:
        written = json.loads(path.read_text(encoding="utf-8"))["written"]
        return {str(name): str(source) for name, source in written.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: not a record of refinenet-edu predict ({err}); move it away to predict into "
                         f"{out}") from err


def _predict(args: argparse.Namespace, files: list[Path], names: list[str], model, device, palette) -> int:
    import torch
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as TF

    from refinenet_edu.datasets.transforms import IMAGENET_MEAN, IMAGENET_STD
    from refinenet_edu.engine.evaluation import save_predictions
    from refinenet_edu.engine.inference import OFFICIAL_SCALES, predict_probabilities

    scales = OFFICIAL_SCALES if args.multi_scale else (1.0,)
    for path, name in zip(files, names):
        try:
            with Image.open(path) as im:
                image = TF.pil_to_tensor(im.convert("RGB"))
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"{path}: cannot be read as an image ({err})") from err
        x = TF.normalize(TF.to_dtype(image, torch.float32, scale=True), IMAGENET_MEAN, IMAGENET_STD)[None]
        probs = predict_probabilities(model, x.to(device), scales=scales, flip=args.flip, window=args.window)
        save_predictions(probs.argmax(1).cpu(), [name], args.out, palette, images=image[None])
    print(f"wrote {len(files)} masks to {args.out} and overlays to {args.out / 'overlays'}")
    return 0
