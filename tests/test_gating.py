"""Gate types and hierarchies against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.path import Path as MplPath
from scipy.spatial.distance import mahalanobis

from immunomon import GatingError, Sample
from immunomon.fcs import Channel, Spillover
from immunomon.gating import (BooleanGate, Dimension, Divider, EllipsoidGate, FRatio,
                              GateReference, GatingStrategy, PolygonGate, Quadrant,
                              QuadrantGate, RatioDimension, RectangleGate, SpectrumMatrix,
                              polygon_mask, range_mask)
from immunomon.gating.dimensions import EventValues
from immunomon.transforms import Logicle


def make_sample(events, names, spillover=None, markers=None):
    events = np.asarray(events, dtype=np.float32)
    markers = markers or [None] * len(names)
    chans = tuple(Channel(n, m) for n, m in zip(names, markers))
    return Sample(events, chans, {}, spillover=spillover)


@pytest.fixture
def sample():
    rng = np.random.default_rng(7)
    return make_sample(rng.normal(0, 100, size=(5000, 3)), ["A", "B", "C"],
                       markers=["CD3", "CD4", "CD8"])


# --------------------------------------------------------------------------- polygons
@pytest.mark.parametrize("seed", range(12))
def test_polygon_matches_matplotlib_on_random_self_intersecting_polygons(seed):
    rng = np.random.default_rng(seed)
    k = rng.integers(3, 25)
    vertices = rng.uniform(-1, 1, size=(k, 2))     # random order: self-intersecting
    points = rng.uniform(-1.2, 1.2, size=(20000, 2))
    expected = MplPath(vertices).contains_points(points)
    got = polygon_mask(points[:, 0], points[:, 1], vertices)
    assert got.sum() > 0
    assert np.array_equal(got, expected)


def test_polygon_even_odd_rule_on_a_pentagram():
    # a star drawn in one stroke: its centre pentagon is crossed twice, so it is outside
    angles = np.pi / 2 + np.arange(5) * 4 * np.pi / 5
    star = np.c_[np.cos(angles), np.sin(angles)]
    x = np.array([0.0, 0.0, 0.0])
    y = np.array([0.0, 0.7, -2.0])       # centre, a point of the star, far outside
    assert polygon_mask(x, y, star).tolist() == [False, True, False]


def test_polygon_float32_input_and_vertices_reused():
    x = np.array([0.5, 1.5], dtype=np.float32)
    y = np.array([0.5, 0.5], dtype=np.float32)
    square = [(0, 0), (1, 0), (1, 1), (0, 1)]
    assert polygon_mask(x, y, square).tolist() == [True, False]


# --------------------------------------------------------------------------- rectangles
def test_range_is_half_open_and_ends_may_be_open():
    x = np.array([-np.inf, 1.0, 1.5, 2.0, np.inf])
    assert range_mask(x, 1.0, 2.0).tolist() == [False, True, True, False, False]
    assert range_mask(x, 1.0, None).tolist() == [False, True, True, True, True]
    assert range_mask(x, None, 2.0).tolist() == [True, True, True, False, False]


def test_float32_values_are_compared_with_float64_bounds():
    x = np.array([0.1], dtype=np.float32)          # 0.100000001490116...
    assert range_mask(x, 0.1000000010, None).tolist() == [True]
    assert range_mask(x, 0.1000000016, None).tolist() == [False]   # float32(bound) == x
    assert range_mask(x, None, 0.1000000016).tolist() == [True]


def test_rectangle_gate_on_named_channels_and_markers(sample):
    s = GatingStrategy([RectangleGate("r", [Dimension("CD3"), Dimension("B")],
                                      [(-50, 50), (0, None)])])
    res = s.apply(sample)
    a, b = sample.events[:, 0].astype(float), sample.events[:, 1].astype(float)
    assert np.array_equal(res.mask("r"), (a >= -50) & (a < 50) & (b >= 0))
    assert res.count("r") == int(((a >= -50) & (a < 50) & (b >= 0)).sum())


def test_rectangle_needs_a_bound():
    with pytest.raises(GatingError, match="'r'"):
        RectangleGate("r", [Dimension("A")], [(None, None)])
    with pytest.raises(GatingError, match="'r'.*min 5 not below max 2"):
        RectangleGate("r", [Dimension("A")], [(5, 2)])


# --------------------------------------------------------------------------- ellipsoids
def test_ellipsoid_matches_scipy_mahalanobis(sample):
    cov = np.array([[900.0, 300, 0], [300, 1600, -200], [0, -200, 2500]])
    mean = np.array([10.0, -20, 5])
    s = GatingStrategy([EllipsoidGate("e", [Dimension("A"), Dimension("B"), Dimension("C")],
                                      mean, cov, 2.5)])
    got = s.apply(sample).mask("e")
    vi = np.linalg.inv(cov)
    d2 = np.array([mahalanobis(p, mean, vi) ** 2 for p in sample.events.astype(float)])
    assert 0 < got.sum() < len(got)
    assert np.array_equal(got, d2 <= 2.5)


def test_ellipsoid_rejects_singular_covariance():
    with pytest.raises(GatingError, match="'e'.*singular"):
        EllipsoidGate("e", [Dimension("A"), Dimension("B")], [0, 0], [[1, 1], [1, 1]], 1)


# --------------------------------------------------------------------------- quadrants
def test_quadrants_with_several_cuts_per_divider(sample):
    q = QuadrantGate("Q", [Divider("da", Dimension("A"), [-50, 50]),
                           Divider("db", Dimension("B"), [0])],
                     [Quadrant("mid-pos", {"da": 0, "db": 10}),
                      Quadrant("low", {"da": -100}),
                      Quadrant("high-neg", (("da", 75), ("db", -1)))])
    res = GatingStrategy([q]).apply(sample)
    a, b = sample.events[:, 0].astype(float), sample.events[:, 1].astype(float)
    assert np.array_equal(res.mask("mid-pos"), (a >= -50) & (a < 50) & (b >= 0))
    assert np.array_equal(res.mask("low"), a < -50)
    assert np.array_equal(res.mask("high-neg"), (a >= 50) & (b < 0))
    with pytest.raises(GatingError, match="quadrant gate.*mid-pos"):
        res.mask("Q")


def test_quadrants_as_rectangles_hold_the_same_events():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0, 1, (2, 5000))
    x = Divider("x", Dimension("a"), (0.4,))
    low = Divider("y.below", Dimension("b"), (0.3,))
    high = Divider("y.above", Dimension("b"), (0.6,))
    gate = QuadrantGate("Q", (x, low, high), (
        Quadrant("A", (("x", 0.0), ("y.below", 0.9))),
        Quadrant("B", (("x", 0.0), ("y.below", 0.0))),
        Quadrant("C", (("x", 0.9), ("y.above", 0.9))),
        Quadrant("D", (("x", 0.9), ("y.above", 0.0)))), parent="P")
    quadrants = gate.quadrant_masks([a, b, b])
    rectangles = gate.as_rectangles()
    assert [r.id for r in rectangles] == ["A", "B", "C", "D"]
    assert all(r.parent == "P" for r in rectangles)
    assert rectangles[2].bounds == ((0.4, None), (0.6, None))
    for r in rectangles:
        assert np.array_equal(r.contains([a, b]), quadrants[r.id]), r.id
    assert sum(m.sum() for m in quadrants.values()) == a.size


def test_quadrant_boundary_belongs_to_upper_interval():
    smp = make_sample([[1.0, 0.0], [0.999, 0.0]], ["A", "B"])
    q = QuadrantGate("Q", [Divider("d", Dimension("A"), [1.0])],
                     [Quadrant("pos", {"d": 2}), Quadrant("neg", {"d": 0})])
    res = GatingStrategy([q]).apply(smp)
    assert res.mask("pos").tolist() == [True, False]
    assert res.mask("neg").tolist() == [False, True]


# --------------------------------------------------------------------------- booleans
def test_boolean_gates_and_complements(sample):
    a, b = sample.events[:, 0] >= 0, sample.events[:, 1] >= 0
    s = GatingStrategy([
        RectangleGate("a", [Dimension("A")], [(0, None)]),
        RectangleGate("b", [Dimension("B")], [(0, None)]),
        BooleanGate("and", "and", ["a", GateReference("b", complement=True)]),
        BooleanGate("or", "or", ["a", "b"]),
        BooleanGate("not", "not", ["a"]),
        BooleanGate("in_a", "or", ["b", "not"], parent="a"),
    ])
    res = s.apply(sample)
    assert np.array_equal(res.mask("and"), a & ~b)
    assert np.array_equal(res.mask("or"), a | b)
    assert np.array_equal(res.mask("not"), ~a)
    assert np.array_equal(res.mask("in_a"), a & b)     # (b or not a) inside a


def test_boolean_operand_counts():
    with pytest.raises(GatingError, match="'n'.*exactly one"):
        BooleanGate("n", "not", ["a", "b"])
    with pytest.raises(GatingError, match="'x'.*operator"):
        BooleanGate("x", "xor", ["a", "b"])


# --------------------------------------------------------------------------- hierarchy
class CountingLogicle:
    """A transform that records how many events it is applied to, call by call."""

    sizes: list = []

    def __init__(self):
        self.inner = Logicle(T=1000, W=0.5, M=4.5, A=0)

    def apply(self, x):
        CountingLogicle.sizes.append(np.size(x))
        return self.inner.apply(x)


def test_children_are_gated_inside_parents_and_transforms_see_only_their_events(sample):
    """Each gate transforms the events it is tested on (every event at the top, its
    parent's below, or every event for a fixed gate whose parent holds most of them);
    no full-length transformed copy is kept, and the masks are those of the
    transformed values."""
    t = CountingLogicle()
    CountingLogicle.sizes = []
    s = GatingStrategy(transforms={"lg": t})
    s.add(RectangleGate("root", [Dimension("A", transform="lg")], [(0.3, None)]))
    s.add(RectangleGate("child", [Dimension("A", transform="lg")], [(None, 0.5)],
                        parent="root"))
    s.add(PolygonGate("grandchild", [Dimension("A", transform="lg"), Dimension("B")],
                      [(0, -500), (1, -500), (1, 500), (0, 500)], parent="child"))
    res = s.apply(sample)
    y = t.inner.apply(sample.events[:, 0])
    n, root, child = sample.n_events, int((y >= 0.3).sum()), int(((y >= 0.3) & (y < 0.5)).sum())
    assert CountingLogicle.sizes == [n, n if 2 * root > n else root,
                                     n if 2 * child > n else child]
    assert not any(k[-1] is t for k in res.values._cache)
    assert np.array_equal(res.mask("root"), y >= 0.3)
    assert np.array_equal(res.mask("child"), (y >= 0.3) & (y < 0.5))
    assert np.array_equal(res.mask("grandchild"), res.mask("child")
                          & (np.abs(sample.events[:, 1]) < 500))
    assert res.parent("grandchild") == "child"
    assert res.ancestors("grandchild") == ("child", "root")
    assert res.gate_ids == ("root", "child", "grandchild")


def test_values_of_some_events_equal_those_of_all_events_there(sample):
    """A transform works event by event: the values of ``rows`` (an index array or a
    slice) are exactly the values of every event at those rows."""
    values = EventValues(sample, {"lg": Logicle(T=1000, W=0.5, M=4.5, A=0)})
    dim = Dimension("A", transform="lg")
    everything = values.values(dim)
    rows = np.flatnonzero(np.random.default_rng(1).random(sample.n_events) < 0.3)
    assert np.array_equal(values.values(dim, rows), everything[rows])
    assert np.array_equal(values.values(dim, slice(5, 50)), everything[5:50])


def test_gates_may_be_added_before_their_parents(sample):
    s = GatingStrategy()
    s.add(RectangleGate("child", [Dimension("B")], [(0, None)], parent="root"))
    s.add(RectangleGate("root", [Dimension("A")], [(0, None)]))
    res = s.apply(sample)
    assert np.array_equal(res.mask("child"),
                          (sample.events[:, 0] >= 0) & (sample.events[:, 1] >= 0))


def test_cycles_and_unknown_parents_name_the_gate(sample):
    s = GatingStrategy([RectangleGate("x", [Dimension("A")], [(0, None)], parent="y"),
                        RectangleGate("y", [Dimension("A")], [(0, None)], parent="x")])
    with pytest.raises(GatingError, match="cycle.*x"):
        s.apply(sample)
    s = GatingStrategy([BooleanGate("b", "and", ["a", "nope"]),
                        RectangleGate("a", [Dimension("A")], [(0, None)])])
    with pytest.raises(GatingError, match="'b'.*'nope'"):
        s.apply(sample)


def test_strategy_is_an_ordered_collection():
    q = QuadrantGate("Q", [Divider("d", Dimension("A"), [0])],
                     [Quadrant("pos", {"d": 1}), Quadrant("neg", {"d": -1})])
    s = GatingStrategy([RectangleGate("x", [Dimension("A")], [(0, None)])])
    s.add(q)
    assert [g.id for g in s] == ["x", "Q"] and len(s) == 2
    assert "pos" in s and "Q" in s and "nope" not in s
    assert s.population_ids == ("x", "pos", "neg")


def test_duplicate_ids_are_refused():
    s = GatingStrategy([RectangleGate("x", [Dimension("A")], [(0, None)])])
    with pytest.raises(GatingError, match="'x'.*already"):
        s.add(RectangleGate("x", [Dimension("B")], [(0, None)]))


def test_unknown_channel_names_the_gate(sample):
    s = GatingStrategy([RectangleGate("g1", [Dimension("CD99")], [(0, None)])])
    with pytest.raises(GatingError, match="'g1'.*CD99"):
        s.apply(sample)


def test_data_driven_gate_resolves_inside_its_parent(sample):
    class MedianSplit:
        """Keeps events above the median of its parent's events."""

        def __init__(self, gid, dim, parent):
            self.id, self.parent, self.dimensions = gid, parent, (dim,)

        def resolve(self, columns):
            return RectangleGate(self.id, self.dimensions, [(float(np.median(columns[0])),
                                                             None)], self.parent)

    s = GatingStrategy([RectangleGate("pos", [Dimension("A")], [(0, None)]),
                        MedianSplit("high", Dimension("B"), "pos")])
    res = s.apply(sample)
    inside = sample.events[sample.events[:, 0] >= 0, 1]
    assert res.gates["high"].bounds[0][0] == pytest.approx(np.median(inside))
    assert res.count("high") == int(np.ceil(inside.size / 2))


# --------------------------------------------------------------------------- dimensions
def test_fcs_compensation_uses_the_sample_spillover():
    rng = np.random.default_rng(3)
    true = rng.uniform(0, 1000, size=(2000, 2))
    spill = np.array([[1.0, 0.2], [0.05, 1.0]])
    observed = true @ spill
    smp = make_sample(np.c_[observed, rng.uniform(0, 1, 2000)], ["FL1", "FL2", "FSC"],
                      spillover=Spillover(("FL1", "FL2"), spill))
    s = GatingStrategy([
        RectangleGate("comp", [Dimension("FL2", "FCS")], [(500, None)]),
        RectangleGate("raw", [Dimension("FL2", "uncompensated")], [(500, None)]),
        RectangleGate("fsc", [Dimension("FSC", "FCS")], [(0.5, None)]),   # not in the matrix
    ])
    res = s.apply(smp)
    compensated = smp.events[:, :2].astype(float) @ np.linalg.inv(spill)
    clear = np.abs(compensated[:, 1] - 500) > 1e-3      # float32 rounding aside
    assert np.array_equal(res.mask("comp")[clear], compensated[clear, 1] >= 500)
    assert np.array_equal(res.mask("raw"), smp.events[:, 1] >= 500)
    assert np.array_equal(res.mask("fsc"), smp.events[:, 2] >= 0.5)
    assert abs(res.count("comp") - int((true[:, 1] >= 500).sum())) <= 2


def test_spectrum_matrix_by_fluorochrome_and_ratio_dimension():
    rng = np.random.default_rng(4)
    ev = rng.uniform(1, 100, size=(1000, 2))
    smp = make_sample(ev, ["FL1", "FL2"])
    m = SpectrumMatrix(("FITC", "PE"), ("FL1", "FL2"), [[1, 0.1], [0.3, 1]])
    s = GatingStrategy(compensations={"M": m},
                       transforms={"r": FRatio("FL1", "FL2", 2.0, 1.0, -1.0)})
    s.add(RectangleGate("pe", [Dimension("PE", "M")], [(30, None)]))
    s.add(RectangleGate("ratio", [RatioDimension("r")], [(1.0, 3.0)]))
    res = s.apply(smp)
    comp = smp.events.astype(float) @ np.linalg.inv(m.matrix)
    assert np.all(np.abs(comp[:, 1] - 30) > 1e-3)
    x, y = smp.events[:, 0].astype(float), smp.events[:, 1].astype(float)
    ratio = 2.0 * (x - 1.0) / (y + 1.0)
    assert np.array_equal(res.mask("pe"), comp[:, 1] >= 30)
    assert np.array_equal(res.mask("ratio"), (ratio >= 1) & (ratio < 3))
