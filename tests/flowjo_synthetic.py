"""A synthetic FlowJo 10 workspace and FCS file whose counts are known by design.

Events sit in tight clusters at chosen positions on FlowJo's display axes
(0-1 of each axis); each cluster is inside or outside every gate by a wide
margin, so the expected counts follow from the design table below, not from
the code under test. Display positions become data values through formulas
written here (log, fasinh, linear), FlowJo's own exported biex table and
immunomon's logicle inverse (validated against Gating-ML reference values).
Compensated values are turned into detector values with the spillover matrix.

The workspace XML is written by hand in FlowJo 10's layout, independently of
immunomon's writer.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data" / "flowjo"
TOP = 262144.0

# channel: (FlowJo transform element, display -> data value)
LOG_OFFSET, LOG_DECADES = 10.0, 4.4
BIEX = dict(neg=1.0, width=-7.943282, pos=4.41854, maxRange=262144.000029)
LOGICLE = dict(T=TOP, W=0.5, M=4.5, A=0.0)
FASINH = dict(T=TOP, M=4.5, A=0.0)


def _biex_table():
    return np.loadtxt(DATA / "flowjo_biex_l256_w-7.943282_n1_m4.41854_r262144.000029.csv",
                      delimiter=",", skiprows=1)


def to_data(channel: str, y):
    """Display position (0-1 of the axis) -> data value, per channel."""
    y = np.asarray(y, dtype=np.float64)
    if channel == "FSC-A":
        return y * TOP
    if channel == "SSC-A":
        return LOG_OFFSET * 10.0 ** (LOG_DECADES * y)
    if channel == "FL1-A":                      # FlowJo's exported biex table, channels 0..4095
        table = _biex_table()
        return np.interp(y * 4096, table[:, 0], table[:, 1])
    if channel == "FL2-A":
        from immunomon.transforms import logicle_inverse
        return logicle_inverse(y, **LOGICLE)
    if channel == "FL3-A":
        M, A, T = FASINH["M"], FASINH["A"], FASINH["T"]
        ln10 = math.log(10)
        return np.sinh(y * (M + A) * ln10 - A * ln10) * T / math.sinh(M * ln10)
    raise KeyError(channel)


CHANNELS = ["FSC-A", "SSC-A", "FL1-A", "FL2-A", "FL3-A"]
SPILL = np.array([[1.0, 0.12, 0.01],      # FL1 dye into FL1, FL2, FL3
                  [0.04, 1.0, 0.08],
                  [0.0, 0.15, 1.0]])

# name: (events, FSC, SSC, FL1, FL2, FL3) in display units
CLUSTERS = {
    "A": (101, 0.05, 0.50, 0.80, 0.80, 0.80),
    "B": (53, 0.55, 0.50, 0.80, 0.80, 0.80),     # outside the triangle on the log axis only
    "C": (211, 0.30, 0.40, 0.20, 0.80, 0.80),
    "D": (307, 0.30, 0.40, 0.80, 0.80, 0.80),
    "E": (149, 0.60, 0.35, 0.90, 0.30, 0.70),
    "F": (89, 0.35, 0.45, 0.70, 0.70, 0.30),
    "G": (67, 0.65, 0.32, 0.62, 0.78, 0.20),
    "H": (41, 0.70, 0.25, 0.80, 0.80, 0.80),
    "I": (131, 0.80, 0.50, 0.85, 0.80, 0.80),
    "J": (97, 0.55, 0.38, 0.80, 0.20, 0.20),
    "K": (23, 0.58, 0.33, 0.78, 0.75, 0.75),
    "L": (37, 1.50, 0.50, 0.50, 0.50, 0.50),     # FSC-A off the top of FlowJo's axis
}

# population path: clusters inside it (worked out by hand from the gate design)
EXPECTED = {
    "Cells": "BCDEFGHIJK",
    "Cells/Lymph": "CDEFGJK",
    "Cells/Lymph/NotDebris": "CDEK",
    "Cells/Lymph/CD3+": "DEFGJK",
    "Cells/Lymph/CD3+/Q1: FL2-, FL3+": "E",
    "Cells/Lymph/CD3+/Q1: FL2-, FL3+/hi": "E",
    "Cells/Lymph/CD3+/Q2: FL2+, FL3+": "DK",
    "Cells/Lymph/CD3+/Q2: FL2+, FL3+/hi": "K",
    "Cells/Lymph/CD3+/Q3: FL2+, FL3-": "FG",
    "Cells/Lymph/CD3+/Q4: FL2-, FL3-": "J",
    "Cells/Lymph/CD3+/Ell": "DFK",
    "Cells/Lymph/CD3+/Q2 and Ell": "DK",
    "Cells/Lymph/CD3+/Q1 or Q3": "EFG",
    "Cells/Lymph/CD3+/not Ell": "EGJ",
    # drawn to the top of the FSC-A axis: FlowJo takes in the events drawn on it
    "FSC high": "L",
    "Edge poly": "L",
}


def expected_counts() -> dict[str, int]:
    return {p: sum(CLUSTERS[c][0] for c in cs) for p, cs in EXPECTED.items()}


def events(seed: int = 7) -> np.ndarray:
    """Detector values (events x 5 channels, float32) of the design."""
    rng = np.random.default_rng(seed)
    rows = []
    for n, *pos in CLUSTERS.values():
        display = np.asarray(pos) + rng.uniform(-0.004, 0.004, size=(n, 5))
        rows.append(np.column_stack([to_data(ch, display[:, i]) for i, ch in enumerate(CHANNELS)]))
    data = np.vstack(rows)
    data[:, 2:] = data[:, 2:] @ SPILL          # compensated values -> detector values
    return data.astype(np.float32)


def write_fcs_file(path: Path) -> Path:
    from immunomon import write_fcs
    from immunomon.fcs import Channel, Sample

    ev = events()
    sample = Sample(events=ev, channel_info=tuple(Channel(c, range=TOP) for c in CHANNELS),
                    keywords={"$FIL": path.name})
    return write_fcs(path, sample)


# ----------------------------------------------------------------------------- the workspace
def _dim(name, lo=None, hi=None):
    b = "".join(f' gating:{k}="{v!r}"' for k, v in (("min", lo), ("max", hi)) if v is not None)
    return (f'<gating:dimension{b}><data-type:fcs-dimension data-type:name="{name}" />'
            "</gating:dimension>")


def _data(axis, y):
    ch = axis.replace("Comp-", "")
    return float(to_data(ch, y))


def rect(axes_bounds, inside=True):
    dims = "".join(_dim(a, None if lo is None else _data(a, lo), None if hi is None else
                        _data(a, hi)) for a, (lo, hi) in axes_bounds)
    return (f'<Gate gating:id="g"><gating:RectangleGate eventsInside="{int(inside)}">{dims}'
            "</gating:RectangleGate></Gate>")


def polygon(x, y, display_vertices, inside=True):
    verts = "".join(f'<gating:vertex><gating:coordinate data-type:value="{_data(x, vx)!r}" />'
                    f'<gating:coordinate data-type:value="{_data(y, vy)!r}" /></gating:vertex>'
                    for vx, vy in display_vertices)
    return (f'<Gate gating:id="g"><gating:PolygonGate eventsInside="{int(inside)}" '
            f'gateResolution="256">{_dim(x)}{_dim(y)}{verts}</gating:PolygonGate></Gate>')


def ellipse(x, y, centre, a, b, angle):
    """Display-space ellipse written as FlowJo does: foci and edge points in 256 bins."""
    u = np.array([math.cos(angle), math.sin(angle)])
    v = np.array([-u[1], u[0]])
    c = np.asarray(centre) * 256
    a, b = a * 256, b * 256
    f = math.sqrt(a * a - b * b)

    def vx(points):
        return "".join(f'<gating:vertex><gating:coordinate data-type:value="{float(p[0])!r}" />'
                       f'<gating:coordinate data-type:value="{float(p[1])!r}" /></gating:vertex>'
                       for p in points)
    foci = vx([c - f * u, c + f * u])
    edge = vx([c + a * u, c - a * u, c + b * v, c - b * v])
    return (f'<Gate gating:id="g"><gating:EllipsoidGate eventsInside="1" gating:distance="1">'
            f"{_dim(x)}{_dim(y)}<gating:foci>{foci}</gating:foci><gating:edge>{edge}"
            "</gating:edge></gating:EllipsoidGate></Gate>")


def pop(name, gate, children="", count=None):
    count = expected_counts().get(name, -1) if count is None else count
    return (f'<Population name="{name.split("/")[-1]}" owningGroup="" count="{count}">{gate}'
            f"<Subpopulations>{children}</Subpopulations></Population>")


def boolean(kind, name, deps):
    d = "".join(f'<Dependent name="{x}" />' for x in deps)
    return (f'<{kind} name="{name.split("/")[-1]}" owningGroup="" '
            f'count="{expected_counts()[name]}"><Dependents>{d}</Dependents></{kind}>')


def workspace_xml(fcs_name: str = "synthetic.fcs", *, transforms: str | None = None,
                  extra_gate: str = "") -> str:
    cd3 = "Cells/Lymph/CD3+"
    hi = rect([("FSC-A", (0.5, 0.9)), ("Comp-FL1-A", (0.75, None))])
    quads = "".join(
        pop(f"{cd3}/{name}", rect([("Comp-FL2-A", fl2), ("Comp-FL3-A", fl3)]),
            pop(f"{cd3}/{name}/hi", hi) if name.startswith(("Q1", "Q2")) else "")
        for name, fl2, fl3 in [("Q1: FL2-, FL3+", (None, 0.5), (0.5, None)),
                               ("Q2: FL2+, FL3+", (0.5, None), (0.5, None)),
                               ("Q3: FL2+, FL3-", (0.5, None), (None, 0.5)),
                               ("Q4: FL2-, FL3-", (None, 0.5), (None, 0.5))])
    ell = pop(f"{cd3}/Ell", ellipse("Comp-FL1-A", "Comp-FL2-A", (0.7, 0.7), 0.2, 0.07,
                                    math.pi / 4))
    bools = (boolean("AndNode", f"{cd3}/Q2 and Ell", [f"{cd3}/Q2: FL2+, FL3+", f"{cd3}/Ell"])
             + boolean("OrNode", f"{cd3}/Q1 or Q3", [f"{cd3}/Q1: FL2-, FL3+",
                                                     f"{cd3}/Q3: FL2+, FL3-"])
             + boolean("NotNode", f"{cd3}/not Ell", [f"{cd3}/Ell"]))
    cd3_pop = pop(cd3, rect([("Comp-FL1-A", (0.5, None))]), quads + ell + bools)
    debris = pop("Cells/Lymph/NotDebris",
                 polygon("SSC-A", "Comp-FL3-A", [(0.25, 0.1), (0.5, 0.1), (0.5, 0.4),
                                                 (0.25, 0.4)], inside=False))
    lymph = pop("Cells/Lymph", polygon("FSC-A", "SSC-A", [(0.2, 0.3), (0.7, 0.3), (0.2, 0.8)]),
                debris + cd3_pop + extra_gate)
    cells = pop("Cells", rect([("FSC-A", (0.1, 0.9)), ("SSC-A", (0.2, 0.95))]), lymph)
    cells += pop("FSC high", rect([("FSC-A", (0.85, 1.3))]))
    cells += pop("Edge poly", polygon("FSC-A", "SSC-A", [(0.85, 0.4), (1.0, 0.4), (1.0, 0.6),
                                                         (0.85, 0.6)]))
    spill = "".join(
        f'<transforms:spillover data-type:parameter="{r}">' + "".join(
            f'<transforms:coefficient data-type:parameter="{c}" transforms:value="{float(v)!r}" />'
            for c, v in zip(("FL1-A", "FL2-A", "FL3-A"), row)) + "</transforms:spillover>"
        for r, row in zip(("FL1-A", "FL2-A", "FL3-A"), SPILL))
    if transforms is None:
        transforms = (
            '<transforms:linear transforms:minRange="0" transforms:maxRange="262144" gain="1">'
            '<data-type:parameter data-type:name="FSC-A" /></transforms:linear>'
            f'<transforms:log transforms:offset="{LOG_OFFSET}" transforms:decades="{LOG_DECADES}">'
            '<data-type:parameter data-type:name="SSC-A" /></transforms:log>'
            '<transforms:biex transforms:length="256" transforms:maxRange="{maxRange}" '
            'transforms:neg="{neg}" transforms:width="{width}" transforms:pos="{pos}">'
            '<data-type:parameter data-type:name="FL1-A" /></transforms:biex>'.format(**BIEX)
            + '<transforms:logicle transforms:length="256" transforms:T="{T}" transforms:W="{W}" '
            'transforms:M="{M}" transforms:A="{A}"><data-type:parameter '
            'data-type:name="FL2-A" /></transforms:logicle>'.format(**LOGICLE)
            + '<transforms:fasinh transforms:length="256" transforms:maxRange="262144" '
            'transforms:T="{T}" transforms:M="{M}" transforms:A="{A}" transforms:W="1">'
            '<data-type:parameter data-type:name="FL3-A" /></transforms:fasinh>'.format(**FASINH))
    n = sum(c[0] for c in CLUSTERS.values())
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Workspace version="20.0" flowJoVersion="10.8.1"
  xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/gating"
  xmlns:transforms="http://www.isac-net.org/std/Gating-ML/v2.0/transformations"
  xmlns:data-type="http://www.isac-net.org/std/Gating-ML/v2.0/datatypes">
 <Groups><GroupNode name="All Samples"><Group name="All Samples"><SampleRefs>
   <SampleRef sampleID="1" /></SampleRefs></Group></GroupNode></Groups>
 <SampleList><Sample>
  <DataSet uri="file:/C:/Users/lab/Data/{fcs_name}" sampleID="1" />
  <transforms:spilloverMatrix spectral="0" prefix="Comp-" name="Acquisition-defined" suffix=""
     transforms:id="m1">
   <data-type:parameters><data-type:parameter data-type:name="FL1-A" />
   <data-type:parameter data-type:name="FL2-A" /><data-type:parameter data-type:name="FL3-A" />
   </data-type:parameters>{spill}</transforms:spilloverMatrix>
  <Transformations>{transforms}</Transformations>
  <Keywords><Keyword name="$FIL" value="{fcs_name}" /><Keyword name="$TOT" value="{n}" /></Keywords>
  <SampleNode name="{fcs_name}" count="{n}" sampleID="1"><Subpopulations>{cells}</Subpopulations>
  </SampleNode></Sample></SampleList></Workspace>"""
