"""Smoothing and peak finding of threshold gates (immunomon.gating.peaks) against
scipy's own functions, and the imports a threshold-only gating run avoids."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks, peak_prominences

from immunomon.gating import peaks

REAL = Path(__file__).resolve().parent / "data" / "real"
REPO = Path(__file__).resolve().parent.parent


def _arrays(n_arrays: int = 1500, seed: int = 0):
    """Short arrays with many ties (flat tops, flat valleys, flat ends), continuous
    noise, and smoothed histograms like those thresholds search."""
    rng = np.random.default_rng(seed)
    for k in range(n_arrays):
        n = int(rng.integers(1, 80))
        kind = k % 3
        if kind == 0:
            yield rng.integers(0, 4, n).astype(np.float64)
        elif kind == 1:
            yield rng.normal(size=n)
        else:
            counts = np.histogram(rng.normal(size=300 + 10 * n), bins=n)[0]
            yield gaussian_filter1d(counts.astype(np.float64), 2.0, mode="constant")


def test_local_maxima_and_prominences_are_scipys():
    for x in _arrays():
        expected = find_peaks(x)[0]
        np.testing.assert_array_equal(peaks.local_maxima(x), expected)
        if expected.size:
            np.testing.assert_array_equal(peaks.prominences(x, expected),
                                          peak_prominences(x, expected)[0])


def test_peaks_above_a_prominence_are_scipys():
    rng = np.random.default_rng(1)
    for x in _arrays(seed=2):
        level = float(rng.uniform(0.0, 1.5)) * (np.ptp(x) if x.size else 1.0)
        found, prom = peaks.prominent_peaks(x, level)
        expected, props = find_peaks(x, prominence=level)
        np.testing.assert_array_equal(found, expected)
        np.testing.assert_array_equal(prom, props["prominences"])


@pytest.mark.parametrize("sigma", [0.6, 1.0, 3.7, 25.0, 400.0])
def test_gaussian_smoothing_is_scipys_with_zero_padding(sigma):
    rng = np.random.default_rng(3)
    for n in (1, 5, 512):
        x = rng.poisson(20.0, n).astype(np.float64)
        np.testing.assert_allclose(peaks.gaussian_smooth(x, sigma),
                                   gaussian_filter1d(x, sigma, mode="constant"),
                                   rtol=1e-12, atol=1e-12)


def test_no_peaks_in_flat_or_monotone_arrays():
    for x in ([], [1.0], [1.0, 2.0], [3.0, 3.0, 3.0], [1.0, 2.0, 3.0], [3.0, 3.0, 1.0]):
        assert peaks.local_maxima(np.asarray(x)).size == 0


def test_gating_loads_no_scipy_and_no_scikit_learn():
    """scipy's modules (scipy.special alone took a tenth of a small file's start) and
    scikit-learn take long to import against gating a small file: thresholds, tails,
    quadrants and cluster gates load none of them (HIPC's threshold-and-quadrant
    template; the activation files' with its `tail` gates; the post-transplant
    template's cluster gates)."""
    script = r"""
import json, sys
from immunomon import read_fcs
from immunomon.gating.run import gate_sample
from immunomon.gating.template import load_template
gating = gate_sample(read_fcs(sys.argv[1]), load_template(sys.argv[2]))
print(json.dumps({"loaded": sorted(m for m in sys.modules if m.startswith(("scipy", "sklearn"))),
                  "counted": int(gating.table["count"].sum())}))
"""
    for fcs, template in ((REAL / "hipc_stanford_1228.fcs", REAL / "hipc_tcell.yaml"),
                          (REAL / "activation_8.fcs", REAL / "activation.yaml"),
                          (REPO / "fixtures" / "pbmc_02_shifted.fcs", "post-transplant")):
        out = subprocess.run([sys.executable, "-c", script, str(fcs), str(template)],
                             capture_output=True, text=True, check=True)
        report = json.loads(out.stdout.strip().splitlines()[-1])
        assert report["loaded"] == [], (fcs.name, report["loaded"])
        assert report["counted"] > 0
