"""Every citation of the paper in code, notebooks and docs points at what the paper has there.

The table of the paper's figures, tables and sections is ``tooling/paper.py`` (also printed in
``docs/paper.md``). A figure or table citation must also have, within a few lines, a word that names what
that figure or table shows; and statements the course once made wrongly must not come back.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tooling import paper

REPO = Path(__file__).resolve().parents[1]

#: Where the course states facts: the library, the notebooks and assignments, the docs and READMEs, the benchmarks,
#: and the code that draws the notebooks' diagrams.
#: ``results/course-full-mode/*.ipynb`` are stored records of one run (their README says so) and are left out.
SOURCES = sorted(
    {*REPO.glob("refinenet_edu/**/*.py"), *REPO.glob("notebooks/*.ipynb"), *REPO.glob("notebooks/*.md"),
     *REPO.glob("assignments/**/*.ipynb"), *REPO.glob("assignments/**/*.md"), *REPO.glob("docs/*.md"),
     *REPO.glob("data/*.md"), *REPO.glob("results/*/README.md"), *REPO.glob("benchmarks/*.py"),
     REPO / "README.md", REPO / "tooling" / "figures.py"}
)

FIG = re.compile(r"\bFig(?:ure)?\.?\s+(\d+)(\([a-z]\)|[a-z]\b)?(-\([a-z]\))?")  # Fig. 3, Fig. 3(b), Fig. 3(a)-(d)
TABLE = re.compile(r"\bTables?\s+(\d+)((?:\s*(?:,|and)\s*\d+)*)")
SEC = re.compile(r"\bSec\.\s+(\d+(?:\.\d+)?)")
WINDOW = 300  # characters either side in which a citation's context must name what it cites

#: Other papers' figures and tables the course cites, recognised by a name just before the citation.
OTHER_PAPERS = re.compile(r"(Nekrasov|Light-Weight RefineNet|Long et al|Chen et al|He et al)[^.]{0,80}$", re.S)

#: Wrong statements found in the course (issue 13), which must not come back.
RETRACTED = [
    "frozen encoder",      # RefineNet fine-tunes its encoder end to end (frozen are the BN statistics only)
    "09_ablations",        # the notebook is 09_ablation.ipynb
    "DESIGN" + ".md",      # a design file the repository does not have: docs/contributing.md holds what it said
    "cascades of Fig. 3",  # the cascades are Fig. 2(c) and Fig. 7
]


def _text(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return "\n\n".join("".join(c["source"]) for c in cells)
    return path.read_text(encoding="utf-8")


def _citations():
    for path in SOURCES:
        text = _text(path)
        for kind, pattern in (("Fig.", FIG), ("Table", TABLE), ("Sec.", SEC)):
            for m in pattern.finditer(text):
                if OTHER_PAPERS.search(text[max(0, m.start() - 120):m.start()]):
                    continue
                yield path.relative_to(REPO), kind, m, text


def test_the_paper_table_is_in_the_docs():
    assert paper.markdown() in (REPO / "docs" / "paper.md").read_text(encoding="utf-8")


def test_the_scan_sees_the_course():
    found = {(str(p), kind) for p, kind, _, _ in _citations()}
    assert ("refinenet_edu/nn/components.py", "Fig.") in found  # the scan reads the library ...
    assert any(p.endswith(".ipynb") and kind == "Fig." for p, kind in found)  # ... and the notebooks
    assert len(found) > 20


def test_every_citation_exists_and_its_context_names_what_it_cites():
    problems = []
    for path, kind, m, text in _citations():
        where = f"{path}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}"
        context = text[max(0, m.start() - WINDOW):m.end() + WINDOW].lower()
        if kind == "Fig.":
            number, sub = m.group(1), m.group(2) or ""
            if m.group(3):  # a range of sub-figures: what the whole figure shows
                sub = ""
            elif sub and not sub.startswith("("):
                problems.append(f"{where}: write sub-figures as Fig. {number}({sub})")
                sub = f"({sub})"
            key = number + sub
            item = paper.FIGURES.get(key)
            if item is None:
                problems.append(f"{where}: the paper has no Fig. {key} (it has {', '.join(paper.FIGURES)})")
            elif not any(w in context for w in item.words):
                problems.append(f"{where}: Fig. {key} shows {item.shows}; the text around it names none of {item.words}")
        elif kind == "Table":
            numbers = [m.group(1)] + re.findall(r"\d+", m.group(2) or "")
            for number in numbers:
                item = paper.TABLES.get(number)
                if item is None:
                    problems.append(f"{where}: the paper has no Table {number}")
                elif not any(w in context for w in item.words):
                    problems.append(f"{where}: Table {number} is {item.shows}; the text around it names none of {item.words}")
        elif m.group(1) not in paper.SECTIONS:
            problems.append(f"{where}: the paper has no Sec. {m.group(1)} (it has {', '.join(paper.SECTIONS)})")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("phrase", RETRACTED)
def test_retracted_statements_stay_out(phrase):
    hits = [str(p.relative_to(REPO)) for p in SOURCES if phrase in _text(p)]
    assert hits == [], f"{phrase!r} is back in {hits}"


def test_a_wrong_citation_is_caught():
    # The checker itself: a citation of the wrong figure next to the RCU fails.
    m = next(FIG.finditer("the Residual Conv Unit (RCU, Fig. 2(b))"))
    item = paper.FIGURES[m.group(1) + m.group(2)]
    assert not any(w in "the residual conv unit (rcu, fig. 2(b))" for w in item.words)
