"""Library code shown in the notebooks, whole, straight from the source files.

The notebooks are a reader's path through the same code the library runs:
``show_source(train_step)`` prints that function as it is in its module,
so a lesson never keeps a second copy that could drift, and never slices the
text (a slice breaks the lesson at the next refactor).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

__all__ = ["show_source"]

#: names whose source an instructor withholds while an assignment asks students to write them
WITHHOLD_VARIABLE = "REFINENET_EDU_WITHHOLD"


def show_source(obj) -> None:
    """Print the whole source of a function, class or method, headed by the file it is in (in a notebook: the
    cell's output).

    An instructor who grades students on writing a part themselves can withhold its source: with
    ``REFINENET_EDU_WITHHOLD=ResidualConvUnit,ChainedResidualPooling`` in the students' environment,
    those names print a note instead (``assignments/README.md``).
    """
    target = inspect.unwrap(obj)
    name = getattr(target, "__qualname__", "")
    withheld = {n.strip() for n in os.environ.get(WITHHOLD_VARIABLE, "").split(",") if n.strip()}
    if name in withheld or name.split(".")[0] in withheld:
        print(f"# The source of {name} is withheld by your instructor for now: an assignment asks you to write it.")
        return
    target = getattr(target, "__func__", target)  # bound and class methods: the function
    lines, _ = inspect.getsourcelines(target)
    path = Path(inspect.getsourcefile(target)).resolve()
    package = Path(__file__).resolve().parents[1]
    where = path.relative_to(package.parent).as_posix() if package in path.parents else path.name
    print(f"# {where}\n" + "".join(lines), end="")
