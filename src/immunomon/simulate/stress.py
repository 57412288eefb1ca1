"""Stress scenarios: labelled samples shaped like the files data-driven gates fail on.

Each scenario is a function ``(n_events, seed) -> SimulatedSample`` built on the
machinery of ``simulate.blood`` (``generate`` with a ``Design``): the same
detector noise, spillover written to $SPILLOVER, autofluorescence and
acquisition model, plus what real files add: skewed scatter with damaged-cell
tails, FSC-H from pulse shapes (doublets at every overlap), non-specific
binding that makes negatives broad and right-skewed, intensity drift during
acquisition. Every scenario draws its own variation from the seed (frequencies
within a stated range, marker intensities +-20%, doublet and debris rates,
drift), so no method can be tuned to one file; ``sim.settings`` records the
draws. ``SCENARIOS`` lists them; docs/simulate.md describes each.

Human scenarios use the post-transplant panel (or a variant with a PE-Cy5
conjugate) and the shipped ``post-transplant`` template; ``mouse_spleen`` and
``ics`` bring their own instrument, channel names and populations.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from ..errors import ImmunomonError
from .blood import BLOOD, Design, Pulse, ScatterShape, SimulatedSample, generate

# ======================================================================================
# Human blood, the post-transplant panel, with real-file shapes
# ======================================================================================
_LYMPHOID = ("Resting CD4 T", "Activated CD4 T", "Treg", "Resting CD8 T", "Activated CD8 T",
             "DN T", "B cells", "CD56bright NK", "CD56dim NK", "Other lymphocytes", "pDC")


def _background(phenotypes: dict, markers, leaves, level: float, sd: float) -> dict:
    """Non-specific binding on every marker a population does not express: a dim,
    right-skewed stain, so negatives are broad and skewed rather than a point at zero."""
    out = {leaf: dict(table) for leaf, table in phenotypes.items()}
    for leaf in leaves:
        table = out.setdefault(leaf, {})
        for marker in markers:
            table.setdefault(marker, (level, sd))
    return out


def _blood_shapes() -> dict[str, ScatterShape]:
    """Lymphocytes trail towards small grainy apoptotic cells; monocytes skew; lysis
    leaves some granulocytes smaller and less granular (towards the monocytes)."""
    shapes = {leaf: ScatterShape(fsc_skew=-2.0, ssc_skew=2.0, tail=0.04, tail_fsc=0.65,
                                 tail_ssc=1.5) for leaf in _LYMPHOID}
    shapes.update({
        "mDC": ScatterShape(fsc_skew=-1.0, ssc_skew=1.5),
        "Basophils": ScatterShape(ssc_skew=1.0),
        "Classical monocytes": ScatterShape(fsc_skew=-1.5, ssc_skew=1.0, tail=0.05),
        "CD16+ monocytes": ScatterShape(fsc_skew=-1.5, ssc_skew=1.0, tail=0.05),
        "Granulocytes": ScatterShape(fsc_skew=-1.5, ssc_skew=-1.5, tail=0.06, tail_fsc=0.7,
                                     tail_ssc=0.6),
        "Debris": ScatterShape(fsc_skew=2.0, ssc_skew=1.0),
    })
    return shapes


_CELL_LEAVES = tuple(leaf for leaf in BLOOD.leaf_names if leaf not in ("Doublets", "Beads"))

BLOOD_STRESS = replace(
    BLOOD, name="post-transplant blood, real-file shapes",
    phenotypes=_background(BLOOD.phenotypes, BLOOD.markers, _CELL_LEAVES, 40.0, 0.7),
    shapes=_blood_shapes(), pulse=Pulse(), autofluorescence_sd=0.45,
    description="Simulated post-transplant blood, stress scenario", file_stem="stress")


def _pe_cy5_design() -> Design:
    """The panel with CD8 on PE-Cy5 instead of APC-H7: a bright tandem read next to
    PerCP-Cy5.5 (HLA-DR), APC-R700 (CD11c) and APC (FoxP3), spilling 10-75% into them.
    Receiving detectors run at high voltage (more units per photoelectron), so the
    spread after compensation is large."""
    panel = {m: ("PE-Cy5-A" if m == "CD8" else d) for m, d in BLOOD.panel.items()}
    detectors = {d: p for d, p in BLOOD.detectors.items() if d != "APC-H7-A"}
    detectors["PE-Cy5-A"] = (488, 560, 30.0, 30.0, 4.0)
    detectors["PerCP-Cy5-5-A"] = (488, 620, 40.0, 30.0, 6.0)
    detectors["APC-R700-A"] = (640, 640, 15.0, 35.0, 7.0)
    spill = {k: v for k, v in BLOOD.spill.items() if "APC-H7-A" not in k}
    spill.update({
        ("PE-Cy5-A", "PerCP-Cy5-5-A"): 0.60, ("PE-Cy5-A", "APC-R700-A"): 0.40,
        ("PE-Cy5-A", "APC-A"): 0.30, ("PE-Cy5-A", "PE-Cy7-A"): 0.18,
        ("PE-Cy5-A", "PE-CF594-A"): 0.10, ("PE-Cy5-A", "PE-A"): 0.02,
        ("PE-A", "PE-Cy5-A"): 0.04, ("PE-CF594-A", "PE-Cy5-A"): 0.30,
        ("PerCP-Cy5-5-A", "PE-Cy5-A"): 0.40, ("PE-Cy7-A", "PE-Cy5-A"): 0.03,
        ("APC-A", "PE-Cy5-A"): 0.01,
    })
    beads = {d: v for d, v in BLOOD.bead_signal.items() if d != "APC-H7-A"}
    beads["PE-Cy5-A"] = 70000.0
    return replace(BLOOD_STRESS, name="post-transplant blood, CD8 PE-Cy5", panel=panel,
                   detectors=detectors, spill=spill, bead_signal=beads,
                   phenotypes=_background(BLOOD.phenotypes, BLOOD.markers, _CELL_LEAVES,
                                          100.0, 0.7))


BLOOD_PE_CY5 = _pe_cy5_design()


def _eosinophil_design() -> Design:
    """The stress blood with its granulocytes parted into neutrophils and eosinophils.
    Eosinophils scatter a quarter more side light than neutrophils, carry 2.6 times
    their CD45 and no CD16, and glow in every detector (their granules'
    autofluorescence): on CD45 x SSC-A a tight cloud above and beside the neutrophils,
    as the real whole-blood files of ``benchmarks/whole_blood_scatter.py`` show them."""
    hierarchy = {**BLOOD_STRESS.hierarchy, "Neutrophils": "Granulocytes",
                 "Eosinophils": "Granulocytes"}
    phenotypes = {leaf: dict(table) for leaf, table in BLOOD_STRESS.phenotypes.items()}
    phenotypes["Neutrophils"] = phenotypes.pop("Granulocytes")
    phenotypes["Eosinophils"] = {**phenotypes["Neutrophils"], "CD45": (6500, 0.25),
                                 "CD16": (150, 0.8), "CD14": (300, 0.6)}
    scatter = dict(BLOOD_STRESS.scatter)
    scatter["Neutrophils"] = scatter.pop("Granulocytes")
    scatter["Eosinophils"] = (115000, 0.10, 150000, 0.12, 8.0)
    shapes = dict(BLOOD_STRESS.shapes)
    shapes["Neutrophils"] = shapes.pop("Granulocytes")
    shapes["Eosinophils"] = ScatterShape(fsc_skew=-1.0, ssc_skew=-1.0)
    return replace(BLOOD_STRESS, name="post-transplant blood, eosinophils",
                   hierarchy=hierarchy,
                   frequencies={**BLOOD_STRESS.frequencies, "Neutrophils": 0.95,
                                "Eosinophils": 0.05},
                   phenotypes=phenotypes, scatter=scatter, shapes=shapes)


BLOOD_EOSINOPHILS = _eosinophil_design()


# ======================================================================================
# Mouse splenocytes: another species, instrument, scale and channel naming
# ======================================================================================
_MOUSE_PANEL = {   # marker -> detector, as an Attune-style instrument names them
    "CD19": "BL1-A", "B220": "BL3-A", "CD11c": "RL1-A", "MHCII": "RL2-A",
    "Live/Dead": "RL3-A", "CD3e": "VL1-A", "CD4": "VL3-A", "CD8a": "VL4-A",
    "NK1.1": "YL1-A", "CD11b": "YL4-A",
}
# laser nm, voltage, lymphocyte autofluorescence, electronic SD, units per photoelectron
# (a 20-bit scale: values about four times an 18-bit instrument's)
_MOUSE_DETECTORS = {
    "BL1-A": (488, 360, 350.0, 110.0, 12.0), "BL3-A": (488, 420, 150.0, 120.0, 16.0),
    "RL1-A": (637, 380, 50.0, 130.0, 18.0), "RL2-A": (637, 420, 50.0, 130.0, 20.0),
    "RL3-A": (637, 400, 50.0, 130.0, 22.0), "VL1-A": (405, 300, 400.0, 100.0, 10.0),
    "VL3-A": (405, 360, 200.0, 110.0, 14.0), "VL4-A": (405, 380, 150.0, 120.0, 16.0),
    "YL1-A": (561, 340, 200.0, 100.0, 10.0), "YL4-A": (561, 400, 80.0, 120.0, 16.0),
}
_MOUSE_SPILL = {
    ("BL1-A", "YL1-A"): 0.01, ("BL1-A", "BL3-A"): 0.03,
    ("BL3-A", "RL2-A"): 0.12, ("BL3-A", "RL1-A"): 0.03, ("BL3-A", "YL4-A"): 0.05,
    ("YL1-A", "BL3-A"): 0.03, ("YL1-A", "YL4-A"): 0.02, ("YL1-A", "BL1-A"): 0.005,
    ("YL4-A", "RL3-A"): 0.08, ("YL4-A", "BL3-A"): 0.02,
    ("RL1-A", "RL2-A"): 0.25, ("RL1-A", "RL3-A"): 0.05, ("RL1-A", "BL3-A"): 0.01,
    ("RL2-A", "RL1-A"): 0.05, ("RL2-A", "RL3-A"): 0.15,
    ("RL3-A", "RL2-A"): 0.04, ("RL3-A", "YL4-A"): 0.05,
    ("VL1-A", "VL3-A"): 0.01, ("VL1-A", "BL1-A"): 0.005,
    ("VL3-A", "VL4-A"): 0.12, ("VL3-A", "YL1-A"): 0.02,
    ("VL4-A", "VL3-A"): 0.03, ("VL4-A", "BL3-A"): 0.02,
}
_MOUSE_HIERARCHY = {
    "Doublets": None, "Singlets": None,
    "Debris": "Singlets", "Dead cells": "Singlets", "Live leukocytes": "Singlets",
    "Lymphocytes": "Live leukocytes", "Myeloid cells": "Live leukocytes",
    "T cells": "Lymphocytes", "B cells": "Lymphocytes", "NK cells": "Lymphocytes",
    "pDC": "Lymphocytes", "Other lymphocytes": "Lymphocytes",
    "CD4 T": "T cells", "CD8 T": "T cells", "NKT cells": "T cells", "DN T": "T cells",
    "Neutrophils": "Myeloid cells", "Monocytes": "Myeloid cells",
    "Macrophages": "Myeloid cells", "cDC1": "Myeloid cells", "cDC2": "Myeloid cells",
}
# C57BL/6 spleen after red-cell lysis: B cells ~55%, T ~30% (CD4:CD8 ~1.5), NK 2-4%,
# myeloid ~10% of live leukocytes; cDC ~3%, pDC ~0.5-1%.
_MOUSE_FREQUENCIES = {
    "Doublets": 0.03, "Singlets": 0.97,
    "Debris": 0.06, "Dead cells": 0.08, "Live leukocytes": 0.86,
    "Lymphocytes": 0.87, "Myeloid cells": 0.13,
    "T cells": 0.34, "B cells": 0.58, "NK cells": 0.04, "pDC": 0.012,
    "Other lymphocytes": 0.028,
    "CD4 T": 0.56, "CD8 T": 0.37, "NKT cells": 0.03, "DN T": 0.04,
    "Neutrophils": 0.35, "Monocytes": 0.25, "Macrophages": 0.15, "cDC1": 0.08, "cDC2": 0.17,
}
_MOUSE_PHENOTYPES = {
    "CD4 T": {"CD3e": (30000, 0.35), "CD4": (40000, 0.30)},
    "CD8 T": {"CD3e": (30000, 0.35), "CD8a": (50000, 0.30)},
    "NKT cells": {"CD3e": (14000, 0.40), "NK1.1": (12000, 0.50), "CD4": (12000, 1.0)},
    "DN T": {"CD3e": (36000, 0.35), "CD8a": (900, 1.0)},
    "B cells": {"B220": (120000, 0.35), "CD19": (40000, 0.35), "MHCII": (60000, 0.45),
                "CD11c": (250, 0.8), "CD11b": (400, 1.0)},
    "NK cells": {"NK1.1": (25000, 0.45), "CD11b": (8000, 1.1), "CD11c": (1500, 0.8),
                 "B220": (600, 0.9)},
    "pDC": {"B220": (25000, 0.50), "CD11c": (6000, 0.50), "MHCII": (4000, 0.70),
            "CD4": (1500, 0.8), "CD8a": (1500, 0.9)},
    "Other lymphocytes": {},
    "Neutrophils": {"CD11b": (60000, 0.35), "CD11c": (300, 0.7)},
    "Monocytes": {"CD11b": (40000, 0.40), "CD11c": (800, 0.8), "MHCII": (1500, 1.0)},
    "Macrophages": {"CD11b": (2500, 0.8), "MHCII": (20000, 0.6), "CD11c": (2000, 0.7)},
    "cDC1": {"CD11c": (50000, 0.40), "MHCII": (80000, 0.45), "CD8a": (15000, 0.6),
             "CD11b": (500, 0.8)},
    "cDC2": {"CD11c": (60000, 0.40), "MHCII": (90000, 0.45), "CD11b": (25000, 0.5),
             "CD4": (8000, 0.9)},
    # dead cells take up the amine dye brightly and bind antibodies non-specifically
    "Dead cells": {"Live/Dead": (150000, 0.5), "CD3e": (3000, 1.5), "B220": (10000, 1.8),
                   "CD19": (4000, 1.5), "MHCII": (5000, 1.5), "CD11b": (2000, 1.5)},
    "Debris": {"Live/Dead": (3000, 1.3), "MHCII": (800, 1.5)},
}
_MOUSE_LIVE = tuple(leaf for leaf in _MOUSE_HIERARCHY
                    if leaf not in ("Doublets", "Debris", "Dead cells")
                    and leaf not in {p for p in _MOUSE_HIERARCHY.values() if p})
# live cells still take up a little amine dye
_MOUSE_PHENOTYPES.update({leaf: {"Live/Dead": (1200, 0.6), **_MOUSE_PHENOTYPES[leaf]}
                          for leaf in _MOUSE_LIVE})
_MOUSE_SCATTER = {
    "CD4 T": (160000, 0.10, 40000, 0.25, 1.0), "CD8 T": (160000, 0.10, 40000, 0.25, 1.0),
    "NKT cells": (170000, 0.10, 48000, 0.25, 1.1), "DN T": (160000, 0.10, 40000, 0.25, 1.0),
    "B cells": (170000, 0.10, 42000, 0.25, 1.0), "NK cells": (180000, 0.10, 60000, 0.25, 1.2),
    "pDC": (190000, 0.12, 50000, 0.25, 1.3), "Other lymphocytes": (165000, 0.10, 42000, 0.25, 1.0),
    "Neutrophils": (280000, 0.12, 400000, 0.25, 3.0),
    "Monocytes": (300000, 0.12, 180000, 0.25, 2.5),
    "Macrophages": (380000, 0.15, 300000, 0.30, 8.0),
    "cDC1": (260000, 0.12, 140000, 0.30, 2.0), "cDC2": (280000, 0.12, 160000, 0.30, 2.0),
    "Dead cells": (100000, 0.25, 90000, 0.45, 1.5),
    "Debris": (30000, 0.60, 20000, 0.90, 0.6),
}
_MOUSE_SHAPES = {leaf: ScatterShape(fsc_skew=-2.0, ssc_skew=2.0, tail=0.03)
                 for leaf in ("CD4 T", "CD8 T", "NKT cells", "DN T", "B cells", "NK cells",
                              "Other lymphocytes")}
_MOUSE_SHAPES.update({"Neutrophils": ScatterShape(fsc_skew=-1.5, ssc_skew=-1.0, tail=0.05,
                                                  tail_ssc=0.6),
                      "Dead cells": ScatterShape(fsc_skew=-1.0, ssc_skew=1.0),
                      "Debris": ScatterShape(fsc_skew=2.0)})

MOUSE_SPLEEN = Design(
    name="mouse splenocytes", panel=_MOUSE_PANEL, detectors=_MOUSE_DETECTORS,
    spill=_MOUSE_SPILL, hierarchy=_MOUSE_HIERARCHY, frequencies=_MOUSE_FREQUENCIES,
    phenotypes=_background(_MOUSE_PHENOTYPES, _MOUSE_PANEL, _MOUSE_LIVE, 150.0, 0.9),
    scatter=_MOUSE_SCATTER,
    groups={"Cells": ("Dead cells",) + _MOUSE_LIVE, "cDC": ("cDC1", "cDC2"),
            "CD11b+ myeloid": ("Neutrophils", "Monocytes")},
    doublet_source="Live leukocytes", shapes=_MOUSE_SHAPES,
    pulse=Pulse(reference=160000.0), autofluorescence_sd=0.45, range=1048576.0,
    fsc_threshold=16000.0, instrument="Attune NxT", serial="AN-2L2Y-0412",
    source="Mouse spleen", cells="Splenocytes, red cells lysed",
    description="Simulated mouse splenocytes", file_stem="spleen")


# ======================================================================================
# Intracellular cytokine staining: stimulated PBMC, rare cytokine-positive T cells
# ======================================================================================
_ICS_PANEL = {   # a FACSCanto II, 8 colours
    "IFNg": "FITC-A", "IL-2": "PE-A", "CD4": "PerCP-Cy5-5-A", "TNFa": "PE-Cy7-A",
    "CD107a": "APC-A", "CD3": "APC-Cy7-A", "CD8": "Pacific Blue-A", "L/D Aqua": "AmCyan-A",
}
_ICS_DETECTORS = {
    "FITC-A": (488, 500, 140.0, 30.0, 3.0), "PE-A": (488, 460, 80.0, 25.0, 2.5),
    "PerCP-Cy5-5-A": (488, 560, 45.0, 30.0, 4.0), "PE-Cy7-A": (488, 620, 30.0, 30.0, 4.5),
    "APC-A": (633, 560, 15.0, 35.0, 5.0), "APC-Cy7-A": (633, 600, 15.0, 35.0, 6.0),
    "Pacific Blue-A": (405, 420, 150.0, 25.0, 2.5), "AmCyan-A": (405, 460, 170.0, 30.0, 3.0),
}
_ICS_SPILL = {
    ("FITC-A", "PE-A"): 0.25, ("FITC-A", "PerCP-Cy5-5-A"): 0.03, ("FITC-A", "AmCyan-A"): 0.02,
    ("PE-A", "FITC-A"): 0.01, ("PE-A", "PerCP-Cy5-5-A"): 0.20, ("PE-A", "PE-Cy7-A"): 0.03,
    ("PerCP-Cy5-5-A", "PE-Cy7-A"): 0.25, ("PerCP-Cy5-5-A", "APC-A"): 0.02,
    ("PerCP-Cy5-5-A", "APC-Cy7-A"): 0.05, ("PerCP-Cy5-5-A", "PE-A"): 0.01,
    ("PE-Cy7-A", "APC-Cy7-A"): 0.05, ("PE-Cy7-A", "PerCP-Cy5-5-A"): 0.02,
    ("APC-A", "APC-Cy7-A"): 0.08, ("APC-A", "PerCP-Cy5-5-A"): 0.01,
    ("APC-Cy7-A", "APC-A"): 0.02, ("APC-Cy7-A", "PE-Cy7-A"): 0.03,
    ("Pacific Blue-A", "AmCyan-A"): 0.15, ("Pacific Blue-A", "FITC-A"): 0.01,
    ("AmCyan-A", "Pacific Blue-A"): 0.03, ("AmCyan-A", "FITC-A"): 0.06,
    ("AmCyan-A", "PE-A"): 0.02,
}
# functional profiles of responding T cells: name -> cytokines made
_CD4_PROFILES = {
    "CD4 IFNg+ TNFa+ IL-2+": ("IFNg", "TNFa", "IL-2"), "CD4 IFNg+ TNFa+": ("IFNg", "TNFa"),
    "CD4 TNFa+ IL-2+": ("TNFa", "IL-2"), "CD4 IFNg+ only": ("IFNg",),
    "CD4 TNFa+ only": ("TNFa",), "CD4 IL-2+ only": ("IL-2",),
}
_CD8_PROFILES = {
    "CD8 CD107a+ IFNg+ TNFa+": ("CD107a", "IFNg", "TNFa"), "CD8 IFNg+ TNFa+": ("IFNg", "TNFa"),
    "CD8 CD107a+ only": ("CD107a",), "CD8 IFNg+ only": ("IFNg",), "CD8 TNFa+ only": ("TNFa",),
}
# typical shares among responders (antigen- or SEB-stimulated PBMC)
_CD4_SHARES = (0.20, 0.25, 0.15, 0.10, 0.20, 0.10)
_CD8_SHARES = (0.25, 0.30, 0.15, 0.20, 0.10)
_CYTOKINE_STAIN = {"IFNg": (6000, 0.65), "TNFa": (9000, 0.65), "IL-2": (5000, 0.65),
                   "CD107a": (4000, 0.65)}

_ICS_HIERARCHY: dict[str, str | None] = {
    "Doublets": None, "Singlets": None,
    "Debris": "Singlets", "Dead cells": "Singlets", "Live cells": "Singlets",
    "Monocytes": "Live cells", "Lymphocytes": "Live cells",
    "T cells": "Lymphocytes", "Non-T lymphocytes": "Lymphocytes",
    "CD4 T": "T cells", "CD8 T": "T cells", "DN T": "T cells",
    **{p: "CD4 T" for p in _CD4_PROFILES}, "CD4 non-responding": "CD4 T",
    **{p: "CD8 T" for p in _CD8_PROFILES}, "CD8 non-responding": "CD8 T",
}
_ICS_FREQUENCIES = {
    "Doublets": 0.03, "Singlets": 0.97,
    "Debris": 0.04, "Dead cells": 0.12, "Live cells": 0.84,
    "Monocytes": 0.08, "Lymphocytes": 0.92,
    "T cells": 0.70, "Non-T lymphocytes": 0.30,
    "CD4 T": 0.62, "CD8 T": 0.33, "DN T": 0.05,
    **{p: 0.01 * s for p, s in zip(_CD4_PROFILES, _CD4_SHARES)}, "CD4 non-responding": 0.99,
    **{p: 0.01 * s for p, s in zip(_CD8_PROFILES, _CD8_SHARES)}, "CD8 non-responding": 0.99,
}


def _ics_phenotypes() -> dict:
    # stimulation lowers surface CD3 and CD4 (internalised with the TCR), most on responders
    cd4 = {"CD3": (4000, 0.40), "CD4": (14000, 0.35)}
    cd8 = {"CD3": (4000, 0.40), "CD8": (9000, 0.35)}
    table = {
        "CD4 non-responding": dict(cd4), "CD8 non-responding": dict(cd8),
        "DN T": {"CD3": (5000, 0.40), "CD8": (300, 1.0)},
        "Non-T lymphocytes": {"CD8": (600, 1.4), "CD107a": (250, 1.0)},   # NK: CD8 dim
        "Monocytes": {"CD4": (1500, 0.5), "TNFa": (1200, 0.9)},   # monocytes make TNF too
        "Dead cells": {"L/D Aqua": (40000, 0.5), "CD3": (800, 1.5), "CD4": (2000, 1.5),
                       "CD8": (800, 1.5), "IFNg": (500, 1.0), "TNFa": (600, 1.0),
                       "IL-2": (400, 1.0), "CD107a": (400, 1.0)},
        "Debris": {"L/D Aqua": (2000, 1.3)},
    }
    for profiles, base in ((_CD4_PROFILES, cd4), (_CD8_PROFILES, cd8)):
        for name, made in profiles.items():
            table[name] = {**base, "CD3": (2500, 0.45),
                           **{c: _CYTOKINE_STAIN[c] for c in made}}
            if "CD4" in base:
                table[name]["CD4"] = (9000, 0.40)
    live = [p for p in table if p not in ("Dead cells", "Debris")]
    for leaf in live:
        table[leaf].setdefault("L/D Aqua", (200, 0.6))
    # fixed and permeabilised cells bind cytokine antibodies more than surface stains
    return _background(table, _ICS_PANEL, live, 120.0, 0.7)


_ICS_SCATTER = {leaf: (52000, 0.10, 14000, 0.25, 1.0)
                for leaf in [*_CD4_PROFILES, *_CD8_PROFILES, "CD4 non-responding",
                             "CD8 non-responding", "DN T", "Non-T lymphocytes"]}
# six hours of stimulation: responders a little larger, not yet blasts
_ICS_SCATTER.update({
    **{p: (54500, 0.10, 14500, 0.25, 1.1) for p in [*_CD4_PROFILES, *_CD8_PROFILES]},
    "Monocytes": (90000, 0.13, 40000, 0.25, 2.5),
    "Dead cells": (36000, 0.25, 22000, 0.45, 1.5),
    "Debris": (10000, 0.55, 6000, 0.90, 0.6),
})
_ICS_SHAPES = {leaf: ScatterShape(fsc_skew=-2.0, ssc_skew=2.0, tail=0.05)
               for leaf in _ICS_SCATTER if leaf not in ("Monocytes", "Dead cells", "Debris")}
_ICS_SHAPES.update({"Monocytes": ScatterShape(fsc_skew=-1.5, ssc_skew=1.0, tail=0.08),
                    "Dead cells": ScatterShape(fsc_skew=-1.0, ssc_skew=1.0),
                    "Debris": ScatterShape(fsc_skew=2.0)})


def _ics_groups() -> dict[str, tuple[str, ...]]:
    groups = {}
    for prefix, profiles in (("CD4", _CD4_PROFILES), ("CD8", _CD8_PROFILES)):
        for cytokine in ("IFNg", "TNFa", "IL-2", "CD107a"):
            members = tuple(p for p, made in profiles.items() if cytokine in made)
            if members:
                groups[f"{prefix} {cytokine}+"] = members
        groups[f"{prefix} responding"] = tuple(profiles)
    groups["Cells"] = tuple(p for p in _ICS_SCATTER if p != "Debris")
    return groups


ICS = Design(
    name="intracellular cytokine staining", panel=_ICS_PANEL, detectors=_ICS_DETECTORS,
    spill=_ICS_SPILL, hierarchy=_ICS_HIERARCHY, frequencies=_ICS_FREQUENCIES,
    phenotypes=_ics_phenotypes(), scatter=_ICS_SCATTER, groups=_ics_groups(),
    doublet_source="Live cells", shapes=_ICS_SHAPES, pulse=Pulse(), autofluorescence_sd=0.45,
    instrument="FACSCanto II", serial="V96300412", source="PBMC, stimulated 6 h",
    cells="PBMC, fixed and permeabilised (ICS)",
    description="Simulated intracellular cytokine staining", file_stem="ics")


# ======================================================================================
# Scenarios
# ======================================================================================
def _rng(name: str, seed: int) -> np.random.Generator:
    """The scenario's own stream for its settings, apart from the simulation's."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _log_uniform(rng, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _common(rng, design: Design, *, doublets=(0.02, 0.05), debris=(0.03, 0.08),
            shift: float = 0.2) -> dict:
    """Variation every scenario has: marker intensities, doublet and debris rates,
    drift during acquisition, event rate."""
    d = float(rng.uniform(*doublets))
    return {
        "batch_shift": {m: float(rng.uniform(-shift, shift)) for m in design.markers},
        "frequencies": {"Doublets": d, "Singlets": 1.0 - d,
                        "Debris": float(rng.uniform(*debris))},
        "drift": float(rng.uniform(-0.05, 0.05)),
        "event_rate": float(rng.uniform(400.0, 1500.0)),
    }


def _run(design: Design, n_events: int, seed: int, settings: dict, scenario: str, *,
         beads: bool = True) -> SimulatedSample:
    settings = {**settings, "scenario": scenario}
    return generate(design, n_events, seed, batch_shift=settings["batch_shift"],
                    frequencies=settings["frequencies"], beads=beads,
                    event_rate=settings["event_rate"], drift=settings["drift"],
                    settings=settings)


def _b_share_of_cd3_negative(target: float, t_share: float) -> float:
    """B cells as a fraction of lymphocytes so that they are ``target`` of the
    CD3- lymphocytes (where the template looks for them)."""
    return target * (1.0 - t_share)


def mostly_positive(n_events: int = 100_000, seed: int = 0) -> SimulatedSample:
    """Parents where 80-95% of events carry the next marker: a T-cell-rich
    lymphocyte gate (T cells 80-95% of lymphocytes), CD8 T 75-90% of T cells and
    HLA-DR+ 55-85% of CD8 T cells (as in CMV reactivation or GVHD), NK cells most
    of the CD3- CD19- lymphocytes."""
    name = "mostly_positive"
    rng = _rng(name, seed)
    s = _common(rng, BLOOD_STRESS)
    t = float(rng.uniform(0.80, 0.95))
    s["frequencies"].update({
        "T cells": t, "CD8 T": float(rng.uniform(0.75, 0.90)),
        "Activated CD8 T": float(rng.uniform(0.55, 0.85)),
        "DN T": 0.03,
    })
    return _run(BLOOD_STRESS, n_events, seed, s, name)


def minor_bright(n_events: int = 100_000, seed: int = 0) -> SimulatedSample:
    """Minor bright populations: B cells 0.5-5% of the CD3- lymphocytes they are
    gated in, FoxP3+ Treg 0.5-5% of CD4 T, CD56bright NK 3-8% of NK cells, dendritic
    cells 0.2-0.6% of lymphocytes (pDC 15-40% of them)."""
    name = "minor_bright"
    rng = _rng(name, seed)
    s = _common(rng, BLOOD_STRESS)
    t = float(rng.uniform(0.5, 0.7))
    b_target = _log_uniform(rng, 0.005, 0.05)
    s["frequencies"].update({
        "T cells": t, "B cells": _b_share_of_cd3_negative(b_target, t),
        "Treg": _log_uniform(rng, 0.005, 0.05),
        "CD56bright NK": float(rng.uniform(0.03, 0.08)),
        "Dendritic cells": float(rng.uniform(0.002, 0.006)),
        "pDC": float(rng.uniform(0.15, 0.40)),
    })
    s["B cells % of CD3- lymphocytes"] = 100 * b_target
    return _run(BLOOD_STRESS, n_events, seed, s, name)


def spillover_spread(n_events: int = 100_000, seed: int = 0) -> SimulatedSample:
    """Broad, skewed negatives and spillover spreading: CD8 on a bright PE-Cy5
    conjugate (15,000-30,000 units) spilling 30-60% into the HLA-DR (PerCP-Cy5.5),
    CD11c (APC-R700) and FoxP3 (APC) detectors run at high voltage; non-specific
    binding on every unexpressed marker; stronger autofluorescence variation."""
    name = "spillover_spread"
    rng = _rng(name, seed)
    s = _common(rng, BLOOD_PE_CY5)
    bright = float(rng.uniform(15000, 30000))
    phenotypes = {leaf: dict(table) for leaf, table in BLOOD_PE_CY5.phenotypes.items()}
    for leaf in ("Resting CD8 T", "Activated CD8 T"):
        phenotypes[leaf]["CD8"] = (bright, 0.35)
    design = replace(BLOOD_PE_CY5, phenotypes=phenotypes)
    s["frequencies"]["Activated CD8 T"] = float(rng.uniform(0.2, 0.5))
    s["CD8 PE-Cy5 median"] = bright
    return _run(design, n_events, seed, s, name)


def doublets(n_events: int = 100_000, seed: int = 0) -> SimulatedSample:
    """Doublets at 2-5% of events formed from overlapping FSC pulses (every
    overlap from complete, invisible, to two peaks in one event), with the size
    dependence of FSC-H/FSC-A and the spread of pulse separations drawn per
    seed, so big singlets (monocytes, granulocytes) sit below the lymphocytes'
    line by a varying amount."""
    name = "doublets"
    rng = _rng(name, seed)
    s = _common(rng, BLOOD_STRESS, doublets=(0.02, 0.05))
    size = float(rng.uniform(0.45, 0.65))
    design = replace(BLOOD_STRESS, pulse=Pulse(size=size, jitter=0.025,
                                               separation=float(rng.uniform(2.5, 3.5))))
    s["pulse size"] = size
    s["pulse separation"] = design.pulse.separation
    return _run(design, n_events, seed, s, name)


def ficoll_pbmc(n_events: int = 100_000, seed: int = 0) -> SimulatedSample:
    """Ficoll-separated PBMC of a healthy donor, no counting beads: granulocytes
    0.5-3% of leukocytes (contamination), monocytes 12-30%, lymphocytes the rest;
    a healthy lymphocyte mix (T 60-75%, CD4:CD8 about 2, B 8-15%, NK most of the
    rest, CD56bright 5-10% of NK)."""
    name = "ficoll_pbmc"
    rng = _rng(name, seed)
    s = _common(rng, BLOOD_STRESS, debris=(0.02, 0.06))
    gran = float(rng.uniform(0.005, 0.03))
    mono = float(rng.uniform(0.12, 0.30))
    s["frequencies"].update({
        "Beads": 0.0, "Granulocytes": gran, "Monocytes": mono, "Basophils": 0.005,
        "Lymphocytes": 1.0 - gran - mono - 0.005,
        "T cells": float(rng.uniform(0.60, 0.75)), "B cells": float(rng.uniform(0.08, 0.15)),
        "Dendritic cells": 0.01,
        "CD4 T": float(rng.uniform(0.58, 0.68)), "CD8 T": 0.30,
        "CD56bright NK": float(rng.uniform(0.05, 0.10)),
        "Treg": float(rng.uniform(0.05, 0.09)), "Activated CD4 T": 0.06,
        "Activated CD8 T": 0.10,
    })
    s["frequencies"]["DN T"] = 1.0 - s["frequencies"]["CD4 T"] - 0.30
    return _run(BLOOD_STRESS, n_events, seed, s, name, beads=False)


def lymphocyte_enriched(n_events: int = 100_000, seed: int = 0) -> SimulatedSample:
    """A lymphocyte-enriched file (negative selection, or events exported from a
    lymphocyte gate): lymphocytes 93-98% of leukocytes, monocytes 1.5-5%,
    granulocytes 0.2-1%, no beads; one scatter cluster holds nearly everything."""
    name = "lymphocyte_enriched"
    rng = _rng(name, seed)
    s = _common(rng, BLOOD_STRESS, debris=(0.02, 0.06))
    gran = float(rng.uniform(0.002, 0.01))
    mono = float(rng.uniform(0.015, 0.05))
    s["frequencies"].update({
        "Beads": 0.0, "Granulocytes": gran, "Monocytes": mono, "Basophils": 0.002,
        "Lymphocytes": 1.0 - gran - mono - 0.002,
    })
    return _run(BLOOD_STRESS, n_events, seed, s, name, beads=False)


def dim_shoulders(n_events: int = 100_000, seed: int = 0) -> SimulatedSample:
    """Dim populations that are shoulders of the negative rather than peaks:
    CD56dim NK at 900-1,800 units (against CD56- cells with an NK-like T tail),
    HLA-DR on activated T cells at 500-1,000, CD25 on Treg at 900-1,500 and on
    activated CD4 T at 400-700."""
    name = "dim_shoulders"
    rng = _rng(name, seed)
    s = _common(rng, BLOOD_STRESS)
    cd56 = float(rng.uniform(900, 1800))
    hladr = float(rng.uniform(700, 1300))
    cd25 = float(rng.uniform(900, 1500))
    phenotypes = {leaf: dict(table) for leaf, table in BLOOD_STRESS.phenotypes.items()}
    phenotypes["CD56dim NK"]["CD56"] = (cd56, 0.55)
    for leaf in ("Activated CD4 T", "Activated CD8 T"):
        phenotypes[leaf]["HLA-DR"] = (hladr, 0.5)
    phenotypes["Treg"]["CD25"] = (cd25, 0.5)
    phenotypes["Activated CD4 T"]["CD25"] = (float(rng.uniform(400, 700)), 0.7)
    design = replace(BLOOD_STRESS, phenotypes=phenotypes)
    s["frequencies"].update({"NK cells": float(rng.uniform(0.15, 0.35)),
                             "CD56bright NK": float(rng.uniform(0.05, 0.15))})
    s.update({"CD56dim median": cd56, "activated HLA-DR median": hladr,
              "Treg CD25 median": cd25})
    return _run(design, n_events, seed, s, name)


def eosinophils(n_events: int = 100_000, seed: int = 0) -> SimulatedSample:
    """Lysed whole blood with eosinophils 2-15% of the granulocytes (1.5-11% of
    leukocytes: normal blood to the eosinophilia of allergy, drug reactions and chronic
    GVHD): a cloud of their own above the neutrophils in side scatter, brighter in CD45."""
    name = "eosinophils"
    rng = _rng(name, seed)
    s = _common(rng, BLOOD_EOSINOPHILS)
    eos = float(rng.uniform(0.02, 0.15))
    s["frequencies"].update({"Eosinophils": eos, "Neutrophils": 1.0 - eos})
    return _run(BLOOD_EOSINOPHILS, n_events, seed, s, name)


def mouse_spleen(n_events: int = 100_000, seed: int = 0) -> SimulatedSample:
    """Mouse splenocytes on another instrument (Attune-style channel names, a
    20-bit scale): CD3e, CD4, CD8a, B220, CD19, NK1.1, CD11b, CD11c, MHCII and
    a fixable viability dye; dead cells 4-15%, B cells 50-62% and NK cells 2-5%
    of lymphocytes, cDC (CD11c+ MHCII+) 2-4% of live leukocytes."""
    name = "mouse_spleen"
    rng = _rng(name, seed)
    s = _common(rng, MOUSE_SPLEEN)
    dead = float(rng.uniform(0.04, 0.15))
    b = float(rng.uniform(0.50, 0.62))
    nk = float(rng.uniform(0.02, 0.05))
    s["frequencies"].update({
        "Dead cells": dead, "Live leukocytes": 1.0 - dead - s["frequencies"]["Debris"],
        "B cells": b, "NK cells": nk, "T cells": 0.96 - b - nk,
        "Myeloid cells": float(rng.uniform(0.08, 0.16)),
        "CD4 T": float(rng.uniform(0.50, 0.62)),
    })
    s["frequencies"]["Lymphocytes"] = 1.0 - s["frequencies"]["Myeloid cells"]
    return _run(MOUSE_SPLEEN, n_events, seed, s, name, beads=False)


def ics(n_events: int = 200_000, seed: int = 0) -> SimulatedSample:
    """Intracellular cytokine staining of stimulated PBMC on an 8-colour
    instrument: live/dead, CD3, CD4, CD8, IFNg, TNFa, IL-2, CD107a. Responding
    (cytokine+) cells are 0.1-3% of CD4 T and of CD8 T (log-uniform, drawn apart),
    split into polyfunctional profiles; dead cells 8-20% bind antibodies
    non-specifically; CD4 (PerCP-Cy5.5) spreads into TNFa (PE-Cy7)."""
    name = "ics"
    rng = _rng(name, seed)
    s = _common(rng, ICS)
    dead = float(rng.uniform(0.08, 0.20))
    cd4_resp = _log_uniform(rng, 0.001, 0.03)
    cd8_resp = _log_uniform(rng, 0.001, 0.03)
    f = s["frequencies"]
    f.update({"Dead cells": dead, "Live cells": 1.0 - dead - f["Debris"],
              "T cells": float(rng.uniform(0.60, 0.80))})
    for profiles, base_shares, total in ((_CD4_PROFILES, _CD4_SHARES, cd4_resp),
                                         (_CD8_PROFILES, _CD8_SHARES, cd8_resp)):
        shares = rng.dirichlet(np.asarray(base_shares) * 20.0)
        for p, share in zip(profiles, shares):
            f[p] = float(total * share)
    f["CD4 non-responding"] = 1.0 - cd4_resp
    f["CD8 non-responding"] = 1.0 - cd8_resp
    s.update({"CD4 responding %": 100 * cd4_resp, "CD8 responding %": 100 * cd8_resp})
    return _run(ICS, n_events, seed, s, name, beads=False)


@dataclass(frozen=True)
class Scenario:
    """A named stress scenario: ``make(n_events, seed)`` and what it stresses."""

    name: str
    make: Callable[..., SimulatedSample]
    design: Design
    stresses: str
    n_events: int = 100_000

    def __call__(self, n_events: int | None = None, seed: int = 0) -> SimulatedSample:
        return self.make(self.n_events if n_events is None else n_events, seed)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("mostly_positive", mostly_positive, BLOOD_STRESS,
             "parents where 80-95% of events are positive for the next marker"),
    Scenario("minor_bright", minor_bright, BLOOD_STRESS,
             "minor bright populations at 0.5-5% of their parent"),
    Scenario("spillover_spread", spillover_spread, BLOOD_PE_CY5,
             "broad skewed negatives, spillover spreading from a bright PE-Cy5 tandem"),
    Scenario("doublets", doublets, BLOOD_STRESS,
             "doublets at 2-5% from overlapping pulses; size-dependent FSC-H/FSC-A"),
    Scenario("ficoll_pbmc", ficoll_pbmc, BLOOD_STRESS,
             "Ficoll PBMC without beads: almost no granulocytes"),
    Scenario("lymphocyte_enriched", lymphocyte_enriched, BLOOD_STRESS,
             "one scatter cluster holds 93-98% of the leukocytes"),
    Scenario("dim_shoulders", dim_shoulders, BLOOD_STRESS,
             "dim populations that are shoulders (CD56dim NK, HLA-DR dim, CD25 dim)"),
    Scenario("eosinophils", eosinophils, BLOOD_EOSINOPHILS,
             "eosinophils 2-15% of granulocytes: a cloud above the neutrophils"),
    Scenario("mouse_spleen", mouse_spleen, MOUSE_SPLEEN,
             "another species, instrument, scale and channel naming"),
    Scenario("ics", ics, ICS,
             "rare cytokine+ T cells (0.1-3%), dead cells, CD3/CD4 down-modulation",
             n_events=200_000),
)}


def scenario(name: str, n_events: int | None = None, seed: int = 0) -> SimulatedSample:
    """Simulate a scenario by name (``SCENARIOS``)."""
    try:
        chosen = SCENARIOS[name]
    except KeyError:
        raise ImmunomonError(f"unknown stress scenario {name!r}; scenarios are "
                             f"{', '.join(SCENARIOS)}") from None
    return chosen(n_events, seed)


__all__ = ['BLOOD_EOSINOPHILS', 'BLOOD_PE_CY5', 'BLOOD_STRESS', 'ICS', 'MOUSE_SPLEEN',
           'SCENARIOS', 'Scenario', 'dim_shoulders', 'doublets', 'eosinophils', 'ficoll_pbmc',
           'ics', 'lymphocyte_enriched', 'minor_bright', 'mostly_positive', 'mouse_spleen',
           'scenario', 'spillover_spread']
