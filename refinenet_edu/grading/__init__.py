"""Grading: the checks students call from the assignment notebooks.

Each check builds the student's component on fixed inputs, compares it with
the library's reference and names the port bug it finds (see
:mod:`refinenet_edu.grading.checks`). Notebooks and assignments import the
checks from here, ``from refinenet_edu.grading import check_rcu``, so the
module that holds them can change without touching a notebook.
"""

from refinenet_edu.grading.checks import (
    CheckFailed,
    check_adaptive_conv,
    check_cascade,
    check_confusion_matrix,
    check_crp,
    check_eval_mode,
    check_fusion,
    check_iou,
    check_miou,
    check_rcu,
)

__all__ = [
    "CheckFailed",
    "check_adaptive_conv",
    "check_cascade",
    "check_confusion_matrix",
    "check_crp",
    "check_eval_mode",
    "check_fusion",
    "check_iou",
    "check_miou",
    "check_rcu",
]
