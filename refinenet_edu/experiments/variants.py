"""The variants of an ablation: what differs from a preset, as data with a name.

A variant is named by what changes from the preset, e.g. ``4-cascaded-crp4`` (the course model), ``single-crp4`` (paper
Fig. 7(a)), ``4-cascaded-crp0`` (no chained residual pooling, Table 2), ``4-cascaded-crp4-rcu3`` (3 output RCUs per
block) or ``4-cascaded-crp4-lw`` (light-weight decoder: 1x1 convolutions, no RCUs; Nekrasov et al., BMVC 2018).
:func:`parse_variant` reads a name, :func:`make_grid` builds the grids the paper's ablations use
(Sec. 4.3, Tables 2 and 9).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass
from typing import Any, Sequence

#: What the light-weight decoder changes (Nekrasov et al., BMVC 2018): 1x1
#: decoder convolutions and no RCUs (see ``PRESETS["light-weight"]``).
LIGHT_WEIGHT_OVERRIDES = dict(kernel_size=1, adaptive_rcus=0, output_rcus=0)


@dataclass(frozen=True)
class Variant:
    """One architecture in the grid: what differs from the preset.

    ``output_rcus=None`` keeps the preset's number of output RCUs.
    """

    cascade: str = "4-cascaded"
    crp_blocks: int = 4
    output_rcus: int | None = None
    light_weight: bool = False

    def __post_init__(self) -> None:
        from refinenet_edu.nn.config import CASCADES

        if self.cascade not in CASCADES:
            raise ValueError(f"cascade {self.cascade!r}: expected one of {list(CASCADES)}")
        if not isinstance(self.crp_blocks, int) or self.crp_blocks < 0:
            raise ValueError(f"crp_blocks={self.crp_blocks!r}: must be an integer >= 0")
        if self.output_rcus is not None and (not isinstance(self.output_rcus, int) or self.output_rcus < 0):
            raise ValueError(f"output_rcus={self.output_rcus!r}: must be an integer >= 0")
        if self.light_weight and self.output_rcus is not None:
            raise ValueError("a light-weight variant has no RCUs: do not give output_rcus with it")

    @property
    def name(self) -> str:
        """``CASCADE-crpN[-rcuM][-lw]``, what :func:`parse_variant` reads."""
        rcus = "" if self.output_rcus is None else f"-rcu{self.output_rcus}"
        return f"{self.cascade}-crp{self.crp_blocks}{rcus}{'-lw' if self.light_weight else ''}"

    @property
    def label(self) -> str:
        """A readable label for tables and charts."""
        text = f"{self.cascade}, CRP {self.crp_blocks}" if self.crp_blocks else f"{self.cascade}, no CRP"
        if self.output_rcus is not None:
            text += f", {self.output_rcus} output RCU" + ("s" if self.output_rcus != 1 else "")
        if self.light_weight:
            text += ", light-weight"
        return text

    def overrides(self) -> dict[str, Any]:
        """Keyword overrides of :func:`~refinenet_edu.nn.config.make_config`."""
        out: dict[str, Any] = {"cascade": self.cascade, "crp_blocks": self.crp_blocks}
        if self.output_rcus is not None:
            out["output_rcus"] = self.output_rcus
        if self.light_weight:
            out.update(LIGHT_WEIGHT_OVERRIDES)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, **dataclasses.asdict(self)}


_NAME_RE = re.compile(r"^(?P<cascade>.+?)-crp(?P<crp>\d+)(?:-rcu(?P<rcu>\d+))?(?P<lw>-lw)?$")


def parse_variant(name: str | Variant) -> Variant:
    """The :class:`Variant` called ``name`` (e.g. ``"single-crp4"``); ``ValueError`` if malformed."""
    if isinstance(name, Variant):
        return name
    m = _NAME_RE.match(str(name).strip())
    if not m:
        raise ValueError(
            f"variant {name!r}: expected CASCADE-crpN[-rcuM][-lw], e.g. '4-cascaded-crp4', 'single-crp4', "
            "'4-cascaded-crp0', '4-cascaded-crp4-rcu3', '4-cascaded-crp4-lw'"
        )
    rcus = None if m["rcu"] is None else int(m["rcu"])
    try:
        return Variant(m["cascade"], int(m["crp"]), output_rcus=rcus, light_weight=bool(m["lw"]))
    except ValueError as err:
        raise ValueError(f"variant {name!r}: {err}") from None


#: The reference variant: the course model as it is (4-cascaded, 4 CRP blocks).
REFERENCE = Variant()


def make_grid(
    cascades: Sequence[str] | None = None,
    crp_blocks: Sequence[int] | None = None,
    output_rcus: Sequence[int] | None = None,
    light_weight: bool = False,
    *,
    grid: str = "oat",
    reference: Variant = REFERENCE,
) -> list[Variant]:
    """The variants to train.

    ``grid="oat"`` (one factor at a time, as the paper's ablations): the ``reference`` plus, for each listed value of
    one factor, the reference with only that factor changed. ``grid="full"``: every combination of the listed cascades,
    CRP blocks and output RCUs. With nothing listed the default is every cascade at the reference's CRP, and
    CRP 0 / 2 / 4 on the reference cascade (:data:`DEFAULT_GRID`). ``light_weight`` adds the light-weight decoder of the reference
    (``oat``) or of every cascade x CRP (``full``).
    """
    from refinenet_edu.nn.config import CASCADES

    if grid not in ("oat", "full"):
        raise ValueError(f"grid={grid!r}: expected 'oat' (one factor at a time) or 'full' (all combinations)")
    if cascades is None and crp_blocks is None and output_rcus is None and not light_weight:
        cascades, crp_blocks = list(CASCADES), [0, 2, 4]
    if grid == "oat":
        variants = [reference]
        variants += [dataclasses.replace(reference, cascade=c) for c in cascades or []]
        variants += [dataclasses.replace(reference, crp_blocks=int(k)) for k in crp_blocks or []]
        variants += [dataclasses.replace(reference, output_rcus=int(r)) for r in output_rcus or []]
        if light_weight:
            variants.append(dataclasses.replace(reference, output_rcus=None, light_weight=True))
    else:
        cs = list(cascades) if cascades else [reference.cascade]
        ks = [int(k) for k in crp_blocks] if crp_blocks else [reference.crp_blocks]
        rs = [int(r) for r in output_rcus] if output_rcus else [reference.output_rcus]
        variants = [Variant(c, k, r) for c, k, r in itertools.product(cs, ks, rs)]
        if light_weight:
            variants += [Variant(c, k, None, True) for c, k in itertools.product(cs, ks)]
    return list({v.name: v for v in variants}.values())  # each once, in order


#: The default grid: the four cascades of the paper (Fig. 2(c), Fig. 7) at 4 CRP blocks,
#: and 0 / 2 / 4 CRP blocks on the 4-cascade.
DEFAULT_GRID: list[Variant] = make_grid()
