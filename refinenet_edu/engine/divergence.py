"""When a run's training loss has blown up: the one rule, shared by training and the statistics of ablations.

An epoch *diverged* when its mean training loss is not finite, or exceeds :data:`DIVERGED_FACTOR` times the
lowest loss seen before it: the earlier epochs' mean losses and, for the first epoch, the loss of the run's
first batch (``initial_loss``, the untrained network's loss, kept in the first epoch's history record; so a
run that blows up within its first epoch is caught too). A healthy run's epoch loss moves by a few percent
from one epoch to the next; a jump of 10x is a blow-up, after which a network often predicts one class
everywhere.

:func:`~refinenet_edu.engine.loop.train` warns at the first such epoch and never writes one as ``best.pt``;
:func:`refinenet_edu.experiments.comparison.diverged` flags such runs so that comparisons leave them out.
This module imports nothing heavy (no torch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

__all__ = ["DIVERGED_FACTOR", "LossJump", "loss_jumps", "first_loss_jump"]

#: An epoch diverged when its mean training loss exceeds this many times the lowest loss before it.
DIVERGED_FACTOR = 10.0


@dataclass(frozen=True)
class LossJump:
    """An epoch (1-based) whose training ``loss`` blew up, and the ``lowest`` loss before it."""

    epoch: int
    loss: float
    lowest: float

    def describe(self) -> str:
        before = "the run's first batch" if self.epoch == 1 else "the lowest epoch before it"
        if not math.isfinite(self.loss):
            return f"epoch {self.epoch}: training loss {self.loss} (lowest before {self.lowest:.4g})"
        return (f"epoch {self.epoch}: training loss {self.loss:.4g}, over {DIVERGED_FACTOR:g}x the "
                f"{self.lowest:.4g} of {before}")


def loss_jumps(history: Iterable[Mapping], factor: float = DIVERGED_FACTOR) -> Iterator[LossJump]:
    """Every epoch of ``history`` (records with ``epoch``, ``loss`` and, optionally, ``initial_loss``) that
    diverged, in order. Records without a loss are skipped."""
    lowest = math.inf
    for record in history:
        initial = record.get("initial_loss")
        if initial is not None and math.isfinite(initial):
            lowest = min(lowest, initial)
        loss = record.get("loss")
        if loss is None:
            continue
        if not math.isfinite(loss) or loss > factor * lowest:
            yield LossJump(int(record.get("epoch", 0)), float(loss), lowest)
        else:
            lowest = min(lowest, loss)


def first_loss_jump(history: Iterable[Mapping], factor: float = DIVERGED_FACTOR) -> LossJump | None:
    """The first epoch of ``history`` that diverged (:func:`loss_jumps`), else None."""
    return next(loss_jumps(history, factor), None)
