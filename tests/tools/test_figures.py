"""The diagrams of notebooks 01-05: ``./course figures`` (tooling/figures.py) and the files it stored in
``notebooks/figures/``, which the notebooks show from markdown."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib
import pytest

from tooling.cli import main as tooling_main
from tooling.figures import FIGURES, FIGURES_DIR, Diagram, draw_cascade, draw_crp, figure_svg, write_figures
from tooling.notebooks import image_problem, local_images

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ASSIGNMENTS = sorted((ROOT / "assignments").rglob("*.ipynb"))
WRITER = re.compile(rb"<dc:title>Matplotlib v([^,<]+), https://matplotlib.org/</dc:title>")


def _nb(path: Path):
    import nbformat

    return nbformat.read(path, as_version=4)


def _writer(svg: bytes) -> str:
    """The version of the matplotlib that wrote ``svg``."""
    found = WRITER.search(svg)
    assert found, "the SVG does not record the matplotlib that wrote it"
    return found[1].decode()


def test_the_stored_figures_are_what_the_code_draws(tmp_path):
    stored = {name: (FIGURES_DIR / f"{name}.svg").read_bytes() for name in FIGURES}
    written = {p.name for p in write_figures(tmp_path)}
    assert written == {f"{name}.svg" for name in FIGURES}
    versions = {_writer(svg) for svg in stored.values()}
    if versions != {matplotlib.__version__}:
        pytest.skip(f"the stored figures were written by matplotlib {', '.join(sorted(versions))}, this is "
                    f"{matplotlib.__version__}: its SVG differs in details; run `./course figures` with that one")
    stale = [name for name in FIGURES if (tmp_path / f"{name}.svg").read_bytes() != stored[name]]
    assert not stale, f"notebooks/figures/ is out of date for {stale}: run `./course figures` and commit the files"


def test_a_figure_is_the_same_bytes_every_time():
    first = figure_svg("rcu")
    with matplotlib.rc_context({"svg.hashsalt": None, "font.size": 20, "lines.linewidth": 5}):  # a user's style
        assert figure_svg("rcu") == first
    assert b"<dc:date>" not in first and _writer(first) == matplotlib.__version__


def test_the_folder_holds_exactly_the_figures_the_notebooks_show():
    shown = {image for path in NOTEBOOKS for image in local_images(_nb(path))}
    assert {f"figures/{name}.svg" for name in FIGURES} == {i for i in shown if i.startswith("figures/")}
    assert sorted(p.name for p in FIGURES_DIR.iterdir()) == sorted(f"{name}.svg" for name in FIGURES)


@pytest.mark.parametrize("path", NOTEBOOKS + ASSIGNMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_image_a_notebook_shows_exists(path):
    nb = _nb(path)
    assert [problem for image in local_images(nb) if (problem := image_problem(path.parent, image))] == []
    # every figure the markdown names is one it shows as an image (not a link or a broken image)
    text = json.dumps([c.source for c in nb.cells if c.cell_type == "markdown"])
    assert set(re.findall(r"figures/\w+\.svg", text)) == {i for i in local_images(nb) if i.startswith("figures/")}


def test_notebooks_01_to_05_show_their_diagram():
    expected = {"01": "rcu", "02": "fusion", "03": "crp", "04": "refinenet_block", "05": "cascades"}
    for number, name in expected.items():
        (path,) = (ROOT / "notebooks").glob(f"{number}_*.ipynb")
        assert f"figures/{name}.svg" in local_images(_nb(path)), path.name


def test_figures_never_replaces_a_file_it_did_not_write(tmp_path):
    mine = tmp_path / "crp.svg"
    mine.write_text("<svg>my own drawing</svg>")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="was not written by `./course figures`"):
        write_figures(tmp_path)
    assert mine.read_text() == "<svg>my own drawing</svg>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crp.svg", "notes.txt"], "nothing is written after a refusal"
    mine.unlink()
    assert len(write_figures(tmp_path)) == len(FIGURES)
    assert write_figures(tmp_path) == [], "unchanged files are not rewritten"
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_the_figures_command(tmp_path, capsys):
    out = tmp_path / "figures"
    assert tooling_main(["figures", "--out", str(out)]) == 0
    assert f"{len(FIGURES)} written" in capsys.readouterr().out
    assert tooling_main(["figures", "--out", str(out)]) == 0
    assert f"0 written, {len(FIGURES)} unchanged" in capsys.readouterr().out
    (tmp_path / "file").write_text("x")
    assert tooling_main(["figures", "--out", str(tmp_path / "file")]) == 2  # one line, like every command


def test_the_drawings():
    from matplotlib.figure import Figure

    from refinenet_edu.nn.config import CASCADES

    d = Diagram(figsize=(6, 2))
    d.box("x", 0, 0, "x")
    d.box("conv", 2, 0, "3x3 conv", kind="conv")
    d.arrow("x", "conv")
    fig = d.finish()
    assert isinstance(fig, Figure) and not fig.axes[0].axison
    for name in CASCADES:
        assert draw_cascade(name).axes[0].get_title() == name
    with pytest.raises(ValueError, match="expected one of"):
        draw_cascade("8-cascaded")
    assert "parallel pools" in draw_crp(num_blocks=2, chained=False).axes[0].get_title()
    texts = [t.get_text() for t in draw_crp(num_blocks=3).axes[0].texts]
    assert texts.count("5x5\nmax-pool") == 3 and texts.count("3x3 conv") == 3
