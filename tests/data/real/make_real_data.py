"""Rebuild the real-data test files in this folder from their public sources.

    python tests/data/real/make_real_data.py FLOWWORKSPACEDATA_DIR CYTOEXPLORERDATA_DIR \
        FLOWSOM_DIR CYTOPT_R_DIR CYTOPT_DIR CYTOMETREE_DIR DEEPCYTOF_DIR OPTIMALFLOWDATA_DIR

Each argument is a checkout of the public repository named in SOURCES.md. FlowSOM's
example file and workspace are copied whole, with labels from its ``gatingResult.csv``.
For each other expert-gated file: every third event is kept (all channels and keywords, so the file
still carries its instrument's spillover matrix), and the expert's membership of each
kept event in each population is stored beside it (``*.labels.npz``, one boolean
array per population path).

The expert's memberships come from the expert's own gates, evaluated here:

* flowWorkspaceData ``A2004Analysis.xml`` (FlowJo 9): polygons, rectangles and ranges
  on the events compensated with the workspace's matrix, in the raw values FlowJo 9
  stores its vertices in. FlowJo counts a few percent more B cells and pDC, because it
  draws polygon edges straight on its display scale; see SOURCES.md.
* CytoExploreRData ``Activation-gatingTemplate.csv``: polygons on linear scatter, then
  rectangles and an ellipse on fluorescence compensated with each file's $SPILLOVER
  and logicle-transformed as CytoExploreR does (flowCore's estimateLogicle on all 33
  files pooled: t = 262143, m = 4.5, a = 0, w from the 5% quantile of the negative
  values), in that transform's 0..4.5 units.

* flowWorkspaceData ``diva/PE_2.xml`` (BD FACSDiva 6.1.3, the experiment of
  ``diva/124500.fcs``, a FACSCanto II): rectangles, polygons and an interval in the
  coordinates FACSDiva stores (``_diva_axis``): linear values; log10 values; or its
  biexponential display scaled to 0..4,096, a logicle of top 262,144 and 4.5 decades
  whose width comes from the gate's scale value r, W = (4.5 - log10(262,144 / r)) / 2
  (as CytoML reads these files); polygons are tested on that display, where FACSDiva
  draws their edges, on the events compensated with the file's $SPILLOVER. The file is
  copied whole; the labels' counts are within 0.2% of the counts FACSDiva stored.

flowWorkspaceData's openCyto-gated HIPC tubes (``gs_DC_auto``, ``gs_bcell_auto``) come as
cytolib's HDF5 frames (compensated display values) and protobuf gating trees holding every
population's events; the protobuf is read by its field numbers (``_opencyto_nodes``).

CytOpT-R's HIPC Stanford T cells come as R data frames of values already compensated and
on FlowJo's display scale, with one expert label per event; they are written whole as FCS
files of those values (reading the ``.RData`` needs the ``rdata`` package). The same
panel from four other centres comes from the CytOpt article's data (``CYTOPT_DIR``): CSV
files of the same kind of values and one class number per event, written alike. The
class numbers are named by the Stanford file both sources hold: its values and the
R package's labels are the same event for event, and each label is one class number.

FlowCAP-I's DLBCL file comes from the cytometree package (``CYTOMETREE_DIR``), an R data
frame of three channels and the challenge's manual population number per event, written
whole (reading it needs ``rdata`` too). Its GvHD tubes come from a copy of DeepCyTOF's
data (``DEEPCYTOF_DIR``): a CSV file of six channels per tube and one of the manual
population number of every event; every third event is kept. The same copy holds
DeepCyTOF's sixteen CyTOF files of blood cells at several centres, eight channels of ion
counts without names, and the manual gate of every event; one file's every third event
is kept, its channels named by the populations' medians (``deepcytof_multicentre``). A lymphoma patient's whole
LST file comes from optimalFlowData (``OPTIMALFLOWDATA_DIR``), an R data frame of the
display values and the expert's class of every event (``rdata`` reads it); every third
event is kept.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import immunomon
from immunomon.transforms import logicle

HERE = Path(__file__).resolve().parent
STRIDE = 3


def _inside(vertices, x, y) -> np.ndarray:
    from matplotlib.path import Path as MPath
    return MPath(np.asarray(vertices)).contains_points(np.column_stack([x, y]))


def _compensated(sample, detectors, matrix) -> np.ndarray:
    X = sample.events.astype(np.float64)
    idx = [sample.channels.index(c) for c in detectors]
    X[:, idx] = X[:, idx] @ np.linalg.inv(matrix)
    return X


def _save(sample, labels: dict, stem: str) -> None:
    keep = np.arange(0, sample.n_events, STRIDE)
    from dataclasses import replace
    immunomon.write_fcs(HERE / f"{stem}.fcs", replace(sample, events=sample.events[keep]))
    np.savez_compressed(HERE / f"{stem}.labels.npz",
                        **{k: v[keep] for k, v in labels.items()})


def a2004(root: Path) -> None:
    import defusedxml.ElementTree as ET

    ws = ET.parse(root / "inst/extdata/A2004Analysis.xml").getroot()
    cm = ws.find(".//CompensationMatrix")
    detectors = [c.get("name") for c in cm.findall("Channel")]
    matrix = np.array([[float(v.get("value")) for v in c.findall("ChannelValue")]
                       for c in cm.findall("Channel")])
    sample = immunomon.read_fcs(root / "inst/extdata/a2004_O1T2pb05i_A2_A02.fcs")
    X = _compensated(sample, detectors, matrix)

    def col(name):
        return X[:, sample.channels.index(name.strip("<>"))]

    node = next(n for n in ws.iter("SampleNode") if n.get("sampleID") == "2")
    labels: dict[str, np.ndarray] = {}

    def walk(pop, parent, path):
        for p in pop.findall("Population"):
            g = p.find("PolygonGate")
            params = [e.text or "" for e in g.find("ParameterNames").iter("String")]
            shape = next(c for c in g if c.tag in ("Polygon", "PolyRect", "Range", "Ellipse"))
            if shape.tag == "Ellipse":
                continue                    # holds no event of this sample in FlowJo either
            v = np.array([[float(e.get("x")), float(e.get("y"))] for e in shape.iter("Vertex")])
            if shape.tag == "Range":
                x = col(params[0])
                m = (x >= v[:, 0].min()) & (x <= v[:, 0].max())
            else:
                m = _inside(v, col(params[0]), col(params[1]))
            name = f"{path}/{p.get('name')}"
            labels[name] = m & parent
            walk(p, labels[name], name)

    walk(node, np.ones(sample.n_events, bool), "")
    _save(sample, labels, "a2004_A2")


FLUOR = ("Alexa Fluor 488-A", "PE-A", "PE-Texas Red-A", "7-AAD-A", "PE-Cy7-A",
         "Alexa Fluor 405-A", "Alexa Fluor 430-A", "Qdot 605-A", "Alexa Fluor 647-A",
         "Alexa Fluor 700-A", "APC-Cy7-A")
CELLS = [(40463.69, 88032.67), (29995.52, 32195.17), (52094.99, -2311.15),
         (202720.35, 27176.07), (248663.99, 98070.88), (225401.38, 202844.62),
         (112577.76, 212255.43)]
SINGLE = [(16089.76, 29857.85), (27513.58, 16995.01), (245110.14, 178445.79),
          (227702.41, 198848.91)]


def activation(root: Path, keep=(1, 8, 23)) -> None:
    folder = root / "inst/extdata/Activation"
    samples = {i: immunomon.read_fcs(folder / f"Activation_{i}.fcs") for i in range(1, 34)}
    comp = {i: _compensated(s, s.spillover.detectors, s.spillover.matrix)
            for i, s in samples.items()}
    first = samples[1]
    t = float(first.ranges[0]) - 1
    pooled = np.vstack(list(comp.values()))
    w = {}
    for c in FLUOR:
        v = pooled[:, first.channels.index(c)]
        r = np.finfo(float).eps + np.quantile(v[v < 0], 0.05)
        w[c] = (4.5 - np.log10(t / abs(r))) / 2
    for i in keep:
        s, X = samples[i], comp[i]

        def lin(c):
            return X[:, s.channels.index(c)]

        def lg(c):
            return 4.5 * logicle(lin(c), T=t, W=w[c], M=4.5, A=0.0)

        def box(x, y, xr, yr):
            return (x >= xr[0]) & (x <= xr[1]) & (y >= yr[0]) & (y <= yr[1])

        cells = _inside(CELLS, lin("FSC-A"), lin("SSC-A"))
        single = cells & _inside(SINGLE, lin("FSC-A"), lin("FSC-H"))
        dead = single & box(lg("Alexa Fluor 405-A"), lg("Alexa Fluor 430-A"),
                            (2.41395867506624, 4.70643434661431),
                            (2.19016711399334, 4.53719595716015))
        live = single & ~dead
        cd11c, va2 = lg("APC-Cy7-A"), lg("PE-A")
        dc = live & box(cd11c, va2, (1.43146882815852, 3.11612481033933),
                        (-0.220989929548638, 2.51265754784699))
        d = np.column_stack([cd11c, va2]) - [0.740657152538642, 3.35986234456051]
        cov = np.array([[0.80942122217665, 0.0101024700318546],
                        [0.0101024700318546, 0.608966185368147]])
        tcell = live & (np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d) <= 1.0)
        cd4, cd8 = lg("Alexa Fluor 700-A"), lg("Alexa Fluor 488-A")
        cd4t = tcell & box(cd4, cd8, (1.82337659064485, 3.19005611189579),
                           (-0.227363515861704, 2.11075780716252))
        cd8t = tcell & box(cd4, cd8, (-0.313475920482321, 1.86868088416698),
                           (2.22209691778273, 4.14522701031347))
        cd44, cd69 = lg("Alexa Fluor 647-A"), lg("7-AAD-A")
        labels = {
            "Cells": cells, "Single Cells": single, "Dead Cells": dead, "Live Cells": live,
            "Dendritic Cells": dc, "T Cells": tcell, "CD4 T Cells": cd4t, "CD8 T Cells": cd8t,
            "CD69+ CD4 T Cells": cd4t & box(cd44, cd69, (-0.0402850326476606, 4.09207294954423),
                                            (2.59136013434899, 4.15547144143088)),
            "CD69+ CD8 T Cells": cd8t & box(cd44, cd69, (-0.414124996267192, 4.06011507475606),
                                            (2.2913363778163, 4.29477808316906)),
        }
        _save(s, labels, f"activation_{i}")


def _diva_axis(values: np.ndarray, scaled: bool, log: bool, scale: float) -> np.ndarray:
    """Event values in the coordinates a FACSDiva gate stores for one axis."""
    if scaled and log:
        w = max((4.5 - np.log10(262144.0 / scale)) / 2, 0.0) if scale > 0 else 0.0
        return 4096.0 * logicle(values, T=262144.0, W=w, M=4.5, A=0.0)
    if scaled:
        return values * (4096.0 / 262144.0)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log10(values)
    return values


def canto(root: Path) -> None:
    import shutil

    import defusedxml.ElementTree as ET

    extdata = root / "inst/extdata/diva"
    shutil.copyfile(extdata / "124500.fcs", HERE / "canto_124500.fcs")
    sample = immunomon.read_fcs(HERE / "canto_124500.fcs")
    X = _compensated(sample, sample.spillover.detectors, sample.spillover.matrix)
    tube = next(t for t in ET.parse(extdata / "PE_2.xml").getroot().iter("tube")
                if t.findtext("data_filename") == "124500.fcs")
    labels: dict[str, np.ndarray] = {}
    for gate in tube.find("gates").findall("gate"):
        region = gate.find("region")
        if region is None:
            continue                       # All Events
        path = "/" + "/".join(gate.get("fullname").split("\\")[1:])
        parent = labels.get(path.rsplit("/", 1)[0], np.ones(sample.n_events, bool))
        axes = []
        for axis in ("x", "y")[:1 + (region.get("yparm") is not None)]:
            values = X[:, sample.channels.index(region.get(f"{axis}parm"))]
            axes.append(_diva_axis(values, gate.findtext(f"is_{axis}_parameter_scaled") == "true",
                                   gate.findtext(f"is_{axis}_parameter_log") == "true",
                                   float(gate.findtext(f"{axis}_parameter_scale_value"))))
        points = np.array([[float(p.get("x")), float(p.get("y"))] for p in region.iter("point")])
        if region.get("type") == "POLYGON_REGION":
            inside = _inside(points, *axes)
        else:                              # a rectangle, or an interval on x alone
            inside = np.ones(sample.n_events, bool)
            for k, v in enumerate(axes):
                inside &= (v >= points[:, k].min()) & (v <= points[:, k].max())
        labels[path] = parent & inside
    np.savez_compressed(HERE / "canto_124500.labels.npz", **labels)


def flowsom(root: Path) -> None:
    import shutil

    extdata = root / "inst/extdata"
    shutil.copyfile(extdata / "68983.fcs", HERE / "68983.fcs")
    shutil.copyfile(extdata / "gating.wsp", HERE / "68983.wsp")
    leaf = np.array([line.strip().strip('"') for line in
                     (extdata / "gatingResult.csv").read_text().splitlines()])
    np.savez_compressed(HERE / "68983.labels.npz",
                        **{name: leaf == name for name in np.unique(leaf) if name != "Unlabeled"})


def hipc(root: Path) -> None:
    import rdata
    from immunomon.fcs.sample import Channel, Sample

    data = rdata.read_rda(root / "data" / "HIPC_Stanford.RData")
    for donor in ("1228", "1369"):
        frame = data[f"HIPC_Stanford_{donor}_1A"]
        label = np.asarray(data[f"HIPC_Stanford_{donor}_1A_labels"], dtype=str)
        channels = tuple(Channel(name=c, marker=c, range=4096.0) for c in frame.columns)
        keywords = {"$CYT": "HIPC lyoplate T-cell panel, Stanford (values on FlowJo's "
                            "display scale, pre-gated to T cells)",
                    "DATA SOURCE": f"CytOpT-R data/HIPC_Stanford.RData, "
                                   f"HIPC_Stanford_{donor}_1A"}
        stem = f"hipc_stanford_{donor}"
        immunomon.write_fcs(HERE / f"{stem}.fcs",
                            Sample(events=frame.to_numpy(np.float32), channel_info=channels,
                                   keywords=keywords))
        groups = {"CD4 T": np.char.startswith(label, "CD4"),
                  "CD8 T": np.char.startswith(label, "CD8")}
        np.savez_compressed(HERE / f"{stem}.labels.npz",
                            **{name: label == name for name in np.unique(label)}, **groups)


#: The CytOpt article's class numbers, named from the Stanford file both sources hold.
LYOPLATE_CLASSES = {1: "CD8 Effector", 2: "CD8 Naive", 3: "CD8 Central Memory",
                    4: "CD8 Effector Memory", 5: "CD8 Activated", 6: "CD4 Effector",
                    7: "CD4 Naive", 8: "CD4 Central Memory", 9: "CD4 Effector Memory",
                    10: "CD4 Activated"}
#: file stem -> (centre folder, file stem in the CytOpt data)
LYOPLATE = {"lyoplate_yale_1": ("Yale", "FTV_1"), "lyoplate_yale_5": ("Yale", "FTV_5"),
            "lyoplate_yale_8": ("Yale", "FTV_8"), "lyoplate_ucla_1": ("UCLA", "IU_1"),
            "lyoplate_nhlbi_1": ("Nhlbi", "D54_1"), "lyoplate_miami_1": ("Miami", "pM_1")}


def cytopt_file(values: Path, keywords: dict | None = None):
    """One file of the CytOpt data (``<stem>_values.csv`` beside ``<stem>_clust.csv``)
    as a Sample (every channel on the 0-4,096 display scale) and its class number per
    event."""
    import pandas as pd
    from immunomon.fcs.sample import Channel, Sample

    frame = pd.read_csv(values, index_col=0)
    code = pd.read_csv(values.with_name(values.name.replace("_values", "_clust")),
                       index_col=0)["x"].to_numpy()
    channels = tuple(Channel(name=c, marker=c, range=4096.0) for c in frame.columns)
    return Sample(events=frame.to_numpy(np.float32), channel_info=channels,
                  keywords=keywords or {}), code


#: optimalFlow's nine classes (the CytOpt article's ``OF_Cytometry<n>.csv``) by the
#: population names of the EuroFlow LST template
LST_CLASSES = {"CD4 T": "CD4+CD8-", "CD8 T": "CD8+CD4-", "DN T": "TCRgd-",
               "CD56bright NK": "CD56bright", "CD56dim NK": "CD56dim",
               "Monocytes": "Monocytes", "Eosinophils": "Eosinophils",
               "B kappa": "Mature SIg Kappa", "B lambda": "Mature SIg Lambda"}
#: the whole files' classes (optimalFlowData's ``Cytometry<n>.RData``, named by three
#: hands: "CD8+CD4-" in some files is "CD8+CD4-CD5+" and "CD8+CD4-CD5-" in others) by
#: the population names of the whole-blood LST template; debris, doublets, DCs, plasma
#: cells, nucleated red cells and the T cells no subset holds are in none
LST_WHOLE_CLASSES = {
    "Neutrophils": ("Neutrophils", "Neutrophils (main population)", "Neutrophils (U.S.)",
                    "Neutrophils (unspecific staining)"),
    "Eosinophils": ("Eosinophils",),
    "Basophils": ("Basophils",),
    "Monocytes": ("Monocytes",),
    "CD4 T": ("CD4+CD8-", "CD4+CD8negativo"),
    "CD8 T": ("CD8+CD4-", "CD8+CD4-CD5+", "CD8+CD4-CD5-"),
    "TCRgd T": ("TCRgd+", "TCRgd+CD5+CD8+", "TCRgd+CD5+CD8-", "TCRgd+CD5-CD8+",
                "TCRgd+CD5-CD8-"),
    "NK cells": ("CD56dim", "CD56bright", "NK CELLS"),
    "B kappa": ("Mature SIg Kappa", "Abnormal SIg Kappa"),
    "B lambda": ("Mature SIg Lambda", "Abnormal SIg Lambda"),
    "B cells": ("Mature SIg Kappa", "Abnormal SIg Kappa", "Mature SIg Lambda",
                "Abnormal SIg Lambda", "B CELLS", "Mature B cells"),
}
#: detector names of the files' column headers, as an instrument writes them
LST_DETECTORS = {"PE Cy7-A": "PE-Cy7-A", "APC H7-A": "APC-H7-A",
                 "PerCP Cy5-5-A": "PerCP-Cy5-5-A"}


#: the columns of every file's values, in the order of file 1's header
LST_COLUMNS = ("CD19/TCRgd:PE Cy7-A LOGICAL", "CD38:APC H7-A LOGICAL", "CD3:APC-A LOGICAL",
               "CD4+CD20:PB-A LOGICAL", "CD45:PO-A LOGICAL", "CD56+IgK:PE-A LOGICAL",
               "CD5:PerCP Cy5-5-A LOGICAL", "CD8+IgL:FITC-A LOGICAL", "FSC-A LINEAR",
               "SSC-A Exp-SSC Low")


def lst_file(path: Path):
    """One EuroFlow Lymphoid Screening Tube of the optimalFlow data as a Sample, with the
    marker in $PnS (``CD4+CD20``: two antibodies in one colour), and the expert's class
    name of every event. Two forms: the CytOpt article's ``Data/OF_Cytometry<n>.csv``
    (an expert's Infinicyt export of the CD45+ events classified into nine populations,
    ``LST_CLASSES``) and optimalFlowData's ``data/Cytometry<n>.RData`` (the whole files:
    neutrophils, debris and doublets too, ``LST_WHOLE_CLASSES``), both on the software's
    display scale.

    Files 15 to 21 list their columns in another order than files 1 to 13, but their
    values follow the first order: named by their header, the CD4 T cells would be
    CD56+ and the NK cells CD4+CD20+, CD38 and CD5 bright on the B cells and T cells
    the wrong way round; named by position in ``LST_COLUMNS``, every file shows the
    panel's populations where the tube puts them."""
    import pandas as pd
    from immunomon.fcs.sample import Channel, Sample

    if path.suffix == ".RData":
        import rdata

        frame = next(iter(rdata.read_rda(path).values())).copy()
    else:
        frame = pd.read_csv(path, index_col=0)
    label = frame.pop(frame.columns[-1]).to_numpy(str)
    if sorted(frame.columns) != sorted(LST_COLUMNS):
        raise ValueError(f"{path}: columns {list(frame.columns)} are not the LST tube's")
    frame.columns = list(LST_COLUMNS)
    channels = []
    for column in frame.columns:        # "CD3:APC-A LOGICAL", "FSC-A LINEAR"
        marker, _, detector = column.rpartition(":")
        detector = detector.rsplit(" ", 1)[0].split(" Exp-")[0]
        detector = LST_DETECTORS.get(detector, detector.split(" ")[0])
        channels.append(Channel(name=detector, marker=marker or None, range=8192.0))
    where = "optimalFlowData data" if path.suffix == ".RData" else "CytOpt Data"
    keywords = {"DATA SOURCE": f"{where}/{path.name} (optimalFlow's EuroFlow LST data)"}
    sample = Sample(events=frame.to_numpy(np.float32), channel_info=tuple(channels),
                    keywords=keywords)
    return sample, label


def lst_labels(label: np.ndarray, classes: dict) -> dict[str, np.ndarray]:
    """Each population of ``classes`` (``LST_CLASSES`` or ``LST_WHOLE_CLASSES``) as a
    boolean array over the events' class names."""
    return {pop: np.isin(label, names) for pop, names in classes.items()}


def lst(root: Path) -> None:
    """optimalFlow's third LST file, whole (``lst_file``): a fifth of its eosinophils
    piled at the top of side scatter, which thinning would hide."""
    sample, label = lst_file(root / "Data" / "OF_Cytometry3.csv")
    immunomon.write_fcs(HERE / "euroflow_lst_3.fcs", sample)
    np.savez_compressed(HERE / "euroflow_lst_3.labels.npz", **lst_labels(label, LST_CLASSES))


def lst_whole(root: Path, n: int = 23) -> None:
    """optimalFlowData's whole file ``Cytometry<n>.RData`` (23: a mantle-cell lymphoma
    patient's blood, the kappa clone 80% of the events; 11: a donor's, whose eosinophils
    the side-scatter-highest cluster is), every third event, with the populations of
    ``LST_WHOLE_CLASSES``."""
    sample, label = lst_file(root / "data" / f"Cytometry{n}.RData")
    _save(sample, lst_labels(label, LST_WHOLE_CLASSES), f"euroflow_lst_whole_{n}")


def lyoplate_labels(code: np.ndarray) -> dict[str, np.ndarray]:
    """Each named class of ``LYOPLATE_CLASSES`` and CD4 T and CD8 T, as boolean arrays."""
    labels = {name: code == k for k, name in LYOPLATE_CLASSES.items()}
    return labels | {"CD4 T": code >= 6, "CD8 T": (code >= 1) & (code <= 5)}


def lyoplate(root: Path) -> None:
    for stem, (centre, source) in LYOPLATE.items():
        sample, code = cytopt_file(
            root / "Data" / centre / f"{source}_values.csv",
            {"$CYT": f"HIPC lyoplate T-cell panel, {centre} (values on FlowJo's display "
                     "scale, pre-gated to T cells)",
             "DATA SOURCE": f"CytOpt Data/{centre}/{source}_values.csv"})
        immunomon.write_fcs(HERE / f"{stem}.fcs", sample)
        np.savez_compressed(HERE / f"{stem}.labels.npz", **lyoplate_labels(code))


def flowcap_dlbcl(root: Path) -> None:
    """FlowCAP-I's DLBCL file as the cytometree package stores it (``data/DLBCL.RData``:
    channels FL1, FL2 and FL4 in 1,024 channel numbers, and the FlowCAP-I manual gating's
    population number of every event, 0 where it assigned none), written whole."""
    import rdata
    from immunomon.fcs.sample import Channel, Sample

    frame = rdata.read_rda(root / "data" / "DLBCL.RData")["DLBCL"]
    channels = tuple(Channel(name=c, marker=None, range=1024.0) for c in ("FL1", "FL2", "FL4"))
    keywords = {"$CYT": "FlowCAP-I DLBCL (channel numbers of a 1,024-channel scale)",
                "DATA SOURCE": "cytometree data/DLBCL.RData"}
    immunomon.write_fcs(HERE / "flowcap_dlbcl.fcs",
                        Sample(events=frame[["FL1", "FL2", "FL4"]].to_numpy(np.float32),
                               channel_info=channels, keywords=keywords))
    label = frame["label"].to_numpy(np.int64)
    np.savez_compressed(HERE / "flowcap_dlbcl.labels.npz",
                        **{f"population {k}": label == k for k in (1, 2)})


GVHD_CHANNELS = ("FSC-H", "SSC-H", "FL1-H", "FL2-H", "FL3-H", "FL4-H")


def flowcap_gvhd(root: Path) -> None:
    """FlowCAP-I's twelve GvHD tubes (``Data/FlowCAP-I/GvHD/sample<n>.csv`` and
    ``labels<n>.csv``). Population 1 is the CD3+ CD4+ T cells and 3 the CD3+ CD8b+ CD8+
    T cells in every tube (checked here by their medians: FL1 and FL3 bright in the
    first, FL2, FL3 and FL4 in the second, so FL1 is CD4 and FL3 CD3); the other numbers name
    different populations in different tubes, and 0 events the manual gating assigned
    to none."""
    import pandas as pd
    from immunomon.fcs.sample import Channel, Sample

    channels = tuple(Channel(name=n, marker=None, range=1024.0) for n in GVHD_CHANNELS)
    for n in range(1, 13):
        frame = pd.read_csv(root / "Data" / "FlowCAP-I" / "GvHD" / f"sample{n}.csv")
        label = np.loadtxt(root / "Data" / "FlowCAP-I" / "GvHD" / f"labels{n}.csv",
                           dtype=np.int64)
        cd4, cd8 = frame[label == 1].median().to_numpy(), frame[label == 3].median().to_numpy()
        assert min(cd4[2], cd4[4], cd8[3], cd8[4], cd8[5]) > 400 > max(cd4[5], cd8[2]), n
        keywords = {"$CYT": "FlowCAP-I GvHD (FSC-H, SSC-H, FL1-H to FL4-H in 1,024 channel numbers)",
                    "DATA SOURCE": f"DeepCyTOF Data/FlowCAP-I/GvHD/sample{n}.csv"}
        sample = Sample(events=frame.to_numpy(np.float32), channel_info=channels,
                        keywords=keywords)
        _save(sample, {"CD4 T": label == 1, "CD8 T": label == 3}, f"flowcap_gvhd_{n}")


#: the markers of DeepCyTOF's multi-centre CyTOF channels, read from the manual
#: populations' medians (arcsinh(count / 5)); the data name none
CYTOF_MARKERS = ("CD19", "CD20", "CD45", "CD14", "CD56", "CD8", "CD3", "CD4")
CYTOF_POPULATIONS = {1: "B cells", 2: "CD4 T", 3: "CD8 T", 4: "Monocytes"}


def deepcytof_file(root: Path, n: int):
    """DeepCyTOF's multi-centre CyTOF file ``n`` (``Data/MultiCenter_16sample/sample<n>.csv``
    and ``labels<n>.csv``) as a sample, and the manual population of every event by name
    (0 in the labels: none of the four). Ion counts, 0 where a cell carried no ions. The
    medians name the channels: B cells bright in the first two (the second brighter:
    CD20), CD4 T cells in the 7th and 8th (CD3, CD4), CD8 T cells in the 6th and 7th,
    monocytes in the 4th (CD14), every event in the 3rd (CD45); the 5th is bright on none
    of them (an NK marker). Each channel declares the power of two above its largest
    count, as CyTOF software writes a range from the data."""
    from immunomon.fcs.sample import Channel, Sample

    folder = root / "Data" / "MultiCenter_16sample"
    counts = np.loadtxt(folder / f"sample{n}.csv", delimiter=",", dtype=np.float32)
    label = np.loadtxt(folder / f"labels{n}.csv", dtype=np.int64)
    medians = {k: np.median(np.arcsinh(counts[label == k] / 5), axis=0)
               for k in CYTOF_POPULATIONS}
    assert min(medians[1][1], medians[2][6], medians[2][7], medians[3][5], medians[3][6],
               medians[4][3]) > 2.5 > max(medians[1][6], medians[4][6], medians[2][5]), n
    channels = tuple(Channel(name=f"Ch{i + 1}Di", marker=m,
                             range=float(2 ** int(np.ceil(np.log2(counts[:, i].max() + 1)))))
                     for i, m in enumerate(CYTOF_MARKERS))
    keywords = {"$CYT": "CyTOF (DeepCyTOF multi-centre data)",
                "DATA SOURCE": f"DeepCyTOF Data/MultiCenter_16sample/sample{n}.csv"}
    return (Sample(events=counts, channel_info=channels, keywords=keywords),
            {name: label == k for k, name in CYTOF_POPULATIONS.items()})


def deepcytof_multicentre(root: Path, n: int = 9) -> None:
    """One of DeepCyTOF's multi-centre CyTOF files (``deepcytof_file``), every third event."""
    _save(*deepcytof_file(root, n), f"deepcytof_multicentre_{n}")


# --------------------------------------------------------------------------- openCyto
def _varint(b: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        c = b[i]
        i += 1
        value |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return value, i


def _fields(b: bytes) -> list[tuple[int, object]]:
    """(field number, value) of one protobuf message, read from the wire format."""
    out, i = [], 0
    while i < len(b):
        key, i = _varint(b, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(b, i)
        elif wire == 2:
            n, i = _varint(b, i)
            value, i = b[i:i + n], i + n
        elif wire == 5:
            value, i = float(np.frombuffer(b[i:i + 4], "<f4")[0]), i + 4
        elif wire == 1:
            value, i = b[i:i + 8], i + 8
        else:
            raise ValueError(f"protobuf wire type {wire}")
        out.append((number, value))
    return out


def _get(fields, number) -> list:
    return [v for f, v in fields if f == number]


def _opencyto_nodes(path: Path) -> list[tuple[str, int | None, np.ndarray | None, list]]:
    """(name, parent index, membership or None, boolean operands) of every node of a
    cytolib ``GatingHierarchy`` file (one length-prefixed message; cytolib's
    ``GatingSet.proto``: tree = 2, node = 1, properties = 1, name = 1, indices = 5,
    gate = 6; a boolean gate stores its operands and no membership)."""
    raw = path.read_bytes()
    n, i = _varint(raw, 0)
    tree = _fields(_get(_fields(raw[i:i + n]), 2)[0])
    nodes = []
    for item in _get(tree, 1):
        entry = _fields(item)
        props = _fields(_get(entry, 1)[0])
        parent = _get(entry, 2)
        members, operands = None, []
        if _get(props, 5):
            ind = _fields(_get(props, 5)[0])
            total, kind = _get(ind, 1)[0], _get(ind, 2)[0]
            if kind == 0:                                  # bits packed into bytes
                bits = np.frombuffer(_get(ind, 4)[0], np.uint8)
                members = np.unpackbits(bits, bitorder="little")[:total].astype(bool)
            elif kind == 1:                                # event numbers, packed varints
                rows, j = [], 0
                for packed in _get(ind, 3):
                    while j < len(packed):
                        v, j = _varint(packed, j)
                        rows.append(v)
                members = np.zeros(total, bool)
                members[rows] = True
            else:                                          # the root: every event
                members = np.ones(total, bool)
        gate = _fields(_get(props, 6)[0]) if _get(props, 6) else []
        for spec in (_get(_fields(_get(gate, 8)[0]), 1) if _get(gate, 8) else []):
            op = _fields(spec)
            operands.append((_get(op, 1)[0].decode(), bool(_get(op, 3)[0])))
        nodes.append((_get(props, 1)[0].decode(), parent[0] if parent else None,
                      members, operands))
    return nodes


#: file stem -> (folder and file of flowWorkspaceData's inst/extdata, panel)
OPENCYTO = {"opencyto_dc_1": ("gs_DC_auto", "DC_MONO_NK_12828001_001", "DC, monocyte and NK"),
            "opencyto_dc_2": ("gs_DC_auto", "DC_MONO_NK_12828001_002", "DC, monocyte and NK"),
            "opencyto_bcell_1": ("gs_bcell_auto", "12828_1_Bcell_C01", "B-cell")}


def opencyto(root: Path) -> None:
    """HIPC lyoplate tubes as flowWorkspace stores them after openCyto gated them
    (``*.fcs.h5``: events compensated and on FlowJo's display scale; ``*.fcs.pb``: the
    gating tree with every population's events). Channels are named as the instrument
    named them ($PnN the detector, $PnS the marker: the stored frame has them swapped);
    every third event is kept, with its membership in every population by path."""
    import h5py
    from immunomon.fcs.sample import Channel, Sample

    for stem, (folder, name, panel) in OPENCYTO.items():
        with h5py.File(root / "inst/extdata" / folder / f"{name}.fcs.h5", "r") as h5:
            events = h5["data"][:].T.astype(np.float32)
            params = h5["params"][:]
            kw = {k.decode(): v.decode() for k, v in h5["keywords"][:]}
        channels = tuple(
            Channel(name=(d or m).decode(), marker=m.decode() if d else None,
                    range=262144.0 if not d else 4096.0)
            for m, d in zip(params["channel"], params["marker"]))
        keywords = {"$CYT": f"{kw['$CYT']} (HIPC lyoplate {panel} panel, {kw['$INST']}; "
                            "values compensated and on FlowJo's display scale)",
                    "$DATE": kw["$DATE"],
                    "DATA SOURCE": f"flowWorkspaceData inst/extdata/{folder}/{name}.fcs.h5"}
        sample = Sample(events=events, channel_info=channels, keywords=keywords)
        nodes = _opencyto_nodes(root / "inst/extdata" / folder / f"{name}.fcs.pb")
        paths, members = {}, {}
        for k, (node, parent, member, operands) in enumerate(nodes):
            paths[node] = path = "" if parent is None else f"{paths[nodes[parent][0]]}/{node}"
            if member is None:                   # a boolean gate of its siblings
                member = members[nodes[parent][0]].copy()
                for operand, negated in operands:
                    member &= ~members[operand] if negated else members[operand]
            members[node] = member
        _save(sample, {paths[n]: m for n, m in members.items() if paths[n]}, stem)


def threshold_shapes(cytopt: Path, optimalflowdata: Path) -> None:
    """Two real one-marker densities whose valley a threshold must weigh against the
    shoulder before it (``methods.shoulder_inside``): the CD45RA of Yale lyoplate file
    FTV_3's expert CD8 T cells (a naive peak, a broad memory shoulder falling to a bump
    of its dimmest cells) and the CD19/TCRgd channel of optimalFlowData's whole-blood LST
    file 14, every third event the experts did not call a T cell (CD19-dim myeloid
    cells in a shoulder, a B-cell peak of its own beyond)."""
    sample, code = cytopt_file(cytopt / "Data" / "Yale" / "FTV_3_values.csv")
    cd8 = lyoplate_labels(code)["CD8 T"]
    lst_sample, label = lst_file(optimalflowdata / "data" / "Cytometry14.RData")
    classes = lst_labels(label, LST_WHOLE_CLASSES)
    not_t = ~(classes["CD4 T"] | classes["CD8 T"] | classes["TCRgd T"])
    np.savez_compressed(
        HERE / "threshold_shapes.npz",
        lyoplate_yale_3_cd8_cd45ra=sample.events[cd8, sample.channels.index("CD45RA")],
        lst_14_not_t_cd19=lst_sample.events[not_t, lst_sample.channels.index("PE-Cy7-A")]
        [::STRIDE])


if __name__ == "__main__":
    a2004(Path(sys.argv[1]))
    canto(Path(sys.argv[1]))
    activation(Path(sys.argv[2]))
    flowsom(Path(sys.argv[3]))
    hipc(Path(sys.argv[4]))
    lyoplate(Path(sys.argv[5]))
    lst(Path(sys.argv[5]))
    opencyto(Path(sys.argv[1]))
    flowcap_dlbcl(Path(sys.argv[6]))
    flowcap_gvhd(Path(sys.argv[7]))
    deepcytof_multicentre(Path(sys.argv[7]))
    lst_whole(Path(sys.argv[8]))
    lst_whole(Path(sys.argv[8]), 11)
    threshold_shapes(Path(sys.argv[5]), Path(sys.argv[8]))
