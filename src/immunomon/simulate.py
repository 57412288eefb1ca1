"""Simulated blood samples with a known label for every event.

``pbmc_sample`` produces what a 3-laser digital cytometer (violet 405 nm, blue
488 nm, red 640 nm; 18-bit linear scale) records from a lysed, stained
post-transplant blood sample with counting beads: scatter, a Time channel and
14 fluorescence detectors.  Each event belongs to one leaf of ``HIERARCHY``;
``SimulatedSample.mask(name)`` gives the truth for any population.

The model, step by step (all vectorised; one loop over populations, none over
events):

1. leaf labels are drawn from the population frequencies (fraction of parent);
2. per event, scatter (log-normal, FSC/SSC correlated) and a "true signal" per
   detector: the stain (log-normal around the population's median, with a
   shared per-cell factor) plus autofluorescence (cell-type scaled);
3. doublets are the sum of two leukocytes, with FSC-H below 2x a singlet's;
4. arrival times follow a Poisson process; a clog lowers the rate and the
   intensities inside its window; a batch shift scales marker intensities;
5. observed = true @ spillover + noise (electronic, and photon noise growing
   with the detected signal), clipped at the top of the scale.  Compensating
   with the inverse of the matrix written to the sample recovers the true
   signal up to that noise, negatives included.
"""

from __future__ import annotations

import datetime as _dt
import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ImmunomonError
from .fcs.sample import Channel, Sample, Spillover

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


def spillover_matrix() -> np.ndarray:
    """The panel's spillover matrix (rows: dye's primary detector, in ``DETECTORS`` order)."""
    index = {d: i for i, d in enumerate(DETECTORS)}
    m = np.eye(len(DETECTORS))
    for (src, dst), value in _SPILL.items():
        m[index[src], index[dst]] = value
    return m


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


def _children(pop: str | None) -> tuple[str, ...]:
    return tuple(p for p, parent in HIERARCHY.items() if parent == pop)


LEAF_NAMES: tuple[str, ...] = tuple(p for p in HIERARCHY if not _children(p))


def _leaves_under(pop: str) -> tuple[str, ...]:
    kids = _children(pop)
    if not kids:
        return (pop,)
    return tuple(leaf for k in kids for leaf in _leaves_under(k))


# population (or group) -> the leaves it is made of.
LEAVES: dict[str, tuple[str, ...]] = {p: _leaves_under(p) for p in HIERARCHY}
LEAVES.update({g: members for g, members in GROUPS.items()})

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


# -- frequencies ----------------------------------------------------------------------
def resolve_frequencies(overrides: dict[str, float] | None = None, *,
                        beads: bool = True) -> dict[str, float]:
    """Fraction of parent for every population, after applying ``overrides``.

    ``overrides`` maps a population to its fraction of its parent, or
    ``"pop/Ancestor"`` to its fraction of a named ancestor (e.g.
    ``{"pDC/Lymphocytes": 0.003}``).  Siblings that are not overridden are
    rescaled so that each parent's children still add up to 1.
    """
    overrides = dict(overrides or {})
    if not beads:
        overrides["Beads"] = 0.0
    plain = {k: v for k, v in overrides.items() if "/" not in k}
    relative = {k: v for k, v in overrides.items() if "/" in k}
    for key, value in overrides.items():
        pop = key.split("/", 1)[0]
        if pop not in HIERARCHY:
            raise ImmunomonError(f"frequencies: unknown population {pop!r}; known: "
                                 f"{', '.join(HIERARCHY)}")
        if not (isinstance(value, (int, float, np.floating)) and 0.0 <= value <= 1.0):
            raise ImmunomonError(f"frequencies[{key!r}] = {value!r}: give a fraction in [0, 1]")
    freqs = _apply_overrides(plain)
    # fractions of an ancestor, top-down so that deeper ones see their parents fixed
    for key in sorted(relative, key=lambda k: _depth(k.split("/", 1)[0])):
        pop, ancestor = key.split("/", 1)
        path = _path_between(pop, ancestor)
        scale = float(np.prod([freqs[p] for p in path[1:]]))   # ancestor -> parent of pop
        if scale <= 0:
            raise ImmunomonError(f"frequencies[{key!r}]: {ancestor} contains no "
                                 f"{HIERARCHY[pop]} events to put {pop} in")
        plain[pop] = relative[key] / scale
        if plain[pop] > 1.0 + 1e-12:
            raise ImmunomonError(
                f"frequencies[{key!r}] = {relative[key]} exceeds the share of {ancestor} "
                f"taken by {HIERARCHY[pop]} ({scale:.4g}); raise that first")
        freqs = _apply_overrides(plain)
    return freqs


def _depth(pop: str) -> int:
    d = 0
    while HIERARCHY[pop] is not None:
        pop, d = HIERARCHY[pop], d + 1
    return d


def _path_between(pop: str, ancestor: str) -> list[str]:
    """The chain from ``ancestor`` down to the parent of ``pop``: [ancestor, ..., parent]."""
    if ancestor not in HIERARCHY:
        raise ImmunomonError(f"frequencies: unknown ancestor {ancestor!r} in '{pop}/{ancestor}'")
    chain, p = [], HIERARCHY[pop]
    while p is not None and p != ancestor:
        chain.append(p)
        p = HIERARCHY[p]
    if p != ancestor:
        raise ImmunomonError(f"frequencies: {ancestor!r} is not an ancestor of {pop!r}")
    return [ancestor] + chain[::-1]


def _apply_overrides(plain: dict[str, float]) -> dict[str, float]:
    freqs = dict(DEFAULT_FREQUENCIES)
    for parent in [None, *HIERARCHY]:
        kids = _children(parent)
        if not kids:
            continue
        fixed = {k: float(plain[k]) for k in kids if k in plain}
        if not fixed:
            continue
        free = [k for k in kids if k not in fixed]
        room = 1.0 - sum(fixed.values())
        free_total = sum(DEFAULT_FREQUENCIES[k] for k in free)
        if room < -1e-9 or (not free and abs(room) > 1e-6) or (free and free_total == 0 and room > 1e-9):
            raise ImmunomonError(
                f"frequencies for the children of {parent or 'the top level'} "
                f"({', '.join(kids)}) must add up to 1; the overrides give "
                f"{sum(fixed.values()):.4g}" + (f" with nothing left for {', '.join(free)}" if free else ""))
        freqs.update(fixed)
        for k in free:
            freqs[k] = max(room, 0.0) * DEFAULT_FREQUENCIES[k] / free_total
    return freqs


def absolute_frequencies(freqs: dict[str, float]) -> dict[str, float]:
    """Fraction of all events for every population, from fractions of parent."""
    out: dict[str, float] = {}
    for pop in HIERARCHY:
        value, p = 1.0, pop
        while p is not None:
            value *= freqs[p]
            p = HIERARCHY[p]
        out[pop] = value
    return out


# -- the result ------------------------------------------------------------------------
@dataclass(eq=False)
class SimulatedSample:
    """A simulated sample and its truth.

    ``labels[i]`` is the leaf population of event i, ``anomaly[i]`` whether it
    was acquired inside the clog window, and ``true_signal`` (float32, events x
    ``DETECTORS``) the signal before spillover and noise, which compensation
    should recover.
    """

    sample: Sample
    codes: np.ndarray                 # index into LEAF_NAMES, per event
    anomaly: np.ndarray
    true_signal: np.ndarray
    frequencies: dict[str, float]     # fraction of parent actually used
    seed: int | None = None
    labels: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        self.labels = np.asarray(LEAF_NAMES)[self.codes]

    def __repr__(self):
        clog = f", {int(self.anomaly.sum())} in a clog" if self.anomaly.any() else ""
        return f"<SimulatedSample seed={self.seed}: {self.sample.n_events} events{clog}>"

    def mask(self, population: str) -> np.ndarray:
        """Truth membership of a population (any node of ``HIERARCHY`` or a ``GROUPS`` name)."""
        return mask_for(self.codes, population)

    def counts(self) -> dict[str, int]:
        """Events per population, for every population."""
        per_leaf = np.bincount(self.codes, minlength=len(LEAF_NAMES))
        index = {leaf: i for i, leaf in enumerate(LEAF_NAMES)}
        return {p: int(sum(per_leaf[index[leaf]] for leaf in leaves))
                for p, leaves in LEAVES.items()}

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


def mask_for(codes: np.ndarray, population: str) -> np.ndarray:
    """Boolean membership of ``population`` given per-event leaf codes."""
    if population not in LEAVES:
        raise ImmunomonError(f"unknown population {population!r}; known: {', '.join(LEAVES)}")
    wanted = [LEAF_NAMES.index(leaf) for leaf in LEAVES[population]]
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
    n = _check_count(n_events)
    window = _check_clog(clog)
    shift = _check_shift(batch_shift)
    if not event_rate > 0:
        raise ImmunomonError(f"event_rate must be positive, got {event_rate!r}")
    rng = np.random.default_rng(seed)
    freqs = resolve_frequencies(frequencies, beads=beads)
    absolute = absolute_frequencies(freqs)

    p = np.array([absolute[leaf] for leaf in LEAF_NAMES])
    codes = rng.choice(len(LEAF_NAMES), size=n, p=p / p.sum()).astype(np.uint8)

    fsc, ssc, ratio, true = _singlets(rng, codes)
    _add_doublets(rng, codes, absolute, fsc, ssc, ratio, true)

    seconds, phase = _arrival_times(rng, n, event_rate, window)
    anomaly = (phase >= 0) & (phase < 1) if window else np.zeros(n, dtype=bool)
    if window:
        sag = _clog_factor(rng, phase[anomaly])
        fsc[anomaly] *= sag
        ssc[anomaly] *= sag
        true[anomaly] *= sag[:, None]
    true *= shift[None, :]

    matrix = spillover_matrix() if spillover else np.eye(len(DETECTORS))
    events = np.empty((n, len(CHANNELS)), dtype=np.float32)
    _detect(rng, true, matrix, out=events[:, 3:-1])
    scatter = np.column_stack([fsc, fsc * ratio, ssc])
    scatter += rng.normal(0.0, _SCATTER_NOISE, scatter.shape)
    events[:, :3] = np.clip(scatter, 0.0, RANGE - 1)
    time = np.floor(seconds / TIMESTEP)
    events[:, -1] = time

    spill = Spillover(DETECTORS, matrix) if spillover else None
    duration = float(seconds[-1])
    bead_events = int(np.count_nonzero(codes == LEAF_NAMES.index("Beads")))
    # long acquisitions need a wider Time range than the 18-bit scale
    time_range = max(RANGE, float(2 ** int(np.ceil(np.log2(time[-1] + 2)))))
    channel_info = _channels(time_range)
    keywords = _keywords(channel_info, spill, n=n, seed=seed, start=start, duration=duration,
                         beads=beads, beads_per_test=beads_per_test,
                         sample_volume_ul=sample_volume_ul, bead_events=bead_events)
    sample = Sample(events=events, channel_info=channel_info, keywords=keywords,
                    version="3.1", spillover=spill)
    return SimulatedSample(sample=sample, codes=codes, anomaly=anomaly,
                           true_signal=true.astype(np.float32), frequencies=freqs, seed=seed)


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


def _check_shift(batch_shift) -> np.ndarray:
    """Per-detector intensity multipliers (1 + shift)."""
    factors = np.ones(len(DETECTORS))
    if isinstance(batch_shift, dict):
        for key, value in batch_shift.items():
            detector = PANEL.get(key, key)
            if detector not in DETECTORS:
                raise ImmunomonError(f"batch_shift: unknown marker {key!r}; markers are "
                                     f"{', '.join(MARKERS)}")
            factors[DETECTORS.index(detector)] = 1.0 + float(value)
    else:
        factors[:] = 1.0 + float(batch_shift)
    if np.any(factors <= 0):
        raise ImmunomonError(f"batch_shift {batch_shift!r} would make intensities non-positive; "
                             "give fractions above -1")
    return factors


def _singlets(rng, codes):
    """Scatter, FSC-H/FSC-A ratio and true signal for every event, by leaf.

    Doublet rows are left zero here and filled by ``_add_doublets``.
    """
    n = codes.size
    fsc = np.zeros(n)
    ssc = np.zeros(n)
    ratio = np.zeros(n)
    true = np.zeros((n, len(DETECTORS)))
    af_profile = np.array([_DETECTOR_PROPS[d][2] for d in DETECTORS])
    for code, leaf in enumerate(LEAF_NAMES):
        rows = np.flatnonzero(codes == code)
        if rows.size == 0 or leaf == "Doublets":
            continue
        fsc[rows], ssc[rows], ratio[rows], true[rows] = _cells(rng, leaf, rows.size, af_profile)
    return fsc, ssc, ratio, true


def _cells(rng, leaf: str, m: int, af_profile: np.ndarray):
    f_med, f_sd, s_med, s_sd, af = _SCATTER[leaf]
    # bigger cells scatter more side light too: correlated log-normal scatter
    z = rng.standard_normal((m, 2))
    z[:, 1] = 0.4 * z[:, 0] + np.sqrt(1 - 0.4 ** 2) * z[:, 1]
    fsc = f_med * np.exp(f_sd * z[:, 0])
    ssc = s_med * np.exp(s_sd * z[:, 1])
    if leaf == "Debris":
        fsc += _FSC_THRESHOLD    # below the trigger threshold nothing is recorded
        ratio = rng.normal(0.80, 0.07, m)
    elif leaf == "Beads":
        ratio = rng.normal(0.92, 0.01, m)
    else:
        ratio = rng.normal(0.87, 0.025, m)

    if leaf == "Beads":
        level = np.array([_BEAD_SIGNAL[d] for d in DETECTORS])
        brightness = np.exp(0.02 * rng.standard_normal((m, 1)))
        true = level * brightness * np.exp(0.02 * rng.standard_normal((m, len(DETECTORS))))
        return fsc, ssc, ratio, true

    # stain: log-normal per marker with a shared per-cell factor (cell size, permeability)
    table = PHENOTYPES.get(leaf, {})
    medians = np.array([table.get(mk, (0.0, 0.0))[0] for mk in MARKERS])
    sds = np.array([table.get(mk, (0.0, 0.0))[1] for mk in MARKERS])
    shared = rng.standard_normal((m, 1))
    true = rng.standard_normal((m, len(MARKERS)))      # becomes the true signal, in place
    true *= np.sqrt(1 - _SHARED)
    true += np.sqrt(_SHARED) * shared
    true *= sds
    np.exp(true, out=true)
    true *= medians
    # autofluorescence: one per-cell level, spread over detectors by their profile
    af_cell = af * np.exp(0.35 * rng.standard_normal((m, 1)))
    true += af_cell * af_profile
    return fsc, ssc, ratio, true


def _add_doublets(rng, codes, absolute, fsc, ssc, ratio, true) -> None:
    """Fill doublet rows with two leukocytes passing the laser together.

    Area adds up; height does not: FSC-H is the taller pulse plus part of the
    other, depending on how much the two overlap, so most doublets sit below
    the singlets' FSC-H/FSC-A line and a few (near-perfect overlap) on it.
    """
    rows = np.flatnonzero(codes == LEAF_NAMES.index("Doublets"))
    if rows.size == 0:
        return
    cells = list(LEAVES["Leukocytes"])
    p = np.array([absolute[leaf] for leaf in cells])
    if p.sum() <= 0:
        cells, p = ["Debris"], np.ones(1)
    comp = rng.choice(len(cells), size=(2, rows.size), p=p / p.sum())
    sub = np.array([LEAF_NAMES.index(cells[c]) for c in range(len(cells))], dtype=np.uint8)
    f1, s1, r1, t1 = _singlets(rng, sub[comp[0]])
    f2, s2, r2, t2 = _singlets(rng, sub[comp[1]])
    h1, h2 = f1 * r1, f2 * r2
    overlap = rng.beta(1.5, 3.0, rows.size)
    height = np.maximum(h1, h2) + np.minimum(h1, h2) * overlap
    fsc[rows] = f1 + f2
    ssc[rows] = s1 + s2
    ratio[rows] = height / (f1 + f2)
    true[rows] = t1 + t2


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


def _detect(rng, true: np.ndarray, matrix: np.ndarray, out: np.ndarray,
            chunk: int = 131_072) -> None:
    """Detector readings into ``out``: spilled signal plus electronic and photon noise,
    clipped at the top of the scale.  Done in blocks of events to bound memory."""
    electronic2 = np.array([_DETECTOR_PROPS[d][3] for d in DETECTORS]) ** 2
    per_pe = np.array([_DETECTOR_PROPS[d][4] for d in DETECTORS])
    for start in range(0, true.shape[0], chunk):
        signal = true[start:start + chunk] @ matrix
        sd = np.maximum(signal, 0.0)
        sd *= per_pe
        sd += electronic2
        np.sqrt(sd, out=sd)
        sd *= rng.standard_normal(signal.shape)
        signal += sd
        np.minimum(signal, RANGE - 1, out=signal)
        out[start:start + chunk] = signal


# -- metadata --------------------------------------------------------------------------
def _channels(time_range: float) -> tuple[Channel, ...]:
    chans = [Channel(name=c, marker=None, range=RANGE, gain=1.0, amplification=(0.0, 0.0),
                     datatype="F", bits=32) for c in SCATTER]
    chans += [Channel(name=d, marker=m, range=RANGE, gain=1.0, amplification=(0.0, 0.0),
                      datatype="F", bits=32) for m, d in PANEL.items()]
    chans.append(Channel(name="Time", marker=None, range=time_range, gain=1.0,
                         amplification=(0.0, 0.0), datatype="F", bits=32))
    return tuple(chans)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def spillover_keyword(spill: Spillover) -> str:
    """The $SPILLOVER value: n, detector names, then the matrix row by row."""
    values = ",".join(_fmt(v) for v in spill.matrix.ravel())
    return f"{len(spill.detectors)},{','.join(spill.detectors)},{values}"


def _keywords(channel_info, spill, *, n, seed, start, duration, beads, beads_per_test,
              sample_volume_ul, bead_events) -> dict[str, str]:
    if start is None:
        # a weekday morning that depends on the seed, so files differ like real runs
        s = 0 if seed is None else int(seed)
        start = (_dt.datetime(2024, 1, 8, 9, 0, 0) + _dt.timedelta(days=7 * (s % 50) + s % 5,
                                                                    minutes=13 * (s % 29)))
    end = start + _dt.timedelta(seconds=duration)
    kw: dict[str, str] = {
        "$CYT": INSTRUMENT,
        "$CYTSN": "R66034200114",
        "$DATE": start.strftime("%d-%b-%Y").upper(),
        "$BTIM": start.strftime("%H:%M:%S") + f".{start.microsecond // 10000:02d}",
        "$ETIM": end.strftime("%H:%M:%S") + f".{end.microsecond // 10000:02d}",
        "$TIMESTEP": _fmt(TIMESTEP),
        "$TOT": str(n),
        "$PAR": str(len(channel_info)),
        "$MODE": "L",
        "$DATATYPE": "F",
        "$BYTEORD": "1,2,3,4",
        "$FIL": f"pbmc_seed{seed}.fcs",
        "$SRC": "Peripheral blood",
        "$CELLS": "Lysed whole blood leukocytes",
        "$SMNO": f"SIM-{'random' if seed is None else seed}",
        "$COM": f"Simulated post-transplant blood (immunomon.simulate, seed={seed})",
    }
    for i, ch in enumerate(channel_info, start=1):
        kw[f"$P{i}N"] = ch.name
        if ch.marker is not None:
            kw[f"$P{i}S"] = ch.marker
        kw[f"$P{i}R"] = _fmt(ch.range)
        kw[f"$P{i}B"] = str(ch.bits)
        kw[f"$P{i}E"] = "0,0"
        kw[f"$P{i}G"] = _fmt(ch.gain)
        props = _DETECTOR_PROPS.get(ch.name)
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
    lines = ["label,anomaly"]
    flags = np.where(sim.anomaly, "1", "0")
    lines += [f"{lab},{a}" for lab, a in zip(sim.labels.tolist(), flags.tolist())]
    data = ("\n".join(lines) + "\n").encode()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0,
                                               filename="") as gz:
        gz.write(data)
    tmp.replace(path)
    return path


def read_truth(path) -> tuple[np.ndarray, np.ndarray]:
    """Read a truth file written by ``write_truth``: (labels, anomaly)."""
    path = Path(path)
    try:
        with gzip.open(path, "rt") as fh:
            lines = fh.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ImmunomonError(f"{path}: cannot read truth labels ({exc})") from None
    if not lines or lines[0].strip() != "label,anomaly":
        raise ImmunomonError(f"{path}: expected the header 'label,anomaly' on line 1")
    # labels contain spaces ("Resting CD4 T"): split each line at its last comma
    parts = [line.rsplit(",", 1) for line in lines[1:] if line]
    bad = next((i for i, p in enumerate(parts) if len(p) != 2), None)
    if bad is not None:
        raise ImmunomonError(f"{path}, line {bad + 2}: expected 'label,anomaly'")
    labels = np.array([p[0] for p in parts])
    anomaly = np.array([p[1] == "1" for p in parts], dtype=bool)
    unknown = set(labels.tolist()) - set(LEAF_NAMES)
    if unknown:
        raise ImmunomonError(f"{path}: unknown labels {sorted(unknown)}; known: "
                             f"{', '.join(LEAF_NAMES)}")
    return labels, anomaly


# ======================================================================================
# The demo trial
# ======================================================================================
# A whole synthetic study shaped like the phase-1 trial of lenalidomide maintenance
# after reduced-intensity allogeneic transplant for myeloma: per patient, a clinical
# course (lenalidomide with interruptions, acute and chronic GVHD, IMWG responses,
# relapse, death, adverse events), blood immune counts at each visit, donor
# chimerism in whole blood and CD3+ cells, and STR genotypes of donor and recipient.
# ``trial`` builds it in memory (fast; no files); ``write_trial`` writes FCS files,
# STR exports, clinical CSVs, a manifest and the truth tables.  docs/pipelines.md
# describes the model and the planted effects.

TRIAL_VISITS: tuple[str, ...] = ("pre", "M1", "M2", "M3", "M4", "M6", "M9", "M12")
TRIAL_STR_VISITS: tuple[str, ...] = ("pre", "M3", "M6", "M12")
TRIAL_LINEAGES: tuple[str, ...] = ("WB", "CD3")
TRIAL_KIT = "Identifiler"
_VISIT_MONTH = {"M1": 1, "M2": 2, "M3": 3, "M4": 4, "M6": 6, "M9": 9, "M12": 12}

# Planted effects.  The first three are fold changes applied at every visit when the
# patient is taking lenalidomide (1.0 = no effect): Treg as a share of CD4 T cells
# (so Treg cells/uL change by the same factor against the patient's own course off
# the drug), NK cells/uL, and the HLA-DR+ share of CD4 and CD8 T cells.  The last is
# the hazard ratio of relapse/progression while acute GVHD grade II-IV is present
# (from its onset on, as the ``agvhd_2_4`` interval of immunomon.clinical).
DEFAULT_EFFECTS: dict[str, float] = {
    "Treg": 0.6,
    "NK cells": 1.5,
    "Activated T": 1.8,
    "agvhd_relapse_hr": 0.25,
}
NULL_EFFECTS: dict[str, float] = {k: 1.0 for k in DEFAULT_EFFECTS}

# Populations of the truth table (names of the post-transplant template).
TRIAL_POPULATIONS: tuple[str, ...] = (
    "Leukocytes", "Granulocytes", "Monocytes", "Lymphocytes", "T cells", "CD4 T", "CD8 T",
    "DN T", "Treg", "Activated T", "Activated CD4 T", "Activated CD8 T", "B cells",
    "NK cells", "CD56bright NK", "CD56dim NK", "Dendritic cells", "mDC", "pDC")

# Daily hazards of the clinical course (per day, from the pre-lenalidomide visit on).
_H_AGVHD_ON, _H_AGVHD_OFF = 0.003, 0.0008      # acute GVHD onset, on / off lenalidomide
_H_RELAPSE = 0.0012                            # relapse/progression without GVHD
_H_NRM, _H_NRM_GVHD = 0.0001, 0.0012           # non-relapse death, without / with GVHD
_H_DEATH_AFTER_RELAPSE = 0.004
_LEN_DAYS = 336                                # twelve 28-day cycles
_LEN_DOSE = 10.0                               # mg

# Acute GVHD organ stages at onset (skin, liver, upper GI, lower GI) and their weights.
_AGVHD_ONSET = (((3, 0, 0, 0), 0.35), ((2, 0, 0, 1), 0.2), ((3, 0, 1, 1), 0.15),
                ((1, 0, 0, 2), 0.15), ((2, 2, 0, 0), 0.1), ((4, 0, 0, 0), 0.05))

# Adverse events: term, probability per patient, grades, relation, action while on drug.
_AE_TYPES = (
    ("Fatigue", 0.4, (1, 2), "possible", "none"),
    ("Rash maculo-papular", 0.25, (1, 2), "probable", "none"),
    ("Diarrhea", 0.2, (1, 2), "possible", "none"),
    ("Platelet count decreased", 0.3, (2, 3), "probable", "none"),
    ("Lung infection", 0.25, (3,), "unlikely", "none"),
    ("Peripheral sensory neuropathy", 0.1, (1,), "possible", "none"),
)

# Immune reconstitution after reduced-intensity PBSC transplant, median cells/uL
# (Storek J et al., Am J Hematol 2008;83:...; Bosch M et al., Curr Opin Hematol 2012;
# Ogonek J et al., Front Immunol 2016): NK cells recover within a month, CD8 before
# CD4, B cells after a lag of 4-6 months.  value(day) for day >= 60.
def _saturating(day, start, final, tau):
    return final - (final - start) * np.exp(-(np.maximum(day, 60.0) - 60.0) / tau)


def _kinetics(day: float) -> dict[str, float]:
    return {
        "CD4 T": float(_saturating(day, 120.0, 450.0, 300.0)),
        "CD8 T": float(_saturating(day, 200.0, 550.0, 150.0)),
        "NK cells": 250.0,
        "B cells": float(5.0 + 245.0 / (1.0 + np.exp(-(day - 200.0) / 40.0))),
        "Dendritic cells": float(_saturating(day, 8.0, 20.0, 120.0)),
        "bright_share": float(0.15 + 0.25 * np.exp(-(max(day, 60.0) - 60.0) / 120.0)),
        "treg_share": 0.07, "act_cd4_share": 0.15, "act_cd8_share": 0.30,
        "myeloid": 4000.0,
    }


# STR loci of Identifiler: dye, smallest common allele, its size (bp), common alleles.
_STR_LOCI: dict[str, tuple[str, int, float, tuple[int, ...]]] = {
    "D8S1179": ("B", 8, 123.0, (10, 11, 12, 13, 14, 15, 16)),
    "D21S11": ("B", 24, 185.0, (27, 28, 29, 30, 31, 32)),
    "D7S820": ("B", 6, 255.0, (8, 9, 10, 11, 12)),
    "CSF1PO": ("B", 6, 305.0, (9, 10, 11, 12, 13)),
    "D3S1358": ("G", 12, 112.0, (14, 15, 16, 17, 18)),
    "TH01": ("G", 4, 163.0, (6, 7, 8, 9, 10)),
    "D13S317": ("G", 8, 215.0, (8, 9, 11, 12, 13, 14)),
    "D16S539": ("G", 5, 252.0, (9, 10, 11, 12, 13)),
    "D2S1338": ("G", 15, 307.0, (17, 18, 19, 20, 22, 23, 24, 25)),
    "D19S433": ("Y", 9, 102.0, (12, 13, 14, 15, 16)),
    "vWA": ("Y", 11, 155.0, (14, 15, 16, 17, 18, 19)),
    "TPOX": ("Y", 6, 222.0, (8, 9, 10, 11, 12)),
    "D18S51": ("Y", 7, 262.0, (12, 13, 14, 15, 16, 17, 18, 19)),
    "D5S818": ("R", 7, 134.0, (9, 10, 11, 12, 13)),
    "FGA": ("R", 17, 215.0, (19, 20, 21, 22, 23, 24, 25)),
}
_AMEL_SIZE = {"X": 107.0, "Y": 113.0}
_STR_AREA_PER_COPY = 16000.0     # peak area of one allele copy at 100% of the DNA
_STR_AREA_TO_HEIGHT = 8.0
_STR_STUTTER = 0.10           # back-stutter / parent area (the calculation's default)
_STR_HEADER = ("Dye/Sample Peak\tSample File Name\tMarker\tAllele\tSize\tHeight\tArea\t"
               "Data Point\t")


@dataclass(eq=False)
class Trial:
    """A synthetic trial and its truth (see ``trial``).

    ``tables``: the clinical tables as written to CSV (strings, ``docs/clinical.md``
    layout); ``clinical``: the same as a validated ``ClinicalData``.  ``manifest``:
    one row per FCS file and STR export (paths relative to the study folder).
    ``immune``: true cells/uL per patient, visit and population, from which the FCS
    files are drawn; ``chimerism``: true % donor per patient, visit and lineage;
    ``genotypes``: ``{patient: {"donor"|"recipient": {locus: (allele, allele)}}}``;
    ``course``: one row per patient with the days of the simulated events.
    """

    seed: int
    null: bool
    effects: dict
    tables: dict
    clinical: object
    manifest: "pd.DataFrame"
    immune: "pd.DataFrame"
    chimerism: "pd.DataFrame"
    genotypes: dict
    course: "pd.DataFrame"

    def __repr__(self):
        kind = "null " if self.null else ""
        return (f"<Trial {kind}seed={self.seed}: {len(self.course)} patients, "
                f"{int((self.manifest['kind'] == 'fcs').sum())} blood panels, "
                f"{int((self.manifest['kind'] == 'str').sum())} STR samples>")

    @property
    def patients(self) -> list[str]:
        return list(self.course["patient_id"])


def trial(seed: int = 0, *, n_patients: int = 13, null: bool = False,
          effects: dict | None = None) -> Trial:
    """A synthetic lenalidomide-after-transplant trial with planted effects.

    ``effects`` overrides entries of ``DEFAULT_EFFECTS``; ``null=True`` plants none
    (every fold change and hazard ratio 1).  Deterministic for a given ``seed``.
    """
    import pandas as pd

    if isinstance(n_patients, bool) or not isinstance(n_patients, (int, np.integer)) \
            or not 1 <= n_patients <= 999:
        raise ImmunomonError(f"n_patients must be an integer from 1 to 999, got {n_patients!r}")
    if null and effects:
        raise ImmunomonError("give either null=True or effects, not both")
    planted = dict(NULL_EFFECTS if null else DEFAULT_EFFECTS)
    for key, value in (effects or {}).items():
        if key not in DEFAULT_EFFECTS:
            raise ImmunomonError(f"effects: unknown effect {key!r}; known: "
                                 f"{', '.join(DEFAULT_EFFECTS)}")
        if not (isinstance(value, (int, float)) and value > 0):
            raise ImmunomonError(f"effects[{key!r}] = {value!r}: give a positive factor")
        planted[key] = float(value)

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 2024]))
    courses, immune, chim, genotypes, manifest = [], [], [], {}, []
    tables = {k: [] for k in ("patients", "treatments", "agvhd", "cgvhd", "responses",
                              "adverse_events", "deaths", "followup")}
    for i in range(int(n_patients)):
        pid = f"P{i + 1:02d}"
        course = _course(rng, pid, planted)
        courses.append(course)
        _clinical_rows(rng, course, tables)
        immune += _immune_rows(rng, course, planted)
        chim += _chimerism_rows(rng, course)
        genotypes[pid] = _genotypes(rng, course)
        manifest += _manifest_rows(course)
    frames = {name: pd.DataFrame(rows, columns=_TABLE_COLUMNS[name], dtype=object)
              for name, rows in tables.items()}
    manifest_df = pd.DataFrame(manifest, columns=list(_MANIFEST_COLUMNS))
    course_df = pd.DataFrame([{k: v for k, v in c.items() if k not in ("visits", "holds")}
                              for c in courses])
    for col in ("withdraw_day", "agvhd_onset", "cgvhd_onset", "relapse_day", "death_day"):
        course_df[col] = course_df[col].astype(float)
    return Trial(seed=int(seed), null=bool(null), effects=planted, tables=frames,
                 clinical=clinical_from_tables(frames), manifest=manifest_df,
                 immune=pd.DataFrame(immune, columns=["patient_id", "visit", "day",
                                                      "population", "cells_per_ul"]),
                 chimerism=pd.DataFrame(chim, columns=["patient_id", "visit", "day",
                                                       "lineage", "percent_donor"]),
                 genotypes=genotypes, course=course_df)


# -- the clinical course ---------------------------------------------------------------
_TRIAL_START = _dt.date(2021, 1, 4)


def _iso(transplant: _dt.date, day: float | None) -> str:
    return "" if day is None else (transplant + _dt.timedelta(days=int(day))).isoformat()


def _course(rng, pid: str, effects: dict) -> dict:
    """One patient's course as event days after transplant (None: did not happen)."""
    transplant = _TRIAL_START + _dt.timedelta(days=int(rng.integers(0, 540)))
    pre = int(rng.integers(60, 101))
    start = pre + int(rng.integers(3, 11))
    planned_stop = start + _LEN_DAYS - 1
    end = start + _LEN_DAYS + int(rng.integers(30, 240))     # data cut
    withdraw = start + int(rng.integers(30, 300)) if rng.random() < 0.08 else None
    u = rng.random((end - start, 4))
    gvhd = relapse = death = cause = None
    for k, day in enumerate(range(start + 1, end + 1)):
        on_len = (start <= day <= planned_stop and (withdraw is None or day <= withdraw)
                  and gvhd is None and relapse is None)
        if gvhd is None and relapse is None:
            if u[k, 0] < (_H_AGVHD_ON if on_len else _H_AGVHD_OFF):
                gvhd = day
        present = gvhd is not None and day > gvhd
        if relapse is None:
            h = _H_RELAPSE * (effects["agvhd_relapse_hr"] if present else 1.0)
            if u[k, 1] < h:
                relapse = day
            elif u[k, 2] < (_H_NRM_GVHD if present else _H_NRM):
                death, cause = day, "nrm"
                break
        elif day > relapse and u[k, 3] < _H_DEATH_AFTER_RELAPSE:
            death, cause = day, "relapse"
            break
    last = death if death is not None else end
    stops = [(planned_stop, "completed"), (last, "death")]
    if withdraw is not None:
        stops.append((withdraw, "adverse event"))
    if gvhd is not None:
        stops.append((gvhd, "acute GVHD"))
    if relapse is not None:
        stops.append((relapse, "progression"))
    len_stop, len_stop_reason = min(stops)
    visits = {"pre": pre}
    for v, m in _VISIT_MONTH.items():
        visits[v] = start + 28 * m + int(rng.integers(-3, 4))
    limit = min(x for x in (relapse, death, end + 1) if x is not None)
    visits = {v: d for v, d in visits.items() if d < limit}
    return {"patient_id": pid, "transplant_date": transplant.isoformat(),
            "pre_day": pre, "len_start": start, "len_stop": len_stop,
            "len_stop_reason": len_stop_reason, "withdraw_day": withdraw,
            "agvhd_onset": gvhd, "relapse_day": relapse, "death_day": death,
            "death_cause": cause, "end_day": last, "visits": visits,
            "sex": "M" if rng.random() < 0.6 else "F",
            "donor_sex": "M" if rng.random() < 0.5 else "F",
            "donor_type": "related" if rng.random() < 0.4 else "unrelated"}


def on_lenalidomide(course: dict, day: float) -> bool:
    """Whether the patient takes lenalidomide on ``day`` (holds excluded)."""
    if not course["len_start"] <= day <= course["len_stop"]:
        return False
    return not any(a <= day <= b for a, b in course.get("holds", ()))


_TABLE_COLUMNS = {
    "patients": ["patient_id", "sex", "age", "diagnosis", "transplant_date", "donor_type",
                 "hla_match", "conditioning", "stem_cell_source"],
    "treatments": ["patient_id", "drug", "start_date", "stop_date", "dose", "dose_unit",
                   "status", "reason"],
    "agvhd": ["patient_id", "date", "skin", "liver", "upper_gi", "lower_gi"],
    "cgvhd": ["patient_id", "date", "skin", "mouth", "eyes", "gi", "liver", "lungs",
              "joints_fascia", "genital", "lung_fev1_pct"],
    "responses": ["patient_id", "date", "baseline", "category"],
    "adverse_events": ["patient_id", "term", "grade", "onset_date", "resolution_date",
                       "relation", "action", "drug"],
    "deaths": ["patient_id", "date", "cause", "detail"],
    "followup": ["patient_id", "last_follow_up_date"],
}


def _clinical_rows(rng, c: dict, tables: dict) -> None:
    """Append one patient's rows (strings, CSV layout) to ``tables``; sets ``c["holds"]``."""
    tx = _dt.date.fromisoformat(c["transplant_date"])
    pid, end = c["patient_id"], c["end_day"]

    def d(day):
        return _iso(tx, day)

    tables["patients"].append([
        pid, c["sex"], str(int(rng.integers(42, 68))), "multiple myeloma", d(0),
        c["donor_type"], "10/10" if c["donor_type"] == "related" or rng.random() < 0.8
        else "9/10", "RIC", "PBSC"])

    # lenalidomide: one period, one interruption for neutropenia (dose reduced after grade 4)
    start, stop = c["len_start"], c["len_stop"]
    holds, periods, aes = [], [(start, stop, _LEN_DOSE, "")], []
    if stop - start > 40 and rng.random() < 0.45:
        h1 = int(rng.integers(start + 14, stop - 20))
        h2 = h1 + int(rng.integers(6, 15))
        grade = 4 if rng.random() < 0.3 else 3
        holds.append((h1, h2))
        if grade == 4:
            periods = [(start, h2, _LEN_DOSE, ""), (h2 + 1, stop, 5.0, "dose reduced")]
        aes.append(["Neutrophil count decreased", grade, h1, h2, "probable", "interrupted"])
    c["holds"] = holds
    for a, b, dose, reason in periods:
        tables["treatments"].append([pid, "lenalidomide", d(a), d(b), _fmt(dose), "mg", "on",
                                     reason])
    for a, b in holds:
        tables["treatments"].append([pid, "lenalidomide", d(a), d(b), "", "", "held",
                                     "neutropenia"])
    if c["withdraw_day"] is not None and c["len_stop_reason"] == "adverse event":
        w = c["withdraw_day"]
        aes.append(["Rash maculo-papular", 3, w, min(w + 21, end), "probable", "withdrawn"])

    # acute GVHD: onset stages, steroids, then response or progression
    o = c["agvhd_onset"]
    if o is not None:
        stages, weights = zip(*_AGVHD_ONSET)
        s = list(stages[rng.choice(len(stages), p=np.array(weights) / sum(weights))])
        refractory = rng.random() < 0.2
        caps = (4, 4, 1, 4)
        for k, offset in enumerate((0, 7, 14, 28, 56)):
            if o + offset > end:
                break
            if k > 0:
                step = 1 if (refractory and k == 1) else -1
                s = [min(max(x + step, 0), cap) if x > 0 else 0 for x, cap in zip(s, caps)]
            tables["agvhd"].append([pid, d(o + offset), *map(str, s)])
        tables["treatments"].append([pid, "methylprednisolone", d(o), d(min(o + 42, end)),
                                     "2", "mg/kg", "on", "acute GVHD"])
    # chronic GVHD: after acute GVHD in half the patients, de novo in a few
    if (o is not None and rng.random() < 0.5) or (o is None and rng.random() < 0.1):
        onset = max(o + 60 if o is not None else 0, 120) + int(rng.integers(0, 121))
        if c["pre_day"] < onset <= end:
            eyes = int(rng.random() < 0.5)
            scores = ["1", "1", str(eyes), "0", "0", "0", "0", "", ""]
            tables["cgvhd"].append([pid, d(onset), *scores])
            if onset + 60 <= end:
                tables["cgvhd"].append([pid, d(onset + 60), "1", "0", str(eyes), "0", "0",
                                        "0", "0", "", ""])
        c["cgvhd_onset"] = onset if c["pre_day"] < onset <= end else None
    else:
        c["cgvhd_onset"] = None

    # IMWG responses: baseline before lenalidomide, then every 3 months; PD at relapse
    levels = ["PR", "VGPR", "CR"]
    level = int(rng.choice(3, p=[0.35, 0.4, 0.25]))
    r = c["relapse_day"]
    assess = [c["pre_day"]] + [start + 84 * k for k in range(1, 12)]
    for k, day in enumerate(assess):
        if day > end or (r is not None and day >= r):
            break
        if k > 0 and level < 2 and rng.random() < 0.3:
            level += 1
        tables["responses"].append([pid, d(day), "yes" if k == 0 else "", levels[level]])
    if r is not None:
        tables["responses"].append([pid, d(r), "", "PD"])

    # other adverse events, while on lenalidomide or after
    for term, p, grades, relation, action in _AE_TYPES:
        if rng.random() >= p:
            continue
        onset = int(rng.integers(c["pre_day"], end + 1))
        resolution = onset + int(rng.integers(5, 41))
        aes.append([term, int(rng.choice(grades)), onset,
                    resolution if resolution <= end else None,
                    relation if start <= onset <= stop else "unrelated",
                    action if start <= onset <= stop else "not_applicable"])
    for term, grade, onset, resolution, relation, action in sorted(aes, key=lambda a: a[2]):
        tables["adverse_events"].append([pid, term, str(grade), d(onset), d(resolution),
                                         relation, action, "lenalidomide"])

    if c["death_day"] is not None:
        detail = "myeloma" if c["death_cause"] == "relapse" else (
            "GVHD" if o is not None else "infection")
        tables["deaths"].append([pid, d(c["death_day"]), c["death_cause"], detail])
    else:
        tables["followup"].append([pid, d(end)])


def clinical_from_tables(tables: dict):
    """A ``ClinicalData`` from string tables in the CSV layout (as ``read_clinical`` would)."""
    from .clinical import build_clinical
    from .clinical.tables import FILE_NAMES, coerce_table, read_csv_text

    typed = {}
    for name, frame in tables.items():
        typed[name] = coerce_table(read_csv_text(FILE_NAMES[name], text=_csv_text(frame)),
                                   name, FILE_NAMES[name])
    return build_clinical(typed)


def _csv_text(frame) -> str:
    import csv
    import io
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(frame.columns))
    writer.writerows(frame.astype(str).replace({"None": "", "nan": ""}).values.tolist())
    return buf.getvalue()


# -- immune counts -----------------------------------------------------------------------
_PATIENT_SD = 0.3      # between-patient SD of log levels
_VISIT_SD = 0.12       # visit-to-visit SD of log levels


def _immune_rows(rng, c: dict, effects: dict) -> list:
    keys = ("CD4 T", "CD8 T", "NK cells", "B cells", "Dendritic cells", "myeloid",
            "treg_share", "act_share")
    level = dict(zip(keys, rng.normal(0.0, _PATIENT_SD, len(keys))))
    rows = []
    for visit, day in c["visits"].items():
        noise = dict(zip(keys, rng.normal(0.0, _VISIT_SD, len(keys))))
        counts = true_counts(day, on_lenalidomide(c, day), effects,
                             {k: level[k] + noise[k] for k in keys})
        rows += [[c["patient_id"], visit, day, pop, counts[pop]] for pop in TRIAL_POPULATIONS]
    return rows


def true_counts(day: float, on_len: bool, effects: dict, log_offsets: dict | None = None
                ) -> dict[str, float]:
    """True cells/uL per population of one blood sample (``TRIAL_POPULATIONS``).

    ``log_offsets``: per-patient and per-visit deviations (natural log) of the levels
    ``CD4 T``, ``CD8 T``, ``NK cells``, ``B cells``, ``Dendritic cells``, ``myeloid``
    and of the shares ``treg_share`` and ``act_share``.
    """
    k = _kinetics(day)
    off = log_offsets or {}
    e = {name: float(np.exp(off.get(name, 0.0))) for name in
         ("CD4 T", "CD8 T", "NK cells", "B cells", "Dendritic cells", "myeloid",
          "treg_share", "act_share")}
    drug = effects if on_len else NULL_EFFECTS
    cd4, cd8 = k["CD4 T"] * e["CD4 T"], k["CD8 T"] * e["CD8 T"]
    dn = 0.06 / 0.94 * (cd4 + cd8)
    nk = k["NK cells"] * e["NK cells"] * drug["NK cells"]
    b = k["B cells"] * e["B cells"]
    dc = k["Dendritic cells"] * e["Dendritic cells"]
    treg = cd4 * min(k["treg_share"] * e["treg_share"] * drug["Treg"], 0.3)
    act4 = cd4 * min(k["act_cd4_share"] * e["act_share"] * drug["Activated T"], 0.6)
    act8 = cd8 * min(k["act_cd8_share"] * e["act_share"] * drug["Activated T"], 0.9)
    t = cd4 + cd8 + dn
    lymph = (t + b + nk + dc) / 0.97           # 3% other lymphocytes
    myeloid = k["myeloid"] * e["myeloid"]
    mono = 0.12 * myeloid
    return {
        "Leukocytes": lymph + myeloid, "Granulocytes": myeloid - mono - 0.005 * myeloid,
        "Monocytes": mono, "Lymphocytes": lymph, "T cells": t, "CD4 T": cd4, "CD8 T": cd8,
        "DN T": dn, "Treg": treg, "Activated T": act4 + act8, "Activated CD4 T": act4,
        "Activated CD8 T": act8, "B cells": b, "NK cells": nk,
        "CD56bright NK": nk * k["bright_share"], "CD56dim NK": nk * (1 - k["bright_share"]),
        "Dendritic cells": dc, "mDC": 0.6 * dc, "pDC": 0.4 * dc,
    }


def frequencies_from_counts(counts: dict[str, float], *, beads_per_test: int = 50_000,
                            sample_volume_ul: float = 50.0) -> dict[str, float]:
    """``pbmc_sample`` frequencies whose expected bead-based absolute counts are ``counts``.

    Single-platform counts are events / bead events x beads per test / volume, so
    Leukocytes / Beads = leukocytes per uL x volume / beads per test.
    """
    def split(parent_total, parts):
        out = {name: value / parent_total for name, value in parts.items()}
        last = list(parts)[-1]
        out[last] = 1.0 - sum(v for n, v in out.items() if n != last)
        return out

    leuk, lymph = counts["Leukocytes"], counts["Lymphocytes"]
    ratio = leuk * sample_volume_ul / beads_per_test
    free = 1.0 - DEFAULT_FREQUENCIES["Debris"]
    freqs = {"Beads": free / (1.0 + ratio)}
    freqs["Leukocytes"] = free - freqs["Beads"]
    basophils = 0.005 * (leuk - lymph)
    freqs.update(split(leuk, {"Lymphocytes": lymph, "Monocytes": counts["Monocytes"],
                              "Basophils": basophils, "Granulocytes": counts["Granulocytes"]}))
    t = counts["T cells"]
    freqs.update(split(lymph, {"T cells": t, "B cells": counts["B cells"],
                               "NK cells": counts["NK cells"],
                               "Dendritic cells": counts["Dendritic cells"],
                               "Other lymphocytes": 0.0}))
    freqs.update(split(t, {"CD4 T": counts["CD4 T"], "CD8 T": counts["CD8 T"],
                           "DN T": counts["DN T"]}))
    cd4, cd8 = counts["CD4 T"], counts["CD8 T"]
    freqs.update(split(cd4, {"Treg": counts["Treg"], "Activated CD4 T": counts["Activated CD4 T"],
                             "Resting CD4 T": 0.0}))
    freqs.update(split(cd8, {"Activated CD8 T": counts["Activated CD8 T"], "Resting CD8 T": 0.0}))
    nk, dc = counts["NK cells"], counts["Dendritic cells"]
    freqs.update(split(nk, {"CD56bright NK": counts["CD56bright NK"], "CD56dim NK": 0.0}))
    freqs.update(split(dc, {"mDC": counts["mDC"], "pDC": 0.0}))
    return {k: min(max(v, 0.0), 1.0) for k, v in freqs.items()}


# -- chimerism and STR genotypes ------------------------------------------------------------
def _chimerism_rows(rng, c: dict) -> list:
    """True % donor: whole blood near full donor, CD3+ mixed early and converting."""
    gap = {"WB": rng.uniform(0.0, 6.0), "CD3": rng.uniform(5.0, 40.0)}
    tau = {"WB": 150.0, "CD3": rng.uniform(120.0, 300.0)}
    rows = []
    for visit in TRIAL_STR_VISITS:
        day = c["visits"].get(visit)
        if day is None:
            continue
        for lineage in TRIAL_LINEAGES:
            value = 100.0 - gap[lineage] * np.exp(-(day - 60.0) / tau[lineage])
            rows.append([c["patient_id"], visit, day, lineage, round(float(value), 2)])
    return rows


def _draw_allele(rng, locus: str) -> str:
    return str(int(rng.choice(_STR_LOCI[locus][3])))


def _genotypes(rng, c: dict) -> dict:
    """Recipient and donor genotypes; a related donor shares each allele with p = 1/2."""
    recipient, donor = {}, {}
    for locus in _STR_LOCI:
        r = (_draw_allele(rng, locus), _draw_allele(rng, locus))
        if c["donor_type"] == "related":
            dn = tuple(r[i] if rng.random() < 0.5 else _draw_allele(rng, locus) for i in (0, 1))
        else:
            dn = (_draw_allele(rng, locus), _draw_allele(rng, locus))
        recipient[locus] = tuple(sorted(r, key=int))
        donor[locus] = tuple(sorted(dn, key=int))
    recipient["AMEL"] = ("X", "Y") if c["sex"] == "M" else ("X", "X")
    donor["AMEL"] = ("X", "Y") if c["donor_sex"] == "M" else ("X", "X")
    return {"donor": donor, "recipient": recipient}


def allele_size(locus: str, allele: str) -> float:
    """Fragment size (bp) of an allele in the simulated kit."""
    if locus == "AMEL":
        return _AMEL_SIZE[allele]
    _, smallest, size, _ = _STR_LOCI[locus]
    return size + 4.0 * (float(allele) - smallest)


def str_export(sample: str, genotypes: list[tuple[dict, float]], *, rng=None,
               cv: float = 0.03) -> str:
    """A GeneMapper per-peak report of one sample: DNA mixed from ``(genotype, share)``.

    Each allele's area is the sum over people of copies x share x a per-locus
    amplification efficiency, times log-normal noise of ``cv``, plus 10% back stutter
    from the allele one repeat longer (unlabelled where no allele is); height is
    area / 8.  Peaks lower than 10 RFU are not called (not written).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    lines = [_STR_HEADER]
    counter: dict[str, int] = {}
    loci = list(_STR_LOCI) + ["AMEL"]
    loci.sort(key=lambda lo: ("BGYR".index(_STR_LOCI[lo][0] if lo != "AMEL" else "R"),
                              allele_size(lo, genotypes[0][0][lo][0])))
    efficiency = {lo: float(np.exp(rng.normal(0.0, 0.15))) for lo in loci}
    for locus in loci:
        dye = "R" if locus == "AMEL" else _STR_LOCI[locus][0]
        amounts: dict[str, float] = {}
        for geno, share in genotypes:
            for allele in geno[locus]:
                amounts[allele] = amounts.get(allele, 0.0) + share
        areas = {a: _STR_AREA_PER_COPY * efficiency[locus] * v * float(np.exp(rng.normal(0.0, cv)))
                 for a, v in amounts.items()}
        peaks = {a: [allele_size(locus, a), area, a] for a, area in areas.items()}
        if locus != "AMEL":
            # back stutter one repeat shorter, labelled when it falls in an allele's bin
            for a, area in areas.items():
                below = str(int(a) - 1)
                extra = _STR_STUTTER * area
                if below in peaks:
                    peaks[below][1] += extra
                else:
                    peaks[below] = [allele_size(locus, a) - 4.0, extra, ""]
        for size, area, allele in sorted(peaks.values()):
            height = area / _STR_AREA_TO_HEIGHT
            if height < 10.0:
                continue
            counter[dye] = counter.get(dye, 0) + 1
            size += float(rng.normal(0.0, 0.05))
            marker = locus if allele else ""
            lines.append(f"{dye},{counter[dye]}\t{sample}.fsa\t{marker}\t{allele}\t{size:.2f}\t"
                         f"{height:.0f}\t{area:.0f}\t{int(size * 20)}\t")
    for n, size in enumerate((75.0, 100.0, 139.0, 150.0, 160.0, 200.0, 250.0, 300.0, 340.0),
                             start=1):
        lines.append(f"O,{n}\t{sample}.fsa\t\t\t{size:.2f}\t900\t9000\t{int(size * 20)}\t")
    return "\n".join(lines) + "\n"


# -- manifest and files ----------------------------------------------------------------------
_MANIFEST_COLUMNS = ("file", "kind", "patient_id", "collection_date", "visit", "material",
                     "lineage", "sample")


def _manifest_rows(c: dict) -> list:
    tx = _dt.date.fromisoformat(c["transplant_date"])
    pid, rows = c["patient_id"], []
    for visit, day in c["visits"].items():
        name = f"{pid}_{visit}"
        rows.append([f"fcs/{name}.fcs", "fcs", pid, _iso(tx, day), visit, "blood", "WB", name])
    for visit in TRIAL_STR_VISITS:
        if visit not in c["visits"]:
            continue
        for lineage in TRIAL_LINEAGES:
            name = f"{pid}_{lineage}_{visit}"
            rows.append([f"str/{name}.txt", "str", pid, _iso(tx, c["visits"][visit]), visit,
                         "blood", lineage, name])
    return rows


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_trial(trial: Trial, folder, *, events_per_sample: int = 2500) -> Path:
    """Write ``trial`` into ``folder``: FCS files, STR exports, clinical CSVs, manifest.

    Layout: ``manifest.csv``; ``fcs/<patient>_<visit>.fcs``;
    ``str/<patient>_donor.txt`` and ``str/<patient>_recipient.txt`` (pre-transplant
    references) and ``str/<patient>_<lineage>_<visit>.txt``; ``clinical/*.csv``
    (docs/clinical.md); ``truth/`` with the true immune counts, chimerism, course and
    planted effects.  Byte-for-byte reproducible for the same trial and settings.
    """
    import json

    import pandas as pd

    from .fcs import write_fcs

    n = _check_count(events_per_sample)
    folder = Path(folder)
    for sub in ("fcs", "str", "clinical", "truth"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name, frame in trial.tables.items():
        _write_text(folder / "clinical" / f"{name}.csv", _csv_text(frame))

    immune = trial.immune.set_index(["patient_id", "visit", "population"])["cells_per_ul"]
    fcs_rows = trial.manifest[trial.manifest["kind"] == "fcs"]
    for k, row in enumerate(fcs_rows.itertuples(index=False)):
        counts = {p: float(immune[(row.patient_id, row.visit, p)]) for p in TRIAL_POPULATIONS}
        seed = int(np.random.SeedSequence([trial.seed, 7, k]).generate_state(1)[0])
        when = _dt.datetime.fromisoformat(row.collection_date).replace(hour=10)
        sim = pbmc_sample(n, seed=seed, frequencies=frequencies_from_counts(counts),
                          start=when)
        sim.sample.keywords["$FIL"] = f"{row.sample}.fcs"
        sim.sample.keywords["$SMNO"] = row.sample
        sim.sample.keywords["$COM"] = "Simulated post-transplant blood (immunomon demo trial)"
        write_fcs(folder / row.file, sim.sample)

    str_rng = np.random.default_rng(np.random.SeedSequence([trial.seed, 11]))
    truth = trial.chimerism.set_index(["patient_id", "visit", "lineage"])["percent_donor"]
    for pid in trial.patients:
        geno = trial.genotypes[pid]
        for person in ("donor", "recipient"):
            _write_text(folder / "str" / f"{pid}_{person}.txt",
                        str_export(f"{pid}_{person}", [(geno[person], 1.0)], rng=str_rng))
    for row in trial.manifest[trial.manifest["kind"] == "str"].itertuples(index=False):
        f = float(truth[(row.patient_id, row.visit, row.lineage)]) / 100.0
        geno = trial.genotypes[row.patient_id]
        _write_text(folder / row.file, str_export(
            row.sample, [(geno["donor"], f), (geno["recipient"], 1.0 - f)], rng=str_rng))

    _write_text(folder / "manifest.csv", trial.manifest.to_csv(index=False, lineterminator="\n"))
    _write_text(folder / "truth" / "immune.csv",
                trial.immune.to_csv(index=False, lineterminator="\n", float_format="%.4f"))
    _write_text(folder / "truth" / "chimerism.csv",
                trial.chimerism.to_csv(index=False, lineterminator="\n"))
    _write_text(folder / "truth" / "course.csv",
                trial.course.to_csv(index=False, lineterminator="\n"))
    geno_rows = [{"patient_id": pid, "person": person, "locus": locus,
                  "alleles": "/".join(alleles)}
                 for pid, g in trial.genotypes.items() for person, loci in g.items()
                 for locus, alleles in loci.items()]
    _write_text(folder / "truth" / "genotypes.csv",
                pd.DataFrame(geno_rows).to_csv(index=False, lineterminator="\n"))
    _write_text(folder / "truth" / "effects.json",
                json.dumps({"seed": trial.seed, "null": trial.null, "effects": trial.effects,
                            "events_per_sample": n}, indent=2) + "\n")
    return folder
