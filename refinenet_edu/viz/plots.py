"""Figures for the course: live training curves and training histories."""

from __future__ import annotations

from typing import Sequence

__all__ = ["plot_history", "LiveTrainingPlot"]


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
    """Redraws :func:`plot_history` in place in a notebook after every epoch."""

    def __init__(self) -> None:
        from IPython.display import display

        self._handle = display(display_id=True)

    def update(self, history: Sequence[dict]) -> None:
        import matplotlib.pyplot as plt

        if not history:
            return
        fig = plot_history(history)
        if self._handle is not None:
            self._handle.update(fig)
        plt.close(fig)

    def close(self) -> None:
        pass
