"""Single blood samples with per-event truth: ``pbmc_sample`` and its panel, hierarchy,
phenotypes and truth files (the package docstring describes the model)."""

from __future__ import annotations

import datetime as _dt
import gzip
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import ImmunomonError
from ..fcs.sample import Channel, Sample, Spillover

RANGE = 262144.0          # $PnR of an 18-bit digital instrument
TIMESTEP = 0.01           # seconds per unit of the Time channel
INSTRUMENT = "LSRFortessa"
BEADS_KEYWORD = "BEADS PER TEST"         # counting beads in one tube
BLOOD_VOLUME_KEYWORD = "SAMPLE VOLUME UL"  # blood stained in that tube (uL)
TUBE_VOLUME_UL = 500.0    # blood + lysing solution; sets the bead concentration for $VOL

# -- the panel -----------------------------------------------------------------
# marker ($PnS) -> detector ($PnN), in the instrument's parameter order.
PANEL: dict[str, str] = {
    "CD127": "FITC-A",
    "CD25": "PE-A",
    "CD123": "PE-CF594-A",
    "HLA-DR": "PerCP-Cy5-5-A",
    "CD56": "PE-Cy7-A",
    "FoxP3": "APC-A",
    "CD11c": "APC-R700-A",
    "CD8": "APC-H7-A",
    "CD4": "BV421-A",
    "CD45": "BV510-A",
    "CD16": "BV605-A",
    "CD14": "BV650-A",
    "CD19": "BV711-A",
    "CD3": "BV786-A",
}
MARKERS: tuple[str, ...] = tuple(PANEL)
DETECTORS: tuple[str, ...] = tuple(PANEL.values())
SCATTER: tuple[str, ...] = ("FSC-A", "FSC-H", "SSC-A")
CHANNELS: tuple[str, ...] = SCATTER + DETECTORS + ("Time",)

# Per detector: laser (nm), PMT voltage, lymphocyte autofluorescence (signal
# units), electronic noise SD, and signal units per photoelectron (photon
# noise variance = that x signal).  Violet detectors see the most
# autofluorescence; red detectors have the noisiest photon statistics.
_DETECTOR_PROPS: dict[str, tuple[int, int, float, float, float]] = {
    "FITC-A":        (488, 480, 110.0, 30.0, 3.0),
    "PE-A":          (488, 450, 70.0, 25.0, 2.5),
    "PE-CF594-A":    (488, 520, 45.0, 25.0, 3.0),
    "PerCP-Cy5-5-A": (488, 560, 40.0, 30.0, 4.0),
    "PE-Cy7-A":      (488, 600, 25.0, 30.0, 4.0),
    "APC-A":         (640, 560, 15.0, 35.0, 5.0),
    "APC-R700-A":    (640, 590, 15.0, 35.0, 5.5),
    "APC-H7-A":      (640, 580, 15.0, 35.0, 6.0),
    "BV421-A":       (405, 420, 130.0, 25.0, 2.5),
    "BV510-A":       (405, 440, 160.0, 30.0, 3.0),
    "BV605-A":       (405, 480, 60.0, 30.0, 3.5),
    "BV650-A":       (405, 500, 50.0, 30.0, 3.5),
    "BV711-A":       (405, 520, 40.0, 30.0, 4.0),
    "BV786-A":       (405, 540, 30.0, 35.0, 4.5),
}

# Spillover of a 3-laser instrument with the PE tandems excited at 488 nm:
# (dye's primary detector, receiving detector) -> fraction.  Not symmetric;
# the strong ones are FITC->PE, PE->PE-CF594, PE-CF594->PerCP-Cy5.5,
# PerCP-Cy5.5->APC-R700 (cross-laser), APC->APC-R700 and the BV605->BV650->BV711
# chain.
_SPILL: dict[tuple[str, str], float] = {
    ("FITC-A", "PE-A"): 0.22, ("FITC-A", "PE-CF594-A"): 0.07,
    ("FITC-A", "PerCP-Cy5-5-A"): 0.025, ("FITC-A", "PE-Cy7-A"): 0.005,
    ("FITC-A", "BV510-A"): 0.02,
    ("PE-A", "FITC-A"): 0.012, ("PE-A", "PE-CF594-A"): 0.48,
    ("PE-A", "PerCP-Cy5-5-A"): 0.12, ("PE-A", "PE-Cy7-A"): 0.03,
    ("PE-A", "BV605-A"): 0.02, ("PE-A", "APC-A"): 0.005,
    ("PE-CF594-A", "PE-A"): 0.18, ("PE-CF594-A", "PerCP-Cy5-5-A"): 0.33,
    ("PE-CF594-A", "PE-Cy7-A"): 0.06, ("PE-CF594-A", "BV605-A"): 0.04,
    ("PE-CF594-A", "APC-A"): 0.02, ("PE-CF594-A", "BV650-A"): 0.01,
    ("PerCP-Cy5-5-A", "PE-CF594-A"): 0.02, ("PerCP-Cy5-5-A", "PE-Cy7-A"): 0.22,
    ("PerCP-Cy5-5-A", "APC-A"): 0.03, ("PerCP-Cy5-5-A", "APC-R700-A"): 0.25,
    ("PerCP-Cy5-5-A", "APC-H7-A"): 0.05, ("PerCP-Cy5-5-A", "BV711-A"): 0.06,
    ("PerCP-Cy5-5-A", "BV786-A"): 0.02,
    ("PE-Cy7-A", "PerCP-Cy5-5-A"): 0.02, ("PE-Cy7-A", "PE-CF594-A"): 0.01,
    ("PE-Cy7-A", "APC-H7-A"): 0.08, ("PE-Cy7-A", "APC-R700-A"): 0.01,
    ("PE-Cy7-A", "BV786-A"): 0.03,
    ("APC-A", "APC-R700-A"): 0.38, ("APC-A", "APC-H7-A"): 0.07,
    ("APC-A", "BV650-A"): 0.03, ("APC-A", "BV711-A"): 0.02,
    ("APC-A", "PerCP-Cy5-5-A"): 0.01, ("APC-A", "PE-Cy7-A"): 0.002,
    ("APC-R700-A", "APC-A"): 0.05, ("APC-R700-A", "APC-H7-A"): 0.20,
    ("APC-R700-A", "BV711-A"): 0.06, ("APC-R700-A", "BV786-A"): 0.02,
    ("APC-R700-A", "PerCP-Cy5-5-A"): 0.05, ("APC-R700-A", "PE-Cy7-A"): 0.01,
    ("APC-H7-A", "APC-R700-A"): 0.03, ("APC-H7-A", "APC-A"): 0.005,
    ("APC-H7-A", "PE-Cy7-A"): 0.02, ("APC-H7-A", "BV786-A"): 0.04,
    ("BV421-A", "BV510-A"): 0.14, ("BV421-A", "BV605-A"): 0.02,
    ("BV421-A", "BV650-A"): 0.01, ("BV421-A", "FITC-A"): 0.02,
    ("BV510-A", "BV421-A"): 0.005, ("BV510-A", "BV605-A"): 0.12,
    ("BV510-A", "BV650-A"): 0.05, ("BV510-A", "BV711-A"): 0.02,
    ("BV510-A", "BV786-A"): 0.01, ("BV510-A", "FITC-A"): 0.04,
    ("BV510-A", "PE-A"): 0.01,
    ("BV605-A", "BV650-A"): 0.27, ("BV605-A", "BV711-A"): 0.08,
    ("BV605-A", "BV786-A"): 0.02, ("BV605-A", "PE-CF594-A"): 0.06,
    ("BV605-A", "PE-A"): 0.02, ("BV605-A", "BV510-A"): 0.01,
    ("BV650-A", "BV711-A"): 0.30, ("BV650-A", "BV786-A"): 0.06,
    ("BV650-A", "APC-A"): 0.06, ("BV650-A", "BV605-A"): 0.02,
    ("BV650-A", "PerCP-Cy5-5-A"): 0.02,
    ("BV711-A", "BV786-A"): 0.18, ("BV711-A", "BV650-A"): 0.04,
    ("BV711-A", "APC-R700-A"): 0.07, ("BV711-A", "PerCP-Cy5-5-A"): 0.04,
    ("BV786-A", "BV711-A"): 0.03, ("BV786-A", "APC-H7-A"): 0.06,
    ("BV786-A", "PE-Cy7-A"): 0.02,
}


# -- the population hierarchy -----------------------------------------------------
# population -> parent (None: top level).  Leaves are the event labels.
HIERARCHY: dict[str, str | None] = {
    "Doublets": None,
    "Singlets": None,
    "Beads": "Singlets",
    "Debris": "Singlets",
    "Leukocytes": "Singlets",
    "Granulocytes": "Leukocytes",
    "Monocytes": "Leukocytes",
    "Basophils": "Leukocytes",
    "Lymphocytes": "Leukocytes",
    "Classical monocytes": "Monocytes",
    "CD16+ monocytes": "Monocytes",
    "T cells": "Lymphocytes",
    "B cells": "Lymphocytes",
    "NK cells": "Lymphocytes",
    "Dendritic cells": "Lymphocytes",
    "Other lymphocytes": "Lymphocytes",
    "CD4 T": "T cells",
    "CD8 T": "T cells",
    "DN T": "T cells",
    "Treg": "CD4 T",
    "Activated CD4 T": "CD4 T",
    "Resting CD4 T": "CD4 T",
    "Activated CD8 T": "CD8 T",
    "Resting CD8 T": "CD8 T",
    "CD56bright NK": "NK cells",
    "CD56dim NK": "NK cells",
    "mDC": "Dendritic cells",
    "pDC": "Dendritic cells",
}

# Unions that cut across the tree (gated as one population in practice).
GROUPS: dict[str, tuple[str, ...]] = {
    "Activated T": ("Activated CD4 T", "Activated CD8 T"),
}


def _children(pop: str | None, hierarchy: dict | None = None) -> tuple[str, ...]:
    hierarchy = HIERARCHY if hierarchy is None else hierarchy
    return tuple(p for p, parent in hierarchy.items() if parent == pop)


def _leaves_under(pop: str, hierarchy: dict | None = None) -> tuple[str, ...]:
    kids = _children(pop, hierarchy)
    if not kids:
        return (pop,)
    return tuple(leaf for k in kids for leaf in _leaves_under(k, hierarchy))


def _leaf_table(hierarchy: dict, groups: dict) -> dict[str, tuple[str, ...]]:
    """Population (or group) -> the leaves it is made of."""
    table = {p: _leaves_under(p, hierarchy) for p in hierarchy}
    table.update({g: tuple(members) for g, members in groups.items()})
    return table


LEAF_NAMES: tuple[str, ...] = tuple(p for p in HIERARCHY if not _children(p))
LEAVES: dict[str, tuple[str, ...]] = _leaf_table(HIERARCHY, GROUPS)

# Fractions of the parent, for blood a few months after reduced-intensity
# allogeneic transplant with an engrafted myeloid compartment: lymphopenic
# (~0.9e9/L lymphocytes), CD4:CD8 inverted, NK-rich with many CD56bright, few
# B cells, many HLA-DR+ T cells.  See docs/simulate.md for the sources.
DEFAULT_FREQUENCIES: dict[str, float] = {
    "Doublets": 0.03, "Singlets": 0.97,
    "Debris": 0.06, "Beads": 0.16, "Leukocytes": 0.78,
    "Granulocytes": 0.715, "Monocytes": 0.10, "Basophils": 0.005, "Lymphocytes": 0.18,
    "Classical monocytes": 0.85, "CD16+ monocytes": 0.15,
    "T cells": 0.55, "B cells": 0.06, "NK cells": 0.35, "Dendritic cells": 0.008,
    "Other lymphocytes": 0.032,
    "CD4 T": 0.35, "CD8 T": 0.58, "DN T": 0.07,
    "Treg": 0.08, "Activated CD4 T": 0.15, "Resting CD4 T": 0.77,
    "Activated CD8 T": 0.30, "Resting CD8 T": 0.70,
    "CD56bright NK": 0.25, "CD56dim NK": 0.75,
    "mDC": 0.6, "pDC": 0.4,
}

# -- phenotypes ---------------------------------------------------------------------
# leaf -> {marker: (median stain signal, log-SD)}; markers not listed are
# unstained (autofluorescence only).
_T_COMMON = {"CD45": (12000, 0.30), "CD3": (7000, 0.35), "HLA-DR": (60, 0.9)}
PHENOTYPES: dict[str, dict[str, tuple[float, float]]] = {
    "Resting CD4 T": {**_T_COMMON, "CD4": (10000, 0.30), "CD25": (300, 0.9),
                      "CD127": (1800, 0.50)},
    "Activated CD4 T": {**_T_COMMON, "CD3": (5000, 0.40), "CD4": (9000, 0.30),
                        "HLA-DR": (2000, 0.65), "CD25": (700, 0.8), "CD127": (1000, 0.6),
                        "FoxP3": (150, 0.8)},
    "Treg": {**_T_COMMON, "CD4": (9000, 0.30), "CD25": (2500, 0.50), "CD127": (250, 0.7),
             "FoxP3": (2200, 0.50), "HLA-DR": (150, 1.0)},
    # CD56 tail: CD56+ ("NK-like") T cells, common after transplant
    "Resting CD8 T": {**_T_COMMON, "CD8": (12000, 0.45), "CD127": (1400, 0.6),
                      "CD56": (150, 1.3)},
    "Activated CD8 T": {**_T_COMMON, "CD3": (5000, 0.40), "CD8": (12000, 0.45),
                        "HLA-DR": (2200, 0.65), "CD25": (180, 0.9), "CD127": (500, 0.9),
                        "CD56": (250, 1.3)},
    "DN T": {**_T_COMMON, "CD3": (9000, 0.35), "CD8": (200, 1.0), "CD127": (1400, 0.6)},
    "B cells": {"CD45": (10000, 0.30), "CD19": (5000, 0.40), "HLA-DR": (11000, 0.40),
                "CD11c": (250, 1.0), "CD25": (100, 0.9), "CD4": (60, 0.8)},
    "CD56bright NK": {"CD45": (9500, 0.30), "CD56": (18000, 0.40), "CD16": (400, 0.9),
                      "CD25": (300, 0.8), "CD127": (600, 0.7), "CD11c": (200, 0.9),
                      "HLA-DR": (200, 1.0)},
    "CD56dim NK": {"CD45": (9000, 0.30), "CD56": (3500, 0.50), "CD16": (8000, 0.50),
                   "CD8": (350, 1.3), "CD11c": (400, 0.9), "HLA-DR": (120, 1.0)},
    "mDC": {"CD45": (7000, 0.35), "HLA-DR": (10000, 0.45), "CD11c": (9000, 0.45),
            "CD123": (500, 0.7), "CD4": (900, 0.5), "CD14": (150, 0.9)},
    "pDC": {"CD45": (7000, 0.35), "HLA-DR": (4000, 0.45), "CD123": (12000, 0.40),
            "CD4": (1500, 0.5), "CD11c": (60, 0.9)},
    "Other lymphocytes": {"CD45": (8000, 0.35), "CD127": (1200, 0.7), "CD56": (100, 1.2)},
    "Basophils": {"CD45": (2500, 0.35), "CD123": (10000, 0.40), "CD25": (600, 0.6),
                  "CD11c": (600, 0.6), "HLA-DR": (60, 0.9)},
    "Classical monocytes": {"CD45": (6000, 0.30), "CD14": (22000, 0.40), "HLA-DR": (7000, 0.50),
                            "CD4": (1200, 0.45), "CD11c": (5000, 0.45), "CD16": (200, 0.8),
                            "CD123": (450, 0.6)},
    "CD16+ monocytes": {"CD45": (7000, 0.30), "CD14": (2500, 0.70), "CD16": (6000, 0.55),
                        "HLA-DR": (5000, 0.50), "CD4": (900, 0.45), "CD11c": (7000, 0.45),
                        "CD123": (300, 0.6)},
    "Granulocytes": {"CD45": (2500, 0.35), "CD16": (22000, 0.50), "CD14": (800, 0.55),
                     "CD11c": (1200, 0.55)},
    "Debris": {"CD45": (150, 1.3)},
}

# leaf -> (FSC-A median, FSC log-SD, SSC-A median, SSC log-SD, autofluorescence factor)
_SCATTER: dict[str, tuple[float, float, float, float, float]] = {
    "Resting CD4 T": (52000, 0.10, 13000, 0.22, 1.0),
    "Activated CD4 T": (60000, 0.12, 14000, 0.22, 1.1),
    "Treg": (52000, 0.10, 13000, 0.22, 1.0),
    "Resting CD8 T": (52000, 0.10, 13000, 0.22, 1.0),
    "Activated CD8 T": (60000, 0.12, 14500, 0.22, 1.1),
    "DN T": (52000, 0.10, 13000, 0.22, 1.0),
    "B cells": (50000, 0.10, 12000, 0.22, 1.0),
    "CD56bright NK": (58000, 0.10, 15000, 0.25, 1.2),
    "CD56dim NK": (56000, 0.10, 17000, 0.25, 1.2),
    "mDC": (64000, 0.12, 18000, 0.28, 1.8),
    "pDC": (60000, 0.12, 14000, 0.25, 1.5),
    "Other lymphocytes": (52000, 0.10, 13000, 0.22, 1.0),
    "Basophils": (58000, 0.10, 20000, 0.25, 2.0),
    "Classical monocytes": (95000, 0.12, 42000, 0.22, 2.5),
    "CD16+ monocytes": (85000, 0.12, 35000, 0.22, 2.5),
    "Granulocytes": (110000, 0.12, 120000, 0.22, 4.0),
    "Debris": (12000, 0.55, 6000, 0.90, 0.6),
    "Beads": (38000, 0.03, 85000, 0.04, 0.0),
}

# Counting beads: their own signal in every detector, tight (CV ~3%).
_BEAD_SIGNAL: dict[str, float] = {
    "FITC-A": 90000, "PE-A": 70000, "PE-CF594-A": 45000, "PerCP-Cy5-5-A": 50000,
    "PE-Cy7-A": 65000, "APC-A": 80000, "APC-R700-A": 45000, "APC-H7-A": 60000,
    "BV421-A": 90000, "BV510-A": 75000, "BV605-A": 95000, "BV650-A": 55000,
    "BV711-A": 50000, "BV786-A": 60000,
}

_FSC_THRESHOLD = 4000.0      # events below it are not recorded
_SCATTER_NOISE = 250.0       # electronic noise on scatter (signal units)
_SHARED = 0.25               # variance share of the per-cell factor across markers
_CLOG_RATE = 0.2             # event rate inside a clog, relative to outside
_CLOG_DEPTH = 0.4            # deepest intensity drop inside a clog
DEFAULT_CLOG = (0.6, 0.75)   # window used for clog=True (fractions of the acquisition time)


# -- designs: what a simulated tube is made of -------------------------------------------
@dataclass(frozen=True)
class ScatterShape:
    """How one population's scatter departs from a log-normal ellipse.

    Skews are skew-normal shape parameters of log FSC-A and log SSC-A (negative: a
    tail towards smaller or less granular cells). ``tail`` is the share of damaged
    cells (apoptotic, hurt by lysis or thawing): each is shrunk in FSC by up to
    ``tail_fsc`` and made grainier in SSC by up to ``tail_ssc``, by a uniform
    depth, so they trail off the cluster rather than forming a second one.
    """

    fsc_skew: float = 0.0
    ssc_skew: float = 0.0
    tail: float = 0.0
    tail_fsc: float = 0.6
    tail_ssc: float = 1.4


@dataclass(frozen=True)
class Pulse:
    """Forward-scatter pulses as Gaussians in time, for FSC-H and doublets.

    A cell's pulse SD combines the beam's (1) with its own size, which grows as
    the square root of its FSC-A: SD = sqrt(1 + size^2 x FSC-A / reference).
    The height is area / SD up to a constant set so that a cell of FSC-A
    ``reference`` has height/area ``ratio``: big cells (monocytes, granulocytes)
    sit a little below the lymphocytes' FSC-H/FSC-A line, debris above it.
    Two cells passing together are two pulses ``separation`` x U(0, 1) pulse SDs
    apart: their areas add, their height is the peak of the summed pulses, so
    overlaps give every ratio from a singlet's (complete overlap, invisible to
    any gate) to about half of it (two separate peaks in one event).
    """

    ratio: float = 0.87
    reference: float = 52000.0
    size: float = 0.5
    jitter: float = 0.02          # per-event relative noise of height/area
    separation: float = 3.0

    def sd(self, area: np.ndarray) -> np.ndarray:
        return np.sqrt(1.0 + self.size ** 2 * np.maximum(area, 0.0) / self.reference)

    def height(self, area: np.ndarray) -> np.ndarray:
        """Noise-free FSC-H of single particles of FSC-A ``area``."""
        return area * self.ratio * np.sqrt(1.0 + self.size ** 2) / self.sd(area)


@dataclass(frozen=True, eq=False)
class Design:
    """Everything a simulated tube depends on: instrument, panel, populations.

    ``panel`` maps markers ($PnS) to detectors ($PnN) in parameter order;
    ``detectors`` gives per detector (laser nm, voltage, autofluorescence of a
    lymphocyte, electronic noise SD, signal units per photoelectron);
    ``spill`` (primary detector, receiving detector) -> fraction. ``hierarchy``
    maps each population to its parent (leaves are the event labels; a
    top-level ``Doublets`` leaf makes doublets of ``doublet_source`` cells, a
    ``Beads`` leaf counting beads with ``bead_signal``); ``frequencies`` are
    fractions of the parent; ``phenotypes`` leaf -> {marker: (median stain,
    log-SD)}; ``scatter`` leaf -> (FSC-A median, log-SD, SSC-A median,
    log-SD, autofluorescence factor). ``shapes`` and ``pulse`` add skewed
    scatter, damaged-cell tails and pulse-shaped FSC-H and doublets; ``BLOOD``
    (``pbmc_sample``) leaves them out.
    """

    name: str
    panel: dict[str, str]
    detectors: dict[str, tuple[int, int, float, float, float]]
    spill: dict[tuple[str, str], float]
    hierarchy: dict[str, str | None]
    frequencies: dict[str, float]
    phenotypes: dict[str, dict[str, tuple[float, float]]]
    scatter: dict[str, tuple[float, float, float, float, float]]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    bead_signal: dict[str, float] = field(default_factory=dict)
    doublet_source: str = "Leukocytes"
    shapes: dict[str, ScatterShape] = field(default_factory=dict)
    pulse: Pulse | None = None
    autofluorescence_sd: float = 0.35
    range: float = RANGE
    fsc_threshold: float = _FSC_THRESHOLD
    instrument: str = INSTRUMENT
    serial: str = "R66034200114"
    source: str = "Peripheral blood"
    cells: str = "Lysed whole blood leukocytes"
    description: str = "Simulated post-transplant blood"
    file_stem: str = "pbmc"

    def __post_init__(self):
        def fail(message):
            raise ImmunomonError(f"simulation design {self.name!r}: {message}")

        detectors = set(self.panel.values())
        if len(detectors) != len(self.panel):
            fail("two markers share a detector")
        if missing := detectors - set(self.detectors):
            fail(f"no detector properties for {sorted(missing)}")
        if bad := {d for pair in self.spill for d in pair} - detectors:
            fail(f"spillover names detectors that are not in the panel: {sorted(bad)}")
        if bad := {p for p in self.hierarchy.values() if p is not None} - set(self.hierarchy):
            fail(f"parents {sorted(bad)} are not populations")
        if missing := set(self.hierarchy) - set(self.frequencies):
            fail(f"no frequency for {sorted(missing)}")
        cells = set(self.leaf_names) - {"Doublets"}
        if missing := cells - set(self.scatter):
            fail(f"no scatter for {sorted(missing)}")
        if bad := set(self.phenotypes) - cells:
            fail(f"phenotypes for populations that are not leaves: {sorted(bad)}")
        if bad := {m for table in self.phenotypes.values() for m in table} - set(self.panel):
            fail(f"phenotypes use markers that are not in the panel: {sorted(bad)}")
        if bad := {m for ms in self.groups.values() for m in ms} - set(self.leaf_names):
            fail(f"groups name populations that are not leaves: {sorted(bad)}")
        if "Beads" in cells and set(self.bead_signal) != detectors:
            fail("beads need a signal in every detector")
        if "Doublets" in self.leaf_names and self.doublet_source not in self.hierarchy:
            fail(f"doublet_source {self.doublet_source!r} is not a population")

    @cached_property
    def markers(self) -> tuple[str, ...]:
        return tuple(self.panel)

    @cached_property
    def detector_names(self) -> tuple[str, ...]:
        return tuple(self.panel.values())

    @cached_property
    def channels(self) -> tuple[str, ...]:
        return SCATTER + self.detector_names + ("Time",)

    @cached_property
    def leaf_names(self) -> tuple[str, ...]:
        return tuple(p for p in self.hierarchy if not _children(p, self.hierarchy))

    @cached_property
    def leaves(self) -> dict[str, tuple[str, ...]]:
        """Population or group -> its leaves."""
        return _leaf_table(self.hierarchy, self.groups)

    def children(self, population: str | None) -> tuple[str, ...]:
        return _children(population, self.hierarchy)

    def spillover_matrix(self) -> np.ndarray:
        """Rows: each dye's primary detector, in ``detector_names`` order."""
        index = {d: i for i, d in enumerate(self.detector_names)}
        m = np.eye(len(index))
        for (src, dst), value in self.spill.items():
            m[index[src], index[dst]] = value
        return m


BLOOD = Design(name="post-transplant blood", panel=PANEL, detectors=_DETECTOR_PROPS,
               spill=_SPILL, hierarchy=HIERARCHY, frequencies=DEFAULT_FREQUENCIES,
               phenotypes=PHENOTYPES, scatter=_SCATTER, groups=GROUPS,
               bead_signal=_BEAD_SIGNAL)


def _design(design: Design | None) -> Design:
    return BLOOD if design is None else design


# -- frequencies ----------------------------------------------------------------------
def resolve_frequencies(overrides: dict[str, float] | None = None, *,
                        beads: bool = True, design: Design | None = None) -> dict[str, float]:
    """Fraction of parent for every population, after applying ``overrides``.

    ``overrides`` maps a population to its fraction of its parent, or
    ``"pop/Ancestor"`` to its fraction of a named ancestor (e.g.
    ``{"pDC/Lymphocytes": 0.003}``).  Siblings that are not overridden are
    rescaled so that each parent's children still add up to 1.
    """
    design = _design(design)
    hierarchy = design.hierarchy
    overrides = dict(overrides or {})
    if not beads and "Beads" in hierarchy:
        overrides["Beads"] = 0.0
    plain = {k: v for k, v in overrides.items() if "/" not in k}
    relative = {k: v for k, v in overrides.items() if "/" in k}
    for key, value in overrides.items():
        pop = key.split("/", 1)[0]
        if pop not in hierarchy:
            raise ImmunomonError(f"frequencies: unknown population {pop!r}; known: "
                                 f"{', '.join(hierarchy)}")
        if not (isinstance(value, (int, float, np.floating)) and 0.0 <= value <= 1.0):
            raise ImmunomonError(f"frequencies[{key!r}] = {value!r}: give a fraction in [0, 1]")
    freqs = _apply_overrides(plain, design)
    # fractions of an ancestor, top-down so that deeper ones see their parents fixed
    for key in sorted(relative, key=lambda k: _depth(k.split("/", 1)[0], hierarchy)):
        pop, ancestor = key.split("/", 1)
        path = _path_between(pop, ancestor, hierarchy)
        scale = float(np.prod([freqs[p] for p in path[1:]]))   # ancestor -> parent of pop
        if scale <= 0:
            raise ImmunomonError(f"frequencies[{key!r}]: {ancestor} contains no "
                                 f"{hierarchy[pop]} events to put {pop} in")
        plain[pop] = relative[key] / scale
        if plain[pop] > 1.0 + 1e-12:
            raise ImmunomonError(
                f"frequencies[{key!r}] = {relative[key]} exceeds the share of {ancestor} "
                f"taken by {hierarchy[pop]} ({scale:.4g}); raise that first")
        freqs = _apply_overrides(plain, design)
    return freqs


def _depth(pop: str, hierarchy: dict) -> int:
    d = 0
    while hierarchy[pop] is not None:
        pop, d = hierarchy[pop], d + 1
    return d


def _path_between(pop: str, ancestor: str, hierarchy: dict) -> list[str]:
    """The chain from ``ancestor`` down to the parent of ``pop``: [ancestor, ..., parent]."""
    if ancestor not in hierarchy:
        raise ImmunomonError(f"frequencies: unknown ancestor {ancestor!r} in '{pop}/{ancestor}'")
    chain, p = [], hierarchy[pop]
    while p is not None and p != ancestor:
        chain.append(p)
        p = hierarchy[p]
    if p != ancestor:
        raise ImmunomonError(f"frequencies: {ancestor!r} is not an ancestor of {pop!r}")
    return [ancestor] + chain[::-1]


def _apply_overrides(plain: dict[str, float], design: Design) -> dict[str, float]:
    defaults = design.frequencies
    freqs = dict(defaults)
    for parent in [None, *design.hierarchy]:
        kids = design.children(parent)
        if not kids:
            continue
        fixed = {k: float(plain[k]) for k in kids if k in plain}
        if not fixed:
            continue
        free = [k for k in kids if k not in fixed]
        room = 1.0 - sum(fixed.values())
        free_total = sum(defaults[k] for k in free)
        if room < -1e-9 or (not free and abs(room) > 1e-6) or (free and free_total == 0 and room > 1e-9):
            raise ImmunomonError(
                f"frequencies for the children of {parent or 'the top level'} "
                f"({', '.join(kids)}) must add up to 1; the overrides give "
                f"{sum(fixed.values()):.4g}" + (f" with nothing left for {', '.join(free)}" if free else ""))
        freqs.update(fixed)
        for k in free:
            freqs[k] = max(room, 0.0) * defaults[k] / free_total
    return freqs


def absolute_frequencies(freqs: dict[str, float], design: Design | None = None
                         ) -> dict[str, float]:
    """Fraction of all events for every population, from fractions of parent."""
    hierarchy = _design(design).hierarchy
    out: dict[str, float] = {}
    for pop in hierarchy:
        value, p = 1.0, pop
        while p is not None:
            value *= freqs[p]
            p = hierarchy[p]
        out[pop] = value
    return out


# -- the result ------------------------------------------------------------------------
@dataclass(eq=False)
class SimulatedSample:
    """A simulated sample and its truth.

    ``labels[i]`` is the leaf population of event i, ``anomaly[i]`` whether it
    was acquired inside the clog window, and ``true_signal`` (float32, events x
    the design's detectors) the signal before spillover and noise, which
    compensation should recover. ``design`` is what it was simulated from and
    ``settings`` what a scenario drew for it (frequencies, shifts, rates).
    """

    sample: Sample
    codes: np.ndarray                 # index into design.leaf_names, per event
    anomaly: np.ndarray
    true_signal: np.ndarray
    frequencies: dict[str, float]     # fraction of parent actually used
    seed: int | None = None
    design: Design = field(default=BLOOD, repr=False)
    settings: dict = field(default_factory=dict, repr=False)
    labels: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        self.labels = np.asarray(self.design.leaf_names)[self.codes]

    def __repr__(self):
        clog = f", {int(self.anomaly.sum())} in a clog" if self.anomaly.any() else ""
        return (f"<SimulatedSample {self.design.name} seed={self.seed}: "
                f"{self.sample.n_events} events{clog}>")

    def mask(self, population: str) -> np.ndarray:
        """Truth membership of a population (any node of the hierarchy or a group name)."""
        return mask_for(self.codes, population, self.design)

    def counts(self) -> dict[str, int]:
        """Events per population, for every population and group."""
        leaf_names = self.design.leaf_names
        per_leaf = np.bincount(self.codes, minlength=len(leaf_names))
        index = {leaf: i for i, leaf in enumerate(leaf_names)}
        return {p: int(sum(per_leaf[index[leaf]] for leaf in leaves))
                for p, leaves in self.design.leaves.items()}

    def cells_per_ul(self, population: str) -> float:
        """True single-platform absolute count: events / bead events x beads per test / volume."""
        kw = self.sample.keywords
        if BEADS_KEYWORD not in kw:
            raise ImmunomonError("this sample was simulated without counting beads")
        beads = int(self.mask("Beads").sum())
        if beads == 0:
            raise ImmunomonError("no bead events in this sample")
        return (float(self.mask(population).sum()) / beads * float(kw[BEADS_KEYWORD])
                / float(kw[BLOOD_VOLUME_KEYWORD]))


def mask_for(codes: np.ndarray, population: str, design: Design | None = None) -> np.ndarray:
    """Boolean membership of ``population`` given per-event leaf codes."""
    design = _design(design)
    leaves = design.leaves
    if population not in leaves:
        raise ImmunomonError(f"unknown population {population!r}; known: {', '.join(leaves)}")
    wanted = [design.leaf_names.index(leaf) for leaf in leaves[population]]
    return np.isin(codes, wanted)


# -- generation -------------------------------------------------------------------------
def pbmc_sample(n_events: int = 50_000, seed: int | None = 0, *,
                batch_shift: float | dict[str, float] = 0.0,
                frequencies: dict[str, float] | None = None,
                clog: bool | tuple[float, float] = False,
                spillover: bool = True,
                beads: bool = True,
                event_rate: float = 600.0,
                beads_per_test: int = 50_000,
                sample_volume_ul: float = 50.0,
                start: _dt.datetime | None = None) -> SimulatedSample:
    """A simulated lysed-blood sample with counting beads and per-event truth.

    ``batch_shift``: fractional change of marker intensities, one number for
    all or ``{marker or detector: fraction}`` (0.3 = 30% brighter), as
    day-to-day instrument drift does.  ``frequencies``: overrides of
    ``DEFAULT_FREQUENCIES`` (see ``resolve_frequencies``).  ``clog``: True or a
    (start, stop) fraction of the acquisition time during which the event rate
    drops to a fifth and intensities sag.  ``spillover=False`` gives already
    pure signals and no matrix.  ``event_rate`` is events per second outside a
    clog.  Deterministic for a given ``seed``.
    """
    return generate(BLOOD, n_events, seed, batch_shift=batch_shift, frequencies=frequencies,
                    clog=clog, spillover=spillover, beads=beads, event_rate=event_rate,
                    beads_per_test=beads_per_test, sample_volume_ul=sample_volume_ul,
                    start=start)


def generate(design: Design, n_events: int = 50_000, seed: int | None = 0, *,
             batch_shift: float | dict[str, float] = 0.0,
             frequencies: dict[str, float] | None = None,
             clog: bool | tuple[float, float] = False,
             spillover: bool = True,
             beads: bool = True,
             event_rate: float = 600.0,
             beads_per_test: int = 50_000,
             sample_volume_ul: float = 50.0,
             start: _dt.datetime | None = None,
             drift: float = 0.0,
             settings: dict | None = None) -> SimulatedSample:
    """A simulated sample of any ``Design`` (``pbmc_sample`` is ``generate(BLOOD, ...)``).

    The options are ``pbmc_sample``'s, plus ``drift``: the fractional change of
    every fluorescence intensity from the first to the last event (detector
    gain or laser power wandering during a long acquisition). ``settings`` is
    stored on the result. Deterministic for a given ``seed``.
    """
    n = _check_count(n_events)
    window = _check_clog(clog)
    shift = _check_shift(batch_shift, design)
    if not event_rate > 0:
        raise ImmunomonError(f"event_rate must be positive, got {event_rate!r}")
    if not -1.0 < float(drift) < 1.0:
        raise ImmunomonError(f"drift must be a fraction between -1 and 1, got {drift!r}")
    rng = np.random.default_rng(seed)
    freqs = resolve_frequencies(frequencies, beads=beads, design=design)
    absolute = absolute_frequencies(freqs, design)
    leaf_names = design.leaf_names

    p = np.array([absolute[leaf] for leaf in leaf_names])
    codes = rng.choice(len(leaf_names), size=n, p=p / p.sum()).astype(np.uint8)

    fsc, ssc, ratio, true = _singlets(rng, codes, design)
    _add_doublets(rng, codes, absolute, fsc, ssc, ratio, true, design)

    seconds, phase = _arrival_times(rng, n, event_rate, window)
    anomaly = (phase >= 0) & (phase < 1) if window else np.zeros(n, dtype=bool)
    if window:
        sag = _clog_factor(rng, phase[anomaly])
        fsc[anomaly] *= sag
        ssc[anomaly] *= sag
        true[anomaly] *= sag[:, None]
    true *= shift[None, :]
    if drift:
        true *= (1.0 + float(drift) * seconds / max(float(seconds[-1]), 1e-12))[:, None]

    n_det = len(design.detector_names)
    matrix = design.spillover_matrix() if spillover else np.eye(n_det)
    events = np.empty((n, len(design.channels)), dtype=np.float32)
    _detect(rng, true, matrix, design, out=events[:, 3:-1])
    scatter = np.column_stack([fsc, fsc * ratio, ssc])
    scatter += rng.normal(0.0, _SCATTER_NOISE, scatter.shape)
    events[:, :3] = np.clip(scatter, 0.0, design.range - 1)
    time = np.floor(seconds / TIMESTEP)
    events[:, -1] = time

    spill = Spillover(design.detector_names, matrix) if spillover else None
    duration = float(seconds[-1])
    with_beads = beads and "Beads" in leaf_names
    bead_events = (int(np.count_nonzero(codes == leaf_names.index("Beads")))
                   if with_beads else 0)
    # long acquisitions need a wider Time range than the data scale
    time_range = max(design.range, float(2 ** int(np.ceil(np.log2(time[-1] + 2)))))
    channel_info = _channels(design, time_range)
    keywords = _keywords(design, channel_info, spill, n=n, seed=seed, start=start,
                         duration=duration, beads=with_beads, beads_per_test=beads_per_test,
                         sample_volume_ul=sample_volume_ul, bead_events=bead_events)
    sample = Sample(events=events, channel_info=channel_info, keywords=keywords,
                    version="3.1", spillover=spill)
    return SimulatedSample(sample=sample, codes=codes, anomaly=anomaly,
                           true_signal=true.astype(np.float32), frequencies=freqs, seed=seed,
                           design=design, settings=dict(settings or {}))


def _check_count(n_events) -> int:
    if isinstance(n_events, bool) or not isinstance(n_events, (int, np.integer)) or n_events < 1:
        raise ImmunomonError(f"n_events must be a positive integer, got {n_events!r}")
    return int(n_events)


def _check_clog(clog) -> tuple[float, float] | None:
    if clog is False or clog is None:
        return None
    if clog is True:
        return DEFAULT_CLOG
    try:
        a, b = (float(x) for x in clog)
    except (TypeError, ValueError):
        raise ImmunomonError(f"clog must be False, True or a (start, stop) pair, got {clog!r}") from None
    if not 0.0 <= a < b <= 1.0:
        raise ImmunomonError(f"clog window {clog!r} must satisfy 0 <= start < stop <= 1 "
                             "(fractions of the acquisition time)")
    return a, b


def _check_shift(batch_shift, design: Design | None = None) -> np.ndarray:
    """Per-detector intensity multipliers (1 + shift)."""
    design = _design(design)
    detectors = design.detector_names
    factors = np.ones(len(detectors))
    if isinstance(batch_shift, dict):
        for key, value in batch_shift.items():
            detector = design.panel.get(key, key)
            if detector not in detectors:
                raise ImmunomonError(f"batch_shift: unknown marker {key!r}; markers are "
                                     f"{', '.join(design.markers)}")
            factors[detectors.index(detector)] = 1.0 + float(value)
    else:
        factors[:] = 1.0 + float(batch_shift)
    if np.any(factors <= 0):
        raise ImmunomonError(f"batch_shift {batch_shift!r} would make intensities non-positive; "
                             "give fractions above -1")
    return factors


def _singlets(rng, codes, design: Design):
    """Scatter, FSC-H/FSC-A ratio and true signal for every event, by leaf.

    Doublet rows are left zero here and filled by ``_add_doublets``.
    """
    n = codes.size
    fsc = np.zeros(n)
    ssc = np.zeros(n)
    ratio = np.zeros(n)
    true = np.zeros((n, len(design.detector_names)))
    af_profile = np.array([design.detectors[d][2] for d in design.detector_names])
    for code, leaf in enumerate(design.leaf_names):
        rows = np.flatnonzero(codes == code)
        if rows.size == 0 or leaf == "Doublets":
            continue
        fsc[rows], ssc[rows], ratio[rows], true[rows] = _cells(rng, design, leaf, rows.size,
                                                               af_profile)
    return fsc, ssc, ratio, true


def _skew_normal(rng, z: np.ndarray, shape: float) -> np.ndarray:
    """Standardised skew-normal values built from standard normals ``z``."""
    if not shape:
        return z
    delta = shape / np.sqrt(1.0 + shape ** 2)
    w = delta * np.abs(rng.standard_normal(z.size)) + np.sqrt(1.0 - delta ** 2) * z
    mean = delta * np.sqrt(2.0 / np.pi)
    return (w - mean) / np.sqrt(1.0 - mean ** 2)


def _cells(rng, design: Design, leaf: str, m: int, af_profile: np.ndarray):
    f_med, f_sd, s_med, s_sd, af = design.scatter[leaf]
    # bigger cells scatter more side light too: correlated log-normal scatter
    z = rng.standard_normal((m, 2))
    z[:, 1] = 0.4 * z[:, 0] + np.sqrt(1 - 0.4 ** 2) * z[:, 1]
    shape = design.shapes.get(leaf)
    if shape is not None:
        z[:, 0] = _skew_normal(rng, z[:, 0], shape.fsc_skew)
        z[:, 1] = _skew_normal(rng, z[:, 1], shape.ssc_skew)
    fsc = f_med * np.exp(f_sd * z[:, 0])
    ssc = s_med * np.exp(s_sd * z[:, 1])
    if shape is not None and shape.tail > 0:
        damaged = rng.random(m) < shape.tail
        depth = rng.random(int(damaged.sum()))
        fsc[damaged] *= 1.0 - (1.0 - shape.tail_fsc) * depth
        ssc[damaged] *= 1.0 + (shape.tail_ssc - 1.0) * depth
    if leaf == "Debris":
        fsc += design.fsc_threshold    # below the trigger threshold nothing is recorded
    if design.pulse is not None:
        jitter = {"Debris": 0.07, "Beads": 0.01}.get(leaf, design.pulse.jitter)
        ratio = design.pulse.height(fsc) / fsc * (1.0 + jitter * rng.standard_normal(m))
    elif leaf == "Debris":
        ratio = rng.normal(0.80, 0.07, m)
    elif leaf == "Beads":
        ratio = rng.normal(0.92, 0.01, m)
    else:
        ratio = rng.normal(0.87, 0.025, m)

    detectors = design.detector_names
    if leaf == "Beads":
        level = np.array([design.bead_signal[d] for d in detectors])
        brightness = np.exp(0.02 * rng.standard_normal((m, 1)))
        true = level * brightness * np.exp(0.02 * rng.standard_normal((m, len(detectors))))
        return fsc, ssc, ratio, true

    # stain: log-normal per marker with a shared per-cell factor (cell size, permeability)
    table = design.phenotypes.get(leaf, {})
    medians = np.array([table.get(mk, (0.0, 0.0))[0] for mk in design.markers])
    sds = np.array([table.get(mk, (0.0, 0.0))[1] for mk in design.markers])
    shared = rng.standard_normal((m, 1))
    true = rng.standard_normal((m, len(medians)))      # becomes the true signal, in place
    true *= np.sqrt(1 - _SHARED)
    true += np.sqrt(_SHARED) * shared
    true *= sds
    np.exp(true, out=true)
    true *= medians
    # autofluorescence: one per-cell level, spread over detectors by their profile
    af_cell = af * np.exp(design.autofluorescence_sd * rng.standard_normal((m, 1)))
    true += af_cell * af_profile
    return fsc, ssc, ratio, true


def _add_doublets(rng, codes, absolute, fsc, ssc, ratio, true, design: Design) -> None:
    """Fill doublet rows with two cells passing the laser together.

    Area adds up; height does not: FSC-H is the taller pulse plus part of the
    other, depending on how much the two overlap, so most doublets sit below
    the singlets' FSC-H/FSC-A line and a few (near-perfect overlap) on it.
    With a ``Pulse`` model the height is the peak of the two summed pulses.
    """
    leaf_names = design.leaf_names
    if "Doublets" not in leaf_names:
        return
    rows = np.flatnonzero(codes == leaf_names.index("Doublets"))
    if rows.size == 0:
        return
    cells = list(design.leaves[design.doublet_source])
    p = np.array([absolute[leaf] for leaf in cells])
    if p.sum() <= 0:
        cells, p = ["Debris"], np.ones(1)
    comp = rng.choice(len(cells), size=(2, rows.size), p=p / p.sum())
    sub = np.array([leaf_names.index(cells[c]) for c in range(len(cells))], dtype=np.uint8)
    f1, s1, r1, t1 = _singlets(rng, sub[comp[0]], design)
    f2, s2, r2, t2 = _singlets(rng, sub[comp[1]], design)
    if design.pulse is None:
        h1, h2 = f1 * r1, f2 * r2
        overlap = rng.beta(1.5, 3.0, rows.size)
        height = np.maximum(h1, h2) + np.minimum(h1, h2) * overlap
    else:
        height = _doublet_height(design.pulse, f1, r1, f2, r2, rng.random(rows.size))
    fsc[rows] = f1 + f2
    ssc[rows] = s1 + s2
    ratio[rows] = height / (f1 + f2)
    true[rows] = t1 + t2


def _doublet_height(pulse: Pulse, a1, r1, a2, r2, where, points: int = 65) -> np.ndarray:
    """Peak of two Gaussian pulses (heights a*r, SDs from their size) ``where`` x
    ``pulse.separation`` pulse SDs apart (``where`` in [0, 1]); the peak of such
    a sum lies between the two centres."""
    sd1, sd2 = pulse.sd(a1)[:, None], pulse.sd(a2)[:, None]
    gap = pulse.separation * np.asarray(where, dtype=np.float64)[:, None] * np.maximum(sd1, sd2)
    t = gap * np.linspace(0.0, 1.0, points)[None, :]
    summed = ((a1 * r1)[:, None] * np.exp(-0.5 * (t / sd1) ** 2)
              + (a2 * r2)[:, None] * np.exp(-0.5 * ((t - gap) / sd2) ** 2))
    return summed.max(axis=1)


def _arrival_times(rng, n: int, rate: float, window):
    """Sorted arrival times (s) and, per event, its phase within the clog window.

    A Poisson process with rate ``rate`` outside the window and
    ``_CLOG_RATE * rate`` inside: the order statistics of uniform draws on the
    cumulative intensity, mapped back to time.  Phase is (t - start) / (stop -
    start), so 0 <= phase < 1 inside the window.
    """
    u = np.sort(rng.random(n))
    if window is None:
        duration = n / rate
        return u * duration, np.full(n, -1.0)
    a, b = window
    inside = (b - a) * _CLOG_RATE
    total = a + inside + (1.0 - b)
    c = u * total
    s = np.where(c < a, c, np.where(c < a + inside, a + (c - a) / _CLOG_RATE,
                                    b + (c - a - inside)))
    duration = n / (rate * total)
    return s * duration, (s - a) / (b - a)


def _clog_factor(rng, phase: np.ndarray) -> np.ndarray:
    """Intensity multiplier inside a clog: a sag that deepens then recovers, plus jitter."""
    sag = 1.0 - _CLOG_DEPTH * np.sin(np.pi * np.clip(phase, 0.0, 1.0))
    return sag * np.exp(0.12 * rng.standard_normal(phase.size))


def _detect(rng, true: np.ndarray, matrix: np.ndarray, design: Design, out: np.ndarray,
            chunk: int = 131_072) -> None:
    """Detector readings into ``out``: spilled signal plus electronic and photon noise,
    clipped at the top of the scale.  Done in blocks of events to bound memory.

    The photon noise of a detector grows with everything it receives, spill
    included, so after compensation a bright dye spreads the negatives of the
    detectors it spills into by ~sqrt(its signal): spillover spreading."""
    detectors = design.detector_names
    electronic2 = np.array([design.detectors[d][3] for d in detectors]) ** 2
    per_pe = np.array([design.detectors[d][4] for d in detectors])
    for start in range(0, true.shape[0], chunk):
        signal = true[start:start + chunk] @ matrix
        sd = np.maximum(signal, 0.0)
        sd *= per_pe
        sd += electronic2
        np.sqrt(sd, out=sd)
        sd *= rng.standard_normal(signal.shape)
        signal += sd
        np.minimum(signal, design.range - 1, out=signal)
        out[start:start + chunk] = signal


# -- metadata --------------------------------------------------------------------------
def _channels(design: Design, time_range: float) -> tuple[Channel, ...]:
    chans = [Channel(name=c, marker=None, range=design.range, gain=1.0,
                     amplification=(0.0, 0.0), datatype="F", bits=32) for c in SCATTER]
    chans += [Channel(name=d, marker=m, range=design.range, gain=1.0, amplification=(0.0, 0.0),
                      datatype="F", bits=32) for m, d in design.panel.items()]
    chans.append(Channel(name="Time", marker=None, range=time_range, gain=1.0,
                         amplification=(0.0, 0.0), datatype="F", bits=32))
    return tuple(chans)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def spillover_keyword(spill: Spillover) -> str:
    """The $SPILLOVER value: n, detector names, then the matrix row by row."""
    values = ",".join(_fmt(v) for v in spill.matrix.ravel())
    return f"{len(spill.detectors)},{','.join(spill.detectors)},{values}"


def spillover_matrix(design: Design | None = None) -> np.ndarray:
    """The panel's spillover matrix (rows: dye's primary detector, in ``DETECTORS`` order
    for ``pbmc_sample``; in ``design.detector_names`` order for another design)."""
    return _design(design).spillover_matrix()


def _keywords(design: Design, channel_info, spill, *, n, seed, start, duration, beads,
              beads_per_test, sample_volume_ul, bead_events) -> dict[str, str]:
    if start is None:
        # a weekday morning that depends on the seed, so files differ like real runs
        s = 0 if seed is None else int(seed)
        start = (_dt.datetime(2024, 1, 8, 9, 0, 0) + _dt.timedelta(days=7 * (s % 50) + s % 5,
                                                                    minutes=13 * (s % 29)))
    end = start + _dt.timedelta(seconds=duration)
    kw: dict[str, str] = {
        "$CYT": design.instrument,
        "$CYTSN": design.serial,
        "$DATE": start.strftime("%d-%b-%Y").upper(),
        "$BTIM": start.strftime("%H:%M:%S") + f".{start.microsecond // 10000:02d}",
        "$ETIM": end.strftime("%H:%M:%S") + f".{end.microsecond // 10000:02d}",
        "$TIMESTEP": _fmt(TIMESTEP),
        "$TOT": str(n),
        "$PAR": str(len(channel_info)),
        "$MODE": "L",
        "$DATATYPE": "F",
        "$BYTEORD": "1,2,3,4",
        "$FIL": f"{design.file_stem}_seed{seed}.fcs",
        "$SRC": design.source,
        "$CELLS": design.cells,
        "$SMNO": f"SIM-{'random' if seed is None else seed}",
        "$COM": f"{design.description} (immunomon.simulate, seed={seed})",
    }
    for i, ch in enumerate(channel_info, start=1):
        kw[f"$P{i}N"] = ch.name
        if ch.marker is not None:
            kw[f"$P{i}S"] = ch.marker
        kw[f"$P{i}R"] = _fmt(ch.range)
        kw[f"$P{i}B"] = str(ch.bits)
        kw[f"$P{i}E"] = "0,0"
        kw[f"$P{i}G"] = _fmt(ch.gain)
        props = design.detectors.get(ch.name)
        if props is not None:
            kw[f"$P{i}L"] = str(props[0])       # excitation wavelength (nm)
            kw[f"$P{i}V"] = str(props[1])       # detector voltage
        elif ch.name in SCATTER:
            kw[f"$P{i}L"] = "488"
            kw[f"$P{i}V"] = "380" if ch.name.startswith("FSC") else "260"
    if spill is not None:
        kw["$SPILLOVER"] = spillover_keyword(spill)
    if beads:
        kw[BEADS_KEYWORD] = str(int(beads_per_test))
        kw[BLOOD_VOLUME_KEYWORD] = _fmt(sample_volume_ul)
        # FCS 3.1 $VOL: volume acquired, in nanolitres; beads are at beads_per_test
        # per tube volume, so the bead events tell how much was acquired.
        acquired_ul = bead_events * TUBE_VOLUME_UL / max(int(beads_per_test), 1)
        kw["$VOL"] = _fmt(round(acquired_ul * 1000.0, 1))
    return kw


# -- truth files ------------------------------------------------------------------------
def write_truth(path, sim: SimulatedSample) -> Path:
    """Write per-event truth as gzipped CSV (columns: label, anomaly), byte-reproducible."""
    path = Path(path)
    rows = np.char.add(np.char.add(sim.labels.astype(str), ","), np.where(sim.anomaly, "1", "0"))
    data = ("label,anomaly\n" + "\n".join(rows.tolist()) + "\n").encode()
    with atomic_path(path) as tmp, open(tmp, "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(data)
    return path


def read_truth(path, design: Design | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a truth file written by ``write_truth``: (labels, anomaly). Labels are
    checked against the leaves of ``design`` (``pbmc_sample``'s by default)."""
    import pandas as pd

    leaf_names = _design(design).leaf_names
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={"label": str})
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as exc:
        raise ImmunomonError(f"{path}: cannot read truth labels ({exc})") from None
    if list(table.columns) != ["label", "anomaly"] or not table["anomaly"].isin([0, 1]).all():
        raise ImmunomonError(f"{path}: expected columns 'label,anomaly' with anomaly 0 or 1")
    labels = table["label"].to_numpy(dtype=str)
    unknown = set(np.unique(labels)) - set(leaf_names)
    if unknown:
        raise ImmunomonError(f"{path}: unknown labels {sorted(unknown)}; known: "
                             f"{', '.join(leaf_names)}")
    return labels, table["anomaly"].to_numpy(dtype=bool)

__all__ = ['BEADS_KEYWORD', 'BLOOD', 'BLOOD_VOLUME_KEYWORD', 'CHANNELS', 'DEFAULT_CLOG',
           'DEFAULT_FREQUENCIES', 'DETECTORS', 'Design', 'GROUPS', 'HIERARCHY', 'INSTRUMENT',
           'LEAF_NAMES', 'LEAVES', 'MARKERS', 'PANEL', 'PHENOTYPES', 'Pulse', 'RANGE', 'SCATTER',
           'ScatterShape', 'SimulatedSample', 'TIMESTEP', 'TUBE_VOLUME_UL',
           'absolute_frequencies', 'generate', 'mask_for', 'pbmc_sample', 'read_truth',
           'resolve_frequencies', 'spillover_keyword', 'spillover_matrix', 'write_truth']
