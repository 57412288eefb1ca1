"""The ISAC Gating-ML 2.0 compliance suite, event by event.

The truth files were produced by the reference implementations of the
standard, not by this code. The suite is committed in
``tests/data/gatingml2-compliance`` (see its SOURCES.md); a missing suite is a failure.
"""

from __future__ import annotations

import numpy as np
import pytest

import immunomon
from immunomon.gating import load_gatingml, save_gatingml

from testdata import COMPLIANCE

GML = COMPLIANCE / "gml"
TRUTH = COMPLIANCE / "truth"

# single-gate documents: file -> {gate id in the document: truth file id}
SINGLE = {
    "gml_boolean_and1_gate.xml": {"And1": "And1"},
    "gml_boolean_and2_gate.xml": {"And2": "And2"},
    "gml_boolean_and3_complement_gate.xml": {"And3": "And3"},
    "gml_boolean_and4_not_gate.xml": {"And4": "And4", "Not1": "Not1"},
    "gml_boolean_not1_gate.xml": {"Not1": "Not1"},
    "gml_boolean_or1_gate.xml": {"Or1": "Or1"},
    "gml_boolean_or2_gate.xml": {"Or2": "Or2"},
    "gml_ellipse1_gate.xml": {"Ellipse1": "Ellipse1"},
    "gml_ellipsoid3d_gate.xml": {"Ellipsoid3D": "Ellipsoid3D"},
    "gml_log_ratio_range1_gate.xml": {"RatRange1a": "RatRange1a"},
    "gml_matrix_poly4_gate.xml": {"Polygon4": "Polygon4"},
    "gml_matrix_rect3_gate.xml": {"Rectangle3": "Rectangle3"},
    "gml_matrix_rect4_gate.xml": {"Rectangle4": "Rectangle4"},
    "gml_matrix_rect5_gate.xml": {"Rectangle5": "Rectangle5"},
    "gml_matrix_transform_asinh_range1c_gate.xml": {"ScaleRange1c": "ScaleRange1c"},
    "gml_matrix_transform_asinh_range6c_gate.xml": {"ScaleRange6c": "ScaleRange6c"},
    "gml_matrix_transform_hyperlog_range2c_gate.xml": {"ScaleRange2c": "ScaleRange2c"},
    "gml_matrix_transform_hyperlog_range7c_gate.xml": {"ScaleRange7c": "ScaleRange7c"},
    "gml_matrix_transform_linear_range3c_gate.xml": {"ScaleRange3c": "ScaleRange3c"},
    "gml_matrix_transform_logicle_range4c_gate.xml": {"ScaleRange4c": "ScaleRange4c"},
    "gml_matrix_transform_logicle_range5c_gate.xml": {"ScaleRange5c": "ScaleRange5c"},
    "gml_matrix_transform_logicle_range8c_gate.xml": {"ScaleRange8c": "ScaleRange8c"},
    "gml_matrix_transform_logicle_rect1_gate.xml": {"ScaleRect1": "ScaleRect1"},
    "gml_parent_poly1_boolean_and2_gate.xml": {"ParAnd2": "ParAnd2", "Polygon1": "Polygon1"},
    "gml_parent_quadrant_rect_gate.xml": {"ParRectangle1": "ParQuadRect",
                                          "FL2P-FL4P": "FL2P-FL4P"},
    "gml_parent_range1_boolean_and3_gate.xml": {"ParAnd3": "ParAnd3"},
    "gml_parent_rect1_rect_par1_gate.xml": {"ScalePar1": "ScalePar1"},
    "gml_poly1_gate.xml": {"Polygon1": "Polygon1"},
    "gml_poly2_gate.xml": {"Polygon2": "Polygon2"},
    "gml_poly3ns_gate.xml": {"Polygon3NS": "Polygon3NS"},
    "gml_quadrant1_gate.xml": {q: q for q in ("FL2P-FL4P", "FL2N-FL4P", "FL2N-FL4N",
                                              "FL2P-FL4N")},
    "gml_quadrant2_gate.xml": {q: q for q in ("FSCN-SSCN", "FSCD-SSCN-FL1N", "FSCP-SSCN-FL1N",
                                              "FSCD-FL1P", "FSCN-SSCP-FL1P")},
    "gml_range_gate.xml": {"Range1": "Range1"},
    "gml_range_gate_attr_testing.xml": {"Range1": "Range1"},
    "gml_ratio_range1_gate.xml": {"RatRange1": "RatRange1"},
    "gml_ratio_range2_gate.xml": {"RatRange2": "RatRange2"},
    "gml_rect1_gate.xml": {"Rectangle1": "Rectangle1"},
    "gml_rect2_gate.xml": {"Rectangle2": "Rectangle2"},
    "gml_time_range_gate.xml": {"Range2": "Range2"},
    "gml_transform_asinh_range1_gate.xml": {"ScaleRange1": "ScaleRange1"},
    "gml_transform_hyperlog_range2_gate.xml": {"ScaleRange2": "ScaleRange2"},
    "gml_transform_linear_range3_gate.xml": {"ScaleRange3": "ScaleRange3"},
    "gml_transform_log_range6_gate.xml": {"ScaleRange6": "ScaleRange6"},
    "gml_transform_logicle_range4_gate.xml": {"ScaleRange4": "ScaleRange4"},
    "gml_transform_logicle_range5_gate.xml": {"ScaleRange5": "ScaleRange5"},
}


def _require_suite():
    if not (COMPLIANCE / "data1.fcs").is_file():
        pytest.fail(f"the Gating-ML 2.0 compliance suite is missing: expected it in {COMPLIANCE}")


@pytest.fixture(scope="module")
def data1():
    _require_suite()
    return immunomon.read_fcs(COMPLIANCE / "data1.fcs")


def truth(truth_id: str) -> np.ndarray:
    values = np.loadtxt(TRUTH / f"Results_{truth_id}.txt", dtype=np.int8)
    assert set(np.unique(values)) <= {0, 1}
    return values.astype(bool)


def assert_matches(result, gate_id, truth_id):
    expected = truth(truth_id)
    got = result.mask(gate_id)
    assert got.shape == expected.shape
    wrong = np.flatnonzero(got != expected)
    assert wrong.size == 0, (f"{gate_id}: {wrong.size} events differ from truth "
                             f"{truth_id} (first at event {wrong[:5]}); "
                             f"got {got.sum()} members, truth {expected.sum()}")


def test_suite_is_complete():
    _require_suite()
    truths = {p.stem.removeprefix("Results_") for p in TRUTH.glob("Results_*.txt")}
    assert len(truths) == 51
    covered = {t for m in SINGLE.values() for t in m.values()}
    assert covered == truths
    files = {p.name for p in GML.glob("gml_*_gate.xml")}
    # gml_ellipse2_gate.xml has no truth file; it is checked in test_ellipse2 below
    assert files - set(SINGLE) == {"gml_ellipse2_gate.xml"}


@pytest.fixture(scope="module")
def all_gates(data1):
    strategy = load_gatingml(GML / "gml_all_gates.xml")
    return strategy, strategy.apply(data1)


def test_all_gates_document_has_49_populations(all_gates):
    _, result = all_gates
    assert len(result.gate_ids) == 49
    assert {f"Results_{g}.txt" for g in result.gate_ids} <= {p.name for p in TRUTH.iterdir()}


@pytest.mark.parametrize("truth_id", sorted(
    p.stem.removeprefix("Results_") for p in TRUTH.glob("Results_*.txt")
    if p.stem.removeprefix("Results_") not in ("Ellipsoid3D", "ParQuadRect")))
def test_all_gates_document(all_gates, truth_id):
    _, result = all_gates
    assert_matches(result, truth_id, truth_id)


def test_readme_counts(all_gates):
    # the counts the suite's README quotes, as a cross-check of the truth reading
    _, result = all_gates
    assert result.count("Range1") == 440
    assert result.count("Polygon1") == 1582
    assert result.count("Ellipse1") == 203
    assert result.count("FL2P-FL4N") == 7361
    assert result.count("ScaleRange4") == 2509


@pytest.mark.parametrize("filename", sorted(SINGLE))
def test_single_gate_document(data1, filename):
    result = load_gatingml(GML / filename).apply(data1)
    for gate_id, truth_id in SINGLE[filename].items():
        assert_matches(result, gate_id, truth_id)


def test_ellipse2(data1):
    """No truth file: check against the ellipse drawn from its axes instead
    of the quadratic form (half-axes and rotation from the eigenvectors)."""
    result = load_gatingml(GML / "gml_ellipse2_gate.xml").apply(data1)
    cov = np.array([[1134.5, -234.5], [-234.5, 1134.5]])
    lam, vec = np.linalg.eigh(cov)
    x = data1["FSC-H"].astype(float) - 40
    y = data1["SSC-H"].astype(float) - 40
    u = x * vec[0, 0] + y * vec[1, 0]
    v = x * vec[0, 1] + y * vec[1, 1]
    inside = (u / np.sqrt(lam[0])) ** 2 + (v / np.sqrt(lam[1])) ** 2 <= 1
    got = result.mask("myEllipse2")
    assert got.sum() > 0
    # events within rounding of the boundary may go either way
    border = np.abs((u / np.sqrt(lam[0])) ** 2 + (v / np.sqrt(lam[1])) ** 2 - 1) < 1e-9
    assert np.array_equal(got[~border], inside[~border])


def test_export_reimport_reproduces_memberships(all_gates, data1, tmp_path):
    strategy, result = all_gates
    out = save_gatingml(strategy, tmp_path / "exported.xml")
    again = load_gatingml(out).apply(data1)
    assert again.gate_ids == result.gate_ids
    for gid in result.gate_ids:
        assert np.array_equal(again.mask(gid), truth(gid)), gid


@pytest.mark.parametrize("filename", ["gml_parent_quadrant_rect_gate.xml",
                                      "gml_ellipsoid3d_gate.xml"])
def test_export_reimport_single(data1, filename, tmp_path):
    out = save_gatingml(load_gatingml(GML / filename), tmp_path / filename)
    result = load_gatingml(out).apply(data1)
    for gate_id, truth_id in SINGLE[filename].items():
        assert_matches(result, gate_id, truth_id)


def test_export_of_the_suite_is_schema_valid(all_gates, tmp_path):
    resources = pytest.importorskip("flowkit._resources")   # ships the Gating-ML 2.0 XSD
    etree = pytest.importorskip("lxml.etree")
    strategy, _ = all_gates
    out = save_gatingml(strategy, tmp_path / "exported.xml")
    assert resources.gml_schema.validate(etree.parse(str(out))), resources.gml_schema.error_log
