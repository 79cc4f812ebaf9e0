"""The checks that grade the assignments (``assignments/``), with feedback a student can act on.

One module per thing checked, on one shared :mod:`.harness`: :mod:`.rcu` (Sec. 3.2, Fig. 3(b)), :mod:`.block`
(adaptive convolutions and a block's forward pass, Fig. 3(a)), :mod:`.fusion` (Fig. 3(c)), :mod:`.crp` (Fig. 3(d)),
:mod:`.cascade` (the 4-cascade, Sec. 3.1), :mod:`.iou` (confusion matrix, IoU, mIoU), :mod:`.eval_mode`,
:mod:`.augmentation` (notebook 06), :mod:`.training` (07), :mod:`.boundary` (08), :mod:`.lightweight` (10).

Each check compares the student's code numerically with the library's reference and, when they differ, names the
mistake (most of them shipped by public ports: the ``bug-*`` sources in docs/paper.md), then the fix. Code that
derives from, holds or calls the reference is refused: it would pass without anything written. The reference itself
passes (the course notebooks show it), except with ``allow_reference=False``, which every graded cell of the
assignments uses. A failed check raises :class:`CheckFailed` (an ``AssertionError``, so nbgrader marks the test cell
failed); a passed one prints a line starting with "✓". ``NotImplementedError`` from a part not written yet passes
through. All checks run in well under a second on a CPU and leave the global random state alone.
"""

from typing import TYPE_CHECKING

from refinenet_edu._exports import exports_of, lazy_exports

if TYPE_CHECKING:  # what editors and type checkers read; at run time each name loads on first use
    from refinenet_edu.grading.augmentation import check_joint_augment
    from refinenet_edu.grading.block import check_adaptive_conv, check_block_forward
    from refinenet_edu.grading.boundary import check_boundary_band
    from refinenet_edu.grading.cascade import check_cascade
    from refinenet_edu.grading.crp import check_crp
    from refinenet_edu.grading.eval_mode import check_eval_mode
    from refinenet_edu.grading.fusion import check_fusion
    from refinenet_edu.grading.harness import CheckFailed
    from refinenet_edu.grading.lightweight import check_lw_block
    from refinenet_edu.grading.iou import check_confusion_matrix, check_iou, check_miou
    from refinenet_edu.grading.rcu import check_rcu
    from refinenet_edu.grading.training import check_train_step

_EXPORTS = exports_of(__file__)  # name -> module: the TYPE_CHECKING block above, read at run time
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
