"""What the subcommands share: the options that pick a model, a dataset and a training recipe, and subsets."""

from __future__ import annotations

import argparse
import dataclasses

from refinenet_edu.nn.config import CASCADES, PRESETS, RefineNetConfig, make_config
from refinenet_edu.nn.encoders import BACKBONES


def add_data_arguments(parser, *, default: str | None = "synthscenes") -> None:
    g = parser.add_argument_group("data")
    g.add_argument(
        "--data", default=default,
        help="dataset: 'synthscenes' (embedded), 'voc2012', 'sbd', or a folder in PASCAL VOC layout "
             f"(default: {default})",
    )
    g.add_argument("--data-root", default=None, help="where voc2012/sbd live (default: the checkout's data/, or from a "
                   "wheel install the user data folder, refinenet_edu.resources.downloads_root; $REFINENET_EDU_DATA "
                   "overrides it)")
    g.add_argument("--download", action="store_true", help="download voc2012/sbd if missing (off by default)")


def load_split(args, split: str, transforms):
    from refinenet_edu.datasets import load_dataset

    return load_dataset(args.data, split, transforms=transforms, root=args.data_root or None, download=args.download)


def require_checkpoint(path) -> None:
    """Refuse a checkpoint argument that is not a file, saying where ``refinenet-edu train`` writes them."""
    from refinenet_edu.files import not_a_file

    if not path.is_file():
        raise ValueError(f"checkpoint {path}: {not_a_file(path)} (refinenet-edu train writes best.pt and last.pt in "
                         "its --out folder)")


def subset(ds, n: int):
    """The first ``n`` items of ``ds`` (its class names, palette and ids stay readable through
    :meth:`~refinenet_edu.datasets.info.DatasetInfo.of` and :func:`~refinenet_edu.datasets.info.sample_ids`)."""
    from torch.utils.data import Subset

    return Subset(ds, range(min(n, len(ds))))


def add_model_arguments(parser: argparse.ArgumentParser, *, preset: str = "official") -> None:
    """Options that pick a model, starting from the preset ``preset``; shared by ``summary`` and ``train``."""
    g = parser.add_argument_group("model")
    g.add_argument("--preset", default=preset, choices=list(PRESETS), help=f"named architecture (default: {preset})")
    g.add_argument("--backbone", choices=list(BACKBONES), help="ResNet encoder (preset's default if omitted)")
    g.add_argument("--encoder-width", type=int, choices=(8, 16, 32, 64), help="base width of a resnet18/34 encoder (64 = torchvision's)")
    g.add_argument("--num-classes", type=int, help="number of classes (default: the dataset's; without one, 21)")
    g.add_argument("--cascade", choices=list(CASCADES), help="cascade: 4-cascaded (paper Fig. 2(c)) or a variant of Fig. 7")
    g.add_argument("--widths", type=int, nargs=4, metavar=("W4", "W8", "W16", "W32"), help="decoder widths of the 1/4..1/32 paths")
    g.add_argument("--crp-blocks", type=int, help="chained residual pooling blocks (0 turns CRP off)")
    g.add_argument("--crp-conv-first", action="store_true", default=None, help="'improved' CRP: conv before pool")
    g.add_argument("--output-rcus", type=int, help="RCUs after CRP in every block (paper 1, official 3)")
    g.add_argument("--align-corners", choices=("true", "false"), default=None,
                   help="bilinear upsampling with align_corners=True/False (default: the preset's; official and "
                        "light-weight use true, as the public ports whose weights they load; course uses false)")


def config_from_args(args: argparse.Namespace) -> RefineNetConfig:
    return make_config(
        args.preset,
        backbone=args.backbone,
        encoder_width=args.encoder_width,
        num_classes=args.num_classes,
        cascade=args.cascade,
        widths=tuple(args.widths) if args.widths else None,
        crp_blocks=args.crp_blocks,
        crp_conv_first=args.crp_conv_first,
        output_rcus=args.output_rcus,
        align_corners=None if args.align_corners is None else args.align_corners == "true",
    )


def train_options(names: tuple[str, ...] | None = None) -> list[dataclasses.Field]:
    """The fields of TrainConfig declared with :func:`~refinenet_edu.engine.recipes.option` (those in ``names``)."""
    from refinenet_edu.engine.recipes import TrainConfig

    return [f for f in dataclasses.fields(TrainConfig) if "help" in f.metadata and (names is None or f.name in names)]


def add_train_arguments(group, names: tuple[str, ...] | None = None) -> None:
    """``--name`` options for TrainConfig's option fields, with the help and choices declared there; the default
    None leaves a field to the recipe (device and precision: "auto"). Numbers are checked by TrainConfig's rules."""
    for f in train_options(names):
        kwargs = {"help": f.metadata["help"] or None, "default": f.default if f.metadata["always"] else None}
        if f.type == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif f.metadata["choices"]:
            kwargs["choices"] = f.metadata["choices"]
        elif f.type != "str":
            kwargs["type"] = _checked(f)
        group.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def _checked(f: dataclasses.Field):
    """An argparse type for the number field ``f``, checked by TrainConfig's own rules."""
    from refinenet_edu.cli.errors import number
    from refinenet_edu.engine.recipes import TrainConfig

    kind = int if f.type == "int" else float

    def parse(text: str):
        value = number(kind, text)
        try:
            TrainConfig(**{f.name: value})
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return value

    return parse
