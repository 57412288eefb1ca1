"""Reading FCS files: immunomon against flowio, FlowKit, fcsparser and a plain numpy read.

Generates three files with the same events (1,000,000 x 18 by default):
  float32 little-endian, float32 big-endian, and 16-bit integers whose
  six high bits carry flags ($PnR 1024, so readers must mask to 10 bits).
Every reader runs in a fresh subprocess: the median of several timed reads,
then one read under tracemalloc for peak memory. Each reader's events are
checked against the known values, so a fast wrong answer shows as WRONG.

    python benchmarks/bench_fcs_read.py            # 1M events, 5 repeats
    python benchmarks/bench_fcs_read.py --quick    # 100k events, 3 repeats
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N_CHANNELS = 18

READERS = ("numpy", "immunomon", "flowio", "flowkit", "fcsparser")


# ----------------------------------------------------------------------------- files
def _text(keywords: dict[str, str]) -> bytes:
    return ("/" + "".join(f"{k}/{v}/" for k, v in keywords.items())).encode()


def build_file(path: Path, values: np.ndarray, kind: str) -> dict:
    """Write an FCS 3.1 file directly (no library), returning where DATA starts."""
    n, p = values.shape
    if kind == "int10":
        flags = (np.arange(values.size, dtype=np.uint16).reshape(n, p) % 64) << 10
        data = (values.astype(np.uint16) | flags).astype(">u2")
        datatype, bits, rng, byteord = "I", 16, 1024, "4,3,2,1"
    else:
        data = values.astype("<f4" if kind == "float_le" else ">f4")
        datatype, bits, rng = "F", 32, 262144
        byteord = "1,2,3,4" if kind == "float_le" else "4,3,2,1"
    kw = {"$BYTEORD": byteord, "$DATATYPE": datatype, "$MODE": "L", "$NEXTDATA": "0",
          "$PAR": str(p), "$TOT": str(n), "$BEGINANALYSIS": "0", "$ENDANALYSIS": "0",
          "$BEGINSTEXT": "0", "$ENDSTEXT": "0"}
    for i in range(1, p + 1):
        kw.update({f"$P{i}N": f"CH{i}-A", f"$P{i}B": str(bits), f"$P{i}E": "0,0",
                   f"$P{i}R": str(rng), f"$P{i}S": f"M{i}"})
    kw["$BEGINDATA"] = kw["$ENDDATA"] = "0" * 20
    text_len = len(_text(kw))
    begin = 58 + text_len
    kw["$BEGINDATA"] = str(begin).zfill(20)
    kw["$ENDDATA"] = str(begin + data.nbytes - 1).zfill(20)
    text = _text(kw)
    head = (b"FCS3.1    " + f"{58:>8}{57 + len(text):>8}".encode()
            + f"{begin:>8}{begin + data.nbytes - 1:>8}{0:>8}{0:>8}".encode())
    with open(path, "wb") as fh:
        fh.write(head + text)
        fh.write(data.tobytes())
    return {"begin": begin, "dtype": data.dtype.str, "n": n, "p": p, "kind": kind}


# ----------------------------------------------------------------------------- readers
def read_with(reader: str, path: str, info: dict) -> np.ndarray:
    if reader == "numpy":
        raw = np.fromfile(path, dtype=info["dtype"], count=info["n"] * info["p"],
                          offset=info["begin"]).reshape(info["n"], info["p"])
        if info["kind"] == "int10":
            return (raw & 0x3FF).astype(np.float32)
        if info["kind"] == "float_be":
            return raw.byteswap().view(raw.dtype.newbyteorder("="))
        return raw
    if reader == "immunomon":
        import immunomon
        return immunomon.read_fcs(path).events
    if reader == "flowio":
        import flowio
        return flowio.FlowData(path).as_array(preprocess=False)
    if reader == "flowkit":
        import flowkit
        return flowkit.Sample(path).get_events(source="raw")
    if reader == "fcsparser":
        import fcsparser
        _, frame = fcsparser.parse(path, reformat_meta=False)
        return frame.to_numpy()
    raise ValueError(reader)


def _child(reader: str, path: str, info: dict, repeats: int, truth_path: str) -> dict:
    import time
    import tracemalloc
    import immunomon, flowio, flowkit, fcsparser  # noqa: F401  (import cost not timed)
    truth = np.load(truth_path)
    times, result = [], None
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = read_with(reader, path, info)
            times.append(time.perf_counter() - t0)
            del result
        tracemalloc.start()
        result = read_with(reader, path, info)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    except Exception as exc:  # a competitor failing is a result, not a crash
        return {"error": f"{type(exc).__name__}: {str(exc)[:80]}"}
    correct = bool(np.array_equal(np.asarray(result, dtype=np.float32), truth))
    return {"median_s": float(np.median(times)), "peak_mb": peak / 1e6, "correct": correct}


def run(events: int, repeats: int, slow_repeats: int, workdir: Path) -> list[dict]:
    rng = np.random.default_rng(1)
    values = rng.integers(0, 1024, size=(events, N_CHANNELS)).astype(np.float32)
    truth = workdir / "truth.npy"
    np.save(truth, values)
    rows = []
    for kind in ("float_le", "float_be", "int10"):
        path = workdir / f"{kind}.fcs"
        info = build_file(path, values, kind)
        for reader in READERS:
            reps = slow_repeats if reader in ("flowio", "flowkit") and kind == "int10" else repeats
            code = (f"import json,sys; sys.path.insert(0, {str(HERE)!r});"
                    f"import bench_fcs_read as b;"
                    f"print(json.dumps(b._child({reader!r}, {str(path)!r}, {info!r}, {reps},"
                    f" {str(truth)!r})))")
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            try:
                res = json.loads(proc.stdout.strip().splitlines()[-1])
            except (IndexError, json.JSONDecodeError):
                res = {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:80]}
            rows.append({"file": kind, "reader": reader, **res})
            print(f"  {kind:9} {reader:10} {res}", file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict], events: int) -> str:
    out = [f"FCS read, {events:,} events x {N_CHANNELS} channels "
           "(median time; peak traced memory; ratio = reader time / immunomon time)", "",
           f"| file | reader | median s | peak MB | x numpy | x immunomon | values |",
           "|---|---|---:|---:|---:|---:|---|"]
    for kind in ("float_le", "float_be", "int10"):
        by = {r["reader"]: r for r in rows if r["file"] == kind}
        ours = by["immunomon"].get("median_s")
        base = by["numpy"].get("median_s")
        for reader in READERS:
            r = by[reader]
            if "error" in r:
                out.append(f"| {kind} | {reader} | failed | | | | {r['error']} |")
                continue
            out.append(f"| {kind} | {reader} | {r['median_s']:.3f} | {r['peak_mb']:.0f} | "
                       f"{r['median_s'] / base:.2f} | {r['median_s'] / ours:.1f} | "
                       f"{'ok' if r['correct'] else 'WRONG'} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--slow-repeats", type=int, default=1,
                    help="repeats for flowio/FlowKit on the 10-bit file (they take minutes)")
    ap.add_argument("--quick", action="store_true", help="100,000 events, 3 repeats")
    args = ap.parse_args()
    if args.quick:
        args.events, args.repeats = 100_000, 3
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(args.events, args.repeats, args.slow_repeats, Path(tmp))
    print(table(rows, args.events))


if __name__ == "__main__":
    main()
