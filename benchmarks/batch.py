"""`immunomon batch` throughput: the same files with 1 and 2 local worker processes.

Simulates the files once (``immunomon.simulate.pbmc_sample``, cached under
``--data``), then runs a fresh batch over them per worker count and prints files
per minute, the median seconds per file on a worker, each worker's peak memory
(the registry's ``peak_rss_mb``) and the parallel efficiency
``(rate with N workers / rate with 1) / N``. Target: at least 80% with 2 workers
on 2 cores.

    python benchmarks/batch.py                 # 50 files of 1,000,000 events
    python benchmarks/batch.py --quick         # 8 files of 100,000 events
    python benchmarks/batch.py --no-plots --workers 1 2 4

What to expect on a cluster: each file is an independent job whose input is a
path and whose result is a few kilobytes, so the coordinator (one SQLite
transaction per file) is not the limit below thousands of files per minute.
Workers scale linearly while each has a core, its own memory (the peak printed
below) and the shared file system delivers each file's bytes (read twice,
to hash and to gate, plus its outputs); the fixed costs are a worker's start-up
(imports, seconds) and the tail when the last files run on few workers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path


def make_files(folder: Path, n: int, events: int) -> list[Path]:
    """n simulated files of ``events`` events each (kept between runs)."""
    from immunomon import write_fcs
    from immunomon.simulate import pbmc_sample

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        path = folder / f"sample_{i:03d}.fcs"
        if not path.exists():
            t0 = time.perf_counter()
            write_fcs(path, pbmc_sample(events, seed=1000 + i).sample)
            print(f"  simulated {path.name} in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)
        files.append(path)
    return files


def run_once(inbox: Path, workers: int, plots: bool, anndata: bool) -> dict:
    from immunomon.batch.run import BatchOptions, run_batch

    results = Path(tempfile.mkdtemp(prefix=f"batch-bench-{workers}-"))
    try:
        t0 = time.perf_counter()
        summary = run_batch(inbox, results, BatchOptions(workers=workers, plots=plots,
                                                         anndata=anndata), report=False)
        wall = time.perf_counter() - t0
        conn = sqlite3.connect(results / "registry.sqlite")
        rows = conn.execute("SELECT worker, peak_rss_mb, seconds FROM files "
                            "WHERE status = 'done'").fetchall()
        conn.close()
    finally:
        shutil.rmtree(results, ignore_errors=True)
    per_worker: dict[str, float] = {}
    for worker, peak, _ in rows:
        per_worker[worker] = max(per_worker.get(worker, 0.0), peak or 0.0)
    seconds = [json.loads(s)["total"] for _, _, s in rows]
    return {"workers": workers, "files": summary.done, "failed": summary.failed,
            "wall": wall, "per_minute": 60.0 * summary.done / wall,
            "median_file_s": statistics.median(seconds) if seconds else float("nan"),
            "busy": sum(seconds) / (workers * wall),
            "peak_mb": sorted(per_worker.values(), reverse=True)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=50)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-plots", action="store_true", help="skip the gate plots")
    ap.add_argument("--no-anndata", action="store_true", help="skip the .h5ad files")
    ap.add_argument("--data", type=Path, default=None,
                    help="where the simulated files are kept (default: a folder in the "
                         "system temporary folder)")
    ap.add_argument("--quick", action="store_true", help="8 files of 100,000 events")
    args = ap.parse_args()
    if args.quick:
        args.files, args.events = 8, 100_000
    data = args.data or Path(tempfile.gettempdir()) / f"immunomon-batch-bench-{args.events}"
    print(f"{args.files} files of {args.events:,} events in {data}", file=sys.stderr)
    make_files(data, args.files, args.events)
    inbox = Path(tempfile.mkdtemp(prefix="batch-bench-inbox-"))
    try:
        for i in range(args.files):            # exactly the files asked for
            os.symlink(data / f"sample_{i:03d}.fcs", inbox / f"sample_{i:03d}.fcs")
        runs = []
        for w in args.workers:
            print(f"running with {w} worker(s)...", file=sys.stderr)
            runs.append(run_once(inbox, w, not args.no_plots, not args.no_anndata))
    finally:
        shutil.rmtree(inbox, ignore_errors=True)
    base = runs[0]["per_minute"] / runs[0]["workers"]
    matrix_mb = args.events * 18 * 4 / 2**20
    outputs = ", ".join(o for o, on in (("plots", not args.no_plots),
                                        ("AnnData", not args.no_anndata)) if on) or "tables"
    print(f"\n{args.files} files x {args.events:,} events (event matrix {matrix_mb:.0f} MB), "
          f"outputs: tables, pages, Gating-ML, {outputs}; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| workers | files | wall s | files/min | median s per file | workers busy "
          "| peak MB per worker | efficiency |")
    print("|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in runs:
        eff = r["per_minute"] / (base * r["workers"])
        peaks = ", ".join(f"{p:,.0f}" for p in r["peak_mb"])
        print(f"| {r['workers']} | {r['files']} | {r['wall']:.1f} | {r['per_minute']:.1f} | "
              f"{r['median_file_s']:.2f} | {100 * r['busy']:.0f}% | {peaks} | "
              f"{100 * eff:.0f}% |")
    print("\nefficiency = (files/min with N workers) / (N x files/min with 1 worker); "
          "workers busy = time spent in jobs / (N x wall)")


if __name__ == "__main__":
    main()
