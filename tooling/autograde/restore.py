"""The nbgrader preprocessor that restores locked cells quietly (``assignments/nbgrader_config.py``).

nbgrader 0.9 warns ``Attribute 'checksum' for cell ... has changed!`` for
every test cell that has hidden tests, although the student changed nothing
(jupyter/nbgrader#1961): the gradebook keeps the checksum of the instructor's
cell, hidden tests included, while the student received the cell without
them. :class:`RestoreLockedCells` is nbgrader's ``OverwriteCells`` - every
locked cell is still restored from the gradebook, hidden tests included -
except that a cell which is exactly as it was handed out is restored without
a warning. The warning that remains means that a student edited a locked
cell.
"""

from __future__ import annotations

import copy

from nbgrader import utils
from nbgrader.api import MissingEntry
from nbgrader.preprocessors import ClearHiddenTests, OverwriteCells

__all__ = ["RestoreLockedCells"]


class RestoreLockedCells(OverwriteCells):
    """``OverwriteCells`` that warns only about locked cells the student actually changed."""

    def _as_handed_out(self, cell, source: str) -> str:
        """``source`` (the gradebook's, hidden tests included) as the student received it."""
        released = copy.deepcopy(cell)
        released.source = source
        ClearHiddenTests(config=self.config)._remove_hidden_test_region(released)
        return released.source

    def preprocess_cell(self, cell, resources, cell_index):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is not None and utils.is_locked(cell):
            try:
                source_cell = self.gradebook.find_source_cell(grade_id, self.notebook_id, self.assignment_id)
            except MissingEntry:
                pass  # OverwriteCells reports it
            else:
                if source_cell.locked and cell.source != source_cell.source \
                        and cell.source == self._as_handed_out(cell, source_cell.source):
                    cell.source = source_cell.source  # unchanged by the student: restore the hidden tests quietly
        return super().preprocess_cell(cell, resources, cell_index)
