"""Write ``bench_strategy.xml``: a static Gating-ML 2.0 strategy of 21 gates
(every gate type, every transform, ratio and both kinds of compensation) for
the simulated blood panel of ``immunomon.simulate``. Run once; the XML is
committed so that the benchmark reads a fixed document.

    python benchmarks/make_bench_strategy.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from immunomon.gating import (BooleanGate, Dimension, Divider, EllipsoidGate, FRatio,
                              GateReference, GatingStrategy, PolygonGate, Quadrant,
                              QuadrantGate, RatioDimension, RectangleGate, SpectrumMatrix,
                              save_gatingml)
from immunomon.simulate import DETECTORS, PANEL, spillover_matrix
from immunomon.transforms import Asinh, Hyperlog, Linear, Log, Logicle

HERE = Path(__file__).resolve().parent
T = 262144.0
LOGICLE = Logicle(T=T, W=0.5, M=4.5, A=0.0)
ASINH = Asinh(T=T, M=4.5, A=0.0)
HYPERLOG = Hyperlog(T=T, W=0.5, M=4.5, A=0.0)
LOG = Log(T=T, M=4.5)
LINEAR = Linear(T=T, A=1000.0)


def on(transform, logicle_value: float) -> float:
    """A logicle-scale threshold expressed on another transform's scale."""
    raw = LOGICLE.inverse(np.array([logicle_value]))
    return float(np.round(transform.apply(raw)[0], 6))


def fl(marker: str, transform=None, compensation: str = "FCS") -> Dimension:
    return Dimension(PANEL[marker], compensation, transform)


def strategy() -> GatingStrategy:
    s = GatingStrategy(transforms={"Logicle": LOGICLE, "Asinh": ASINH, "Hyperlog": HYPERLOG,
                                   "Log": LOG, "Linear": LINEAR,
                                   "FSCratio": FRatio("FSC-H", "FSC-A", 1.0, 0.0, 0.0)},
                       compensations={"PanelSpill": SpectrumMatrix(DETECTORS, DETECTORS,
                                                                   spillover_matrix())})
    fsc, ssc = Dimension("FSC-A"), Dimension("SSC-A")
    s.add(RectangleGate("Singlets", [RatioDimension("FSCratio")], [(0.75, 1.0)]))
    s.add(PolygonGate("Cells", [fsc, ssc], [(42000, 0), (200000, 0), (262143, 150000),
                                            (200000, 262143), (42000, 262143)],
                      parent="Singlets"))
    s.add(RectangleGate("Beads", [fsc, ssc], [(33000, 43000), (75000, 95000)],
                        parent="Singlets"))
    s.add(RectangleGate("Leukocytes", [fl("CD45", "Logicle")], [(0.5, 0.8)], parent="Cells"))
    s.add(EllipsoidGate("Lymphocytes", [fsc, ssc], [55000, 15000],
                        [[9000.0 ** 2, 0.3 * 9000 * 5000], [0.3 * 9000 * 5000, 5000.0 ** 2]],
                        4.0, parent="Leukocytes"))
    s.add(PolygonGate("Monocytes", [fsc, ssc], [(68000, 24000), (122000, 26000),
                                                (118000, 64000), (72000, 60000)],
                      parent="Leukocytes"))
    s.add(RectangleGate("Granulocytes", [ssc, fsc], [(75000, None), (80000, None)],
                        parent="Leukocytes"))
    s.add(RectangleGate("T_cells", [fl("CD3", "Logicle")], [(0.5, 0.85)],
                        parent="Lymphocytes"))
    s.add(QuadrantGate("CD4_vs_CD8", [Divider("CD4", fl("CD4", "Logicle"), [0.5]),
                                      Divider("CD8", fl("CD8", "Logicle"), [0.5])],
                       [Quadrant("CD4pos_CD8neg", {"CD4": 0.8, "CD8": 0.2}),
                        Quadrant("CD4neg_CD8pos", {"CD4": 0.2, "CD8": 0.8}),
                        Quadrant("CD4pos_CD8pos", {"CD4": 0.8, "CD8": 0.8}),
                        Quadrant("CD4neg_CD8neg", {"CD4": 0.2, "CD8": 0.2})],
                       parent="T_cells"))
    s.add(PolygonGate("Treg", [fl("CD127", "Logicle"), fl("CD25", "Logicle")],
                      [(0.1, 0.45), (0.46, 0.47), (0.44, 0.8), (0.1, 0.8)],
                      parent="CD4pos_CD8neg"))
    s.add(RectangleGate("Activated_CD4", [fl("HLA-DR", "Asinh")], [(on(ASINH, 0.42), None)],
                        parent="CD4pos_CD8neg"))
    s.add(RectangleGate("Activated_CD8", [fl("HLA-DR", "Asinh")], [(on(ASINH, 0.42), None)],
                        parent="CD4neg_CD8pos"))
    s.add(BooleanGate("Activated_T", "or", ["Activated_CD4", "Activated_CD8"]))
    s.add(BooleanGate("Non-T", "not", ["T_cells"], parent="Lymphocytes"))
    s.add(RectangleGate("B_cells", [fl("CD19", "Hyperlog")], [(on(HYPERLOG, 0.45), None)],
                        parent="Non-T"))
    s.add(RectangleGate("NK_cells", [fl("CD56", "Logicle"), fl("CD3", "Logicle")],
                        [(0.45, None), (None, 0.4)], parent="Lymphocytes"))
    s.add(RectangleGate("CD56bright_NK", [fl("CD56", "Log")], [(on(LOG, 0.7), None)],
                        parent="NK_cells"))
    s.add(EllipsoidGate("CD16pos_monocytes", [fl("CD14", "Logicle"), fl("CD16", "Logicle"),
                                            fl("HLA-DR", "Logicle")],
                        [0.6, 0.6, 0.65], np.diag([0.01, 0.01, 0.005]), 4.0,
                        parent="Monocytes"))
    s.add(QuadrantGate("Monocyte_subsets",
                       [Divider("CD14", fl("CD14", "Logicle"), [0.45, 0.65]),
                        Divider("CD16", fl("CD16", "Logicle"), [0.45])],
                       [Quadrant("CD14hi_CD16neg", {"CD14": 0.8, "CD16": 0.2}),
                        Quadrant("CD14pos_CD16pos", {"CD14": 0.5, "CD16": 0.8}),
                        Quadrant("CD14neg", {"CD14": 0.1})],
                       parent="Monocytes"))
    s.add(RectangleGate("Dendritic_cells", [fl("CD11c", "Linear", "PanelSpill"),
                                            fl("HLA-DR", "Logicle", "PanelSpill")],
                        [(on(LINEAR, 0.5), None), (0.45, None)], parent="Non-T"))
    s.add(BooleanGate("Non-T_non-NK", "and", ["Non-T", GateReference("NK_cells", True)]))
    return s


if __name__ == "__main__":
    out = save_gatingml(strategy(), HERE / "bench_strategy.xml")
    print(f"wrote {out}")
