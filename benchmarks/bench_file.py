"""The per-file job of ``immunomon gate``, stage by stage, with FlowKit's equivalent path.

One 1,000,000-event file (``immunomon.simulate.pbmc_sample``, written with
``write_fcs``) gated with the post-transplant template, in a fresh process per
configuration so that each pays its own imports and owns its memory:

- gating alone: read, QC, compensate, transform, find and apply the gates,
  statistics and absolute counts (``gate_sample``), tables and Gating-ML written;
- + plots summary / + plots all: the overview image, or it and one PNG per gate;
- + AnnData: the ``.h5ad`` (events, membership, keywords, gates);
- everything: what ``immunomon gate FILE -o OUT`` writes (plots all, AnnData, pages);
- FlowKit: read the same file and apply the gates this file was gated with (the
  Gating-ML document the job wrote, less the boolean gates no gate hangs from: FlowKit
  1.3 cannot place those combining gates of different branches in its gate tree) with
  ``GatingStrategy.gate_sample``; FlowKit finds no gates itself, draws plots only
  through bokeh and writes no AnnData, so this is its whole equivalent path.

Per configuration: the median wall and CPU seconds of the job (imports excluded;
they are the ``startup`` column, from the first run), and from one more run the
peak traced memory (numpy arrays included) and the rise of the process's peak
resident memory during the job, both also as multiples of the event matrix.
A small file (20,000 events) gated from the command line follows, as a scientist runs
it: the whole process, start-up included, with tables only and with every output. The
data-driven against fixed-gate comparison of ``bench_gate.py`` and the demo study's
gate stage follow in the same run.

    python benchmarks/bench_file.py                     # 1,000,000 events, 3 runs each
    python benchmarks/bench_file.py --quick             # 200,000 events, 2 runs
    python benchmarks/bench_file.py --baseline SRC      # also run the code in SRC (a
                                                        # checkout's src/), before/after

The machine's load average is printed with the results: on a shared server the
seconds move with it, the ratios much less.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEMO = REPO / "fixtures" / "demo-study" / "fcs"
DEMO_STUDY = REPO / "pipelines" / "demo.yaml"
CONFIGS = ("gating alone", "+ plots summary", "+ plots all", "+ AnnData", "everything",
           "FlowKit")


SMALL_FILE = 20_000
COMMAND_LINE = {"tables only": ["--plots", "none", "--no-anndata"], "every output": []}


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
def _job(config: str, path: Path, gates_xml: Path | None):
    """Import what the configuration needs; return the job as a function of an
    output folder. Works with older checkouts (plots given as booleans)."""
    if config == "FlowKit":
        import warnings

        import flowkit as fk
        warnings.simplefilter("ignore")

        def flowkit(out: Path):
            strategy = fk.parse_gating_xml(str(gates_xml))
            return strategy.gate_sample(fk.Sample(str(path))).report
        return flowkit

    from immunomon import read_fcs
    from immunomon.gating import run
    from immunomon.gating.template import load_template

    _preload(config)
    template = load_template("post-transplant")
    if config == "everything":
        return lambda out: run.gate_files([path], template, out)
    plots = {"+ plots summary": "summary", "+ plots all": True}.get(config, False)
    if plots == "summary" and not hasattr(run, "plot_level"):
        raise SystemExit("no plot levels in this code")     # older code: all or nothing
    anndata = config == "+ AnnData"

    def job(out: Path):
        out.mkdir(parents=True, exist_ok=True)
        gating = run.gate_sample(read_fcs(path), template)
        return run.write_sample(gating, template, out, plots=plots, anndata=anndata)
    return job


def _preload(config: str) -> None:
    """Import what the job imports lazily, so that neither its seconds nor its
    traced memory count imports (they are the start-up column)."""
    import importlib
    names = ["pandas", "scipy.ndimage", "scipy.signal", "scipy.special"]
    if "plots" in config or config == "everything":
        names += ["matplotlib.figure", "matplotlib.backends.backend_agg"]
    if config in ("+ AnnData", "everything"):
        names += ["anndata", "h5py"]
    for name in names:
        importlib.import_module(name)
    for name in ("scipy.stats", "sklearn.mixture"):     # what older checkouts fit with
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def _rss_mb() -> float:
    """Peak resident memory of this process so far (VmHWM: unlike ru_maxrss it is not
    inherited from the parent across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(config: str, path: Path, repeats: int, gates_xml: Path | None) -> dict:
    t0 = time.perf_counter()
    job = _job(config, path, gates_xml)
    with tempfile.TemporaryDirectory() as tmp:
        job(Path(tmp) / "warm")                     # lazy imports and first-use costs
        startup = time.perf_counter() - t0
        walls, cpus = [], []
        for i in range(repeats):
            c0, w0 = time.process_time(), time.perf_counter()
            job(Path(tmp) / f"run{i}")
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
    return {"startup_s": startup, "wall_s": float(np.median(walls)),
            "cpu_s": float(np.median(cpus))}


def memory_worker(config: str, path: Path, gates_xml: Path | None) -> dict:
    """Peak memory of one job in a process that has done nothing else."""
    job = _job(config, path, gates_xml)
    with tempfile.TemporaryDirectory() as tmp:
        rss = _rss_mb()
        tracemalloc.start()
        job(Path(tmp))
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        return {"traced_mb": peak, "rss_rise_mb": _rss_mb() - rss}


def demo_worker(repeats: int) -> dict:
    """The demo study's gate stage: every demo file, no plots, no AnnData. The files
    are written from the study's seed on first use (as ``immunomon run`` does)."""
    from immunomon.gating.run import gate_files
    from immunomon.gating.template import load_template
    try:
        from immunomon.pipeline import load_study, simulated_inputs
        simulated_inputs(load_study(DEMO_STUDY))
    except ImportError:                 # older code: the files were committed
        pass
    files = sorted(DEMO.glob("*.fcs"))
    template = load_template("post-transplant")
    walls, cpus = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            c0, w0 = time.process_time(), time.perf_counter()
            run = gate_files(files, template, tmp, plots=False, anndata=False)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
    counts = {f"{r.sample}\t{r.population}": int(r.count)
              for r in run.table[["sample", "population", "count"]].itertuples()}
    return {"files": len(files), "wall_s": float(np.median(walls)),
            "cpu_s": float(np.median(cpus)), "counts": counts}


# --------------------------------------------------------------------------- driver
def _env(src: str | None) -> dict:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(args: list[str], src: str | None) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          env=_env(src))
    if proc.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def command_line_seconds(path: Path, options: list[str], src: str | None,
                         repeats: int) -> float:
    """Median wall seconds of ``immunomon gate FILE -t post-transplant`` as a process,
    with the modules' bytecode written and used, as after ``pip install`` (an unmeasured
    first run writes it where the environment would not)."""
    env = {k: v for k, v in _env(src).items() if k != "PYTHONDONTWRITEBYTECODE"}
    walls = []
    for i in range(repeats + 1):
        with tempfile.TemporaryDirectory() as tmp:
            w0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "immunomon", "gate", str(path), "-t",
                            "post-transplant", "-o", tmp, *options], env=env,
                           check=True, capture_output=True)
            if i:
                walls.append(time.perf_counter() - w0)
    return float(np.median(walls))


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _gates_xml(path: Path) -> Path:
    """The Gating-ML of the gates found in this file (written by the job), without
    the boolean gates no other gate hangs from (for FlowKit)."""
    from immunomon.gating import BooleanGate, GatingStrategy, load_gatingml, save_gatingml
    from immunomon.gating.run import gate_files
    from immunomon.gating.template import load_template
    out = Path(tempfile.gettempdir()) / "immunomon-bench" / f"{path.stem}-gates"
    if not (out / path.stem / "gates.xml").exists():
        gate_files([path], load_template("post-transplant"), out, plots=False, anndata=False)
    strategy = load_gatingml(out / path.stem / "gates.xml")
    parents = {g.parent for g in strategy.gates}
    kept = [g for g in strategy.gates if not (isinstance(g, BooleanGate) and g.id not in parents)]
    return save_gatingml(GatingStrategy(kept, transforms=dict(strategy.transforms),
                                        compensations=dict(strategy.compensations)),
                         out / "gates_without_booleans.xml")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200,000 events, 2 runs")
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--baseline", metavar="SRC", help="another checkout's src/ to compare")
    ap.add_argument("--no-demo", action="store_true", help="skip the demo study's gate stage")
    ap.add_argument("--demo-repeats", type=int, default=None,
                    help="runs of the demo study's gate stage (default: --repeats)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--gates", help=argparse.SUPPRESS)
    args = ap.parse_args()
    repeats = args.repeats or (2 if args.quick else 3)
    if args.worker == "demo":
        print(json.dumps(demo_worker(repeats)))
        return
    demo_repeats = args.demo_repeats or repeats
    if args.worker:
        gates = Path(args.gates) if args.gates else None
        out = (memory_worker(args.worker, Path(args.file), gates) if args.memory
               else worker(args.worker, Path(args.file), repeats, gates))
        print(json.dumps(out))
        return

    n = args.events or (200_000 if args.quick else 1_000_000)
    path = make_file(n)
    from immunomon import read_fcs
    events_mb = read_fcs(path).events.nbytes / 2**20
    gates = _gates_xml(path)
    versions = {"this checkout": None, **({"baseline": args.baseline} if args.baseline else {})}
    print(f"{path.name}: {n:,} events, event matrix {events_mb:.0f} MB; median of {repeats} "
          f"runs; load average before: {_load()}\n")
    print("| code | configuration | wall s | CPU s | startup s | traced peak MB (x events) "
          "| RSS rise MB (x events) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    rows = {}
    # before and after side by side, configuration by configuration, so that both meet
    # much the same load on a shared machine
    for config in CONFIGS:
        for label, src in versions.items():
            if config == "FlowKit" and label != "this checkout":
                continue
            common = ["--worker", config, "--file", str(path), "--gates", str(gates)]
            try:
                t = _run([*common, "--repeats", str(repeats)], src)
                m = _run([*common, "--memory"], src)
            except SystemExit as exc:          # e.g. the summary level on older code
                print(f"| {label} | {config} | failed: {str(exc).splitlines()[-1][:60]} |")
                continue
            rows[label, config] = t
            print(f"| {label} | {config} | {t['wall_s']:.2f} | {t['cpu_s']:.2f} | "
                  f"{t['startup_s']:.2f} | {m['traced_mb']:.0f} ({m['traced_mb'] / events_mb:.1f}x) "
                  f"| {m['rss_rise_mb']:.0f} ({m['rss_rise_mb'] / events_mb:.1f}x) |", flush=True)
    if args.baseline:
        print("\n| configuration | CPU s before | CPU s after | faster |")
        print("|---|---:|---:|---:|")
        for config in CONFIGS:
            if ("baseline", config) in rows and ("this checkout", config) in rows:
                b, a = rows["baseline", config]["cpu_s"], rows["this checkout", config]["cpu_s"]
                print(f"| {config} | {b:.2f} | {a:.2f} | {b / a:.1f}x |")
    print(f"\nload average after the file runs: {_load()}")

    small = make_file(SMALL_FILE)
    print(f"\n{small.name} gated from the command line, start-up included, median of "
          f"{repeats}:\n")
    print("| code | " + " | ".join(f"{name} s" for name in COMMAND_LINE) + " |")
    print("|---|" + "---:|" * len(COMMAND_LINE))
    for label, src in versions.items():
        seconds = [command_line_seconds(small, options, src, repeats)
                   for options in COMMAND_LINE.values()]
        print(f"| {label} | " + " | ".join(f"{t:.2f}" for t in seconds) + " |", flush=True)

    print("\nData-driven against fixed gates (benchmarks/bench_gate.py):\n", flush=True)
    subprocess.run([sys.executable, str(HERE / "bench_gate.py"), "--events", str(n),
                    "--repeats", str(repeats)], check=True)

    if not args.no_demo:
        print(f"\nThe demo study's gate stage ({DEMO.relative_to(REPO)}, no plots, no "
              f"AnnData), median of {demo_repeats}:\n")
        print("| code | files | wall s | CPU s |")
        print("|---|---:|---:|---:|")
        demo = {}
        for label, src in versions.items():
            demo[label] = d = _run(["--worker", "demo", "--repeats", str(demo_repeats)], src)
            print(f"| {label} | {d['files']} | {d['wall_s']:.1f} | {d['cpu_s']:.1f} |",
                  flush=True)
        if args.baseline:
            b, a = demo["baseline"], demo["this checkout"]
            print(f"\nfaster: {b['wall_s'] / a['wall_s']:.1f}x wall, "
                  f"{b['cpu_s'] / a['cpu_s']:.1f}x CPU; counts identical: "
                  f"{b['counts'] == a['counts']}")
        print(f"load average after the demo: {_load()}")


if __name__ == "__main__":
    main()
