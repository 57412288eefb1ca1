"""Percent donor chimerism from STR peaks: per locus, per sample.

The maths is a handful of small pure functions (the per-pattern formulas, the dose
model, stutter correction, combining loci, the limit of detection); the rest matches
a post-transplant sample's peaks to the reference alleles by size and applies them.
See ``docs/chimerism.md`` for the formulas and the meaning of every flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from ..errors import ChimerismError
from .genotype import (NO_SHARED, SHARED_DHET_RHOM, SHARED_DHOM_RHET, SHARED_HET_HET,
                       SHARED_UNIQUE, Allele, Genotype, LocusClass, classify_locus,
                       dose_matrix)
from .kits import NON_AUTOSOMAL, Kit, builtin_kits, normalize_locus

FULL_DONOR = "full donor"
MIXED = "mixed"
NOT_DETERMINED = "not determined"


@dataclass(frozen=True)
class ChimerismSettings:
    """Every threshold of the calculation, with the defaults most labs use."""

    quantity: str = "area"              # "area" or "height": what a peak's amount is
    size_tolerance: float = 0.5         # bp; a peak matches an allele this close in size
    stutter: str = "correct"            # "correct", "exclude" or "flag"
    stutter_ratio: float = 0.10         # back-stutter / parent, when no locus value is known
    stutter_ratios: dict = field(default_factory=dict)   # locus -> ratio, overrides the kit
    detection_threshold: float = 50.0   # RFU; lower peaks are not counted (flagged)
    saturation: float = 30000.0         # RFU; higher peaks are flagged as saturated
    lod: float = 1.0                    # % of the minor component reported as "< LOD"
    outlier_sd: float | None = 2.0      # loci this many SD from the mean are excluded
    full_donor: float = 95.0            # % donor at or above which a sample is full donor
    min_loci: int = 3                   # fewer informative loci than this is flagged
    exclude_loci: tuple = NON_AUTOSOMAL  # loci reported but kept out of the mean
    relative_threshold: float = 0.25    # reference genotyping: fraction of the top peak
    reference_min_height: float = 50.0  # reference genotyping: RFU
    min_rise: float = 2.0               # points of recipient rise beyond assay variation

    def __post_init__(self):
        if self.quantity not in ("area", "height"):
            raise ChimerismError(f"quantity must be 'area' or 'height', not {self.quantity!r}")
        if self.stutter not in ("correct", "exclude", "flag"):
            raise ChimerismError(f"stutter must be 'correct', 'exclude' or 'flag', "
                                 f"not {self.stutter!r}")
        checks = {
            "size_tolerance": (self.size_tolerance, 0, 5),
            "stutter_ratio": (self.stutter_ratio, 0, 1),
            "lod": (self.lod, 0, 50),
            "full_donor": (self.full_donor, 0, 100),
            "relative_threshold": (self.relative_threshold, 0, 1),
        }
        for name, (value, lo, hi) in checks.items():
            if not (isinstance(value, (int, float)) and lo <= value <= hi):
                raise ChimerismError(f"{name} must be a number from {lo} to {hi}, "
                                     f"not {value!r}")
        if self.outlier_sd is not None and not self.outlier_sd > 0:
            raise ChimerismError(f"outlier_sd must be positive or None, not {self.outlier_sd!r}")
        object.__setattr__(self, "exclude_loci",
                           tuple(normalize_locus(x) for x in self.exclude_loci))
        object.__setattr__(self, "stutter_ratios",
                           {normalize_locus(k): float(v) for k, v in self.stutter_ratios.items()})


# --------------------------------------------------------------------------- formulas
def percent_no_shared(donor_amounts, recipient_amounts) -> float:
    """No shared allele (or shared ones ignored): D = sum(donor) / (sum(donor) + sum(recipient))."""
    d, r = float(np.sum(donor_amounts)), float(np.sum(recipient_amounts))
    return 100.0 * d / (d + r) if d + r > 0 else math.nan


def percent_dhet_rhom(donor_only: float, shared: float) -> float:
    """Donor heterozygous, recipient homozygous, one shared allele: D = 2*Ad / (Ad + As)."""
    total = donor_only + shared
    return 100.0 * 2.0 * donor_only / total if total > 0 else math.nan


def percent_dhom_rhet(recipient_only: float, shared: float) -> float:
    """Donor homozygous, recipient heterozygous, one shared allele: D = 1 - 2*Ar / (Ar + As)."""
    total = recipient_only + shared
    return 100.0 * (1.0 - 2.0 * recipient_only / total) if total > 0 else math.nan


def dose_model_shares(amounts: dict, genotypes: dict, excluded=()) -> dict | None:
    """Each person's share of the DNA from allele amounts, for any number of people.

    Every allele's amount is the sum over people of (copies carried) x (that person's
    amount), two copies for a homozygote. When each person has an allele nobody else
    carries, only those alleles are used (shared peaks ignored, as in the two-person
    formulas); otherwise the whole system is solved by non-negative least squares.
    For two people this reproduces the per-pattern formulas exactly. Returns
    ``{person: fraction}`` or None when the locus cannot separate the people.
    """
    people = list(genotypes)
    alleles = [a for a in dict.fromkeys(x for p in people for x in genotypes[p])
               if a not in excluded]
    if not alleles:
        return None
    m = dose_matrix(genotypes, alleles)
    y = np.array([amounts.get(a, 0.0) for a in alleles], dtype=float)
    unique = (m > 0).sum(axis=1) == 1
    if all(np.any(unique & (m[:, j] > 0)) for j in range(len(people))):
        x = np.array([y[unique & (m[:, j] > 0)].sum() / m[unique & (m[:, j] > 0), j].sum()
                      for j in range(len(people))])
    else:
        if np.linalg.matrix_rank(m) < len(people):
            return None
        x, _ = nnls(m, y)
    total = x.sum()
    if not total > 0:
        return None
    return {p: float(x[j] / total) for j, p in enumerate(people)}


def stutter_corrected(amount: float, parent_amount: float, ratio: float) -> float:
    """Remove the parent's expected back-stutter from a peak one repeat below it."""
    return max(0.0, amount - ratio * parent_amount)


@dataclass(frozen=True)
class Combined:
    mean: float
    sd: float
    cv: float
    n: int
    keep: np.ndarray         # which of the values were kept


def combine_loci(values, outlier_sd: float | None = 2.0) -> Combined:
    """Mean, SD (n-1) and CV (% of the mean) over loci, outliers excluded in one pass.

    A locus more than ``outlier_sd`` SD from the mean of all loci is dropped (only with
    3 or more loci, and note that with n loci no value can lie more than
    (n-1)/sqrt(n) SD from the mean, so 2 SD needs at least 6 loci to act).
    """
    v = np.asarray(values, dtype=float)
    keep = np.ones(len(v), dtype=bool)
    if len(v) == 0:
        return Combined(math.nan, math.nan, math.nan, 0, keep)
    if outlier_sd is not None and len(v) >= 3:
        sd_all = v.std(ddof=1)
        if sd_all > 0:
            keep = np.abs(v - v.mean()) <= outlier_sd * sd_all
    kept = v[keep]
    mean = float(kept.mean())
    sd = float(kept.std(ddof=1)) if len(kept) > 1 else math.nan
    cv = 100.0 * sd / mean if mean > 0 and not math.isnan(sd) else math.nan
    return Combined(mean, sd, cv, int(keep.sum()), keep)


def lod_status(percent_donor: float, lod: float) -> str | None:
    """Which component, if any, is below the limit of detection (in % of the sample)."""
    if math.isnan(percent_donor):
        return None
    if 100.0 - percent_donor < lod:
        return "recipient"
    if percent_donor < lod:
        return "donor"
    return None


def reported_value(percent_donor: float, lod: float) -> str:
    """The text to report: a percentage, or "<component> < LOD" instead of a false 0/100%."""
    below = lod_status(percent_donor, lod)
    if below:
        return f"{below} < LOD"
    return "" if math.isnan(percent_donor) else f"{percent_donor:.1f}"


def classify_sample(percent_donor: float, full_donor: float = 95.0) -> str:
    """Full donor chimerism at or above the threshold, mixed below it."""
    if math.isnan(percent_donor):
        return NOT_DETERMINED
    return FULL_DONOR if percent_donor >= full_donor else MIXED


def _as_number(name: str) -> float | None:
    try:
        return float(name)
    except ValueError:
        return None


def is_one_repeat_below(lower: Allele, upper: Allele, repeat: int | None,
                        tolerance: float) -> bool:
    """True when ``lower`` sits at the back-stutter position (n - 1 repeat) of ``upper``."""
    if repeat is None:
        return False
    a, b = _as_number(lower.name), _as_number(upper.name)
    if a is not None and b is not None:
        return abs((b - a) - 1.0) < 1e-6
    if math.isfinite(lower.size) and math.isfinite(upper.size):
        return abs((upper.size - lower.size) - repeat) <= tolerance
    return False


# --------------------------------------------------------------------------- matching
def match_alleles(peaks: pd.DataFrame, alleles: dict, tolerance: float) -> pd.Series:
    """For each peak, the reference allele it belongs to ("" when none).

    A peak called with a designation (``14``) matches the allele of that name: the
    allelic ladder calls it. A peak left unlabelled or called off-ladder matches the
    reference allele nearest in size within ``tolerance`` bp: exports do leave donor
    peaks unlabelled, and ignoring them would score the locus 0% donor.
    """
    out = pd.Series("", index=peaks.index, dtype=object)
    sized = [(name, a.size) for name, a in alleles.items() if math.isfinite(a.size)]
    for idx, label, size in zip(peaks.index, peaks["allele"], peaks["size"]):
        if label and label != "OL":
            if label in alleles:
                out[idx] = label
            continue
        if not sized or not math.isfinite(size):
            continue
        name, ref = min(sized, key=lambda t: abs(t[1] - size))
        if abs(ref - size) <= tolerance:
            out[idx] = name
    return out


def assign_loci(peaks: pd.DataFrame, alleles_by_locus: dict, dyes: dict,
                tolerance: float) -> pd.Series:
    """Locus of each peak: its marker, or for unmarked peaks the locus of the same dye
    with a reference allele within ``tolerance`` bp (nearest wins)."""
    loci = peaks["locus"].copy()
    todo = (loci == "") & peaks["size"].notna()
    for idx in peaks.index[todo]:
        dye, size = peaks.at[idx, "dye"], peaks.at[idx, "size"]
        best, best_d = "", tolerance
        for locus, alleles in alleles_by_locus.items():
            if dye is not None and dyes.get(locus) not in (None, dye):
                continue
            for a in alleles:
                if math.isfinite(a.size) and abs(a.size - size) <= best_d:
                    best, best_d = locus, abs(a.size - size)
        loci[idx] = best
    return loci


# --------------------------------------------------------------------------- results
@dataclass
class LocusResult:
    sample: str
    locus: str
    pattern: str
    informative: bool
    genotypes: dict                      # person -> allele names
    amounts: dict = field(default_factory=dict)    # allele -> amount used (after stutter)
    alleles_used: str = ""
    percent_donor: float = math.nan
    shares: dict = field(default_factory=dict)     # person -> % (double donor)
    reported: str = ""
    used: bool = False                  # counted in the sample mean
    flags: list = field(default_factory=list)


@dataclass
class SampleResult:
    sample: str
    loci: list
    patient: str | None = None
    lineage: str | None = None
    date: str | None = None
    mean: float = math.nan
    sd: float = math.nan
    cv: float = math.nan
    n_informative: int = 0
    n_used: int = 0
    shares: dict = field(default_factory=dict)     # person -> mean % over used loci
    classification: str = NOT_DETERMINED
    reported: str = ""
    flags: list = field(default_factory=list)

    @property
    def percent_recipient(self) -> float:
        return 100.0 - self.mean


def _join(names) -> str:
    return ",".join(names)


def _two_person(cls: LocusClass, names: dict, amounts: dict, excluded: set,
                people: list) -> tuple:
    """% donor with the issue's per-pattern formulas; returns (percent, alleles used)."""
    donor, recipient = people
    d, r = set(names[donor]), set(names[recipient])
    d_only = [a for a in names[donor] if a not in r]
    r_only = [a for a in names[recipient] if a not in d]
    shared = [a for a in names[donor] if a in r]
    if cls.pattern in (NO_SHARED, SHARED_HET_HET, SHARED_UNIQUE):
        du = [a for a in d_only if a not in excluded]
        ru = [a for a in r_only if a not in excluded]
        if not du or not ru:
            return math.nan, ""
        pct = percent_no_shared([amounts[a] for a in du], [amounts[a] for a in ru])
        return pct, f"{donor}: {_join(du)}; {recipient}: {_join(ru)}"
    if cls.pattern == SHARED_DHET_RHOM:
        if excluded & {d_only[0], shared[0]}:
            return math.nan, ""
        pct = percent_dhet_rhom(amounts[d_only[0]], amounts[shared[0]])
        return pct, f"{donor}: {d_only[0]}; shared: {shared[0]}"
    if cls.pattern == SHARED_DHOM_RHET:
        if excluded & {r_only[0], shared[0]}:
            return math.nan, ""
        pct = percent_dhom_rhet(amounts[r_only[0]], amounts[shared[0]])
        return pct, f"{recipient}: {r_only[0]}; shared: {shared[0]}"
    shares = dose_model_shares(amounts, names, excluded)
    if shares is None:
        return math.nan, ""
    used = [a for a in dict.fromkeys(names[donor] + names[recipient]) if a not in excluded]
    return 100.0 * shares[donor], f"dose model: {_join(used)}"


def locus_chimerism(sample: str, locus: str, references: dict, peaks: pd.DataFrame,
                    settings: ChimerismSettings, *, repeat: int | None = 4,
                    stutter_ratio: float | None = None,
                    recipient: str | None = None) -> LocusResult:
    """% donor at one locus of one sample.

    ``references`` maps each person (donors first, recipient last unless ``recipient``
    names it) to their :class:`Allele` tuple at this locus; ``peaks`` holds the
    sample's peaks assigned to this locus.
    """
    people = list(references)
    recipient = recipient or people[-1]
    people = [p for p in people if p != recipient] + [recipient]
    donors = people[:-1]
    names = {p: tuple(a.name for a in references[p]) for p in people}
    cls = classify_locus(names)
    res = LocusResult(sample, locus, cls.pattern, cls.informative, names)
    ratio = settings.stutter_ratio if stutter_ratio is None else stutter_ratio
    union: dict = {}
    owners: dict = {}
    for p in people:
        for a in references[p]:
            union.setdefault(a.name, a)
            owners.setdefault(a.name, set()).add(p)

    # Amount of each reference allele in the sample.
    matched = match_alleles(peaks, union, settings.size_tolerance) if len(peaks) else \
        pd.Series(dtype=object)
    amounts = {a: 0.0 for a in union}
    qcol = settings.quantity
    for idx, name in matched.items():
        if not name:
            continue
        height = peaks.at[idx, "height"]
        amount = peaks.at[idx, qcol]
        if math.isnan(amount):
            raise ChimerismError(
                f"{peaks.at[idx, 'file']}, line {peaks.at[idx, 'line']}: the peak of allele "
                f"{name} at {locus} has no {qcol}; export {qcol}s or choose the other "
                f"quantity")
        if math.isfinite(height) and height < settings.detection_threshold:
            res.flags.append(f"below_threshold:{name}")
            continue
        if math.isfinite(height) and height >= settings.saturation:
            res.flags.append(f"saturated:{name}")
        if peaks.at[idx, "allele"] in ("", "OL"):
            res.flags.append(f"matched_by_size:{name}")
        amounts[name] += float(amount)
    raw = dict(amounts)

    # Peaks that belong to nobody: contamination, a mix-up or a third person, unless
    # they sit where stutter of a reference allele is expected.
    for idx in peaks.index:
        if matched.get(idx, ""):
            continue
        label, height = peaks.at[idx, "allele"], peaks.at[idx, "height"]
        if not label or (math.isfinite(height) and height < settings.detection_threshold):
            continue
        size = peaks.at[idx, "size"]
        probe = Allele(label if label != "OL" else f"OL@{size:.1f}", size, height, math.nan)
        amount = peaks.at[idx, qcol]
        stutter_like = any(
            is_one_repeat_below(probe, parent, repeat, settings.size_tolerance)
            and (not math.isfinite(amount) or amount <= 2 * ratio * raw[parent.name])
            for parent in union.values())
        if not stutter_like:
            res.flags.append(f"unknown_allele:{probe.name}")

    if not cls.informative:
        return res

    # Back-stutter of a donor allele landing on a recipient-only allele. The donor is
    # the major component after transplant, so its stutter is what inflates the small
    # recipient peak; the recipient's stutter into a donor peak is negligible then.
    excluded: set = set()
    donor_set = set(donors)
    for name, allele in union.items():
        if owners[name] & donor_set:
            continue
        parents = [p for p in union.values()
                   if owners[p.name] & donor_set
                   and is_one_repeat_below(allele, p, repeat, settings.size_tolerance)]
        if not parents:
            continue
        if settings.stutter == "correct":
            for parent in parents:
                amounts[name] = stutter_corrected(amounts[name], raw[parent.name], ratio)
            res.flags.append(f"stutter_corrected:{name}")
        elif settings.stutter == "exclude":
            excluded.add(name)
            res.flags.append(f"stutter_excluded:{name}")
        else:
            res.flags.append(f"stutter_position:{name}")
    res.amounts = amounts

    if len(people) == 2:
        pct, used = _two_person(cls, names, amounts, excluded, people)
        res.shares = {} if math.isnan(pct) else {donors[0]: pct, recipient: 100.0 - pct}
    else:
        shares = dose_model_shares(amounts, names, excluded)
        pct, used = math.nan, ""
        if shares is not None:
            res.shares = {p: 100.0 * f for p, f in shares.items()}
            pct = sum(res.shares[p] for p in donors)
            kept = [a for a in union if a not in excluded]
            used = f"dose model: {_join(kept)}"
    if math.isnan(pct):
        res.flags.append("not_computable")
        return res
    if pct < 0 or pct > 100:
        res.flags.append("out_of_range")     # heterozygote imbalance beyond the signal
        pct = min(100.0, max(0.0, pct))
        if len(people) == 2:
            res.shares = {donors[0]: pct, recipient: 100.0 - pct}
    res.percent_donor = pct
    res.alleles_used = used
    below = lod_status(pct, settings.lod)
    if below:
        res.flags.append(f"{below}_below_lod")
    res.reported = reported_value(pct, settings.lod)
    return res


_BUILTIN_REPEATS: dict | None = None


def _default_repeat(locus: str) -> int | None:
    """Repeat unit of a locus from any shipped kit, 4 bp when unknown."""
    global _BUILTIN_REPEATS
    if _BUILTIN_REPEATS is None:
        _BUILTIN_REPEATS = {}
        for kit in builtin_kits().values():
            for key, lo in kit.loci.items():
                _BUILTIN_REPEATS.setdefault(key, lo.repeat)
    return _BUILTIN_REPEATS.get(locus, 4)


def sample_chimerism(sample: str, peaks: pd.DataFrame, references: list,
                     settings: ChimerismSettings | None = None, *, kit: Kit | None = None,
                     patient=None, lineage=None, date=None) -> SampleResult:
    """% donor of one post-transplant sample over all loci of the references.

    ``references`` is a list of :class:`Genotype`: the donor(s) first, the recipient
    last.
    """
    settings = settings or ChimerismSettings()
    people = [g.person for g in references]
    if len(set(people)) != len(people):
        raise ChimerismError(f"two references share the name {people}; name each person once")
    donors, recipient = people[:-1], people[-1]
    loci = list(dict.fromkeys(k for g in references for k in g.loci))
    if kit is not None:
        order = {k: i for i, k in enumerate(kit.loci)}
        loci.sort(key=lambda k: order.get(k, len(order)))
    dyes: dict = {}
    for g in references:
        for k, dye in g.dyes.items():
            dyes.setdefault(k, dye)
    # The sample's own labelled peaks tell the dye of a locus too (genotype tables
    # exported without a dye column leave it unknown).
    labelled = peaks[(peaks["locus"] != "") & peaks["dye"].notna()]
    for k, dye in zip(labelled["locus"], labelled["dye"]):
        dyes.setdefault(k, dye)
    if kit is not None:
        for k, lo in kit.loci.items():
            if lo.dye:
                dyes[k] = lo.dye
    alleles_by_locus = {k: [a for g in references for a in g.loci.get(k, ())] for k in loci}
    peaks = peaks.copy()
    peaks["locus"] = assign_loci(peaks, alleles_by_locus, dyes, settings.size_tolerance)

    results = []
    for locus in loci:
        lo = kit.locus(locus) if kit is not None else None
        repeat = lo.repeat if lo is not None else _default_repeat(locus)
        ratio = settings.stutter_ratios.get(locus)
        if ratio is None and lo is not None:
            ratio = lo.stutter
        refs = {g.person: g.loci.get(locus, ()) for g in references}
        res = locus_chimerism(sample, locus, refs, peaks[peaks["locus"] == locus], settings,
                              repeat=repeat, stutter_ratio=ratio, recipient=recipient)
        for g in references:
            for f in g.flags.get(locus, []):
                res.flags.append(f"{g.person}_{f}")
        if locus in settings.exclude_loci and res.informative:
            res.flags.append("excluded_locus")
        res.used = (res.informative and not math.isnan(res.percent_donor)
                    and locus not in settings.exclude_loci)
        results.append(res)

    out = SampleResult(sample, results, patient=patient, lineage=lineage, date=date)
    out.n_informative = sum(r.informative and r.locus not in settings.exclude_loci
                            for r in results)
    used = [r for r in results if r.used]
    if used:
        keep = np.ones(len(used), dtype=bool)
        for person in (people if len(people) > 2 else [None]):
            vals = [r.percent_donor if person is None else r.shares[person] for r in used]
            keep &= combine_loci(vals, settings.outlier_sd).keep
        for r, k in zip(used, keep):
            if not k:
                r.used = False
                r.flags.append("outlier")
                out.flags.append(f"outlier:{r.locus}")
        kept = [r for r in used if r.used]
        comb = combine_loci([r.percent_donor for r in kept], None)
        out.mean, out.sd, out.cv, out.n_used = comb.mean, comb.sd, comb.cv, comb.n
        if len(people) > 2:
            out.shares = {p: float(np.mean([r.shares[p] for r in kept])) for p in people}
        else:
            out.shares = {donors[0]: out.mean, recipient: 100.0 - out.mean}
    if out.n_used == 0:
        out.flags.append("no_informative_loci")
    elif out.n_used < settings.min_loci:
        out.flags.append("few_informative_loci")
    for r in results:
        for f in r.flags:
            if f.startswith(("unknown_allele:", "saturated:")):
                out.flags.append(f"{f.split(':')[0]}:{r.locus}:{f.split(':', 1)[1]}")
    below = lod_status(out.mean, settings.lod)
    if below:
        out.flags.append(f"{below}_below_lod")
    out.classification = classify_sample(out.mean, settings.full_donor)
    out.reported = reported_value(out.mean, settings.lod)
    return out


# --------------------------------------------------------------------------- many samples
@dataclass
class ChimerismResult:
    """Results for many samples against one set of references, as tables."""

    samples: list
    references: list
    settings: ChimerismSettings

    def loci_frame(self) -> pd.DataFrame:
        """One row per sample and locus, ready for a longitudinal cohort."""
        people = [g.person for g in self.references]
        rows = []
        for s in self.samples:
            for r in s.loci:
                row = {"sample": s.sample, "patient": s.patient, "lineage": s.lineage,
                       "date": s.date, "locus": r.locus, "pattern": r.pattern,
                       "informative": r.informative}
                for p in people:
                    row[f"{p}_alleles"] = _join(r.genotypes.get(p, ()))
                row.update({"alleles_used": r.alleles_used, "percent_donor": r.percent_donor,
                            "percent_recipient": 100.0 - r.percent_donor})
                if len(people) > 2:
                    for p in people:
                        row[f"percent_{p}"] = r.shares.get(p, math.nan)
                row.update({"reported": r.reported, "used": r.used,
                            "flags": ";".join(r.flags)})
                rows.append(row)
        return pd.DataFrame(rows)

    def summary_frame(self) -> pd.DataFrame:
        """One row per sample: mean, SD, CV, loci, classification and flags."""
        people = [g.person for g in self.references]
        rows = []
        for s in self.samples:
            row = {"sample": s.sample, "patient": s.patient, "lineage": s.lineage,
                   "date": s.date, "percent_donor": s.mean,
                   "percent_recipient": s.percent_recipient, "sd": s.sd, "cv": s.cv,
                   "n_informative": s.n_informative, "n_used": s.n_used}
            if len(people) > 2:
                for p in people:
                    row[f"percent_{p}"] = s.shares.get(p, math.nan)
            row.update({"reported": s.reported, "classification": s.classification,
                        "flags": ";".join(s.flags)})
            rows.append(row)
        df = pd.DataFrame(rows)
        if df.empty or not (df["patient"].notna() & df["date"].notna()).any():
            return df
        # A patient's series: rising recipient chimerism between consecutive samples.
        from .series import flag_rising_recipient
        df = flag_rising_recipient(df, min_rise=self.settings.min_rise,
                                   full_donor=self.settings.full_donor)
        for col in ("rising_recipient", "lost_full_donor"):
            hit = df[col].astype(bool)
            df.loc[hit, "flags"] = [f"{f};{col}" if f else col for f in df.loc[hit, "flags"]]
        return df

    def genotype_frame(self) -> pd.DataFrame:
        return pd.concat([g.to_frame() for g in self.references], ignore_index=True)


def compute_chimerism(samples: pd.DataFrame, donors, recipient: Genotype, *,
                      settings: ChimerismSettings | None = None, kit: Kit | None = None,
                      metadata: dict | None = None) -> ChimerismResult:
    """% donor for every sample in a peak table.

    ``donors`` is one :class:`Genotype` or a list (double donor); ``metadata`` maps a
    sample name to ``{"patient", "lineage", "date"}``. Samples that are one of the
    references (a whole plate exported to one file) are skipped.
    """
    settings = settings or ChimerismSettings()
    donors = [donors] if isinstance(donors, Genotype) else list(donors)
    if not donors:
        raise ChimerismError("at least one donor genotype is needed")
    references = donors + [recipient]
    skip = {s for g in references for s in g.samples}
    metadata = metadata or {}
    out = []
    for name, rows in samples.groupby("sample", sort=False):
        if name in skip:
            continue
        meta = metadata.get(name, {})
        out.append(sample_chimerism(name, rows, references, settings, kit=kit,
                                    patient=meta.get("patient"), lineage=meta.get("lineage"),
                                    date=meta.get("date")))
    return ChimerismResult(out, references, settings)


def with_settings(settings: ChimerismSettings | None = None, **changes) -> ChimerismSettings:
    """A copy of ``settings`` (or the defaults) with some fields changed."""
    return replace(settings or ChimerismSettings(), **changes)
