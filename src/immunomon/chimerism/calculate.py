"""Percent donor chimerism from STR peaks: per locus, per sample.

The maths is a handful of small pure functions (the per-pattern formulas, the dose
model, stutter correction, combining loci, the limit of detection); the rest matches
a post-transplant sample's peaks to the reference alleles by size and applies them.
See ``docs/chimerism.md`` for the formulas and the meaning of every flag.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from ..errors import ChimerismError
from .genotype import (NO_SHARED, SHARED_DHET_RHOM, SHARED_DHOM_RHET, SHARED_HET_HET,
                       SHARED_UNIQUE, Allele, Genotype, GenotypingRules, LocusClass,
                       classify_locus, dose_matrix)
from .kits import NON_AUTOSOMAL, Kit, builtin_kits, normalize_locus

FULL_DONOR = "full donor"
MIXED = "mixed"
FULL_RECIPIENT = "full recipient"
NOT_DETERMINED = "not determined"


@dataclass(frozen=True)
class ChimerismSettings:
    """Every threshold of the calculation, with the defaults most labs use."""

    quantity: str = "area"              # "area" or "height": what a peak's amount is
    size_tolerance: float = 0.5         # bp; a peak matches an allele this close in size
    stutter: str = "correct"            # "correct", "exclude" or "flag"
    stutter_ratio: float = 0.10         # back-stutter / parent, when no locus value is known
    stutter_ratios: dict = field(default_factory=dict)   # locus -> ratio, overrides the kit
    forward_stutter_ratio: float = 0.0  # n+1 stutter / parent subtracted too (0: off)
    detection_threshold: float = 50.0   # RFU; lower peaks are not counted (flagged)
    saturation: float = 30000.0         # RFU; higher peaks are flagged as saturated
    lod: float = 1.0                    # % of the minor component reported as "< LOD"
    outlier_mad: float | None = 3.5     # loci this many robust SD from the median are excluded
    outlier_floor: float = 2.0          # points; the robust SD is never taken below this
    dropout_share: float = 20.0         # % median share above which a missing allele is
                                        # dropout, and its locus is left out
    full_donor: float = 95.0            # % donor at or above which a sample is full donor
    full_recipient: float = 5.0         # % donor under which it is full recipient (graft
                                        # lost, autologous recovery); 0: never
    min_loci: int = 3                   # fewer informative loci than this is flagged
    exclude_loci: tuple = NON_AUTOSOMAL  # loci reported but kept out of the mean
    relative_threshold: float = 0.5     # reference genotyping: allele balance (of the top)
    reference_min_height: float = 50.0  # reference genotyping: RFU
    reference_stutter: float = 0.2      # reference genotyping: largest stutter / parent
    pull_up_ratio: float = 0.25         # a peak this small under another dye's is pull-up
    off_ladder_alleles: bool = False    # accept OL peaks of a reference as alleles
    tri_allelic: tuple = ()             # loci whose third reference allele is accepted
    broad_factor: float = 2.0           # peaks this many times wider than usual are flagged
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
            "forward_stutter_ratio": (self.forward_stutter_ratio, 0, 1),
            "lod": (self.lod, 0, 50),
            "full_donor": (self.full_donor, 0, 100),
            "full_recipient": (self.full_recipient, 0, 100),
            "relative_threshold": (self.relative_threshold, 0, 1),
            "reference_stutter": (self.reference_stutter, 0, 1),
            "pull_up_ratio": (self.pull_up_ratio, 0, 1),
            "outlier_floor": (self.outlier_floor, 0, 50),
            "dropout_share": (self.dropout_share, 0, 100),
            "detection_threshold": (self.detection_threshold, 0, 1e6),
            "saturation": (self.saturation, 1, 1e7),
            "reference_min_height": (self.reference_min_height, 0, 1e6),
            "broad_factor": (self.broad_factor, 1, 100),
        }
        for name, (value, lo, hi) in checks.items():
            if isinstance(value, bool) or not (isinstance(value, (int, float))
                                               and lo <= value <= hi):
                raise ChimerismError(f"{name} must be a number from {lo} to {hi}, "
                                     f"not {value!r}")
        if not self.full_recipient < self.full_donor:
            raise ChimerismError(f"full_recipient ({self.full_recipient:g} % donor) must be "
                                 f"below full_donor ({self.full_donor:g} % donor)")
        if self.outlier_mad is not None and (isinstance(self.outlier_mad, bool)
                                             or not self.outlier_mad > 0):
            raise ChimerismError(f"outlier_mad must be positive or None, "
                                 f"not {self.outlier_mad!r}")
        object.__setattr__(self, "exclude_loci",
                           tuple(normalize_locus(x) for x in self.exclude_loci))
        object.__setattr__(self, "tri_allelic",
                           tuple(x if x == "*" else normalize_locus(x)
                                 for x in self.tri_allelic))
        object.__setattr__(self, "stutter_ratios",
                           {normalize_locus(k): float(v) for k, v in self.stutter_ratios.items()})

    def genotyping_rules(self) -> GenotypingRules:
        """The reference genotyping rules these settings imply."""
        return GenotypingRules(min_height=self.reference_min_height,
                               balance=self.relative_threshold,
                               stutter_ratio=self.reference_stutter,
                               pull_up_ratio=self.pull_up_ratio,
                               off_ladder=self.off_ladder_alleles,
                               tri_allelic=self.tri_allelic)


# --------------------------------------------------------------------------- formulas
def percent_no_shared(donor_amounts, recipient_amounts) -> float:
    """No shared allele (or shared ones ignored): D = sum(donor) / (sum(D) + sum(recipient))."""
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
    median: float = math.nan
    limit: float = math.nan  # largest distance from the median that is kept


def robust_outliers(values, k: float | None = 3.5, floor: float = 2.0) -> tuple:
    """Which values lie within ``k`` robust SD of the median: ``(keep, median, limit)``.

    The robust SD is 1.4826 x the median absolute deviation, never below ``floor``
    (percentage points: loci of a full-donor sample all read 100 % and their MAD is 0).
    Unlike mean +- 2 SD, one locus at 0 % cannot inflate the spread it is judged by.
    Needs 4 or more values; with fewer, all are kept.
    """
    v = np.asarray(values, dtype=float)
    keep = np.ones(len(v), dtype=bool)
    if len(v) == 0:
        return keep, math.nan, math.nan
    median = float(np.median(v))
    if k is None or len(v) < 4:
        return keep, median, math.nan
    mad = float(np.median(np.abs(v - median)))
    limit = k * max(1.4826 * mad, floor)
    return np.abs(v - median) <= limit, median, limit


def combine_loci(values, outlier_mad: float | None = 3.5, floor: float = 2.0) -> Combined:
    """Mean, SD (n-1) and CV (% of the mean) over loci, robust outliers excluded.

    A locus further than ``outlier_mad`` robust SD from the median of all loci is
    dropped (see :func:`robust_outliers`); ``None`` keeps every locus.
    """
    v = np.asarray(values, dtype=float)
    keep, median, limit = robust_outliers(v, outlier_mad, floor)
    if len(v) == 0:
        return Combined(math.nan, math.nan, math.nan, 0, keep)
    kept = v[keep]
    mean = float(kept.mean())
    sd = float(kept.std(ddof=1)) if len(kept) > 1 else math.nan
    cv = 100.0 * sd / mean if mean > 0 and not math.isnan(sd) else math.nan
    return Combined(mean, sd, cv, int(keep.sum()), keep, median, limit)


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


def classify_sample(percent_donor: float, full_donor: float = 95.0,
                    full_recipient: float = 5.0) -> str:
    """Full donor at or above ``full_donor`` % donor, full recipient under
    ``full_recipient`` (the graft lost, or autologous recovery: the share under which
    EBMT and CIBMTR call a graft failed), mixed between."""
    if math.isnan(percent_donor):
        return NOT_DETERMINED
    if percent_donor >= full_donor:
        return FULL_DONOR
    return FULL_RECIPIENT if percent_donor < full_recipient else MIXED


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


def _dye(value) -> str | None:
    return value if isinstance(value, str) and value else None


def assign_loci(peaks: pd.DataFrame, alleles_by_locus: dict, dyes: dict,
                tolerance: float) -> pd.Series:
    """Locus of each peak: its marker, or for unmarked peaks the locus of the same dye
    with a reference allele within ``tolerance`` bp (nearest wins)."""
    loci = peaks["locus"].copy()
    todo = (loci == "") & peaks["size"].notna()
    for idx in peaks.index[todo]:
        dye, size = _dye(peaks.at[idx, "dye"]), peaks.at[idx, "size"]
        best, best_d = "", tolerance
        for locus, alleles in alleles_by_locus.items():
            if dye is not None and dyes.get(locus) not in (None, dye):
                continue
            for a in alleles:
                if math.isfinite(a.size) and abs(a.size - size) <= best_d:
                    best, best_d = locus, abs(a.size - size)
        loci[idx] = best
    return loci


def screen_sample_peaks(peaks: pd.DataFrame, settings: ChimerismSettings) -> pd.DataFrame:
    """Mark a sample run's pull-up, spike and broad peaks (``artefact``, ``artefact_detail``).

    ``peaks`` are all peaks of one run (every dye). Pull-up and spikes are not counted
    as DNA; broad peaks are counted but flagged (their area may carry a dye blob).
    Raw-trace peaks may arrive already marked; those marks are kept.
    """
    from .artefacts import broad_mask, coincidences, pull_up_mask, spike_mask

    out = peaks.copy()
    if "artefact" not in out:
        out["artefact"] = ""
        out["artefact_detail"] = ""
    out["artefact"] = out["artefact"].fillna("")
    if len(out) < 2 or out["height"].isna().all() or out["dye"].isna().all():
        return out
    coin = coincidences(out)
    spike = spike_mask(out, coin)
    pull = pull_up_mask(coin, settings.pull_up_ratio) & ~spike
    broad = broad_mask(out, settings.broad_factor) if out["area"].notna().any() else \
        np.zeros(len(out), dtype=bool)
    free = (out["artefact"] == "").to_numpy()
    kinds = np.where(spike, "spike", np.where(pull, "pull_up", np.where(broad, "broad", "")))
    details = []
    for i in range(len(out)):
        if not kinds[i] or not free[i]:
            details.append(out["artefact_detail"].iloc[i] if not free[i] else "")
            continue
        if kinds[i] == "broad":
            details.append("much wider than the run's peaks of this size")
        elif kinds[i] == "spike":
            details.append(f"peaks at this scan in {coin.n_dyes[i]} dyes")
        else:
            other = out.iloc[coin.partner[i]]
            details.append(f"{coin.ratio[i]:.0%} of the {other['dye']} peak at "
                           f"{other['size']:.2f} bp")
    out["artefact"] = np.where(free, kinds, out["artefact"].to_numpy(dtype=object))
    out["artefact_detail"] = details
    return out


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
    exclusion: str = ""                 # why an informative locus is not in the mean


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
    file: str = ""
    median: float = math.nan                       # % donor, over the used loci
    outlier_limit: float = math.nan                # points from the median kept
    quantity: str = "area"                         # what the % were computed from
    warnings: list = field(default_factory=list)   # input gaps and what was done

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


def _shares(cls: LocusClass, names: dict, amounts: dict, excluded: set,
            people: list) -> dict:
    """Each person's % at a locus from the amounts; when nothing can be computed, the
    donors are taken as the major contributors (the usual state after transplant)."""
    if len(people) == 2:
        pct, _ = _two_person(cls, names, amounts, excluded, people)
        if not math.isnan(pct):
            return {people[0]: pct, people[1]: 100.0 - pct}
    else:
        shares = dose_model_shares(amounts, names, excluded)
        if shares is not None:
            return {p: 100.0 * f for p, f in shares.items()}
    return {p: (100.0 if p != people[-1] else 0.0) for p in people}


def locus_chimerism(sample: str, locus: str, references: dict, peaks: pd.DataFrame,
                    settings: ChimerismSettings, *, repeat: int | None = 4,
                    stutter_ratio: float | None = None,
                    recipient: str | None = None, quantity: str | None = None,
                    reference_artefacts: tuple = ()) -> LocusResult:
    """% donor at one locus of one sample.

    ``references`` maps each person (donors first, recipient last unless ``recipient``
    names it) to their :class:`Allele` tuple at this locus; ``peaks`` holds the
    sample's peaks assigned to this locus (with an ``artefact`` column when screened by
    :func:`screen_sample_peaks`). ``quantity`` overrides ``settings.quantity``.
    ``reference_artefacts``: sizes where a reference run had a peak it did not call an
    allele (pull-up, a minor or off-ladder peak); a sample peak there is that artefact
    again (flagged ``reference_artefact``), not a third person's allele.
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
    artefact = peaks["artefact"] if "artefact" in peaks else pd.Series("", index=peaks.index)
    amounts = {a: 0.0 for a in union}
    qcol = quantity or settings.quantity
    for idx, name in matched.items():
        if not name:
            continue
        height = peaks.at[idx, "height"]
        amount = peaks.at[idx, qcol]
        if math.isnan(amount):
            raise ChimerismError(
                f"{peaks.at[idx, 'file']}, line {peaks.at[idx, 'line']}: the peak of allele "
                f"{name} at {locus} has an empty {qcol.title()} cell; fill it in the export "
                f"or choose the other quantity")
        if artefact[idx] in ("pull_up", "spike"):
            res.flags.append(f"{artefact[idx]}:{name}")
            continue
        if artefact[idx] == "broad":
            res.flags.append(f"broad_peak:{name}")
        if artefact[idx] == "saturated":
            res.flags.append(f"saturated:{name}")
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
    # they sit where stutter of a reference allele is expected. Without a call for every
    # person the locus cannot say whose a peak is.
    for idx in (peaks.index if cls.pattern != "missing" else []):
        if matched.get(idx, "") or artefact[idx] in ("pull_up", "spike"):
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
        if stutter_like:
            continue
        # where the references' own runs show a peak they did not take for an allele, the
        # sample's is that artefact again (a double-cord sample's six 'unknown alleles'
        # at D5S818 sat on pull-up and off-ladder peaks of the donors' runs)
        seen = any(abs(size - at) <= settings.size_tolerance for at in reference_artefacts)
        res.flags.append(f"{'reference_artefact' if seen else 'unknown_allele'}:{probe.name}")

    if not cls.informative:
        if cls.pattern == "missing":
            nobody = [p for p in people if not names[p]]
            res.exclusion = f"no reference call for {' and '.join(nobody)}"
        else:
            res.exclusion = "non-informative"
        return res

    # Back-stutter of the major contributor's alleles lands on the minor contributor's
    # allele one repeat below and inflates it; the minor's stutter into the major's
    # alleles is too small to matter. Who is major comes from the uncorrected shares.
    shares0 = _shares(cls, names, amounts, set(), people)
    excluded: set = set()
    for name, allele in union.items():
        weight = max(shares0.get(o, 0.0) for o in owners[name])
        parents = [p for p in union.values()
                   if owners[p.name] != owners[name]
                   and max(shares0.get(o, 0.0) for o in owners[p.name]) > weight
                   and is_one_repeat_below(allele, p, repeat, settings.size_tolerance)]
        below = [p for p in union.values()
                 if settings.forward_stutter_ratio > 0 and settings.stutter == "correct"
                 and owners[p.name] != owners[name]
                 and max(shares0.get(o, 0.0) for o in owners[p.name]) > weight
                 and is_one_repeat_below(p, allele, repeat, settings.size_tolerance)]
        for parent in below:          # forward (n+1) stutter of the major's allele
            amounts[name] = stutter_corrected(amounts[name], raw[parent.name],
                                              settings.forward_stutter_ratio)
            res.flags.append(f"forward_stutter_corrected:{name}")
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
        res.exclusion = "not computable: no usable peak for the formula"
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


def repeat_lengths(loci, kit: Kit | None = None) -> dict:
    """Repeat unit (bp) of each locus: from the kit, else any shipped kit, else 4."""
    out = {}
    for locus in loci:
        lo = kit.locus(locus) if kit is not None else None
        out[locus] = lo.repeat if lo is not None else _default_repeat(locus)
    return out


def _flag_dropout(loci: list, people: list, settings: ChimerismSettings) -> None:
    """Leave out loci where an allele of someone who makes up a large part of the sample
    reads under the detection threshold: that allele dropped out (too little DNA, a
    primer-site variant) and the locus under-reads that person.

    "A large part" is ``dropout_share`` % or more as the median over the loci; a person
    near the limit of detection is expected to drop out and is not judged.
    """
    if len(loci) < 4:
        return
    if len(people) == 2:
        median = {people[0]: float(np.median([r.percent_donor for r in loci]))}
        median[people[1]] = 100.0 - median[people[0]]
    else:
        median = {p: float(np.median([r.shares[p] for r in loci])) for p in people}
    for r in loci:
        for f in r.flags:
            if not f.startswith("below_threshold:"):
                continue
            allele = f.split(":", 1)[1]
            carriers = [p for p in people if allele in r.genotypes.get(p, ())]
            heavy = [p for p in carriers if median[p] >= settings.dropout_share]
            if heavy:
                r.used = False
                r.flags.append("dropout")
                r.exclusion = (f"dropout: allele {allele} of {heavy[0]} is under the "
                               f"detection threshold although {heavy[0]} makes up about "
                               f"{median[heavy[0]]:.0f} % of the sample")
                break


def _quantity(peaks: pd.DataFrame, wanted: str, source: str) -> tuple[str, list]:
    """The quantity this sample's peaks can give, and a warning when it is not ``wanted``
    or when heights are missing (no detection threshold, no saturation check)."""
    warnings = []
    labelled = peaks[peaks["allele"] != ""]
    rows = labelled if len(labelled) else peaks
    has = {q: bool(rows[q].notna().any()) for q in ("area", "height")}
    quantity = wanted
    if not has[wanted]:
        other = "height" if wanted == "area" else "area"
        if not has[other]:
            raise ChimerismError(f"{source}: no Height or Area values; export peak heights "
                                 f"or areas with the allele calls")
        quantity = other
        warnings.append(f"{source}: no {wanted.title()} column (or it is empty): % donor "
                        f"computed from peak {other}s instead")
    if not has["height"]:
        warnings.append(f"{source}: no Height column: the call used peak {quantity}s "
                        f"alone, with no detection threshold, saturation, pull-up or spike "
                        f"check, so peaks that heights would leave out were counted")
    return quantity, warnings


def sample_chimerism(sample: str, peaks: pd.DataFrame, references: list,
                     settings: ChimerismSettings | None = None, *, kit: Kit | None = None,
                     patient=None, lineage=None, date=None) -> SampleResult:
    """% donor of one post-transplant sample over all loci of the references.

    ``references`` is a list of :class:`Genotype`: the donor(s) first, the recipient
    last. ``peaks`` are the sample's peaks from one run (one file).
    """
    settings = settings or ChimerismSettings()
    people = [g.person for g in references]
    if len(set(people)) != len(people):
        raise ChimerismError(f"two references share the name {people}; name each person once")
    donors, recipient = people[:-1], people[-1]
    files = list(dict.fromkeys(peaks["file"])) if "file" in peaks and len(peaks) else [""]
    source = f"{files[0]} ({sample})" if files[0] else sample
    quantity, warnings = _quantity(peaks, settings.quantity, source)
    warnings += list(peaks.attrs.get("warnings", ()))
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
    peaks = screen_sample_peaks(peaks, settings)
    peaks["locus"] = assign_loci(peaks, alleles_by_locus, dyes, settings.size_tolerance)
    repeats = repeat_lengths(loci, kit)

    results = []
    artefacts = _reference_artefacts(references)
    for locus in loci:
        lo = kit.locus(locus) if kit is not None else None
        ratio = settings.stutter_ratios.get(locus)
        if ratio is None and lo is not None:
            ratio = lo.stutter
        refs = {g.person: g.loci.get(locus, ()) for g in references}
        res = locus_chimerism(sample, locus, refs, peaks[peaks["locus"] == locus], settings,
                              repeat=repeats[locus], stutter_ratio=ratio,
                              recipient=recipient, quantity=quantity,
                              reference_artefacts=artefacts.get(locus, ()))
        for g in references:
            for f in g.flags.get(locus, []):
                res.flags.append(f"{g.person}_{f}")
            if not g.loci.get(locus) and "unresolved" in g.flags.get(locus, []):
                res.exclusion += (f"; {g.person} unresolved: an off-ladder or unlabelled "
                                  f"peak as tall as the alleles")
        if locus in settings.exclude_loci and res.informative:
            res.flags.append("excluded_locus")
            res.exclusion = "kept out of the mean by configuration (exclude_loci)"
        res.used = (res.informative and not math.isnan(res.percent_donor)
                    and locus not in settings.exclude_loci)
        results.append(res)

    out = SampleResult(sample, results, patient=patient, lineage=lineage, date=date,
                       file=files[0], quantity=quantity, warnings=warnings)
    out.n_informative = sum(r.informative and r.locus not in settings.exclude_loci
                            for r in results)
    used = [r for r in results if r.used]
    _flag_dropout(used, people, settings)
    used = [r for r in used if r.used]
    if used:
        keep = np.ones(len(used), dtype=bool)
        far = {}
        for person in (people if len(people) > 2 else [None]):
            vals = [r.percent_donor if person is None else r.shares[person] for r in used]
            k, median, limit = robust_outliers(vals, settings.outlier_mad,
                                               settings.outlier_floor)
            for r, v, ok in zip(used, vals, k):
                if not ok and id(r) not in far:
                    who = "donor" if person is None else person
                    far[id(r)] = (f"{v:.1f} % {who}, more than {limit:.1f} points from "
                                  f"the loci's median {median:.1f}")
            keep &= k
            if person is None or person == recipient:
                # the median % donor (with two donors, of both: 100 less the recipient's
                # median share, which the check read; it was that share, unlike the
                # single-donor column beside it)
                out.median = median if person is None else 100.0 - median
                out.outlier_limit = limit
        for r, k in zip(used, keep):
            if not k:
                r.used = False
                r.flags.append("outlier")
                r.exclusion = f"outlier: {far[id(r)]}"
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
        for f in dict.fromkeys(r.flags):
            if f.startswith(("unknown_allele:", "saturated:")):
                out.flags.append(f"{f.split(':')[0]}:{r.locus}:{f.split(':', 1)[1]}")
    out.flags = list(dict.fromkeys(out.flags))
    if quantity != settings.quantity:
        out.flags.append(f"quantity:{quantity}")
    if peaks["height"].isna().all():
        out.flags.append("no_heights")
    below = lod_status(out.mean, settings.lod)
    if below:
        out.flags.append(f"{below}_below_lod")
    out.classification = classify_sample(out.mean, settings.full_donor,
                                         settings.full_recipient)
    out.reported = reported_value(out.mean, settings.lod)
    # the loci as the export or kit spells them (vWA, Penta E), not their keys
    shown = {k: str(m) for k, m in zip(peaks["locus"], peaks["marker"]) if k and m}
    mismatch = identity_mismatch(results, shown)
    lost = "" if mismatch else _most_loci_lost(results, settings, shown)
    if mismatch or lost:
        out.flags.append("identity_mismatch" if mismatch else "most_loci_not_computable")
        computed = f" (computed {out.mean:.1f} % donor)" if math.isfinite(out.mean) else ""
        why = ("references of another patient, or a sample of another person" if mismatch
               else "too little of the sample's DNA, or another person's")
        out.warnings.append(f"sample {sample!r}: {mismatch or lost}: {why}; not "
                            f"reported{computed}")
        # no number leaves for the cohort: the loci table keeps what each locus gave
        out.mean = out.sd = out.cv = math.nan
        out.shares = {}
        out.classification, out.reported = NOT_DETERMINED, ""
    return out


def _reference_artefacts(references) -> dict[str, tuple[float, ...]]:
    """Per locus, the sizes where a reference run had a peak above its threshold that it
    did not call an allele (pull-up, spike, stutter, a minor, extra or off-ladder peak)."""
    calls = pd.concat([g.calls_frame() for g in references], ignore_index=True)
    rows = calls[(calls["call"] != "allele") & (calls["reason"] != "below_threshold")
                 & np.isfinite(pd.to_numeric(calls["size"], errors="coerce"))]
    return {locus: tuple(float(v) for v in group["size"])
            for locus, group in rows.groupby("locus")}


def _most_loci_lost(loci, settings, shown: dict | None = None) -> str:
    """Why a sample whose peaks fit the formula at under half of its informative loci is
    not reported ("" otherwise): a third person's diluted DNA read "full donor, 100 %"
    from the 1-3 loci where its peaks happened to fall on the donor's alleles, the other
    13-15 not computable."""
    informative = [r for r in loci if r.informative and r.locus not in settings.exclude_loci]
    lost = [(shown or {}).get(r.locus, r.locus) for r in informative
            if "not_computable" in r.flags]
    if not informative or 2 * len(lost) <= len(informative):
        return ""
    return (f"no usable peak for the formula at {len(lost)} of {len(informative)} "
            f"informative loci ({', '.join(lost[:6])}{', ...' if len(lost) > 6 else ''})")


#: Loci with a called peak of nobody's genotype that make a sample's identity doubtful:
#: at least this many, and at least half of the typed loci. One or two such loci are
#: a third person's trace or an artefact; most loci is another person's DNA.
IDENTITY_LOCI = 3


def identity_mismatch(loci, shown: dict | None = None) -> str:
    """Why a sample's peaks do not fit its references ("" when they do): alleles of
    nobody's genotype at ``IDENTITY_LOCI`` or more loci, and at half of the loci whose
    references are typed or more. Only peaks called as a ladder allele count: stutter-like
    peaks, artefacts and off-ladder peaks (noise a raw trace's caller sizes between the
    alleles) do not."""
    typed = [r for r in loci if r.pattern != "missing"]
    odd = [(shown or {}).get(r.locus, r.locus) for r in typed
           if any(f.startswith("unknown_allele:") and not f.startswith("unknown_allele:OL@")
                  for f in r.flags)]
    if len(odd) < IDENTITY_LOCI or 2 * len(odd) < len(typed):
        return ""
    return (f"alleles of neither donor nor recipient at {len(odd)} of {len(typed)} typed "
            f"loci ({', '.join(odd[:6])}{', ...' if len(odd) > 6 else ''})")


# --------------------------------------------------------------------------- many samples
@dataclass
class ChimerismResult:
    """Results for many samples against one set of references, as tables."""

    samples: list
    references: list
    settings: ChimerismSettings
    warnings: list = field(default_factory=list)    # about the inputs, for the record
    traces: dict = field(default_factory=dict)      # sample -> its raw trace, for plots
    runs: list = field(default_factory=list)        # raw traces: each run's sizing

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
                            "exclusion": r.exclusion, "flags": ";".join(r.flags)})
                rows.append(row)
        return pd.DataFrame(rows)

    def summary_frame(self) -> pd.DataFrame:
        """One row per sample: mean, SD, CV, loci, classification, flags and warnings."""
        people = [g.person for g in self.references]
        rows = []
        for s in self.samples:
            row = {"sample": s.sample, "file": s.file, "patient": s.patient,
                   "lineage": s.lineage, "date": s.date, "percent_donor": s.mean,
                   "percent_recipient": s.percent_recipient, "sd": s.sd, "cv": s.cv,
                   "median": s.median, "n_informative": s.n_informative,
                   "n_used": s.n_used, "quantity": s.quantity}
            if len(people) > 2:
                for p in people:
                    row[f"percent_{p}"] = s.shares.get(p, math.nan)
            row.update({"reported": s.reported, "classification": s.classification,
                        "flags": ";".join(s.flags), "warnings": " | ".join(s.warnings)})
            rows.append(row)
        df = pd.DataFrame(rows)
        if df.empty or not (df["patient"].notna() & df["date"].notna()).any():
            return df
        # A patient's series: rising recipient chimerism between consecutive samples.
        from .series import flag_rising_recipient
        df = flag_rising_recipient(df, warn=False, min_rise=self.settings.min_rise,
                                   full_donor=self.settings.full_donor,
                                   full_recipient=self.settings.full_recipient)
        for col in ("rising_recipient", "lost_full_donor"):
            hit = df[col].astype(bool)
            df.loc[hit, "flags"] = [f"{f};{col}" if f else col for f in df.loc[hit, "flags"]]
        return df

    def genotype_frame(self) -> pd.DataFrame:
        return pd.concat([g.to_frame() for g in self.references], ignore_index=True)

    def runs_frame(self) -> pd.DataFrame:
        """Raw traces: one row per run with its role, size standard and sizing quality."""
        rows = [{k: (", ".join(f"{x:g}" for x in v) if isinstance(v, list) else v)
                 for k, v in r.items()} for r in self.runs]
        return pd.DataFrame(rows)

    def reference_calls_frame(self) -> pd.DataFrame:
        """Every peak of every reference run, with the call made and the reason."""
        return pd.concat([g.calls_frame() for g in self.references], ignore_index=True)


def run_labels(pairs: list) -> dict:
    """A display name per (file, sample): the sample name, with as much of the file's
    path as tells apart samples of one name from different files."""
    by_name: dict = {}
    for f, s in pairs:
        by_name.setdefault(s, []).append(f)
    out = {}
    for (f, s) in pairs:
        others = by_name[s]
        if len(set(others)) < 2:
            out[(f, s)] = s
            continue
        parts = [list(reversed(os.path.normpath(x).split(os.sep))) for x in others]
        mine = list(reversed(os.path.normpath(f).split(os.sep)))
        for n in range(1, len(mine) + 1):
            tail = mine[:n]
            if sum(p[:n] == tail for p in parts) == 1:
                break
        out[(f, s)] = f"{s} [{os.sep.join(reversed(mine[:n]))}]"
    return out


def compute_chimerism(samples: pd.DataFrame, donors, recipient: Genotype, *,
                      settings: ChimerismSettings | None = None, kit: Kit | None = None,
                      metadata: dict | None = None) -> ChimerismResult:
    """% donor for every sample in a peak table.

    ``donors`` is one :class:`Genotype` or a list (double donor); ``metadata`` maps a
    run (``(file, sample)``), its label or its sample name to ``{"patient", "lineage",
    "date"}`` and, optionally, ``"sample"``: the name to report it under. A sample is
    one run: a sample name within one file. Runs the references were called from (a whole plate exported
    to one file) are skipped; samples of the same name in other files are not.
    """
    settings = settings or ChimerismSettings()
    donors = [donors] if isinstance(donors, Genotype) else list(donors)
    if not donors:
        raise ChimerismError("at least one donor genotype is needed")
    references = donors + [recipient]
    skip = {src for g in references for src in (g.sources or ((None, s) for s in g.samples))}
    metadata = metadata or {}
    files = samples["file"] if "file" in samples else pd.Series("", index=samples.index)
    runs = list(samples.groupby([files, samples["sample"]], sort=False))
    file_warnings = samples.attrs.get("file_warnings", {})
    labels = run_labels([key for key, _ in runs])
    out = []
    for (file, name), rows in runs:
        if (file, name) in skip or (None, name) in skip:
            continue
        meta = metadata.get((file, name)) or metadata.get(labels[(file, name)]) \
            or metadata.get(name, {})
        label = meta.get("sample") or labels[(file, name)]     # a manifest's name for it
        rows = rows.copy()
        rows.attrs["warnings"] = list(file_warnings.get(file, ()))
        out.append(sample_chimerism(label, rows, references, settings, kit=kit,
                                    patient=meta.get("patient"), lineage=meta.get("lineage"),
                                    date=meta.get("date")))
    return ChimerismResult(out, references, settings)


def with_settings(settings: ChimerismSettings | None = None, **changes) -> ChimerismSettings:
    """A copy of ``settings`` (or the defaults) with some fields changed."""
    return replace(settings or ChimerismSettings(), **changes)
