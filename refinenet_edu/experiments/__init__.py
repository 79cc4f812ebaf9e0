"""Experiments: the paper's comparisons, measured.

The ablation's variants and runner, its results file, the statistics over seeds (:mod:`.comparison`) and the encoder
pretraining that stands in for ImageNet (:mod:`.pretraining`). Built on :mod:`refinenet_edu.engine`.
"""

from typing import TYPE_CHECKING

from refinenet_edu._exports import exports_of, lazy_exports

if TYPE_CHECKING:  # what editors and type checkers read; at run time each name loads on first use
    from refinenet_edu.experiments.comparison import compare, findings, format_table, summarize
    from refinenet_edu.experiments.pretraining import PretrainConfig, pretrain_encoder
    from refinenet_edu.experiments.results import AblationResults, combine_results, load_predictions, load_results
    from refinenet_edu.experiments.runner import run_grid, train_variant
    from refinenet_edu.experiments.variants import Variant, make_grid, parse_variant

_EXPORTS = exports_of(__file__)  # name -> module: the TYPE_CHECKING block above, read at run time
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
