"""The engine: running a network on data.

Devices and precision (:mod:`.runtime`), the training loop (:mod:`.loop`),
evaluation and its metrics (:mod:`.evaluation`, :mod:`.metrics`), fast
prediction (:mod:`.inference`), checkpoints and provenance records. It
imports the network (:mod:`refinenet_edu.nn`) and the data
(:mod:`refinenet_edu.datasets`), never the experiments, figures or tools
built on it.
"""

from typing import TYPE_CHECKING

from refinenet_edu._exports import exports_of, lazy_exports

if TYPE_CHECKING:  # what editors and type checkers read; at run time each name loads on first use
    from refinenet_edu.engine.checkpoints import load_checkpoint, load_model, save_checkpoint
    from refinenet_edu.engine.criterion import LOSSES, SegmentationLoss
    from refinenet_edu.engine.evaluation import EvaluationResult, evaluate, save_predictions
    from refinenet_edu.engine.inference import OFFICIAL_SCALES, predict_labels, predict_probabilities
    from refinenet_edu.engine.loop import TrainResult, TrainingDiverged, TrainingInterrupted, train, train_step
    from refinenet_edu.engine.metrics import ConfusionMatrix, SegmentationMetrics, boundary_band
    from refinenet_edu.engine.recipes import RECIPES, TrainConfig, make_optimizer, poly_lambda
    from refinenet_edu.engine.runtime import describe_device, resolve_device, resolve_precision

_EXPORTS = exports_of(__file__)  # name -> module: the TYPE_CHECKING block above, read at run time
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
