"""Gating-ML reading and writing: hostile and malformed documents, and
round trips of strategies built in Python."""

from __future__ import annotations

import numpy as np
import pytest

from immunomon import GatingMLError, Sample
from immunomon.fcs import Channel
from immunomon.gating import (BooleanGate, Dimension, Divider, EllipsoidGate, FRatio,
                              GatingStrategy, PolygonGate, Quadrant, QuadrantGate,
                              RatioDimension, RectangleGate, SpectrumMatrix, load_gatingml,
                              save_gatingml)
from immunomon.transforms import Asinh, Hyperlog, Linear, Log, Logicle

HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<gating:Gating-ML xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/gating" '
        'xmlns:transforms="http://www.isac-net.org/std/Gating-ML/v2.0/transformations" '
        'xmlns:data-type="http://www.isac-net.org/std/Gating-ML/v2.0/datatypes">\n')
TAIL = "</gating:Gating-ML>\n"


def doc(tmp_path, body, name="doc.xml", head=HEAD):
    p = tmp_path / name
    p.write_text(head + body + TAIL)
    return p


def rect(gid, channel="FSC-H", extra="", dim_attrs='gating:min="1"'):
    return (f'<gating:RectangleGate gating:id="{gid}" {extra}>'
            f'<gating:dimension gating:compensation-ref="uncompensated" {dim_attrs}>'
            f'<data-type:fcs-dimension data-type:name="{channel}"/></gating:dimension>'
            '</gating:RectangleGate>\n')


# --------------------------------------------------------------------------- hostile XML
def test_billion_laughs_is_refused(tmp_path):
    lol = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
           + "".join(f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
                     for i in range(1, 10))
           + ']>\n<gating:Gating-ML xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/'
             'gating"><x>&lol9;</x></gating:Gating-ML>\n')
    p = tmp_path / "laughs.xml"
    p.write_text(lol)
    with pytest.raises(GatingMLError, match="laughs.xml.*refused"):
        load_gatingml(p)


def test_external_entity_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read me")
    xxe = ('<?xml version="1.0"?>\n'
           f'<!DOCTYPE g [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
           + HEAD.split("\n", 1)[1]
           + rect("&xxe;") + TAIL)
    p = tmp_path / "xxe.xml"
    p.write_text(xxe)
    with pytest.raises(GatingMLError, match="xxe.xml.*refused") as err:
        load_gatingml(p)
    assert "do not read me" not in str(err.value)


def test_malformed_xml_and_wrong_root(tmp_path):
    p = tmp_path / "broken.xml"
    p.write_text(HEAD + "<gating:RectangleGate>")
    with pytest.raises(GatingMLError, match="broken.xml.*well-formed"):
        load_gatingml(p)
    p.write_text("<svg/>")
    with pytest.raises(GatingMLError, match="broken.xml.*not a Gating-ML"):
        load_gatingml(p)
    with pytest.raises(GatingMLError, match="missing.xml"):
        load_gatingml(tmp_path / "missing.xml")


# --------------------------------------------------------------------------- malformed
@pytest.mark.parametrize("body, match", [
    ('<gating:RectangleGate><gating:dimension gating:min="1"><data-type:fcs-dimension '
     'data-type:name="A"/></gating:dimension></gating:RectangleGate>', "lacks.*gating:id"),
    (rect("G1", dim_attrs=""), "'G1'.*neither gating:min nor gating:max"),
    (rect("G1", dim_attrs='gating:min="abc"'), "'G1'.*'abc'.*not a number"),
    (rect("G1", extra='gating:parent_id="nobody"'), "'G1'.*'nobody'"),
    (rect("G1", extra='gating:parent_id="G2"') + rect("G2", extra='gating:parent_id="G1"'),
     "cycle.*G1"),
    (rect("G1") + rect("G1"), "'G1'.*already used"),
    ('<gating:RectangleGate gating:id="G1"><gating:dimension gating:min="1" '
     'gating:compensation-ref="Nope"><data-type:fcs-dimension data-type:name="A"/>'
     '</gating:dimension></gating:RectangleGate>', "'G1'.*compensation-ref 'Nope'"),
    ('<gating:RectangleGate gating:id="G1"><gating:dimension gating:min="1" '
     'gating:transformation-ref="T9"><data-type:fcs-dimension data-type:name="A"/>'
     '</gating:dimension></gating:RectangleGate>', "'G1'.*transformation 'T9'"),
    ('<gating:PolygonGate gating:id="P1"><gating:dimension><data-type:fcs-dimension '
     'data-type:name="A"/></gating:dimension><gating:dimension><data-type:fcs-dimension '
     'data-type:name="B"/></gating:dimension><gating:vertex><gating:coordinate '
     'data-type:value="1"/><gating:coordinate data-type:value="1"/></gating:vertex>'
     '</gating:PolygonGate>', "'P1'.*3"),
    ('<gating:BooleanGate gating:id="B1"><gating:not><gating:gateReference gating:ref="x"/>'
     '<gating:gateReference gating:ref="y"/></gating:not></gating:BooleanGate>',
     "'B1'.*exactly one"),
    ('<gating:BooleanGate gating:id="B1"><gating:and><gating:gateReference/>'
     '<gating:gateReference gating:ref="y"/></gating:and></gating:BooleanGate>',
     "'B1'.*gating:ref"),
    ('<transforms:transformation transforms:id="L"><transforms:logicle transforms:T="1000" '
     'transforms:W="0.5" transforms:M="4.5"/></transforms:transformation>',
     "'L'.*transforms:A"),
    ('<transforms:transformation transforms:id="L"><transforms:logicle transforms:T="-5" '
     'transforms:W="0.5" transforms:M="4.5" transforms:A="0"/></transforms:transformation>',
     "'L'.*invalid"),
    ('<gating:CurlyQuadGate gating:id="C1"/>', "'C1'.*not a Gating-ML 2.0 gate type"),
])
def test_malformed_documents_name_the_gate(tmp_path, body, match):
    with pytest.raises(GatingMLError, match=match) as err:
        load_gatingml(doc(tmp_path, body, "bad.xml"))
    assert "bad.xml" in str(err.value)


# --------------------------------------------------------------------------- round trip
def python_strategy() -> GatingStrategy:
    lg = Logicle(T=262144.0, W=0.5, M=4.5, A=0.0)
    s = GatingStrategy(compensations={"M": SpectrumMatrix(("FITC", "PE"), ("FL1-A", "FL2-A"),
                                                           [[1, 0.1], [0.2, 1]])})
    s.add_transform("ratio", FRatio("FL1-A", "FL2-A", 1.0, 0.0, 0.0))
    s.add(PolygonGate("cells", [Dimension("FSC-A"), Dimension("SSC-A")],
                      [(50, 50), (5000, 80), (3000, 4000), (60, 3000)]))
    s.add(RectangleGate("fitc", [Dimension("FITC", "M", lg)], [(0.3, 0.9)], parent="cells"))
    s.add(EllipsoidGate("ell", [Dimension("FL1-A", transform=Asinh(T=262144.0, M=4.5, A=0.0)),
                                Dimension("FL2-A", transform=Hyperlog(T=262144.0, W=0.5,
                                                                      M=4.5, A=0.0))],
                        [0.45, 0.45], [[0.01, 0.002], [0.002, 0.01]], 2.0, parent="cells"))
    s.add(QuadrantGate("Q", [Divider("x", Dimension("FL1-A", transform=Log(T=262144.0,
                                                                          M=4.5)), [0.5]),
                             Divider("y", Dimension("FL2-A", transform=Linear(T=262144.0,
                                                                              A=0.0)),
                                     [0.001, 0.002])],
                       [Quadrant("pp", {"x": 1, "y": 1}), Quadrant("nn", {"x": 0, "y": 0})],
                       parent="fitc"))
    s.add(RectangleGate("rat", [RatioDimension("ratio", transform=Log(T=100.0, M=4.0))],
                        [(None, 0.5)]))
    s.add(BooleanGate("both", "and", ["ell", "rat"], parent="cells"))
    return s


def test_export_validates_against_the_gatingml_schema(tmp_path):
    # the Gating-ML 2.0 XSD as shipped with FlowKit (an independent reader)
    resources = pytest.importorskip("flowkit._resources")
    etree = pytest.importorskip("lxml.etree")
    out = save_gatingml(python_strategy(), tmp_path / "s.xml")
    schema = resources.gml_schema
    assert schema.validate(etree.parse(str(out))), schema.error_log


def test_export_refuses_ids_that_are_not_xml_ids(tmp_path):
    s = GatingStrategy([RectangleGate("CD4+ T", [Dimension("A")], [(0, None)])])
    with pytest.raises(GatingMLError, match="'CD4\\+ T'.*not a valid"):
        save_gatingml(s, tmp_path / "x.xml")


def test_python_built_strategy_round_trips(tmp_path):
    rng = np.random.default_rng(11)
    ev = rng.lognormal(5, 1.5, size=(4000, 4)).astype(np.float32)
    smp = Sample(ev, tuple(Channel(n) for n in ("FSC-A", "SSC-A", "FL1-A", "FL2-A")), {})
    s = python_strategy()
    first = s.apply(smp)
    for gid in first.gate_ids:
        assert 0 < first.count(gid) < smp.n_events, gid
    out = save_gatingml(s, tmp_path / "s.xml")
    assert not list(tmp_path.glob(".s.xml.*"))       # no temporary left behind
    again = load_gatingml(out).apply(smp)
    assert again.gate_ids == first.gate_ids
    for gid in first.gate_ids:
        assert np.array_equal(again.mask(gid), first.mask(gid)), gid
        assert again.parent(gid) == first.parent(gid)


def test_an_and_with_its_own_parent_is_written_without_it(tmp_path):
    """``CD56dim: {and: [NK, "!CD56bright"]}`` under NK: the parent operand adds nothing
    (the gate holds only its parent's events), and a reader that takes references for
    the tree's edges (FlowKit 1.3) lost the parent edge with it and could not read the
    shipped templates' gates.xml. Written as ``not CD56bright``, the same events."""
    from immunomon.gating import GateReference

    rng = np.random.default_rng(5)
    ev = rng.uniform(0, 100, size=(3000, 2)).astype(np.float32)
    smp = Sample(ev, (Channel("FL1-A"), Channel("FL2-A")), {})
    s = GatingStrategy([
        RectangleGate("NK", [Dimension("FL1-A")], [(30, None)]),
        RectangleGate("CD56bright", [Dimension("FL2-A")], [(80, None)], parent="NK"),
        BooleanGate("CD56dim", "and", [GateReference("NK"),
                                       GateReference("CD56bright", complement=True)],
                    parent="NK")])
    first = s.apply(smp)
    out = save_gatingml(s, tmp_path / "nk.xml")
    text = out.read_text()
    dim = text[text.index('gating:id="CD56dim"'):]
    dim = dim[:dim.index("</gating:BooleanGate>")]
    assert "<gating:not>" in dim and 'gating:ref="NK"' not in dim
    assert 'use-as-complement' not in dim
    again = load_gatingml(out).apply(smp)
    for gid in first.gate_ids:
        assert np.array_equal(again.mask(gid), first.mask(gid)), gid
    assert 0 < first.count("CD56dim") < first.count("NK")
    flowkit = pytest.importorskip("flowkit")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fcs = tmp_path / "nk.fcs"
        from immunomon import write_fcs
        write_fcs(fcs, smp)
        report = flowkit.parse_gating_xml(str(out)).gate_sample(flowkit.Sample(str(fcs))).report
    counts = dict(zip(report["gate_name"], report["count"]))
    assert counts["CD56dim"] == first.count("CD56dim")


def test_subclassed_gates_export_as_their_gatingml_type(tmp_path):
    from dataclasses import dataclass

    @dataclass(frozen=True, eq=False)
    class FoundRange(RectangleGate):
        note: str = ""

    s = GatingStrategy([FoundRange("r", [Dimension("FSC-A")], [(10, None)], note="found")])
    again = load_gatingml(save_gatingml(s, tmp_path / "r.xml"))
    gate = again.gate("r")
    assert type(gate) is RectangleGate and gate.bounds == ((10.0, None),)


def test_save_refuses_a_gate_with_no_gatingml_form(tmp_path):
    class Custom:
        id, parent, dimensions = "c", None, (Dimension("A"),)

        def contains(self, columns):
            return columns[0] > 0

    s = GatingStrategy([Custom()])
    with pytest.raises(GatingMLError, match="'c'"):
        save_gatingml(s, tmp_path / "x.xml")
    assert not list(tmp_path.iterdir())
