"""``./course figures``: the box-and-arrow diagrams of RefineNet's parts that notebooks 01-05 show, drawn with
matplotlib and stored as ``notebooks/figures/<name>.png``, so that a lesson can put the picture, the paper's figure
and the source side by side: :func:`draw_rcu` (Fig. 3(b)), :func:`draw_fusion` (Fig. 3(c)), :func:`draw_crp`
(Fig. 3(d), or the "parallel pools" port bug), :func:`draw_refinenet_block` (Fig. 3(a)) and :func:`draw_cascade`
(Fig. 2(c) and Fig. 7). Each takes an optional matplotlib ``ax`` and returns the figure; all are built on
:class:`Diagram`. :data:`FIGURES` names the stored figures and how each is drawn; :func:`write_figures` writes them.

The files are deterministic: the same matplotlib with the same FreeType (and zlib) writes the same bytes
(matplotlib's default style, a fixed resolution, no ``Software`` entry), and each file's text chunks record its
title, the marker of this command and the matplotlib and FreeType that drew it.
A notebook shows a figure from a code cell whose stored output is the PNG file,
``show_figure("rcu")`` (:func:`refinenet_edu.viz.plots.show_figure`), so it is there wherever the notebook is
opened: a stored output needs no file beside the notebook, and PNG outputs show in an untrusted notebook.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from refinenet_edu.files import atomic_write_bytes

__all__ = ["COLOURS", "FIGURES", "FIGURES_DIR", "Diagram", "draw_cascade", "draw_crp", "draw_fusion", "draw_rcu",
           "draw_refinenet_block", "render_figure", "write_figures"]

#: one colour per kind of layer, the same in every diagram of the course
COLOURS = {
    "input": "#ffffff", "relu": "#fff2b3", "conv": "#cfe2f3", "rcu": "#9fc5e8", "pool": "#f9cb9c",
    "up": "#d9c3e9", "sum": "#d9ead3", "fusion": "#b6d7a8", "crp": "#f6b26b", "encoder": "#e6e6e6",
    "block": "#ffe599", "classifier": "#ea9999", "bug": "#f4cccc",
}


@dataclass
class _Node:
    x: float
    y: float
    w: float  # half width (rectangles) or radius (circles)
    h: float  # half height
    round: bool

    def border(self, tx: float, ty: float) -> tuple[float, float]:
        """The point of the border on the way from the centre towards (tx, ty)."""
        dx, dy = tx - self.x, ty - self.y
        norm = math.hypot(dx, dy)
        if norm == 0:
            return self.x, self.y
        if self.round:
            return self.x + self.w * dx / norm, self.y + self.w * dy / norm
        t = min(self.w / abs(dx) if dx else math.inf, self.h / abs(dy) if dy else math.inf)
        return self.x + t * dx, self.y + t * dy


class Diagram:
    """Named boxes and circles joined by arrows, in data coordinates.

    >>> d = Diagram(figsize=(6, 2))
    >>> d.box("x", 0, 0, "x")
    >>> d.box("conv", 2, 0, "3x3 conv", kind="conv")
    >>> d.arrow("x", "conv")
    >>> fig = d.finish()
    """

    def __init__(self, ax=None, *, figsize: tuple[float, float] = (8, 3), title: str | None = None, fontsize: float = 9):
        from matplotlib.figure import Figure

        if ax is None:  # a figure of its own, outside pyplot: nothing to close, no window
            ax = Figure(figsize=figsize).subplots()
        self.ax = ax
        self.fig = ax.figure
        self.fontsize = fontsize
        self.nodes: dict[str, _Node] = {}
        self._extent = [math.inf, math.inf, -math.inf, -math.inf]
        if title:
            ax.set_title(title, fontsize=fontsize + 2)

    def _grow(self, x0: float, y0: float, x1: float, y1: float) -> None:
        e = self._extent
        self._extent = [min(e[0], x0), min(e[1], y0), max(e[2], x1), max(e[3], y1)]

    def box(self, name: str, x: float, y: float, text: str, *, kind: str = "input", w: float = 1.3, h: float = 0.6,
            fontsize: float | None = None, dashed: bool = False) -> None:
        """A rounded rectangle of size ``w`` x ``h`` centred at (x, y)."""
        from matplotlib.patches import FancyBboxPatch

        pad = 0.06
        patch = FancyBboxPatch(
            (x - w / 2 + pad, y - h / 2 + pad), w - 2 * pad, h - 2 * pad,
            boxstyle=f"round,pad={pad}", facecolor=COLOURS.get(kind, kind), edgecolor="#333333",
            linewidth=1.0, linestyle="--" if dashed else "-", zorder=2,
        )
        self.ax.add_patch(patch)
        self.ax.text(x, y, text, ha="center", va="center", fontsize=fontsize or self.fontsize, zorder=3)
        self.nodes[name] = _Node(x, y, w / 2, h / 2, False)
        self._grow(x - w / 2, y - h / 2, x + w / 2, y + h / 2)

    def circle(self, name: str, x: float, y: float, text: str = "+", *, kind: str = "sum", r: float = 0.22) -> None:
        """A small circle, e.g. a sum node."""
        from matplotlib.patches import Circle

        self.ax.add_patch(Circle((x, y), r, facecolor=COLOURS.get(kind, kind), edgecolor="#333333", zorder=2))
        self.ax.text(x, y, text, ha="center", va="center", fontsize=self.fontsize + 2, zorder=3)
        self.nodes[name] = _Node(x, y, r, r, True)
        self._grow(x - r, y - r, x + r, y + r)

    def label(self, x: float, y: float, text: str, *, fontsize: float | None = None, **kwargs) -> None:
        """Free text centred at (x, y)."""
        self.ax.text(x, y, text, ha="center", va="center", fontsize=fontsize or self.fontsize - 1, zorder=3, **kwargs)
        self._grow(x - 0.3, y - 0.2, x + 0.3, y + 0.2)

    def arrow(self, a: str, b: str, *, via: Sequence[tuple[float, float]] = (), text: str | None = None) -> None:
        """An arrow from node ``a`` to node ``b``, optionally through waypoints ``via``.

        ``text`` is written above the middle of the longest segment.
        """
        from matplotlib.patches import FancyArrowPatch

        na, nb = self.nodes[a], self.nodes[b]
        pts = [(na.x, na.y), *via, (nb.x, nb.y)]
        pts = [na.border(*pts[1]), *via, nb.border(*pts[-2])]
        for vx, vy in via:
            self._grow(vx, vy, vx, vy)
        for (x0, y0), (x1, y1) in zip(pts[:-2], pts[1:-1]):
            self.ax.plot([x0, x1], [y0, y1], color="#333333", linewidth=1.1, linestyle="-", zorder=1)
        self.ax.add_patch(FancyArrowPatch(pts[-2], pts[-1], arrowstyle="-|>", mutation_scale=11, color="#333333",
                                          linewidth=1.1, linestyle="-", shrinkA=0, shrinkB=0, zorder=1))
        if text:
            (x0, y0), (x1, y1) = max(zip(pts[:-1], pts[1:]), key=lambda s: math.dist(*s))
            self.ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.08, text, ha="center", va="bottom",
                         fontsize=self.fontsize - 1, color="#444444", zorder=3)
            self._grow((x0 + x1) / 2, (y0 + y1) / 2, (x0 + x1) / 2, (y0 + y1) / 2 + 0.35)

    def finish(self, margin: float = 0.25):
        """Fit the axes to what was drawn, hide them, and return the figure."""
        x0, y0, x1, y1 = self._extent
        self.ax.set_xlim(x0 - margin, x1 + margin)
        self.ax.set_ylim(y0 - margin, y1 + margin)
        self.ax.set_aspect("equal")
        self.ax.set_axis_off()
        return self.fig


# ---------------------------------------------------------------------------------------------------- Fig. 3
def draw_rcu(ax=None, *, title: str | None = "Residual Conv Unit (RCU), Fig. 3(b)"):
    """``out = x + conv2(relu(conv1(relu(x))))``: ReLU first, identity shortcut."""
    d = Diagram(ax, figsize=(9, 2.3), title=title)
    d.box("x", 0, 0, "x", w=0.8)
    d.box("relu1", 1.7, 0, "ReLU", kind="relu", w=1.1)
    d.box("conv1", 3.3, 0, "3x3 conv\n(bias)", kind="conv")
    d.box("relu2", 4.9, 0, "ReLU", kind="relu", w=1.1)
    d.box("conv2", 6.5, 0, "3x3 conv", kind="conv")
    d.circle("sum", 8.0, 0)
    d.box("out", 9.1, 0, "out", w=0.8)
    for a, b in [("x", "relu1"), ("relu1", "conv1"), ("conv1", "relu2"), ("relu2", "conv2"), ("conv2", "sum"),
                 ("sum", "out")]:
        d.arrow(a, b)
    d.arrow("x", "sum", via=[(0, 0.85), (8.0, 0.85)], text="identity shortcut: x itself, not relu(x)")
    return d.finish()


def draw_fusion(ax=None, *, paths: Sequence[tuple[str, int]] = (("1/32", 512), ("1/16", 256)),
                title: str | None = "Multi-resolution fusion, Fig. 3(c)"):
    """Each path: conv to the smallest width, upsample to the largest resolution; then sum.

    ``paths`` lists (stride, channels) per input path, e.g. ``[("1/32", 512), ("1/16", 256)]``.
    """
    width = min(c for _, c in paths)
    strides = [float(s.split("/")[1]) for s, _ in paths]
    finest = min(strides)
    n = len(paths)
    d = Diagram(ax, figsize=(8.5, 0.9 + 1.0 * n), title=title)
    d.circle("sum", 6.3, 0)
    for i, ((stride, channels), s) in enumerate(zip(paths, strides)):
        y = ((n - 1) / 2 - i) * 1.1
        d.box(f"in{i}", 0, y, f"{stride}  x{channels}", w=1.5)
        d.box(f"conv{i}", 2.1, y, f"3x3 conv {channels}->{width}", kind="conv", w=2.1)
        if s != finest:
            d.box(f"up{i}", 4.4, y, f"upsample x{s / finest:g}\n(bilinear)", kind="up", w=1.7, h=0.75)
        else:
            d.box(f"up{i}", 4.4, y, "(already at\nthe finest size)", w=1.7, h=0.75, dashed=True, fontsize=7.5)
        d.arrow(f"conv{i}", f"up{i}")
        d.arrow(f"in{i}", f"conv{i}")
        d.arrow(f"up{i}", "sum")
    d.box("out", 7.7, 0, f"1/{finest:g}  x{width}", w=1.5)
    d.arrow("sum", "out")
    return d.finish()


def draw_crp(ax=None, *, num_blocks: int = 4, chained: bool = True, title: str | None = None):
    """Chained residual pooling with ``num_blocks`` pool+conv blocks.

    ``chained=False`` draws the port bug "parallel pools": every block pools the CRP's input, so the receptive
    field does not grow along the chain.
    """
    if title is None:
        title = (f"Chained residual pooling, {num_blocks} blocks (Fig. 3(d))" if chained
                 else f"NOT RefineNet: {num_blocks} parallel pools (a port bug)")
    figsize = (2.6 + 2.1 * num_blocks, 2.6) if chained else (7, 1.2 + 0.75 * num_blocks)
    d = Diagram(ax, figsize=figsize, title=title)
    d.box("x", 0, 0, "x", w=0.8)
    d.box("relu", 1.4, 0, "ReLU", kind="relu", w=1.1)
    d.arrow("x", "relu")
    if chained:
        prev, prev_sum, via = "relu", "relu", [(1.4, -1.3)]  # the running sum starts with relu(x)
        for i in range(num_blocks):
            x0 = 2.9 + 2.9 * i
            d.box(f"a{i}", x0, 0, "5x5\nmax-pool", kind="pool", w=1.25, fontsize=8)
            d.box(f"b{i}", x0 + 1.35, 0, "3x3 conv", kind="conv", w=1.25, fontsize=8)
            d.arrow(prev, f"a{i}")
            d.arrow(f"a{i}", f"b{i}")
            d.circle(f"sum{i}", x0 + 1.35, -1.3)
            d.arrow(f"b{i}", f"sum{i}")
            d.arrow(prev_sum, f"sum{i}", via=via)
            prev, prev_sum, via = f"b{i}", f"sum{i}", []
        d.box("out", 2.9 + 2.9 * num_blocks + 0.2, -1.3, "out", w=0.8)
        d.arrow(prev_sum, "out", via=via)
        d.label(2.9 + 2.9 * (num_blocks - 1) / 2 + 0.7, 0.6,
                "each block takes the previous block's output: a chain", fontsize=8, color="#555555")
        return d.finish()
    d.circle("sum", 6.3, 0)
    ys = [((num_blocks - 1) / 2 - i) * 0.85 for i in range(num_blocks)]
    for i, y in enumerate(ys):
        d.box(f"a{i}", 3.2, y, "5x5\nmax-pool", kind="pool", w=1.25, h=0.55, fontsize=8)
        d.box(f"b{i}", 4.6, y, "3x3 conv", kind="conv", w=1.25, h=0.55, fontsize=8)
        d.arrow("relu", f"a{i}", via=[(2.2, y)])
        d.arrow(f"a{i}", f"b{i}")
        d.arrow(f"b{i}", "sum")
    top = (ys[0] if ys else 0) + 0.6
    d.arrow("relu", "sum", via=[(1.4, top), (6.3, top)])
    d.box("out", 7.4, 0, "out", w=0.8)
    d.arrow("sum", "out")
    return d.finish()


def draw_refinenet_block(ax=None, *, paths: Sequence[tuple[str, int | str]] = (("RefineNet-4", 512), ("1/16", 1024)),
                         widths: Sequence[int | None] = (None, 256), title: str | None = "A RefineNet block, Fig. 3(a)"):
    """Adaptive convolutions per path (2 RCUs) -> fusion -> chained residual pooling (4 blocks) -> output RCUs (3),
    as in the official code.

    ``widths[i] is None`` marks a path that enters as it is (the previous block's output in the official code).
    """
    n = len(paths)
    d = Diagram(ax, figsize=(11, 1.0 + 1.0 * max(n, 1)), title=title)
    sizes = [w if w is not None else c for (_, c), w in zip(paths, widths)]
    for i, ((name, channels), w) in enumerate(zip(paths, widths)):
        y = ((n - 1) / 2 - i) * 1.05
        d.box(f"in{i}", 0, y, f"{name}\nx{channels}", w=1.5, h=0.8, kind="block" if "RefineNet" in name else "encoder")
        if w is None:
            d.box(f"ad{i}", 2.6, y, "(enters as it is)", w=2.6, h=0.7, dashed=True, fontsize=8)
        else:
            d.box(f"ad{i}", 2.6, y, f"3x3 conv ->{w}, RCU x2", kind="rcu", w=2.6, h=0.7, fontsize=8)
        d.arrow(f"in{i}", f"ad{i}")
    prev = "ad0"
    if n > 1:
        d.box("fusion", 5.3, 0, "multi-resolution\nfusion", kind="fusion", w=1.7, h=max(1.0 * n, 1.0))
        for i in range(n):
            d.arrow(f"ad{i}", "fusion")
        prev = "fusion"
    d.box("crp", 7.4, 0, "chained\nresidual pooling\n(4 blocks)", kind="crp", w=1.9, h=1.0)
    d.arrow(prev, "crp")
    d.box("outconv", 9.4, 0, "RCU x3", kind="rcu", w=1.3, h=0.7)
    d.arrow("crp", "outconv")
    d.box("out", 11.0, 0, f"out\nx{min(s for s in sizes if isinstance(s, int))}", w=1.0, h=0.8)
    d.arrow("outconv", "out")
    if n == 1:
        d.label(5.3, 0.45, "(one path:\nno fusion)", fontsize=8, color="#555555")
    return d.finish()


# ---------------------------------------------------------------------------------------------------- Fig. 2(c), Fig. 7
def draw_cascade(cascade: str = "4-cascaded", ax=None):
    """The ResNet encoder(s) and the RefineNet blocks of a cascade (paper Fig. 2(c) and Fig. 7).

    Stages are drawn from 1/4 (top) to 1/32 (bottom) with ResNet-50/101/152's widths; each RefineNet block sits
    at the height of the paths it takes and receives the previous block's output. ``cascade`` is a key of
    :data:`refinenet_edu.nn.config.CASCADES`; its ``(scale, stage)`` paths are drawn as arrows, so a 2-scale
    cascade shows which stage of which scale (images at 1.2x and 0.6x) enters which block.
    """
    from refinenet_edu.nn.config import CASCADES

    if cascade not in CASCADES:
        raise ValueError(f"cascade={cascade!r}: expected one of {list(CASCADES)}")
    groups = CASCADES[cascade]
    two_scale = any(scale > 0 for paths in groups for scale, _ in paths)
    d = Diagram(ax, figsize=(6.5 if two_scale else 5.2, 4.4), title=cascade, fontsize=8.5)
    row = {s: (4 - s) * 1.2 for s in (1, 2, 3, 4)}  # stage 1 (1/4) on top
    bx = 2.65  # the blocks' column: one encoder on its left; for 2-scale, the second scale's on its right
    encoders = [("x1.2", 0.0), ("x0.6", 2 * bx)] if two_scale else [("", 0.0)]
    for tag, x in encoders:
        d.box(f"img{tag}", x, 4.9, f"image {tag}".strip(), w=1.3, h=0.5)
        prev = f"img{tag}"
        for s in (1, 2, 3, 4):
            d.box(f"s{s}{tag}", x, row[s], f"ResNet {s}\n1/{2 ** (s + 1)} x{256 * 2 ** (s - 1)}", kind="encoder",
                  w=1.3, h=0.72, fontsize=7.5)
            d.arrow(prev, f"s{s}{tag}")
            prev = f"s{s}{tag}"
    if two_scale:
        d.label(bx, -0.75, "two independent ResNets (no shared weights)", fontsize=7.5, color="#555555")
    prev_block = None
    for i, paths in enumerate(groups):
        name = f"RefineNet-{len(groups) - i}"
        rows = [row[stage] for scale, stage in paths if scale == 0]
        d.box(name, bx, sum(rows) / len(rows), name, kind="block", w=1.45, h=0.72 + max(rows) - min(rows))
        for scale, stage in paths:
            d.arrow(f"s{stage}{encoders[scale][0]}", name)
        if prev_block is not None:
            d.arrow(prev_block, name)
        prev_block = name
    d.box("cls", bx, 4.9, "classifier\n-> scores at 1/4", kind="classifier", w=1.7, h=0.55, fontsize=7.5)
    d.arrow(prev_block, "cls")
    return d.finish()


# ---------------------------------------------------------------------------------------------------- the stored figures
def _fusion_figure():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.5, 5.2))
    axes = fig.subplots(2, 1, gridspec_kw={"height_ratios": [2, 3]})
    draw_fusion(axes[0], title="RefineNet-3 of the official network: two paths")
    draw_fusion(axes[1], paths=[("1/16", 256), ("1/8", 256), ("1/4", 256)],
                title="RefineNet-1 of a 2-cascaded network: RefineNet-2's output and two encoder paths")
    return fig


def _crp_figure():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5.4))
    axes = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1, 1.25]})
    draw_crp(axes[0], num_blocks=4)
    draw_crp(axes[1], num_blocks=4, chained=False)
    return fig


def _block_figure():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.6))
    axes = fig.subplots(2, 1)
    draw_refinenet_block(axes[0], paths=[("1/32", 2048)], widths=[512], title="RefineNet-4: one path, no fusion")
    draw_refinenet_block(axes[1], title="RefineNet-3: RefineNet-4's output and the 1/16 path")
    return fig


def _cascades_figure():
    from matplotlib.figure import Figure

    from refinenet_edu.nn.config import CASCADES

    fig = Figure(figsize=(11, 9.5))
    for ax, name in zip(fig.subplots(2, 2).flat, CASCADES):
        draw_cascade(name, ax)
    return fig


#: every figure a notebook shows: its file name in ``notebooks/figures/`` (without ``.png``) -> (its title, stored in
#: the file; what draws it)
FIGURES: dict[str, tuple[str, Callable]] = {
    "rcu": ("Residual Conv Unit (RCU), Fig. 3(b)", draw_rcu),  # notebook 01
    "fusion": ("Multi-resolution fusion, Fig. 3(c), in two blocks", _fusion_figure),  # notebook 02
    "crp": ("Chained residual pooling with 4 blocks, Fig. 3(d), and the parallel pools of a port bug",
            _crp_figure),  # notebook 03
    "refinenet_block": ("RefineNet-4 and RefineNet-3 of the 4-cascaded network, Fig. 3(a)", _block_figure),  # 04
    "cascades": ("The four cascades, Fig. 2(c) and Fig. 7(a)-(c)", _cascades_figure),  # notebook 05
}

#: where the notebooks find them
FIGURES_DIR = Path(__file__).resolve().parents[1] / "notebooks" / "figures"

#: what makes a PNG file one of these figures (its ``Source`` text chunk): only such files are ever replaced
SOURCE = "tooling/figures.py (./course figures)"

#: the resolution of the files: the diagrams' smallest text (7.5 pt) is about 10 pixels high, the widest figure
#: about 1,100 pixels wide, and a file 20-120 kB
DPI = 100


def versions() -> str:
    """The software whose version decides the bytes of a figure, as the files record it (their ``Comment``)."""
    import matplotlib
    from matplotlib import ft2font

    return f"drawn with matplotlib {matplotlib.__version__} and FreeType {ft2font.__freetype_version__}"


def render_figure(name: str) -> bytes:
    """The PNG file of the figure ``name`` (a key of :data:`FIGURES`), the same bytes on every run with the same
    matplotlib and FreeType; its text chunks hold its ``Title``, ``Source`` (:data:`SOURCE`) and ``Comment``
    (:func:`versions`)."""
    import matplotlib

    if name not in FIGURES:
        raise ValueError(f"no figure {name!r}: expected one of {list(FIGURES)}")
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        title, draw = FIGURES[name]
        fig = draw()
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight",
                    metadata={"Software": None, "Title": title, "Source": SOURCE, "Comment": versions()})
    return buffer.getvalue()


def _is_ours(path: Path) -> bool:
    """Whether ``path`` is a file this module wrote (and so may be replaced): a PNG with its ``Source`` chunk."""
    if path.is_symlink() or not path.is_file():
        return False
    data = path.read_bytes()
    return data.startswith(b"\x89PNG\r\n\x1a\n") and b"tEXtSource\x00" + SOURCE.encode() in data


def write_figures(folder: str | os.PathLike = FIGURES_DIR, names: Sequence[str] | None = None) -> list[Path]:
    """Draw the figures ``names`` (default: all of :data:`FIGURES`) into ``folder`` as ``<name>.png``.

    Every figure is drawn before anything is written, and each file is written atomically
    (:func:`refinenet_edu.files.atomic_write`). A file that is already there is replaced only if this module wrote
    it; anything else in ``folder`` is left as it is. Returns the files whose bytes changed.
    """
    folder = Path(folder)
    names = list(FIGURES) if names is None else list(names)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder}: exists and is not a folder")
    pngs = {name: render_figure(name) for name in names}
    for name in pngs:
        path = folder / f"{name}.png"
        if (path.exists() or path.is_symlink()) and not _is_ours(path):
            raise ValueError(f"{path}: exists and was not written by `./course figures`; it is left as it is: "
                             "move it away or rename it")
    changed = []
    for name, data in pngs.items():
        path = folder / f"{name}.png"
        if not path.is_file() or path.read_bytes() != data:
            changed.append(atomic_write_bytes(path, data))
    return changed
