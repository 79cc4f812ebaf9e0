"""``refinenet-edu pretrain``: an FCN-32s-pretrained encoder for the ablation (:mod:`refinenet_edu.experiments.pretraining`)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch

from refinenet_edu.engine.runtime import PRECISIONS, cpu_threads, describe_device, resolve_device
from refinenet_edu.experiments.pretraining import PretrainConfig, class_map, pretrain_encoder, save_encoder


def add_arguments(parser) -> None:
    from refinenet_edu.cli.errors import positive_float, positive_int

    parser.add_argument("--data", required=True,
                        help="dataset name or VOC-layout folder to pretrain on (e.g. SynthScenes drawn with another seed)")
    parser.add_argument("--out", required=True, type=Path, help="the encoder state dict to write (FILE, and FILE.json)")
    parser.add_argument("--preset", default="course", help="the model whose encoder is pretrained (default: course)")
    parser.add_argument("--encoder-width", type=int, choices=(8, 16, 32, 64), help="override the preset's encoder width")
    parser.add_argument("--merge", nargs="+", action="append", metavar="CLASS",
                        help="classes trained as one (repeatable), e.g. --merge boat car")
    parser.add_argument("--epochs", type=positive_int, default=PretrainConfig.epochs)
    parser.add_argument("--lr", type=positive_float, default=PretrainConfig.lr)
    parser.add_argument("--batch-size", type=positive_int, default=PretrainConfig.batch_size)
    parser.add_argument("--crop-size", type=positive_int, default=128, help="random crops of this size (default 128)")
    parser.add_argument("--seed", type=int, default=PretrainConfig.seed)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--threads", type=positive_int, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")


def run(args) -> int:
    from refinenet_edu.engine.locks import writing_file

    if args.out.is_dir():
        raise ValueError(f"--out {args.out}: is a folder; the encoder's file name was expected (e.g. {args.out}/encoder.pt)")
    if args.out.exists() and not args.force:
        raise ValueError(f"--out {args.out}: exists; pass --force to replace it")
    # one writer (engine.locks); the threads for this command only (the caller's number is restored)
    with writing_file(args.out, companions=(".json",)), cpu_threads(args.threads):
        return _pretrain(args)


def _pretrain(args) -> int:
    from refinenet_edu.experiments.runner import dataset_fingerprint, load_splits
    from refinenet_edu.nn.config import make_config
    from refinenet_edu.datasets.info import DatasetInfo
    from refinenet_edu.nn.encoders import ResNetEncoder
    from refinenet_edu.engine import provenance
    from refinenet_edu.engine.recipes import TrainConfig

    config = PretrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                            device=args.device, precision=args.precision)
    overrides = {"encoder_width": args.encoder_width} if args.encoder_width else {}
    train_set, _ = load_splits(args.data, TrainConfig(crop_size=args.crop_size, scale_range=(0.75, 1.25)))
    lut, names = class_map(DatasetInfo.of(train_set).class_names, args.merge)
    model_config = make_config(args.preset, num_classes=len(names), **overrides)
    torch.manual_seed(args.seed)
    encoder = ResNetEncoder(model_config.backbone, width=model_config.encoder_width)
    started = time.perf_counter()
    history = pretrain_encoder(encoder, train_set, num_classes=len(names), config=config, label_map=lut)
    info = {"format": "refinenet-edu pretrained encoder", "backbone": model_config.backbone,
            "encoder_width": model_config.encoder_width,
            "head": "FCN-32s: 1x1 conv on the 1/32 features, scores upsampled x32 (discarded)",
            "classes": names, "merge": args.merge or [], "config": asdict(config), "crop_size": args.crop_size,
            "data": dataset_fingerprint(args.data), "history": history, "stored_as": "float16",
            "seconds": round(time.perf_counter() - started, 1),
            "device": describe_device(resolve_device(config.device)),
            "provenance": provenance.provenance(args._argv)}
    save_encoder(encoder, args.out, info)
    print(f"wrote {args.out} ({history[-1]['loss']:.4f} final loss, {info['seconds']:.0f} s)")
    return 0
