"""Transforms against published values, an independent high-precision reference and flowutils."""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest

import immunomon
from immunomon import transforms as tr

LN10 = math.log(10.0)

# --------------------------------------------------------------------------
# Reference: the Gating-ML 2.0 definitions written out directly (the plain
# biexponential, no odd-form rewriting), inverted by bisection in float64 until
# the bracket cannot shrink. Independent of the implementation's code path.


def _reference_S(kind, T, W, M, A):
    w = W / (M + A)
    x2 = A / (M + A)
    x1 = x2 + w
    x0 = x2 + 2 * w
    b = (M + A) * LN10
    if kind == "logicle":
        d = b
        if w > 0:  # 2 (ln d - ln b) + w (b + d) = 0, by bisection on (0, b)
            lo, hi = 1e-300, b
            while True:
                mid = 0.5 * (lo + hi)
                if mid in (lo, hi):
                    break
                if 2 * (math.log(mid) - math.log(b)) + w * (b + mid) > 0:
                    hi = mid
                else:
                    lo = mid
            d = mid
        ca = math.exp(x0 * (b + d))
        mfa = math.exp(b * x1) - ca * math.exp(-d * x1)
        a = T / (math.exp(b) - mfa - ca * math.exp(-d))
        c, f = ca * a, -mfa * a

        def upper(y):
            return a * np.exp(b * y) - c * np.exp(-d * y) + f
    else:
        e0 = math.exp(b * x0)
        ca = e0 / w
        fa = math.exp(b * x1) + ca * x1
        a = T / (math.exp(b) + ca - fa)
        c, f = ca * a, fa * a

        def upper(y):
            return a * np.exp(b * y) + c * y - f

    def S(y):
        above = y >= x1
        with np.errstate(over="ignore"):
            s = upper(np.where(above, y, 2 * x1 - y))
        return np.where(above, s, -s)

    return S, x1


def reference(kind, x, T, W, M, A):
    S, x1 = _reference_S(kind, T, W, M, A)
    x = np.asarray(x, dtype=np.float64)
    hi = np.full(x.shape, 1.0)
    while True:
        short = S(hi) < np.abs(x)
        if not short.any():
            break
        hi[short] = 2 * hi[short]
    lo = 2 * x1 - hi
    while True:
        mid = 0.5 * (lo + hi)
        if np.all((mid == lo) | (mid == hi)):
            return mid
        up = S(mid) >= x
        hi = np.where(up, mid, hi)
        lo = np.where(up, lo, mid)


def _grid(T):
    """Both signs over 22 decades, zero, the data range densely, beyond T."""
    pos = np.logspace(-8, 14, 6000)
    rng = np.random.default_rng(7)
    return np.concatenate([pos, -pos, [0.0, -0.0], np.linspace(-2 * T, 2 * T, 8001),
                           rng.normal(0, T / 50, 4000), rng.uniform(-1e9, 1e9, 2000)])


LOGICLE_PARAMS = [(262144, 0.5, 4.5, 0), (262144, 1, 4.5, 0.5), (1000, 1, 4, 1),
                  (1000, 0, 4, 1), (262144, 2, 4.5, -2), (10000, 0.1, 7, 0),
                  (1e6, 2.5, 5, 0), (262144, 0.5, 1, 0), (262144, 0.01, 0.02, 0)]
HYPERLOG_PARAMS = [(262144, 0.5, 4.5, 0), (262144, 1, 4.5, 0.5), (1000, 1, 4, 1),
                   (1000, 0.01, 4, 1), (262144, 2, 4.5, -2), (10000, 1, 4.5, 0),
                   (262144, 0.5, 1, 0), (262144, 0.01, 0.02, 0)]


@pytest.mark.parametrize("params", LOGICLE_PARAMS)
def test_logicle_matches_reference_to_1e9(params):
    x = _grid(params[0])
    err = np.abs(tr.logicle(x, *params) - reference("logicle", x, *params))
    assert err.max() < 1e-9, (params, err.max(), x[err.argmax()])


@pytest.mark.parametrize("params", HYPERLOG_PARAMS)
def test_hyperlog_matches_reference_to_1e9(params):
    x = _grid(params[0])
    err = np.abs(tr.hyperlog(x, *params) - reference("hyperlog", x, *params))
    assert err.max() < 1e-9, (params, err.max(), x[err.argmax()])


def test_reference_agrees_with_mpmath():
    """The bisection reference itself, checked at 40 digits where mpmath is available."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    T, W, M, A = 262144, 0.5, 4.5, 0
    w, x2 = mp.mpf(W) / (M + A), mp.mpf(A) / (M + A)
    x1, x0, b = x2 + w, x2 + 2 * w, (M + A) * mp.log(10)

    def bisect(g, lo, hi):  # g increasing, g(lo) < 0 < g(hi)
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if g(mid) > 0 else (mid, hi)
        return (lo + hi) / 2

    d = bisect(lambda d: 2 * (mp.log(d) - mp.log(b)) + w * (b + d), mp.mpf("1e-30"), b)
    ca = mp.exp(x0 * (b + d))
    mfa = mp.exp(b * x1) - ca * mp.exp(-d * x1)
    a = T / (mp.exp(b) - mfa - ca * mp.exp(-d))

    def S(y):
        if y < x1:
            return -S(2 * x1 - y)
        return a * mp.exp(b * y) - ca * a * mp.exp(-d * y) - mfa * a

    xs = [-1e7, -3000.0, -10.0, -0.1, 0.0, 1e-6, 0.5, 37.0, 800.0, 262144.0, 5e7, 1e12]
    exact = []
    for x in xs:
        hi = mp.mpf(1)
        while S(hi) < abs(x):
            hi *= 2
        exact.append(float(bisect(lambda y: S(y) - x, 2 * x1 - hi, hi)))
    np.testing.assert_allclose(reference("logicle", xs, T, W, M, A), exact, rtol=0, atol=1e-14)
    np.testing.assert_allclose(tr.logicle(xs, T, W, M, A), exact, rtol=0, atol=1e-9)


# --------------------------------------------------------------------------
# Gating-ML 2.0 specification (2013-01-22), published example values (6 digits)

SPEC_X = [-10, -5, -1, 0, 0.3, 1, 3, 10, 100, 1000]


def test_logicle_gatingml_reference_values():
    expected = {
        (1000, 1, 4, 0): [0.067574, 0.147986, 0.228752, 0.25, 0.256384, 0.271248, 0.312897,
                          0.432426, 0.739548, 1],
        (1000, 1, 4, 1): [0.254059, 0.318389, 0.383001, 0.4, 0.405107, 0.416999, 0.450318,
                          0.545941, 0.791638, 1],
        (1000, 0, 4, 1): [-0.200009, -0.139829, -0.000856, 0.2, 0.303776, 0.400856, 0.495521,
                          0.600009, 0.8, 1],
    }
    for params, values in expected.items():
        np.testing.assert_allclose(tr.logicle(SPEC_X, *params), values, atol=1.5e-6)


def test_hyperlog_gatingml_reference_values():
    expected = {
        (1000, 1, 4, 0): [0.083554, 0.155868, 0.229477, 0.25, 0.256239, 0.270523, 0.309091,
                          0.416446, 0.731875, 1],
        (1000, 1, 4, 1): [0.266843, 0.324695, 0.383581, 0.4, 0.404991, 0.416419, 0.447273,
                          0.533157, 0.7855, 1],
        (1000, 0.01, 4, 1): [0.017447, 0.106439, 0.182593, 0.202, 0.207833, 0.221407,
                             0.259838, 0.386553, 0.774211, 1],
    }
    for params, values in expected.items():
        np.testing.assert_allclose(tr.hyperlog(SPEC_X, *params), values, atol=1.5e-6)


def test_flin_gatingml_reference_values():
    x = np.array([-100, -10, 0, 10, 100, 120, 890, 1000])
    np.testing.assert_allclose(tr.flin(x, 1000, 0), x / 1000)
    np.testing.assert_allclose(
        tr.flin(x, 1000, 100),
        [0.0, 0.081818, 0.090909, 0.1, 0.181818, 0.2, 0.9, 1.0], atol=1e-6)
    np.testing.assert_allclose(
        tr.flin(x, 1024, 256),
        [0.121875, 0.1921875, 0.2, 0.2078125, 0.278125, 0.29375, 0.8953125, 0.98125])


def test_flog_gatingml_reference_values():
    x = np.array([-1, 0, 0.5, 1, 10, 100, 1000, 1023, 10000, 100000, 262144])
    expected = {
        (10000, 5): [np.nan, np.nan, 0.139794, 0.2, 0.4, 0.6, 0.8, 0.801975, 1.0, 1.2,
                     1.283708],
        (1023, 4.5): [np.nan, np.nan, 0.264243, 0.331139, 0.553361, 0.775583, 0.997805, 1.0,
                      1.220028, 1.442250, 1.535259],
        (262144, 4.5): [np.nan, np.nan, -0.271016, -0.204120, 0.018102, 0.240324, 0.462547,
                        0.464741, 0.684768, 0.906991, 1.0],
    }
    for params, values in expected.items():
        np.testing.assert_allclose(tr.flog(x, *params), values, atol=1e-6)


def test_fasinh_gatingml_reference_values():
    expected = {
        (1000, 4, 1): [-0.200009, -0.139829, -0.00085584, 0.2, 0.303776, 0.400856, 0.495521,
                       0.600009, 0.8, 1],
        (1000, 5, 0): [-0.6, -0.539794, -0.400009, 0, 0.295521, 0.400009, 0.495425, 0.6, 0.8, 1],
        (1000, 3, 2): [0.199144, 0.256923, 0.358203, 0.4, 0.412980, 0.441797, 0.503776,
                       0.600856, 0.800009, 1],
    }
    for params, values in expected.items():
        np.testing.assert_allclose(tr.fasinh(SPEC_X, *params), values, atol=1.5e-6)


def test_logicle_with_w0_is_fasinh():
    """Gating-ML: fasinh(T, M, A) is logicle(T, 0, M, A)."""
    x = _grid(262144)
    np.testing.assert_allclose(tr.logicle(x, 262144, 0, 4.5, 0.5),
                               tr.fasinh(x, 262144, 4.5, 0.5), rtol=0, atol=1e-9)


# --------------------------------------------------------------------------
# flowutils, an independent implementation


@pytest.mark.parametrize("kind", ["logicle", "hyperlog"])
def test_agrees_with_flowutils(kind):
    fu = pytest.importorskip("flowutils.transforms")
    x = np.concatenate([np.linspace(-5e4, 3e5, 20001), -np.logspace(-3, 8, 500),
                        np.logspace(-3, 8, 500)])
    for T, W, M, A in [(262144, 0.5, 4.5, 0), (10000, 1, 4, 0.5)]:
        theirs = getattr(fu, kind)(x.copy(), None, t=T, m=M, w=W, a=A)
        ours = getattr(tr, kind)(x, T, W, M, A)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)
        y = np.linspace(-0.3, 1.2, 301)
        np.testing.assert_allclose(getattr(tr, kind + "_inverse")(y, T, W, M, A),
                                   getattr(fu, kind + "_inverse")(y.copy(), None, t=T, m=M,
                                                                  w=W, a=A),
                                   rtol=1e-12, atol=1e-9)


# --------------------------------------------------------------------------
# inverses, shapes, dtypes, special values


@pytest.mark.parametrize("kind,params", [("logicle", p) for p in LOGICLE_PARAMS[:4]]
                         + [("hyperlog", p) for p in HYPERLOG_PARAMS[:4]])
def test_biex_round_trips(kind, params):
    f, inv = getattr(tr, kind), getattr(tr, kind + "_inverse")
    y = np.linspace(-0.5, 1.5, 4001)
    np.testing.assert_allclose(f(inv(y, *params), *params), y, rtol=0, atol=1e-9)
    x = np.concatenate([np.linspace(-1e4, 3e5, 3001), np.logspace(-3, 9, 200)])
    back = inv(f(x, *params), *params)
    # a 1e-11 error in y moves x by 1e-11 * dx/dy: relative in the log region
    np.testing.assert_allclose(back, x, rtol=1e-8, atol=1e-8 * params[0])


@pytest.mark.parametrize("name,params", [
    ("flin", (1000, 100)), ("flog", (10000, 5)), ("fasinh", (1000, 4, 1)),
    ("arcsinh", (150,)),
])
def test_closed_form_round_trips(name, params):
    f, inv = getattr(tr, name), getattr(tr, name + "_inverse")
    x = np.linspace(1, 1e5, 1001)
    np.testing.assert_allclose(inv(f(x, *params), *params), x, rtol=1e-12)


def test_arcsinh_values():
    np.testing.assert_allclose(tr.arcsinh([0, 150, -150, 1500], 150),
                               [0, 0.881373587019543, -0.881373587019543, 2.998222950297976],
                               rtol=1e-14)
    np.testing.assert_allclose(tr.arcsinh_inverse(0.881373587019543, 5), 5.0, rtol=1e-14)


def test_fratio_values():
    x, y = np.array([10.0, 0.0, 5.0]), np.array([4.0, -1.0, 2.0])
    np.testing.assert_allclose(tr.fratio(x, y, 2.7, -100, -300),
                               [2.7 * 110 / 304, 2.7 * 100 / 299, 2.7 * 105 / 302])
    r = tr.fratio([1.0, 0.0], [0.0, 0.0], 1, 0, 0)
    assert np.isinf(r[0]) and np.isnan(r[1])


def test_shapes_and_dtypes():
    x32 = np.random.default_rng(3).normal(1000, 5000, (700, 3, 200)).astype(np.float32)
    y = tr.logicle(x32, 262144, 0.5, 4.5, 0)
    assert y.shape == x32.shape and y.dtype == np.float64
    np.testing.assert_array_equal(y, tr.logicle(x32.astype(np.float64), 262144, 0.5, 4.5, 0))
    # a strided column view gives the same values as a copy
    col = x32.reshape(-1, 200)[:, 7]
    np.testing.assert_array_equal(tr.hyperlog(col, 262144, 0.5, 4.5, 0),
                                  tr.hyperlog(col.copy(), 262144, 0.5, 4.5, 0))
    scalar = tr.logicle(0.0, 1000, 1, 4, 0)
    assert scalar.shape == () and scalar == pytest.approx(0.25, abs=1e-15)
    for f in (tr.flin, tr.flog, tr.fasinh, tr.arcsinh):
        assert f(np.float32(3), *{"flin": (10, 0), "flog": (10, 1), "fasinh": (10, 1, 0),
                                  "arcsinh": (5,)}[f.__name__]).dtype == np.float64


@pytest.mark.parametrize("kind", ["logicle", "hyperlog"])
def test_special_values(kind):
    f = getattr(tr, kind)
    y = f(np.array([np.nan, np.inf, -np.inf, 1e300, -1e300, 2.0 ** 60]), 262144, 0.5, 4.5, 0)
    assert np.isnan(y[0]) and y[1] == np.inf and y[2] == -np.inf
    ref = reference(kind, [1e300, -1e300, 2.0 ** 60], 262144, 0.5, 4.5, 0)
    np.testing.assert_allclose(y[3:], ref, rtol=0, atol=1e-9)


# --------------------------------------------------------------------------
# parameter validation and the transform objects


@pytest.mark.parametrize("call,fragment", [
    (lambda: tr.Logicle(262144, 3, 4.5, 0), "W=3 must be <= M/2"),
    (lambda: tr.Logicle(262144, 0.5, 4.5, -1), "-W <= A <= M - 2W"),
    (lambda: tr.Logicle(262144, 0.5, 4.5, 4), "-W <= A <= M - 2W"),
    (lambda: tr.Logicle(0, 0.5, 4.5, 0), "T=0 must be > 0"),
    (lambda: tr.Logicle(262144, -0.1, 4.5, 0), "W=-0.1 must be >= 0"),
    (lambda: tr.Hyperlog(262144, 0, 4.5, 0), "W=0 must be > 0"),
    (lambda: tr.Logicle(262144, 0.5, float("nan"), 0), "M=nan must be finite"),
    (lambda: tr.Logicle(262144, "wide", 4.5, 0), "W='wide' is not a number"),
    (lambda: tr.Log(1000, 0), "M=0 must be > 0"),
    (lambda: tr.Linear(1000, 2000), "0 <= A <= T"),
    (lambda: tr.Asinh(1000, 4, 5), "0 <= A <= M"),
    (lambda: tr.Arcsinh(0), "cofactor=0 must be > 0"),
    (lambda: tr.Ratio(1, float("inf"), 0), "B=inf must be finite"),
    (lambda: tr.logicle([1.0], 262144, 3, 4.5, 0), "W=3 must be <= M/2"),
    (lambda: tr.hyperlog_inverse([1.0], 262144, 0, 4.5, 0), "W=0 must be > 0"),
])
def test_invalid_parameters(call, fragment):
    with pytest.raises(immunomon.ImmunomonError, match=re.escape(fragment)):
        call()


def test_transform_objects():
    lg = tr.Logicle(262144, 0.5, 4.5, 0)
    assert lg.gatingml_name == "logicle"
    assert lg.params == {"T": 262144.0, "W": 0.5, "M": 4.5, "A": 0.0}
    x = np.array([-100.0, 0.0, 5000.0])
    np.testing.assert_array_equal(lg.apply(x), tr.logicle(x, 262144, 0.5, 4.5, 0))
    np.testing.assert_array_equal(lg.inverse(lg.apply(x)),
                                  tr.logicle_inverse(tr.logicle(x, 262144, 0.5, 4.5, 0),
                                                     262144, 0.5, 4.5, 0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        lg.W = 1.0
    again = tr.Logicle(262144, 0.5, 4.5, 0)
    assert again == lg and hash(again) == hash(lg)
    assert {type(t).__name__: t.gatingml_name for t in [
        tr.Linear(1000, 0), tr.Log(1000, 4), tr.Asinh(1000, 4, 0), tr.Hyperlog(1000, 1, 4, 0),
        tr.Arcsinh(150), tr.Ratio(1, 0, 0)]} == {
        "Linear": "flin", "Log": "flog", "Asinh": "fasinh", "Hyperlog": "hyperlog",
        "Arcsinh": None, "Ratio": "fratio"}
    assert tr.Ratio(2.7, -100, -300).params == {"A": 2.7, "B": -100.0, "C": -300.0}
    np.testing.assert_allclose(tr.Ratio(2, 1, 0).apply(np.array([3.0]), np.array([4.0])), [1.0])
    assert tr.Asinh(1000, 4).inverse(tr.Asinh(1000, 4).apply(7.0)) == pytest.approx(7.0)
    for name, cls in tr.GATINGML_TRANSFORMS.items():
        assert cls.gatingml_name == name


def test_logicle_width_follows_parks_rule():
    from immunomon.transforms import logicle_width
    rng = np.random.default_rng(0)
    for sd in (30.0, 150.0, 900.0):
        x = rng.normal(0.0, sd, 200_000)
        r = np.quantile(x[x < 0], 0.05)                  # about -1.96 sd
        exact = (4.5 - np.log10(262144 / abs(r))) / 2
        w = logicle_width(x)
        assert exact <= w < exact + 0.05 and round(w / 0.05, 6) == int(round(w / 0.05))
    assert logicle_width(np.abs(rng.normal(0, 50, 10_000))) is None     # no negatives
    assert logicle_width(rng.normal(0, 1e7, 10_000)) == 2.25           # at most M / 2
    assert logicle_width(rng.normal(0, 1.0, 10_000)) == 0.0            # at least 0
    assert logicle_width(rng.normal(0, 1.0, 10_000), A=-0.5) == 0.5    # -W <= A


def test_a_measured_width_keeps_a_spread_negative_population_in_one_peak():
    # compensation spreading (a bright dye spilling into this detector) gives unstained
    # cells an SD of 900 units: at W 0.5 they show as two humps either side of zero, and
    # a valley cut lands between them; at the measured width they are one peak
    from immunomon.gating.methods import find_peaks, smoothed_density
    from immunomon.transforms import Logicle, logicle_width
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 900.0, 40_000)
    peaks = {}
    for w in (0.5, logicle_width(x)):
        y = Logicle(262144, w, 4.5, 0).apply(x)
        c, d, bw = smoothed_density(y)
        peaks[w] = find_peaks(c, d, n_events=y.size, bandwidth=bw).size
    assert peaks[0.5] == 2 and list(peaks.values())[1] == 1
