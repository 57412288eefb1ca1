"""Genotypes of the donor(s) and the recipient, and the allele pattern of each locus."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import ChimerismError

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


@dataclass
class Genotype:
    """A person's genotype: locus key -> alleles (one allele means homozygous)."""

    person: str
    samples: tuple
    loci: dict = field(default_factory=dict)
    dyes: dict = field(default_factory=dict)     # locus key -> dye seen in the export
    flags: dict = field(default_factory=dict)    # locus key -> list of flags

    def alleles(self, locus: str) -> tuple:
        return tuple(a.name for a in self.loci.get(locus, ()))

    def to_frame(self) -> pd.DataFrame:
        rows = [{"person": self.person, "locus": locus, "allele": a.name, "size": a.size,
                 "height": a.height, "area": a.area,
                 "flags": ";".join(self.flags.get(locus, []))}
                for locus, alleles in self.loci.items() for a in alleles]
        return pd.DataFrame(rows, columns=["person", "locus", "allele", "size", "height",
                                           "area", "flags"])


def _allele_sort_key(name: str):
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


def genotype_from_peaks(peaks: pd.DataFrame, person: str, *,
                        relative_threshold: float = 0.25,
                        min_height: float = 50.0) -> Genotype:
    """Call a genotype from a reference sample's labelled peaks.

    A labelled peak is an allele when its height reaches ``min_height`` RFU and
    ``relative_threshold`` times the highest labelled peak of its locus (which keeps
    stutter and noise out). Replicate rows of one allele are pooled: mean size, highest
    height, summed area. Off-ladder peaks are kept as ``OL@<size>`` so that later
    samples can match them by size.
    """
    if peaks.empty:
        raise ChimerismError(f"reference {person}: the export holds no peaks")
    samples = tuple(dict.fromkeys(peaks["sample"]))
    labelled = peaks[(peaks["locus"] != "") & (peaks["allele"] != "")].copy()
    if labelled.empty:
        src = peaks["file"].iloc[0] if "file" in peaks else "export"
        raise ChimerismError(f"{src}: reference {person} has no labelled alleles; export "
                             f"the sizing table with allele calls (Marker and Allele)")
    labelled["signal"] = labelled["height"].where(labelled["height"].notna(),
                                                  labelled["area"])
    geno = Genotype(person, samples)
    for locus, rows in labelled.groupby("locus", sort=False):
        flags: list = []
        rows = rows.copy()
        ol = rows["allele"] == "OL"
        if ol.any():
            if rows.loc[ol, "size"].isna().any():
                flags.append("off_ladder_without_size")
            rows.loc[ol, "allele"] = [f"OL@{s:.1f}" for s in rows.loc[ol, "size"]]
            flags.append("off_ladder_allele")
        signal = rows["signal"].to_numpy(dtype=float)
        if np.all(np.isnan(signal)):
            keep = np.ones(len(rows), dtype=bool)      # genotype table without heights
        else:
            top = np.nanmax(signal)
            keep = (signal >= min_height) & (signal >= relative_threshold * top)
        kept = rows[keep]
        if kept.empty:
            flags.append("no_allele_above_threshold")
            geno.flags[locus] = flags
            continue
        alleles = []
        for name, grp in kept.groupby("allele", sort=False):
            alleles.append(Allele(str(name), float(grp["size"].mean()),
                                  float(grp["height"].max()), float(grp["area"].sum())))
        alleles.sort(key=lambda a: _allele_sort_key(a.name))
        if len(alleles) > 2:
            flags.append("more_than_two_alleles")
        geno.loci[locus] = tuple(alleles)
        dyes = rows["dye"].dropna()
        if not dyes.empty:
            geno.dyes[locus] = dyes.mode().iloc[0]
        if flags:
            geno.flags[locus] = flags
    unlabelled = peaks[(peaks["allele"] == "") & (peaks["locus"] != "")]
    for locus in set(unlabelled["locus"]) & set(geno.loci):
        h = unlabelled.loc[unlabelled["locus"] == locus, "height"].to_numpy(dtype=float)
        top = max(a.height for a in geno.loci[locus])
        if np.any(h >= max(min_height, relative_threshold * top)):
            geno.flags.setdefault(locus, []).append("unlabelled_peak_ignored")
    return geno


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
