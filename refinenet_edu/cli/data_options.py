"""What the train / evaluate / predict commands share: data options and subsets."""

from __future__ import annotations


def add_data_arguments(parser, *, default: str | None = "synthscenes") -> None:
    g = parser.add_argument_group("data")
    g.add_argument(
        "--data", default=default,
        help="dataset: 'synthscenes' (embedded), 'voc2012', 'sbd', or a folder in PASCAL VOC layout "
             f"(default: {default})",
    )
    g.add_argument("--data-root", default=None, help="where voc2012/sbd live (or are downloaded to)")
    g.add_argument("--download", action="store_true", help="download voc2012/sbd if missing (off by default)")


def load_split(args, split: str, transforms):
    from refinenet_edu.datasets import load_dataset

    kwargs = {}
    if getattr(args, "data_root", None):
        kwargs["root"] = args.data_root
    if getattr(args, "download", False):
        kwargs["download"] = True
    return load_dataset(args.data, split, transforms=transforms, **kwargs)


def subset(ds, n: int):
    """The first ``n`` items of ``ds`` (its class names, palette and ids stay readable through
    :meth:`~refinenet_edu.datasets.info.DatasetInfo.of` and :func:`~refinenet_edu.datasets.info.sample_ids`)."""
    from torch.utils.data import Subset

    return Subset(ds, range(min(n, len(ds))))
