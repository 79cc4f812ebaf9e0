"""The diagrams of notebooks 01-05: ``./course figures`` (tooling/figures.py), the PNG files it stored in
``notebooks/figures/``, and :func:`refinenet_edu.viz.plots.show_figure`, whose stored output shows them in the
notebooks."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import matplotlib
import pytest
from PIL import Image

from refinenet_edu.viz.plots import show_figure
from tooling.cli import main as tooling_main
from tooling.figures import FIGURES, FIGURES_DIR, SOURCE, Diagram, draw_cascade, draw_crp, render_figure, versions
from tooling.figures import write_figures

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ASSIGNMENTS = sorted((ROOT / "assignments").rglob("*.ipynb"))
SHOW = re.compile(r"""show_figure\(["'](\w+)["']\)""")


def _nb(path: Path):
    import nbformat

    return nbformat.read(path, as_version=4)


def _picture(png: bytes) -> tuple:
    """What a PNG shows and says: its size, its pixels and its text chunks (not how zlib packed them)."""
    image = Image.open(io.BytesIO(png))
    return image.size, image.mode, image.tobytes(), image.text


def _shown(nb) -> dict[str, list[bytes]]:
    """The figures ``nb`` shows with ``show_figure`` -> the PNG images its cells stored."""
    found: dict[str, list[bytes]] = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            for name in SHOW.findall(cell.source):
                found.setdefault(name, []).extend(base64.b64decode(out["data"]["image/png"])
                                                  for out in cell.outputs if "image/png" in out.get("data", {}))
    return found


def test_the_stored_figures_are_what_the_code_draws(tmp_path):
    stored = {name: (FIGURES_DIR / f"{name}.png").read_bytes() for name in FIGURES}
    written = {p.name for p in write_figures(tmp_path)}
    assert written == {f"{name}.png" for name in FIGURES}
    drawn_with = {_picture(png)[3].get("Comment") for png in stored.values()}
    if drawn_with != {versions()}:
        pytest.skip(f"the stored figures were {', '.join(sorted(map(str, drawn_with)))}; here they are "
                    f"{versions()}, whose pixels differ in details: run `./course figures` with those")
    stale = [name for name in FIGURES if _picture((tmp_path / f"{name}.png").read_bytes()) != _picture(stored[name])]
    assert not stale, f"notebooks/figures/ is out of date for {stale}: run `./course figures` and commit the files"


def test_a_figure_is_the_same_bytes_every_time():
    first = render_figure("rcu")
    with matplotlib.rc_context({"figure.dpi": 300, "font.size": 20, "lines.linewidth": 5}):  # a user's style
        assert render_figure("rcu") == first
    text = _picture(first)[3]
    assert text == {"Title": FIGURES["rcu"][0], "Source": SOURCE, "Comment": versions()}  # no Software, no date
    assert f"matplotlib {matplotlib.__version__} " in versions()


def test_the_folder_holds_exactly_the_figures_the_notebooks_show():
    shown = {name for path in NOTEBOOKS for name in _shown(_nb(path))}
    assert shown == set(FIGURES)
    assert sorted(p.name for p in FIGURES_DIR.iterdir()) == sorted(f"{name}.png" for name in FIGURES)
    for name in FIGURES:
        size = (FIGURES_DIR / f"{name}.png").stat().st_size
        assert 5_000 < size < 150_000, f"{name}.png: {size:,} bytes"


@pytest.mark.parametrize("path", NOTEBOOKS + ASSIGNMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_figure_a_notebook_shows_exists_and_is_stored_as_its_output(path):
    for name, images in _shown(_nb(path)).items():
        assert name in FIGURES, f"{path.name} shows {name!r}, which `./course figures` does not draw"
        assert images == [(FIGURES_DIR / f"{name}.png").read_bytes()], \
            f"{path.name}: the stored output of show_figure({name!r}) is not notebooks/figures/{name}.png: " \
            "execute it again (`./course execute`)"


def test_notebooks_01_to_05_show_their_diagram():
    expected = {"01": "rcu", "02": "fusion", "03": "crp", "04": "refinenet_block", "05": "cascades"}
    for number, name in expected.items():
        (path,) = (ROOT / "notebooks").glob(f"{number}_*.ipynb")
        assert list(_shown(_nb(path))) == [name], path.name


def test_show_figure_is_an_image_of_the_stored_file():
    from IPython.display import Image as Shown

    for name in FIGURES:
        image = show_figure(name)
        assert isinstance(image, Shown) and image.format == "png"
        assert Path(image.filename) == FIGURES_DIR / f"{name}.png"
        assert image.data == (FIGURES_DIR / f"{name}.png").read_bytes()  # embedded: the notebook stores it
    with pytest.raises(FileNotFoundError):
        show_figure("no_such_figure")


def test_figures_never_replaces_a_file_it_did_not_write(tmp_path):
    mine = tmp_path / "crp.png"
    mine.write_bytes(b"\x89PNG\r\n\x1a\nmy own drawing")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="was not written by `./course figures`"):
        write_figures(tmp_path)
    assert mine.read_bytes() == b"\x89PNG\r\n\x1a\nmy own drawing"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crp.png", "notes.txt"], "nothing is written after a refusal"
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
