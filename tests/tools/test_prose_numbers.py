"""Measured numbers quoted in the notebooks' prose come from a stored output or a results file.

Convention (``docs/contributing.md``, "Numbers in prose"): a markdown paragraph that quotes measured results
starts with the line ``<!-- measured: SOURCE ... -->``. Each SOURCE is ``outputs`` (this notebook's stored
outputs) or a repository path (a results file, a README, an executed notebook, whose outputs and text are
read). In such a paragraph every *measured-looking* number must be found in one of its sources:
decimals (``0.656``, ``27.4``), percentages (``60 %``), times (``319 s``, ``1.3 ms``) and ratios (``5.0x``),
both ends of a range (``296-399 s``).
Plain integers (``150 images``, ``1/4``, ``Table 2``) are not checked. A number is found when a number in a
source, times 1, 100 or 1e-6 (fractions quoted as percentages, counts quoted in millions), rounds to it at the
number of decimals the prose gives. A re-run that changes a stored number then fails here until the prose
follows it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))

MARKER = re.compile(r"^<!-- measured: (.+?) -->\s*$", re.M)
#: measured-looking numbers: decimals, or integers/ranges followed by %, s, ms or x
CHECKED = re.compile(r"(?<![\w.])(\d+\.\d+|\d+(?=(?:-\d+)?\s?(?:%|ms\b|s\b|x\b)))")
ANY_NUMBER = re.compile(r"\d[\d,]*\.?\d*(?:e-?\d+)?")
SCALES = (1.0, 100.0, 1e-6)


def _notebook_text(path: Path, *, outputs_only: bool) -> str:
    parts = []
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if not outputs_only:
            parts.append("".join(cell["source"]))
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")))
            parts.append("".join(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def source_numbers(notebook: Path, sources: list[str]) -> list[float]:
    texts = []
    for source in sources:
        if source == "outputs":
            texts.append(_notebook_text(notebook, outputs_only=True))
            continue
        path = REPO / source
        assert path.is_file(), f"{notebook.name}: the measured marker cites {source}, which does not exist"
        texts.append(_notebook_text(path, outputs_only=False) if path.suffix == ".ipynb" else path.read_text())
    values = []
    for text in texts:
        for m in ANY_NUMBER.finditer(text):
            try:
                values.append(float(m.group(0).replace(",", "").rstrip(".")))
            except ValueError:
                pass
    return values


def found(number: str, values: list[float]) -> bool:
    decimals = len(number.split(".")[1]) if "." in number else 0
    want = float(number)
    tolerance = 0.5 * 10**-decimals + 1e-9
    return any(abs(v * scale - want) <= tolerance for v in values for scale in SCALES)


def marked_paragraphs(notebook: Path):
    """(cell index, sources, paragraph) for every paragraph that follows a measured marker."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        for m in MARKER.finditer(text):
            rest = text[m.end():].lstrip("\n")
            yield i, m.group(1).split(), rest.split("\n\n", 1)[0]


def stale_numbers(notebook: Path, sources: list[str], paragraph: str) -> list[str]:
    values = source_numbers(notebook, sources)
    return [n for n in CHECKED.findall(paragraph) if not found(n, values)]


def test_the_convention_is_used():
    marked = [p for nb in NOTEBOOKS for p in marked_paragraphs(nb)]
    assert len(marked) >= 5


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_measured_numbers_in_prose_are_in_their_sources(notebook):
    problems = []
    for i, sources, paragraph in marked_paragraphs(notebook):
        checked = CHECKED.findall(paragraph)
        assert checked, f"{notebook.name} c{i}: a measured marker on a paragraph with no measured number"
        for n in stale_numbers(notebook, sources, paragraph):
            problems.append(f"{notebook.name} c{i}: {n} is in none of {sources}")
    assert not problems, "\n".join(problems)


def test_a_planted_stale_number_fails():
    notebook = REPO / "notebooks" / "08_evaluation.ipynb"
    i, sources, paragraph = next(p for p in marked_paragraphs(notebook) if "0.610" in p[2])
    assert stale_numbers(notebook, sources, paragraph) == []
    assert stale_numbers(notebook, sources, paragraph.replace("0.610", "0.601")) == ["0.601"]
    assert stale_numbers(notebook, sources, paragraph + " It took 12.5 s.") == ["12.5"]
