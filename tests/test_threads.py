"""The thread policy of the per-file job (immunomon.threads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immunomon import transforms
from immunomon.threads import OWN_VARIABLE, POOL_VARIABLES, pool_threads, single_threaded

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "data" / "perf" / "gate_outputs.csv"

# Run in a fresh interpreter with OMP_NUM_THREADS=3 and OPENBLAS_NUM_THREADS=3, whatever
# the machine, so "one thread inside, as before after" cannot hold by accident.
SCRIPT = r"""
import json, os, sys
from immunomon import read_fcs
from immunomon.gating import methods
from immunomon.gating.run import gate_sample
from immunomon.gating.template import load_template
from immunomon.threads import pool_threads

fits = []
original = methods._mixture
def recording(*args, **kwargs):
    gmm = original(*args, **kwargs)
    fits.append({"pools": pool_threads(),
                 "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}})
    return gmm
methods._mixture = recording
before = pool_threads()
gating = gate_sample(read_fcs(sys.argv[1]), load_template("post-transplant"))
print(json.dumps({"before": before, "fits": fits, "after": pool_threads(),
                  "env_after": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
                  "slow_imports": [m for m in ("sklearn", "scipy.stats") if m in sys.modules],
                  "counts": dict(zip(gating.table["population"], map(int, gating.table["count"])))}))
"""

# A library whose OpenMP pool first loads inside the policy (scikit-learn's, here).
LOADED_INSIDE = r"""
import json
from immunomon.threads import pool_threads, single_threaded

with single_threaded():
    import sklearn.cluster
    inside = pool_threads()
print(json.dumps({"inside": inside, "after": pool_threads()}))
"""


def _run(script: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in POOL_VARIABLES}
    env.update(OMP_NUM_THREADS="3", OPENBLAS_NUM_THREADS="3")
    out = subprocess.run([sys.executable, "-c", script, *args],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


def test_mixture_fits_run_single_threaded_and_pools_come_back():
    report = _run(SCRIPT, str(REPO / "fixtures" / "pbmc_02_shifted.fcs"))
    before = report["before"]
    assert before                            # numpy's BLAS at least
    assert len(report["fits"]) >= 2          # the template's cluster gates
    for fit in report["fits"]:
        assert all(n == 1 for n in fit["pools"].values()), fit["pools"]
        assert fit["env"] == {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    after = report["after"]
    assert {k: after[k] for k in before} == before
    assert all(after[k] == 3 for k in after if k not in before), after   # scipy's, loaded inside
    assert report["env_after"] == {"OMP_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "3"}
    assert report["slow_imports"] == []      # the mixtures are fitted in numpy
    # the counts are those the job gave before the policy existed
    ref = pd.read_csv(REFERENCE)
    ref = ref[ref["sample"] == "pbmc_02_shifted"]
    assert report["counts"] == dict(zip(ref["population"], ref["count"]))


def test_a_pool_first_loaded_inside_gets_its_own_threads_after():
    pytest.importorskip("sklearn")
    report = _run(LOADED_INSIDE)
    openmp = [name for name in report["inside"] if "omp" in name]
    assert openmp, report                    # scikit-learn's OpenMP runtime, loaded inside
    assert all(n == 1 for n in report["inside"].values()), report
    assert [report["after"][name] for name in openmp] == [3] * len(openmp)


def test_nested_use_limits_once_and_restores(monkeypatch):
    monkeypatch.setenv(OWN_VARIABLE, "4")
    original = pool_threads()
    saved = {k: os.environ.get(k) for k in POOL_VARIABLES}
    assert transforms._threads() == 4
    with single_threaded():
        assert transforms._threads() == 1          # the transforms' own threads too
        assert all(n == 1 for n in pool_threads().values())
        with single_threaded():
            assert all(n == 1 for n in pool_threads().values())
        assert all(n == 1 for n in pool_threads().values())     # the inner exit keeps it
        assert all(os.environ[k] == "1" for k in POOL_VARIABLES)
    assert pool_threads() == original
    assert {k: os.environ.get(k) for k in POOL_VARIABLES} == saved
    assert transforms._threads() == 4


def test_single_threaded_products_equal_the_default_ones():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20_000, 16)), rng.normal(size=(16, 16))
    expected = a @ b
    with single_threaded():
        got = a @ b
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
