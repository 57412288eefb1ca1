"""The thread policy of the per-file job (immunomon.threads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from immunomon import transforms
from immunomon.threads import OWN_VARIABLE, POOL_VARIABLES, pool_threads, single_threaded

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "data" / "perf" / "gate_outputs.csv"

# Run in a fresh interpreter, where scikit-learn (and its OpenMP runtime) is first
# imported inside the job, by the first mixture fit. OMP_NUM_THREADS=3 there, whatever the
# machine (OpenBLAS caps itself at the cores; OpenMP does not), so "one thread inside, three
# after" cannot hold by accident for the OpenMP pool the job loads.
SCRIPT = r"""
import json, os, sys
from immunomon import read_fcs
from immunomon.gating import methods
from immunomon.gating.run import gate_sample
from immunomon.gating.template import load_template
from immunomon.threads import pool_threads

assert "sklearn" not in sys.modules
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
                  "counts": dict(zip(gating.table["population"], map(int, gating.table["count"])))}))
"""


def test_mixture_fits_run_single_threaded_and_pools_come_back():
    env = {k: v for k, v in os.environ.items() if k not in POOL_VARIABLES}
    env.update(OMP_NUM_THREADS="3", OPENBLAS_NUM_THREADS="3")
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(REPO / "fixtures" / "pbmc_02_shifted.fcs")],
                         capture_output=True, text=True, env=env, check=True)
    report = json.loads(out.stdout)
    before = report["before"]
    assert before and not any("omp" in name for name in before)
    assert len(report["fits"]) >= 2          # the template's cluster gates
    for fit in report["fits"]:
        pools = fit["pools"]
        assert any("gomp" in name or "omp" in name for name in pools), pools   # OpenMP loaded
        assert len(pools) > len(report["before"])       # ... by the job itself
        assert all(n == 1 for n in pools.values()), pools
        assert fit["env"] == {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    after = report["after"]
    assert {k: after[k] for k in before} == before
    assert [after[k] for k in after if "omp" in k] == [3], after
    assert report["env_after"] == {"OMP_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "3"}
    # the counts are those the job gave before the policy existed
    ref = pd.read_csv(REFERENCE)
    ref = ref[ref["sample"] == "pbmc_02_shifted"]
    assert report["counts"] == dict(zip(ref["population"], ref["count"]))


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
