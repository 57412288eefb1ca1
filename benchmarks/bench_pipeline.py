"""The whole per-sample path, immunomon against FlowKit, on the same file and
the same Gating-ML document.

Per sample: read the FCS file, compensate (the file's own spillover and a
spectrumMatrix from the document), transform (logicle, asinh, hyperlog, log,
linear, ratio), apply the 21-gate strategy in ``bench_strategy.xml`` (every
gate type, 26 populations) and compute statistics: count, percent of parent
and per population x 14 markers the median, mean, geometric mean (positive
values) and robust CV of the compensated intensities. FlowKit runs the same
document with ``GatingStrategy.gate_sample``; its statistics are computed
with numpy on its compensated events, as a FlowKit user would. The strategy
is parsed once, outside the timed runs, for both.

The file is a simulated blood sample (``immunomon.simulate.pbmc_sample``)
written with ``immunomon.write_fcs``. Each library runs in a fresh
subprocess: the median of several timed runs, then one run under tracemalloc
for peak memory. Population counts of the two must agree exactly.

    python benchmarks/bench_pipeline.py            # 1,000,000 events, 5 runs
    python benchmarks/bench_pipeline.py --quick    # 200,000 events, 2 runs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
STRATEGY = HERE / "bench_strategy.xml"
QUANTILES = (15.87, 50.0, 84.13)


def make_file(n_events: int) -> Path:
    from immunomon import write_fcs
    from immunomon.simulate import pbmc_sample
    folder = Path(tempfile.gettempdir()) / "immunomon-bench"
    folder.mkdir(exist_ok=True)
    path = folder / f"pbmc_{n_events}_seed1.fcs"
    if not path.exists():
        write_fcs(path, pbmc_sample(n_events, seed=1).sample)
    return path


# --------------------------------------------------------------------------- workers
def numpy_statistics(result, values: np.ndarray) -> None:
    """The same statistics the plain way: np.percentile / np.mean per
    population on the gathered events (the reference for the speed-up)."""
    for pid in result.gate_ids:
        x = values[:, result.mask(pid)].astype(np.float64)
        if x.shape[1] == 0:
            continue
        p16, med, p84 = np.percentile(x, QUANTILES, axis=1)
        x.mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.exp(np.nanmean(np.log(np.where(x > 0, x, np.nan)), axis=1))
            100 * 0.5 * (p84 - p16) / med


def statistics_only(path: Path, repeats: int) -> dict:
    """Time population_statistics alone against numpy_statistics."""
    import immunomon
    from immunomon.gating import load_gatingml
    from immunomon.populations import default_channels, intensity_matrix, population_statistics
    result = load_gatingml(STRATEGY).apply(immunomon.read_fcs(path))
    values = intensity_matrix(result, default_channels(result.sample))
    ours, plain = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        population_statistics(result)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        numpy_statistics(result, values)
        plain.append(time.perf_counter() - t0)
    return {"ours_s": float(np.median(ours)), "numpy_s": float(np.median(plain))}


def immunomon_worker(path: Path):
    import immunomon
    from immunomon.gating import load_gatingml
    from immunomon.populations import population_statistics
    strategy = load_gatingml(STRATEGY)

    def run(stats: bool = True):
        sample = immunomon.read_fcs(path)
        result = strategy.apply(sample)
        counts = {g: result.count(g) for g in result.gate_ids}
        if not stats:
            return counts, None
        table = population_statistics(result)
        medians = {(r.population, r.channel): r.median for r in table.itertuples()}
        return counts, medians
    return run


def flowkit_worker(path: Path):
    import flowkit as fk
    warnings.simplefilter("ignore")
    strategy = fk.parse_gating_xml(str(STRATEGY))

    def run(stats: bool = True):
        sample = fk.Sample(str(path))
        result = strategy.gate_sample(sample)
        report = result.report
        counts = {r.gate_name: int(r.count) for r in report.itertuples()}
        if not stats:
            return counts, None
        spill = sample.metadata.get("spillover") or sample.metadata.get("spill")
        sample.apply_compensation(spill)
        comp = sample.get_events(source="comp")
        detectors = [c for c in sample.pnn_labels if c.endswith("-A") and
                     not c.startswith(("FSC", "SSC"))]
        cols = [sample.pnn_labels.index(c) for c in detectors]
        medians = {}
        for r in report.itertuples():
            mask = result.get_gate_membership(r.gate_name, gate_path=r.gate_path)
            x = comp[mask][:, cols]
            if x.shape[0] == 0:
                continue
            p16, med, p84 = np.percentile(x, QUANTILES, axis=0)
            x.mean(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                np.exp(np.nanmean(np.log(np.where(x > 0, x, np.nan)), axis=0))
                100 * 0.5 * (p84 - p16) / med
            for c, m in zip(detectors, med):
                medians[(r.gate_name, c)] = m
        return counts, medians
    return run


def worker(lib: str, path: Path, repeats: int) -> dict:
    if lib == "statistics":
        return statistics_only(path, repeats)
    run = {"immunomon": immunomon_worker, "flowkit": flowkit_worker}[lib](path)
    run()                                                   # warm up (imports, caches)
    times, gate_times = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        counts, medians = run()
        times.append(time.perf_counter() - t0)
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(stats=False)
        gate_times.append(time.perf_counter() - t0)
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"median_s": float(np.median(times)), "gating_only_s": float(np.median(gate_times)),
            "peak_mb": peak / 2**20, "counts": counts,
            "medians": {f"{p}\t{c}": float(v) for (p, c), v in medians.items()}}


# --------------------------------------------------------------------------- driver
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200k events, 2 runs")
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.file), args.repeats)))
        return
    n = args.events or (200_000 if args.quick else 1_000_000)
    repeats = args.repeats or (2 if args.quick else 5)
    path = make_file(n)
    print(f"{path.name}: {n:,} events; {STRATEGY.name}; median of {repeats} runs")
    out = {}
    for lib in ("immunomon", "flowkit", "statistics"):
        proc = subprocess.run([sys.executable, __file__, "--worker", lib, "--file", str(path),
                               "--repeats", str(repeats)], capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{lib} failed:\n{proc.stderr[-3000:]}")
        out[lib] = json.loads(proc.stdout.strip().splitlines()[-1])
    ours, theirs = out["immunomon"], out["flowkit"]
    same = ours["counts"] == theirs["counts"]
    diffs = [abs(ours["medians"][k] - v) / max(abs(v), 1.0)
             for k, v in theirs["medians"].items() if k in ours["medians"]]
    print(f"\n| {'library':<10} | {'whole path (s)':>14} | {'without stats (s)':>17} "
          f"| {'peak traced MB':>14} |")
    print(f"|{'-' * 12}|{'-' * 16}|{'-' * 19}|{'-' * 16}|")
    for lib in ("immunomon", "flowkit"):
        r = out[lib]
        print(f"| {lib:<10} | {r['median_s']:>14.3f} | {r['gating_only_s']:>17.3f} "
              f"| {r['peak_mb']:>14.0f} |")
    print(f"| {'ratio':<10} | {theirs['median_s'] / ours['median_s']:>13.1f}x "
          f"| {theirs['gating_only_s'] / ours['gating_only_s']:>16.1f}x "
          f"| {theirs['peak_mb'] / ours['peak_mb']:>13.1f}x |")
    print(f"\npopulations: {len(ours['counts'])}; counts identical: {same}")
    if not same:
        for k in sorted(set(ours["counts"]) | set(theirs["counts"])):
            a, b = ours["counts"].get(k), theirs["counts"].get(k)
            if a != b:
                print(f"  {k}: immunomon {a}, flowkit {b}")
    st = out["statistics"]
    print(f"statistics alone (26 populations x 14 markers): immunomon {st['ours_s']:.3f} s, "
          f"np.percentile/np.mean per population {st['numpy_s']:.3f} s "
          f"({st['numpy_s'] / st['ours_s']:.1f}x)")
    if diffs:
        print(f"medians compared: {len(diffs)}; largest relative difference "
              f"{max(diffs):.2e} (float32 against float64 compensation)")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
