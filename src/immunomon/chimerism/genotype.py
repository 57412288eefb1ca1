"""Genotypes of the donor(s) and the recipient, and the allele pattern of each locus."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..errors import ChimerismError
from .kits import normalize_locus

# Locus patterns, two people (one donor, one recipient).
NON_INFORMATIVE = "non_informative"
NO_SHARED = "no_shared"                        # fully informative
SHARED_HET_HET = "one_shared_het_het"          # both heterozygous, one allele shared
SHARED_DHET_RHOM = "one_shared_dhet_rhom"      # donor het, recipient hom, one shared
SHARED_DHOM_RHET = "one_shared_dhom_rhet"      # donor hom, recipient het, one shared
SHARED_UNIQUE = "shared_unique"                # shared alleles, each side has its own too
COMPLEX = "complex"                            # e.g. tri-allelic: solved by the dose model
MISSING = "missing"                            # a reference has no call at the locus
# More than two people (double donor).
MULTI_UNIQUE = "multi_unique"                  # every person has an allele of their own
MULTI_SHARED = "multi_shared"                  # solvable only with the shared alleles


@dataclass(frozen=True)
class Allele:
    """One allele of a reference genotype, with its size in the reference run."""

    name: str             # designation as called ("14", "9.3", "X"); OL as "OL@245.3"
    size: float           # bp, NaN when the export gives none
    height: float
    area: float


CALL_COLUMNS = ["person", "sample", "file", "locus", "allele", "size", "height", "area",
                "dye", "data_point", "call", "reason", "detail"]

# Why a reference peak is not an allele, in the order the rules are applied.
REASONS = ("unlabelled", "off_ladder", "below_threshold", "spike", "pull_up", "stutter",
           "minor_peak", "extra_peak")
# Reasons worth a flag on the locus: the peak was labelled and above the threshold, so
# an analyst would have looked at it.
_NOTABLE = ("off_ladder", "spike", "pull_up", "stutter", "minor_peak", "extra_peak")


@dataclass(frozen=True)
class GenotypingRules:
    """How a reference (pre-transplant) sample's peaks become alleles.

    A labelled peak is an allele of its locus unless, in this order, it is off-ladder
    (``OL``; accepted only with ``off_ladder``), under ``min_height`` RFU, a spike, a
    pull-up (at most ``pull_up_ratio`` of a peak at the same scan in another dye), stutter
    (one repeat below a taller allele and at most ``stutter_ratio`` of it, or one above
    or two below and at most half that), or a minor peak (under ``balance`` of the locus's tallest
    allele: real heterozygotes of a good reference sample are far better balanced).
    Unlabelled peaks are never alleles. When more than two alleles remain, one that sits
    under a taller peak of another dye within ``loose_window`` bp is pull-up; then only
    loci listed in ``tri_allelic`` (or "*") keep a third allele, flagged. A heterozygote
    below ``imbalance`` is called but flagged.
    """

    min_height: float = 50.0
    balance: float = 0.5
    stutter_ratio: float = 0.2
    pull_up_ratio: float = 0.25
    off_ladder: bool = False
    tri_allelic: tuple = ()
    imbalance: float = 0.6
    loose_window: float = 0.6

    def __post_init__(self):
        for name in ("balance", "stutter_ratio", "pull_up_ratio", "imbalance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 <= value <= 1:
                raise ChimerismError(f"{name} must be a fraction from 0 to 1, not {value!r}")
        if isinstance(self.min_height, bool) or not isinstance(self.min_height, (int, float)) \
                or not self.min_height >= 0:
            raise ChimerismError(f"min_height must be a number of RFU >= 0, "
                                 f"not {self.min_height!r}")
        object.__setattr__(self, "tri_allelic", tuple(
            x if x == "*" else normalize_locus(x) for x in self.tri_allelic))

    def allows_third(self, locus: str) -> bool:
        return "*" in self.tri_allelic or locus in self.tri_allelic


@dataclass
class Genotype:
    """A person's genotype: locus key -> alleles (one allele means homozygous).

    ``calls`` lists every peak of the reference run with the call made on it (allele,
    or the artefact it was taken for and why); ``sources`` the (file, sample) pairs the
    genotype was called from, so that a sample is recognised as a reference by where it
    came from, never by its name alone.
    """

    person: str
    samples: tuple
    loci: dict = field(default_factory=dict)
    dyes: dict = field(default_factory=dict)     # locus key -> dye seen in the export
    flags: dict = field(default_factory=dict)    # locus key -> list of flags
    calls: pd.DataFrame | None = None
    sources: tuple = ()

    def alleles(self, locus: str) -> tuple:
        return tuple(a.name for a in self.loci.get(locus, ()))

    def to_frame(self) -> pd.DataFrame:
        rows = [{"person": self.person, "locus": locus, "allele": a.name, "size": a.size,
                 "height": a.height, "area": a.area,
                 "flags": ";".join(self.flags.get(locus, []))}
                for locus, alleles in self.loci.items() for a in alleles]
        return pd.DataFrame(rows, columns=["person", "locus", "allele", "size", "height",
                                           "area", "flags"])

    def calls_frame(self) -> pd.DataFrame:
        if self.calls is None:
            return pd.DataFrame(columns=CALL_COLUMNS)
        return self.calls


def _allele_sort_key(name: str):
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


def _number(name: str) -> float | None:
    try:
        return float(name)
    except ValueError:
        return None


def _repeat_steps(lower: str, upper: str, lower_size: float, upper_size: float,
                  repeat: int | None) -> float | None:
    """How many repeats ``upper`` lies above ``lower``: by designation when both are
    numbers (9.3 -> 10.3 is one), else by size; None when not a whole number of repeats."""
    a, b = _number(lower), _number(upper)
    if a is not None and b is not None:
        steps = b - a
        return float(round(steps)) if abs(steps - round(steps)) < 1e-6 else None
    if repeat and math.isfinite(lower_size) and math.isfinite(upper_size):
        steps = (upper_size - lower_size) / repeat
        return float(round(steps)) if abs(steps - round(steps)) * repeat <= 0.5 else None
    return None


_STEP_WORDS = {1.0: "one repeat below", 2.0: "two repeats below", -1.0: "one repeat above"}


def _fmt(v: float) -> str:
    return "?" if not math.isfinite(v) else f"{v:.0f}"


def _label(row) -> str:
    if row["allele"] == "OL":
        return f"OL@{row['size']:.1f}" if math.isfinite(row["size"]) else "OL"
    return str(row["allele"])


def _screen_run(run: pd.DataFrame, rules: GenotypingRules) -> tuple[np.ndarray, list]:
    """Run-level artefacts (spike, strict pull-up) of every peak: reason and detail."""
    from .artefacts import coincidences, pull_up_mask, spike_mask

    reason = np.full(len(run), "", dtype=object)
    detail = [""] * len(run)
    if "dye" not in run or run["dye"].isna().all() or len(run) < 2:
        return reason, detail
    coin = coincidences(run)
    spike = spike_mask(run, coin)
    pull = pull_up_mask(coin, rules.pull_up_ratio) & ~spike
    for i in np.flatnonzero(spike | pull):
        j = coin.partner[i]
        other = run.iloc[j]
        if spike[i]:
            reason[i] = "spike"
            detail[i] = f"peaks at this scan in {coin.n_dyes[i]} dyes"
        else:
            reason[i] = "pull_up"
            detail[i] = (f"{coin.ratio[i]:.0%} of the {other['dye']} peak at "
                         f"{other['size']:.2f} bp ({_fmt(other['height'])} RFU)")
    return reason, detail


def genotype_from_peaks(peaks: pd.DataFrame, person: str, *,
                        rules: GenotypingRules | None = None,
                        relative_threshold: float | None = None,
                        min_height: float | None = None,
                        repeats: dict | None = None, source=None) -> Genotype:
    """Call a person's genotype from the peaks of their reference run(s) (read from
    ``source``, a file, named in errors).

    Applies :class:`GenotypingRules` (``relative_threshold`` and ``min_height`` override
    its ``balance`` and ``min_height``); ``repeats`` maps locus keys to repeat lengths (bp)
    for stutter calls by size. Every peak's call is kept in ``Genotype.calls``.
    """
    rules = rules or GenotypingRules()
    if relative_threshold is not None or min_height is not None:
        rules = replace(rules, **{k: v for k, v in (("balance", relative_threshold),
                                                    ("min_height", min_height))
                                  if v is not None})
    if peaks.empty:
        where = f"{os.fspath(source)}: " if isinstance(source, (str, os.PathLike)) else ""
        raise ChimerismError(f"{where}reference {person}: the export holds no peaks")
    src = peaks["file"].iloc[0] if "file" in peaks else "export"
    samples = tuple(dict.fromkeys(peaks["sample"]))
    labelled = (peaks["locus"] != "") & (peaks["allele"] != "")
    if not labelled.any():
        raise ChimerismError(f"{src}: reference {person} has no labelled alleles; export "
                             f"the sizing table with allele calls (Marker and Allele)")
    files = peaks["file"] if "file" in peaks else pd.Series("", index=peaks.index)
    sources = tuple(dict.fromkeys(zip(files, peaks["sample"])))
    repeats = repeats or {}
    geno = Genotype(person, samples, sources=sources)
    frames = []
    for _, run in peaks.groupby([files, peaks["sample"]], sort=False):
        frames.append(_call_run(run.reset_index(drop=True), person, rules, repeats, geno))
    calls = pd.concat(frames, ignore_index=True)
    geno.calls = calls[CALL_COLUMNS]
    for locus in list(geno.loci):
        geno.loci[locus] = tuple(sorted(geno.loci[locus], key=lambda a: _allele_sort_key(
            a.name)))
    return geno


def _call_run(run: pd.DataFrame, person: str, rules: GenotypingRules, repeats: dict,
              geno: Genotype) -> pd.DataFrame:
    """Call one reference run; adds its alleles and flags to ``geno``."""
    has_height = run["height"].notna().any()
    signal = (run["height"] if has_height else run["area"]).to_numpy(dtype=float)
    reason = np.full(len(run), "", dtype=object)
    detail = [""] * len(run)
    labels = [_label(r) for _, r in run.iterrows()]
    if has_height:
        low = run["height"].to_numpy(dtype=float) < rules.min_height
        reason[low] = "below_threshold"
        for i in np.flatnonzero(low):
            detail[i] = f"{_fmt(signal[i])} RFU < {rules.min_height:g}"
        run_reason, run_detail = _screen_run(run, rules)
        hit = (run_reason != "") & (reason == "")
        reason[hit] = run_reason[hit]
        for i in np.flatnonzero(hit):
            detail[i] = run_detail[i]
    reason[(run["allele"] == "").to_numpy() & (reason == "")] = "unlabelled"
    if not rules.off_ladder:
        reason[(run["allele"] == "OL").to_numpy() & (reason == "")] = "off_ladder"

    for locus, idx in run.groupby("locus", sort=False).indices.items():
        if not locus:
            continue
        _call_locus(run, locus, idx, signal, reason, detail, labels, rules,
                    repeats.get(locus, 4), geno)

    out = run.assign(person=person, allele=labels,
                     call=np.where(reason == "", "allele", "artefact"), reason=reason,
                     detail=detail)
    out.loc[out["call"] == "allele", "reason"] = ""
    return out


def _call_locus(run, locus, idx, signal, reason, detail, labels, rules, repeat, geno):
    """Stutter, balance and the two-allele rule at one locus; records the genotype."""
    flags = geno.flags.setdefault(locus, [])
    sizes = run["size"].to_numpy(dtype=float)
    names = run["allele"].to_numpy(dtype=object)
    # Peaks that are DNA but carry no designation (off-ladder, or unlabelled inside the
    # locus): never alleles, but their stutter is stutter and a tall one is a warning.
    unnamed = [i for i in idx if reason[i] in ("off_ladder", "unlabelled")]
    cand = [i for i in idx if reason[i] == ""]
    has_signal = bool(np.isfinite(signal[cand + unnamed]).any()) if cand + unnamed else False
    if has_signal:
        parents = sorted(cand + unnamed, key=lambda i: -np.nan_to_num(signal[i], nan=-1.0))
        for i in sorted(cand, key=lambda i: np.nan_to_num(signal[i], nan=-1.0)):
            if names[i] in ("X", "Y"):
                continue
            for p in parents:
                if p == i or (reason[p] and reason[p] not in ("off_ladder", "unlabelled")) \
                        or not signal[p] > signal[i]:
                    continue
                steps = _repeat_steps(names[i], names[p] if p in cand else "", sizes[i],
                                      sizes[p], repeat)
                # Back stutter (n-1) is the common one; forward (n+1) and n-2 stutter
                # are a fraction of it.
                limit = rules.stutter_ratio * (1.0 if steps == 1.0 else 0.5)
                if steps in (1.0, -1.0, 2.0) and signal[i] <= limit * signal[p]:
                    reason[i] = "stutter"
                    detail[i] = (f"{signal[i] / signal[p]:.0%} of {labels[p]}, "
                                 f"{_STEP_WORDS[steps]}")
                    break
        cand = [i for i in cand if reason[i] == ""]
        if cand:
            top = max(cand, key=lambda i: signal[i])
            for i in cand:
                if signal[i] < rules.balance * signal[top]:
                    reason[i] = "minor_peak"
                    detail[i] = (f"{signal[i] / signal[top]:.0%} of {labels[top]} "
                                 f"(under the {rules.balance:.0%} balance threshold)")
            cand = [i for i in cand if reason[i] == ""]
    # Several alleles left: pull-up with a looser window explains an extra one first.
    if len(cand) > 2 and "dye" in run and run["dye"].notna().any():
        from .artefacts import coincidences
        coin = coincidences(run, scans=6.0, bp=rules.loose_window)
        for i in sorted(cand, key=lambda i: coin.ratio[i]):
            if len([c for c in cand if reason[c] == ""]) <= 2:
                break
            if coin.ratio[i] < 1.0:
                other = run.iloc[coin.partner[i]]
                reason[i] = "pull_up"
                detail[i] = (f"{coin.ratio[i]:.0%} of the {other['dye']} peak at "
                             f"{other['size']:.2f} bp ({_fmt(other['height'])} RFU), "
                             f"a third peak at this locus")
        cand = [i for i in cand if reason[i] == ""]
    if len(cand) > 2:
        if rules.allows_third(locus) or not has_signal:
            # a typed profile (alleles without heights) is taken as listed: with nothing
            # to choose two by, the first two listed had been kept and a donor's third
            # allele at D3S1358 read as nobody's in the sample
            flags.append("tri_allelic")
        else:
            keep = sorted(cand, key=lambda i: -np.nan_to_num(signal[i], nan=-1.0))[:2]
            for i in cand:
                if i not in keep:
                    reason[i] = "extra_peak"
                    detail[i] = "a third peak: only two alleles are called per locus"
            flags.append("more_than_two_alleles")
            cand = keep
    # An analyst looks twice at labelled artefacts, and at an off-ladder or unlabelled
    # peak as tall as the alleles: the genotype cannot be trusted then (a rare allele
    # the ladder lacks, or a sizing problem), so the locus is left unresolved.
    pool = cand or [i for i in unnamed if math.isfinite(signal[i])]
    top = max((signal[i] for i in pool if math.isfinite(signal[i])), default=0.0)
    tall = [i for i in unnamed if reason[i] in ("off_ladder", "unlabelled")
            and math.isfinite(signal[i]) and signal[i] >= rules.balance * top
            and (not has_signal or signal[i] >= rules.min_height)]
    for i in idx:
        if reason[i] in _NOTABLE and reason[i] not in ("stutter", "off_ladder") \
                and names[i] not in ("OL", ""):
            flags.append(f"{reason[i]}:{labels[i]}")
    tallest = max([signal[i] for i in tall + cand if math.isfinite(signal[i])], default=0.0)
    for i in tall:
        if signal[i] < rules.balance * tallest:
            continue                   # tall next to a weak allele, not next to the rest
        what = labels[i] if reason[i] == "off_ladder" else f"{sizes[i]:.1f}"
        flags.append(f"{reason[i]}:{what}")
        detail[i] = ("as tall as the alleles: the locus is left unresolved"
                     if cand else "the tallest peak of the locus: the locus is unresolved")
    dyes = run["dye"].iloc[list(idx)].dropna() if "dye" in run else pd.Series(dtype=object)
    if not dyes.empty:
        geno.dyes[locus] = dyes.mode().iloc[0]
    if tall and has_signal:
        flags.append("unresolved")
        cand = []
    if not cand:
        if "unresolved" not in flags and "no_allele_above_threshold" not in flags:
            flags.append("no_allele_above_threshold")
        geno.loci.pop(locus, None)
        return
    alleles = {a.name: a for a in geno.loci.get(locus, ())}    # earlier runs
    for i in cand:
        name = labels[i]
        a = alleles.get(name)
        h = float(run["height"].iloc[i])
        ar = float(run["area"].iloc[i])
        if a is None:
            alleles[name] = Allele(name, float(sizes[i]), h, ar)
        else:                         # one allele twice (replicate rows): pool
            alleles[name] = Allele(name, (a.size + sizes[i]) / 2, max(a.height, h),
                                   a.area + ar)
    if any(names[i] == "OL" for i in cand):
        flags.append("off_ladder_allele")
        if any(not math.isfinite(sizes[i]) for i in cand if names[i] == "OL"):
            flags.append("off_ladder_without_size")
    if len(cand) == 2 and has_signal:
        lo, hi = sorted(signal[cand])
        if hi > 0 and lo / hi < rules.imbalance:
            flags.append("imbalanced")
    geno.loci[locus] = tuple(alleles.values())
    if not flags:
        geno.flags.pop(locus, None)


@dataclass(frozen=True)
class LocusClass:
    """How a locus separates the people: its pattern and the zygosity on each side."""

    pattern: str
    informative: bool
    shared: tuple
    zygosity: dict           # person -> "hom" | "het" | "multi" | "none"


def zygosity(alleles) -> str:
    n = len(alleles)
    return {0: "none", 1: "hom", 2: "het"}.get(n, "multi")


def classify_locus(genotypes: dict) -> LocusClass:
    """Classify a locus from ``{person: allele names}``; the recipient is the last person.

    With two people the patterns follow the usual chimerism nomenclature
    (non-informative, no shared allele, one shared allele with the homozygous or
    heterozygous side named). With more people (double donor) a locus is informative
    when every person has an allele of their own, or when the shared alleles still
    determine each person's share (the dose matrix has full rank).
    """
    people = list(genotypes)
    sets = {p: frozenset(genotypes[p]) for p in people}
    zyg = {p: zygosity(genotypes[p]) for p in people}
    if any(not s for s in sets.values()):
        return LocusClass(MISSING, False, (), zyg)
    if len(people) == 2:
        d, r = sets[people[0]], sets[people[1]]
        shared = tuple(sorted(d & r, key=_allele_sort_key))
        if d == r:
            return LocusClass(NON_INFORMATIVE, False, shared, zyg)
        if not shared:
            return LocusClass(NO_SHARED, True, shared, zyg)
        d_only, r_only = d - r, r - d
        zd, zr = zyg[people[0]], zyg[people[1]]
        if d_only and r_only:
            pattern = SHARED_HET_HET if (zd, zr) == ("het", "het") else SHARED_UNIQUE
        elif d_only and (zd, zr) == ("het", "hom"):
            pattern = SHARED_DHET_RHOM
        elif r_only and (zd, zr) == ("hom", "het"):
            pattern = SHARED_DHOM_RHET
        else:
            pattern = COMPLEX
        return LocusClass(pattern, True, shared, zyg)
    owners: dict = {}
    for p in people:
        for a in sets[p]:
            owners.setdefault(a, set()).add(p)
    shared = tuple(sorted((a for a, o in owners.items() if len(o) > 1), key=_allele_sort_key))
    if all(any(owners[a] == {p} for a in sets[p]) for p in people):
        return LocusClass(MULTI_UNIQUE, True, shared, zyg)
    matrix = dose_matrix(genotypes, sorted(owners, key=_allele_sort_key))
    if len(set(sets.values())) == len(people) and np.linalg.matrix_rank(matrix) == len(people):
        return LocusClass(MULTI_SHARED, True, shared, zyg)
    return LocusClass(NON_INFORMATIVE, False, shared, zyg)


def dose_matrix(genotypes: dict, alleles) -> np.ndarray:
    """Copies of each allele (rows) carried by each person (columns): 2 when homozygous."""
    people = list(genotypes)
    m = np.zeros((len(alleles), len(people)))
    for j, p in enumerate(people):
        own = genotypes[p]
        for i, a in enumerate(alleles):
            if a in own:
                m[i, j] = 2.0 if len(own) == 1 else 1.0
    return m
