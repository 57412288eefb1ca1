"""The batch on a real Dask LocalCluster (loopback): same results as local workers, and a
worker killed in the middle of a file is survived."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from batch_helpers import registry_rows, write_sample

distributed = pytest.importorskip("distributed")

from immunomon.batch.dask import DaskExecutor, parse_cluster  # noqa: E402
from immunomon.batch.registry import BatchError, Registry  # noqa: E402
from immunomon.batch.run import BatchOptions, run_batch  # noqa: E402


def _kill_a_busy_worker(executor: DaskExecutor, killed: dict, stop: threading.Event):
    """Kill (SIGKILL) the first worker seen running one of our jobs; note its job."""
    client = executor.client
    while not stop.is_set():
        processing = client.processing()
        for address, keys in processing.items():
            mine = [k for k in keys if any(f.key == k for f in executor._futures)]
            if not mine:
                continue
            pid = client.run(os.getpid, workers=[address])[address]
            key = mine[0]
            killed["file_id"] = next(v for f, v in list(executor._futures.items())
                                     if f.key == key)
            os.kill(pid, signal.SIGKILL)
            killed["pid"] = pid
            return
        time.sleep(0.05)


@pytest.mark.slow
def test_local_cluster_runs_the_batch_and_survives_a_dead_worker(tmp_path):
    inbox = tmp_path / "inbox"
    for i in range(6):
        write_sample(inbox / f"s{i}.fcs", seed=i)
    (inbox / "broken.fcs").write_bytes(b"FCS3.1    no")
    options = BatchOptions(cluster="local:2", plots=False, anndata=False)
    killed: dict = {}
    stop = threading.Event()
    with DaskExecutor(local_workers=2) as executor:
        assert executor.cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        killer = threading.Thread(target=_kill_a_busy_worker, args=(executor, killed, stop))
        killer.start()
        try:
            summary = run_batch(inbox, tmp_path / "res", options, executor=executor)
        finally:
            stop.set()
            killer.join()
    assert killed, "no worker was caught running a job"
    rows = {r["id"]: r for r in registry_rows(tmp_path / "res")}
    assert summary.done == 6 and summary.quarantined == 1 and summary.retried >= 1
    victim = rows[killed["file_id"]]
    assert victim["status"] == "done" and victim["attempts"] >= 2
    assert all(r["status"] == "done" for r in rows.values() if "broken" not in r["relpath"])
    assert victim["worker"] and not victim["worker"].endswith(f":{killed['pid']}")

    # the same numbers as the per-file job gives in this process
    from immunomon.gating.run import gate_file
    from immunomon.gating.template import load_template

    template = load_template("post-transplant")
    for i in range(6):
        _, table = gate_file(inbox / f"s{i}.fcs", template, tmp_path / "here", name=f"s{i}",
                             plots=False, anndata=False)
        got = pd.read_csv(tmp_path / "res" / "default" / f"s{i}" / "populations.csv")
        pd.testing.assert_frame_equal(got[["population", "count", "cells_per_ul"]],
                                      pd.DataFrame(table)[["population", "count",
                                                          "cells_per_ul"]],
                                      check_dtype=False)


def test_cluster_option_and_unreachable_scheduler(tmp_path, monkeypatch):
    assert parse_cluster("local:3") == 3
    for bad in ("local", "local:0", "slurm:4", "local:x"):
        with pytest.raises(BatchError, match="local:N"):
            parse_cluster(bad)
    monkeypatch.setattr("immunomon.batch.dask.CONNECT_TIMEOUT", "1s")
    with pytest.raises(BatchError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        DaskExecutor("tcp://127.0.0.1:9")


def test_an_unreachable_scheduler_is_refused_before_any_file_is_registered(tmp_path,
                                                                           monkeypatch):
    """A wrong --scheduler address leaves no results folder (run, watch) and a batch's
    registry as it was (retry)."""
    from immunomon.batch.run import retry_batch, watch_inbox

    monkeypatch.setattr("immunomon.batch.dask.CONNECT_TIMEOUT", "1s")
    inbox = tmp_path / "inbox"
    write_sample(inbox / "s0.fcs", seed=0)
    wrong = BatchOptions(scheduler="tcp://127.0.0.1:9", plots=False, anndata=False)
    for start in (lambda: run_batch(inbox, tmp_path / "res", wrong),
                  lambda: watch_inbox(inbox, tmp_path / "res", wrong, rounds=1)):
        with pytest.raises(BatchError, match="cannot reach the Dask scheduler"):
            start()
        assert not (tmp_path / "res").exists()

    run_batch(inbox, tmp_path / "res", BatchOptions(workers=1, plots=False, anndata=False))
    registry = Registry.open(tmp_path / "res", create=False)
    registry.update(registry.rows("done")[0]["id"], status="pending")
    registry.close()
    (inbox / "s0.fcs").unlink()    # a pending file retry quarantines as gone from the inbox
    before = registry_rows(tmp_path / "res")
    with pytest.raises(BatchError, match="cannot reach the Dask scheduler"):
        retry_batch(tmp_path / "res", wrong)
    assert registry_rows(tmp_path / "res") == before


def test_only_paths_travel_to_the_workers(tmp_path):
    """The job sent to a worker is small whatever the file's size: a path, not events."""
    import pickle

    from immunomon.batch.job import Job
    from immunomon.gating.template import load_template

    big = tmp_path / "big.fcs"
    write_sample(big, seed=1, n=200_000)
    job = Job(file_id=1, path=str(big), results=str(tmp_path), output="x/big",
              template=load_template("post-transplant"))
    assert big.stat().st_size > 10_000_000
    assert len(pickle.dumps(job)) < 20_000
    assert Path(job.path).name == "big.fcs"
