"""Figures for the course: live training curves and training histories."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from refinenet_edu.datasets.info import DatasetInfo, sample_ids
from refinenet_edu.datasets.palette import colorize
from refinenet_edu.datasets.transforms import to_uint8_image

__all__ = ["plot_history", "LiveTrainingPlot", "class_legend", "show_samples"]


def plot_history(history: Sequence[dict], ax_loss=None, ax_miou=None, label: str | None = None):
    """Training loss and validation mIoU against the epoch, on two axes."""
    import matplotlib.pyplot as plt

    if ax_loss is None or ax_miou is None:
        fig, (ax_loss, ax_miou) = plt.subplots(1, 2, figsize=(9, 3.2))
    else:
        fig = ax_loss.figure
    epochs = [h["epoch"] for h in history]
    ax_loss.plot(epochs, [h["loss"] for h in history], marker=".", label=label)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    scored = [(h["epoch"], h["miou"]) for h in history if h.get("miou") is not None]
    if scored:
        ax_miou.plot(*zip(*scored), marker=".", label=label)
    ax_miou.set(xlabel="epoch", ylabel="validation mIoU", title="mIoU", ylim=(0, 1))
    for ax in (ax_loss, ax_miou):
        ax.grid(alpha=0.3)
    if label:
        ax_miou.legend()
    fig.tight_layout()
    return fig


class LiveTrainingPlot:
    """Redraws :func:`plot_history` in place in a notebook after every epoch.

    Pass it to the training loop, ``train(..., on_epoch=LiveTrainingPlot())``:
    it is called with each epoch's record. ``history``: records to start
    from (a resumed run's).
    """

    def __init__(self, history: Sequence[dict] = ()) -> None:
        from IPython.display import display

        self.history = list(history)
        self._handle = display(display_id=True)
        self.update(self.history)

    def __call__(self, record: dict) -> None:
        self.history.append(record)
        self.update(self.history)

    def update(self, history: Sequence[dict]) -> None:
        import matplotlib.pyplot as plt

        if not history:
            return
        fig = plot_history(history)
        if self._handle is not None:
            self._handle.update(fig)
        plt.close(fig)


def class_legend(target, class_names: Sequence[str], palette: Sequence[Sequence[int]], *, fontsize: float = 10,
                 **legend_options):
    """A legend of the classes' colours (one patch per class) on ``target``, a matplotlib figure or axes.

    ``legend_options`` go to ``legend()`` (``loc``, ``ncol``, ...). Returns the legend.
    """
    from matplotlib.patches import Patch

    handles = [Patch(color=np.asarray(c) / 255, label=name) for name, c in zip(class_names, palette)]
    return target.legend(handles=handles, fontsize=fontsize, frameon=False, **legend_options)


def show_samples(
    dataset,
    n: int = 6,
    *,
    indices: Sequence[int] | None = None,
    alpha: float = 0.6,
    legend: bool = True,
    figsize_per_sample: float = 2.2,
    fontsize: float = 8,
):
    """A matplotlib figure: each sample's image above its mask overlaid in colour.

    Takes the first ``n`` samples unless ``indices`` is given. Float images
    are assumed normalised with ImageNet statistics and are denormalised.
    ``fontsize`` (points) sets the titles and the legend; at 80 dpi 12 points are 13 pixels.
    Returns the figure (call ``plt.close(fig)`` when done outside notebooks).
    """
    import matplotlib.pyplot as plt

    indices = list(indices) if indices is not None else list(range(min(n, len(dataset))))
    info = DatasetInfo.of(dataset)
    ids = sample_ids(dataset)
    fig, axes = plt.subplots(
        2, len(indices), figsize=(figsize_per_sample * len(indices), figsize_per_sample * 2 + 0.6), squeeze=False
    )
    for col, index in enumerate(indices):
        image, mask = dataset[index]
        rgb = to_uint8_image(image).permute(1, 2, 0).numpy()
        colours = colorize(mask, info.palette, info.ignore_index)
        overlay = (rgb * (1 - alpha) + colours * alpha).round().astype(np.uint8)
        axes[0, col].imshow(rgb)
        axes[1, col].imshow(overlay)
        title = ids[index] if ids is not None else f"#{index}"
        axes[0, col].set_title(str(title), fontsize=fontsize)
        for ax in axes[:, col]:
            ax.set_axis_off()
    if legend:
        class_legend(fig, info.class_names, info.palette, fontsize=fontsize, loc="lower center",
                     ncol=min(len(info.class_names), 7))
    fig.tight_layout(rect=(0, 0.08 if legend else 0, 1, 1))
    return fig
