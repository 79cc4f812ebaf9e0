"""Figures and widgets: training curves, the ablation's charts, the dashboard, the explorables of notebooks 01-05.

Reads what the engine and the experiments produce; nothing below imports it.
"""

from typing import TYPE_CHECKING

from refinenet_edu._exports import exports_of, lazy_exports

if TYPE_CHECKING:  # what editors and type checkers read; at run time each name loads on first use
    from refinenet_edu.viz.dashboard import AblationDashboard
    from refinenet_edu.viz.plots import (
        LiveTrainingPlot,
        plot_bars,
        plot_history,
        plot_per_class,
        plot_predictions,
        plot_tradeoff,
        show_samples,
    )
    from refinenet_edu.viz.source import show_source

_EXPORTS = exports_of(__file__)  # name -> module: the TYPE_CHECKING block above, read at run time
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
