"""Population statistics: counts, percentages and per-marker intensity
statistics for every population of a ``GatingResult``.

``population_statistics(result)`` returns a tidy table (``statistics_columns``
the same as columns, without pandas), one row per (population, marker), with

- ``count``, ``percent_of_parent`` (of all events for a top-level population),
  ``percent_of_total`` and ``percent_of_<name>`` for each population named in
  ``ancestors`` (NaN where a population is neither below it nor, with events, wholly
  within it);
- ``median``, ``mean``, ``geometric_mean`` and ``rcv`` of the compensated
  intensity. The geometric mean is taken over the *positive* values only
  (compensated intensities can be zero or negative, where the logarithm is
  undefined); ``n_positive`` says how many there were. The robust CV is
  ``100 * 0.5 * (P84.13 - P15.87) / median``, the half-width of the central
  68.26% (one standard deviation for normal data) relative to the median.
  Percentiles and medians are exactly numpy's default ("linear") definition.

Speed: per-population ``np.median`` re-selects every marker column. Here the
order statistics come from a histogram over the top 16 bits of each float32
value (sign, exponent and 7 mantissa bits: 65,536 buckets, ordered like the
values, read without any arithmetic; 12 bits for mid-sized populations),
which locates the bucket of each wanted rank; only the few events in those
buckets are then sorted. A population of more than half the events is
counted as all events minus its complement (the complements of nested large
populations from one another); small ones are simply sorted.
Sums for means and geometric means come from one matrix product of all
population masks with the intensities, block by block.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

import numpy as np

from .columns import frame
from .errors import GatingError, ImmunomonError
from .fcs.channel_kinds import is_fluorescence
from .fmt import number
from .threads import single_threaded

RCV_LOW, RCV_HIGH = 15.87, 84.13

# float32 high half-words ordered by the value they start: negative floats
# (sign bit set) run from the most negative down to -0, then the positives up.
_HALF = 1 if sys.byteorder == "little" else 0
_SMALL = 12_000             # below this many events, sorting beats bucketing (measured)
_MID = 1 << 16              # below this many, 4,096 buckets cost less than 65,536
_COMPLEMENTS = 100_000      # below this many events in the file, counting populations
                            # through their complements costs more than it saves (measured:
                            # 20,000 events 77 -> 38 ms, 100,000 even)
_DENSE = 32                 # populations above 1/32 of the events join the matrix product


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """numpy's linear interpolation, in the same arithmetic order."""
    d = b - a
    return np.where(t >= 0.5, b - d * (1 - t), a + d * t)


def _rank_positions(n: int, quantiles: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Lower order-statistic index and interpolation weight of each quantile
    (0-1) under numpy's default 'linear' method."""
    q = np.asarray(quantiles, dtype=np.float64)
    virtual = (n - 1) * q                  # numpy's 'linear' virtual index
    lo = np.clip(np.floor(virtual), 0, n - 1).astype(np.int64)
    return lo, virtual - lo


def _keys(values: np.ndarray) -> np.ndarray:
    """The high 16 bits of each float32 value (a strided view, no copy)."""
    return values.view(np.uint16)[:, _HALF::2]


def bucket_histograms(values: np.ndarray) -> np.ndarray:
    """Per marker row, the count of all events in each of the 65,536 buckets
    (in key order); lets ``order_statistics`` count a large population as
    all events minus its (smaller) complement."""
    keys = _keys(_as_f32(values))
    return np.stack([_bucket_counts(k, 1 << 16) for k in keys])


def _bucket_counts(keys: np.ndarray, n_bins: int) -> np.ndarray:
    """How many of ``keys`` (small unsigned integers) fall in each of ``n_bins``
    buckets, as ``np.bincount(keys, minlength=n_bins)``. ``np.add.at`` counts
    16-bit keys straight from their array, where ``bincount`` first converts them
    to 64-bit integers and finds their range (the order statistics of a
    1,000,000-event file's populations: about 5% less time)."""
    counts = np.zeros(n_bins, dtype=np.intp)
    np.add.at(counts, keys, 1)
    return counts


def _as_f32(values) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype != np.float32 or not values.flags.c_contiguous:
        values = np.ascontiguousarray(values, dtype=np.float32)
    return values


def order_statistics(values: np.ndarray, rows: np.ndarray | None,
                     ranks: Sequence[int], *, histograms: np.ndarray | None = None
                     ) -> np.ndarray:
    """The ``ranks``-th smallest values (0-based) of each row of ``values``
    (markers x events, float32) over the events ``rows``: markers x ranks.

    Equal to ``np.sort(values[:, rows], axis=1)[:, ranks]`` for finite data,
    in time linear in ``len(rows)`` with a small constant. With
    ``histograms`` (from ``bucket_histograms(values)``), a population of more
    than half the events is counted through its complement.
    """
    values = _as_f32(values)
    ranks = np.asarray(ranks, dtype=np.int64)
    n_all = values.shape[1]
    n = n_all if rows is None else len(rows)
    if n <= _SMALL:
        # a plain sort is cheaper than 65,536-bucket histograms for few events
        block = values if rows is None else values[:, rows]
        return np.sort(block, axis=1)[:, ranks].astype(np.float64)
    half = _keys(values)
    complement = member = None
    shift = 0                     # 65,536 buckets; 4,096 for mid-sized populations
    if rows is not None and histograms is not None and 2 * n > n_all:
        member = np.zeros(n_all, dtype=bool)
        member[rows] = True
        complement = np.flatnonzero(~member)
    elif rows is not None:
        half = half[:, rows]                                   # gathered keys
        if n < _MID:
            shift = 4
            half >>= shift
    order = _value_order(16 - shift)
    n_bins = order.size
    out = np.empty((values.shape[0], ranks.size), dtype=np.float64)
    lut = np.zeros(n_bins, dtype=bool)
    for j in range(values.shape[0]):
        if member is not None:
            raw = histograms[j] - _bucket_counts(half[j, complement], n_bins)
        else:
            raw = _bucket_counts(half[j], n_bins)
        hist = _in_value_order(raw)
        pos, below = _rank_buckets(hist, ranks)
        wanted = np.unique(pos)
        lut[order[wanted]] = True
        inside = lut.take(half[j])
        lut[order[wanted]] = False
        if member is not None:
            cols = np.flatnonzero(inside & member)
        else:
            hit = np.flatnonzero(inside)
            cols = hit if rows is None else rows[hit]
        candidates = np.sort(values[j, cols])                  # buckets are disjoint intervals
        first = np.concatenate([[0], np.cumsum(hist[wanted])])[np.searchsorted(wanted, pos)]
        out[j] = candidates[first + ranks - below]
    return out


def large_order_statistics(values: np.ndarray, masks: Sequence[np.ndarray],
                           ranks: Sequence[Sequence[int]],
                           histograms: np.ndarray) -> list[np.ndarray]:
    """``order_statistics`` for several populations of more than half the
    events each, sharing work: each population is counted as all events
    minus its complement, populations nested in one another (singlets,
    leukocytes, granulocytes) count only the events between them, and the
    events in the wanted buckets of all of them are found in one pass over
    each marker."""
    values = _as_f32(values)
    keys = _keys(values)
    order = _value_order(16)
    steps = _nested_complements(masks)
    ranks = [np.asarray(r, dtype=np.int64) for r in ranks]
    out = [np.empty((values.shape[0], r.size)) for r in ranks]
    lut = np.zeros(1 << 16, dtype=bool)
    mine_lut = np.zeros(1 << 16, dtype=bool)
    for j in range(values.shape[0]):
        outside = {}                    # population -> bucket counts of its complement
        for k, holder, rows in steps:
            counted = _bucket_counts(keys[j, rows], 1 << 16)
            outside[k] = counted if holder is None else outside[holder] + counted
        found = []
        for k, r in enumerate(ranks):
            hist = _in_value_order(histograms[j] - outside[k])
            pos, below = _rank_buckets(hist, r)
            found.append((hist, below, pos))
        wanted = order[np.unique(np.concatenate([f[2] for f in found]))]
        lut[wanted] = True
        candidates = np.flatnonzero(lut.take(keys[j]))         # one pass for all
        lut[wanted] = False
        cand_keys = keys[j, candidates]
        cand_values = values[j, candidates]
        for k, (mask, r, (hist, below, pos)) in enumerate(zip(masks, ranks, found)):
            mine = np.unique(pos)
            mine_lut[order[mine]] = True
            keep = mask[candidates] & mine_lut.take(cand_keys)
            mine_lut[order[mine]] = False
            chosen = np.sort(cand_values[keep])
            first = np.concatenate([[0], np.cumsum(hist[mine])])[np.searchsorted(mine, pos)]
            out[k][j] = chosen[first + r - below]
    return out


def _nested_complements(masks: Sequence[np.ndarray]) -> list[tuple]:
    """How to count each mask's complement (largest mask first): (its index, the
    index of a larger mask holding it or None, the events in that mask and not in
    this one, or else the events outside this one). Counting the events between
    nested populations reads each event once instead of once per population."""
    steps: list[tuple] = []
    for k in sorted(range(len(masks)), key=lambda k: -np.count_nonzero(masks[k])):
        holder = next((h for h, _, _ in reversed(steps)
                       if not np.any(masks[k] & ~masks[h])), None)
        rows = np.flatnonzero(~masks[k] if holder is None else masks[holder] & ~masks[k])
        steps.append((k, holder, rows))
    return steps


def _rank_buckets(hist: np.ndarray, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bucket holding each rank (0-based, below the total) of the values ``hist``
    counts, ``np.searchsorted(np.cumsum(hist), ranks, side="right")``, and how many
    values lie in the buckets before it. The running sum of 65,536 counts (0.2 ms,
    once per marker and population) is taken over blocks of 256 buckets instead,
    and within the blocks that hold a rank; 4,096 counts are summed straight through,
    which costs less than those steps."""
    if hist.size <= 4096:
        cum = np.cumsum(hist)
        pos = np.searchsorted(cum, ranks, side="right")
        return pos, cum[pos] - hist[pos]
    blocks = hist.reshape(-1, 256)
    ends = np.cumsum(blocks.sum(axis=1))                # values up to each block's end
    block = np.searchsorted(ends, ranks, side="right")
    within = np.cumsum(blocks[block], axis=1)           # ranks x 256
    before = ends[block] - within[:, -1]                # values before each rank's block
    offset = np.count_nonzero(within <= (ranks - before)[:, None], axis=1)
    at = np.arange(len(ranks))
    return block * 256 + offset, before + within[at, offset] - blocks[block, offset]


def _in_value_order(counts: np.ndarray) -> np.ndarray:
    """Bucket counts (in key order) in the order of the values they hold, equal to
    ``counts[_value_order(bits)]``: the sign-bit half reversed, then the other half,
    two slices where a gather of 65,536 counts took three times as long."""
    half = counts.size // 2
    return np.concatenate([counts[:half - 1:-1], counts[:half]])


def _value_order(bits: int) -> np.ndarray:
    """Bucket keys (the top ``bits`` bits of float32 values) in the order of
    the values they hold: sign-bit keys run from the most negative down to
    -0, then the positive keys run upwards."""
    top = 1 << bits
    return np.concatenate([np.arange(top - 1, top // 2 - 1, -1), np.arange(0, top // 2)])


def quantiles(values: np.ndarray, rows: np.ndarray | None,
              qs: Sequence[float]) -> np.ndarray:
    """numpy-'linear' quantiles (0-1) of each marker row over ``rows``:
    markers x quantiles, equal to ``np.quantile(..., axis=1).T``."""
    return _median_and_quantiles(values, rows, qs)[1]


def medians(values: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    """Medians of each marker row over ``rows`` (as ``np.median`` in float64)."""
    return _median_and_quantiles(values, rows, [])[0]


def _median_and_quantiles(values, rows, qs, histograms=None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Medians and quantiles from one selection pass per marker."""
    n = values.shape[1] if rows is None else len(rows)
    if n == 0:
        return np.full(values.shape[0], np.nan), np.full((values.shape[0], len(qs)), np.nan)
    ranks, combine = _wanted_ranks(n, qs)
    return combine(order_statistics(values, rows, ranks, histograms=histograms))


def _wanted_ranks(n: int, qs):
    """The order statistics that medians and quantiles of ``n`` values need,
    and the function turning them (markers x ranks) into (medians, quantiles)."""
    lo, t = _rank_positions(n, qs)
    hi = np.minimum(lo + 1, n - 1)
    k = len(qs)

    def combine(s):
        return (s[:, 2 * k] + s[:, 2 * k + 1]) / 2, _lerp(s[:, :k], s[:, k:2 * k], t)
    return np.concatenate([lo, hi, [(n - 1) // 2, n // 2]]), combine


def masked_sums(values: np.ndarray, masks: Sequence[np.ndarray],
                block: int = 8192) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every mask (population) and marker row: the float64 sum of the
    values, the sum of log(value) over positive values, and how many were
    positive (each populations x markers).

    Populations of a few percent of the events are summed over their own
    events; the others together by one matrix product per block of events,
    masks (0/1) times [values | logs | positive], whose cost does not grow
    with their size.
    """
    m, n = values.shape
    p = len(masks)
    acc = np.zeros((p, 3 * m))
    dense = []
    for k, mask in enumerate(masks):
        if np.count_nonzero(mask) * _DENSE > n:
            dense.append(k)
            continue
        rows = np.flatnonzero(mask)
        x = values[:, rows]
        pos = x > 0
        acc[k, :m] = x.sum(axis=1, dtype=np.float64)
        acc[k, m:2 * m] = np.log(np.where(pos, x, np.float32(1))).sum(axis=1, dtype=np.float64)
        acc[k, 2 * m:] = pos.sum(axis=1)
    if dense:
        stacked = np.stack([masks[k] for k in dense])
        w = np.empty((len(dense), block))
        y = np.empty((3 * m, block))                         # rows: values, logs, positive
        part = np.zeros((len(dense), 3 * m))
        with single_threaded():
            for start in range(0, n, block):
                b = min(block, n - start)
                x = values[:, start:start + b]                # markers x events, float32
                np.copyto(w[:, :b], stacked[:, start:start + b])
                pos = x > 0
                y[:m, :b] = x
                # log in float32 is ample for a geometric mean; the sums are float64
                y[m:2 * m, :b] = np.log(np.where(pos, x, np.float32(1)))
                y[2 * m:, :b] = pos
                part += w[:, :b] @ y[:, :b].T
        acc[dense] = part
    return acc[:, :m], acc[:, m:2 * m], acc[:, 2 * m:]


# --------------------------------------------------------------------------- tables
def default_channels(sample) -> list[str]:
    """The fluorescence channels: the spillover's detectors when the file has
    one, otherwise every channel that is not scatter or time."""
    if sample.spillover is not None:
        return list(sample.spillover.detectors)
    return [c for c in sample.channels if is_fluorescence(c)]


def count_columns(result, *, ancestors: Iterable[str] = ()) -> dict:
    """One row per population, as columns (``immunomon.columns``): population, parent,
    count and percentages."""
    ancestors = list(ancestors)
    for a in ancestors:
        result.mask(a)                       # unknown names raise a GatingError
    total = result.n_events
    pids = list(result.gate_ids)
    counts = np.array([result.count(pid) for pid in pids], dtype=np.int64)
    parents = [result.parent(pid) for pid in pids]
    parent_counts = [total if p is None else result.count(p) for p in parents]
    columns = {"population": pids, "parent": parents, "count": counts,
               "percent_of_parent": np.array([_percent(c, of) for c, of
                                              in zip(counts, parent_counts)]),
               "percent_of_total": np.array([_percent(c, total) for c in counts])}
    for a in ancestors:
        of = result.count(a)
        columns[f"percent_of_{a}"] = np.array(
            [_percent(c, of) if _within(result, pid, a, c) else np.nan
             for pid, c in zip(pids, counts)], dtype=np.float64)
    return columns


def _within(result, pid: str, reference: str, count: int) -> bool:
    """Whether population ``pid`` is a share of ``reference``: below it in the tree, or,
    elsewhere, every one of its events within it (a template that gates the lineages on
    all events and names their union ``Leukocytes``: T cells are leukocytes too)."""
    if reference in result.ancestors(pid):
        return True
    if pid == reference or count == 0:
        return False
    return not np.any(result.mask(pid) & ~result.mask(reference))


def population_counts(result, *, ancestors: Iterable[str] = ()):
    """One row per population: parent, count and percentages (a DataFrame)."""
    return frame(count_columns(result, ancestors=ancestors))


def _percent(count: int, of: int) -> float:
    return 100.0 * count / of if of else np.nan


def intensity_matrix(result, channels: Sequence[str],
                     compensation: str = "FCS") -> np.ndarray:
    """markers x events float32 of compensated intensities: the values the
    gating already computed (a view when the channels are adjacent)."""
    return result.values.channels(channels, compensation)


def statistics_columns(result, channels: Sequence[str] | None = None, *,
                       ancestors: Iterable[str] = (), compensation: str = "FCS",
                       counts: dict | None = None) -> dict:
    """``population_statistics`` as columns (``immunomon.columns``). ``counts``: the
    result's ``count_columns`` with these ancestors, where the caller has them."""
    sample = result.sample
    channels = list(channels) if channels is not None else default_channels(sample)
    try:
        idx = [sample.channel_index(c) for c in channels]
    except ImmunomonError as exc:
        raise GatingError(f"population statistics: {exc}") from None
    names = [sample.channels[i] for i in idx]
    labels = [sample.markers[i] or sample.channels[i] for i in idx]
    if counts is None:
        counts = count_columns(result, ancestors=ancestors)
    values = intensity_matrix(result, names, compensation)
    masks = [result.mask(pid) for pid in result.gate_ids]
    total, logs, positive = masked_sums(values, masks)
    n_pops, n_markers = len(masks), len(names)
    med = np.empty((n_pops, n_markers))
    pct = np.empty((n_pops, n_markers, 2))
    qs = [RCV_LOW / 100, RCV_HIGH / 100]
    big = [k for k, c in enumerate(counts["count"]) if 2 * c > result.n_events >= _COMPLEMENTS]
    for k, mask in enumerate(masks):
        if k not in big:
            med[k], pct[k] = _median_and_quantiles(values, np.flatnonzero(mask), qs)
    if big:
        # populations holding most events: counted through their complements
        wanted = [_wanted_ranks(int(counts["count"][k]), qs) for k in big]
        stats = large_order_statistics(values, [masks[k] for k in big],
                                       [w[0] for w in wanted], bucket_histograms(values))
        for k, s_k, (_, combine) in zip(big, stats, wanted):
            med[k], pct[k] = combine(s_k)
    n = counts["count"].astype(np.float64)[:, None]
    # each population's counts repeated on its markers' rows (one row when none)
    rows = np.repeat(np.arange(n_pops), max(n_markers, 1))
    per_row = {k: np.asarray(v, dtype=object)[rows].tolist() if isinstance(v, list)
               else v[rows] for k, v in counts.items()}
    if not n_markers:
        return {**per_row, **{k: [None] * n_pops for k in ("marker", "channel")},
                **{k: np.full(n_pops, np.nan) for k in
                   ("median", "mean", "geometric_mean", "n_positive", "rcv")}}
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            **per_row,
            "marker": np.tile(np.array(labels, dtype=object), n_pops).tolist(),
            "channel": np.tile(np.array(names, dtype=object), n_pops).tolist(),
            "median": med.ravel(),
            "mean": (total / n).ravel(),
            "geometric_mean": np.exp(logs / positive).ravel(),
            "n_positive": positive.astype(np.int64).ravel(),
            "rcv": (100.0 * 0.5 * (pct[..., 1] - pct[..., 0]) / med).ravel(),
        }


def population_statistics(result, channels: Sequence[str] | None = None, *,
                          ancestors: Iterable[str] = (), compensation: str = "FCS"):
    """Tidy table (a DataFrame) of counts, percentages and intensity statistics,
    one row per (population, marker). ``channels`` are channel names or markers
    (default: ``default_channels``); ``compensation`` is "FCS" (the file's own
    spillover), "uncompensated" or the id of a strategy matrix."""
    return frame(statistics_columns(result, channels, ancestors=ancestors,
                                    compensation=compensation))


# --------------------------------------------------------------------------- absolute counts
# Plausible ranges of the inputs of absolute counts (inclusive). A value outside is a typo,
# a unit mix-up (an analyser count in 10^9/L) or a corrupt keyword, never a count to report.
COUNTING_INPUTS = {
    "beads_per_test": (100.0, 1e7, "beads per tube"),
    "volume_ul": (1.0, 1000.0, "uL of sample stained"),
    "lymphocytes_per_ul": (10.0, 1e6, "lymphocytes per uL"),
    "leukocytes_per_ul": (10.0, 1e6, "leukocytes per uL"),
}


def counting_input_problem(name: str, value, label: str | None = None) -> str | None:
    """What is wrong with counting input ``name`` (a key of ``COUNTING_INPUTS``), or
    None when ``value`` (a number, or text holding one) is finite and within its
    plausible range. ``label`` names the value in the message (default ``name``)."""
    lo, hi, unit = COUNTING_INPUTS[name]
    try:
        x = None if isinstance(value, bool) else float(str(value).strip()
                                                        if isinstance(value, str) else value)
    except (TypeError, ValueError):
        x = None
    if isinstance(value, str) and len(value) > 40:
        value = value[:40] + "..."
    if x is not None and np.isfinite(x) and lo <= x <= hi:
        return None
    shown = repr(value) if x is None else number(x)
    hint = ""
    if name.endswith("_per_ul") and x is not None and 0 < x < lo:
        hint = " (a count in 10^9/L times 1,000 gives cells per uL)"
    return (f"{label or name} must be a number from {number(lo)} to {number(hi)} ({unit}), "
            f"not {shown}{hint}")


def single_platform_per_ul(counts, bead_events: int, beads_per_test: float,
                           volume_ul: float) -> np.ndarray:
    """Cells per uL with counting beads in the tube:
    events / bead events x beads per test / blood volume in the tube (uL)."""
    counts = np.asarray(counts, dtype=np.float64)
    if not (bead_events > 0 and beads_per_test > 0 and volume_ul > 0):
        return np.full(counts.shape, np.nan)
    return counts / bead_events * beads_per_test / volume_ul


def dual_platform_per_ul(percent_of_reference, reference_per_ul: float) -> np.ndarray:
    """Cells per uL from a percentage of a reference population (lymphocytes or
    leukocytes) and that population's count from a haematology analyser."""
    pct = np.asarray(percent_of_reference, dtype=np.float64)
    if not reference_per_ul > 0:
        return np.full(pct.shape, np.nan)
    return pct / 100.0 * reference_per_ul


__all__ = ["population_statistics", "population_counts", "statistics_columns",
           "count_columns", "order_statistics", "large_order_statistics",
           "bucket_histograms", "quantiles", "medians", "masked_sums", "default_channels",
           "intensity_matrix", "RCV_LOW", "RCV_HIGH", "single_platform_per_ul",
           "dual_platform_per_ul", "COUNTING_INPUTS", "counting_input_problem"]
