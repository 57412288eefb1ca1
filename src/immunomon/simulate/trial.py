"""The demo trial: a whole synthetic study with planted effects (see docs/pipelines.md)."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ImmunomonError
from .blood import DEFAULT_FREQUENCIES, _check_count, _fmt, pbmc_sample

# ======================================================================================
# The demo trial
# ======================================================================================
# A whole synthetic study shaped like the phase-1 trial of lenalidomide maintenance
# after reduced-intensity allogeneic transplant for myeloma: per patient, a clinical
# course (lenalidomide with interruptions, acute and chronic GVHD, IMWG responses,
# relapse, death, adverse events), blood immune counts at each visit, donor
# chimerism in whole blood and CD3+ cells, and STR genotypes of donor and recipient.
# ``trial`` builds it in memory (fast; no files); ``write_trial`` writes FCS files,
# STR exports, clinical CSVs, a manifest and the truth tables.  docs/pipelines.md
# describes the model and the planted effects.

TRIAL_VISITS: tuple[str, ...] = ("pre", "M1", "M2", "M3", "M4", "M6", "M9", "M12")
TRIAL_STR_VISITS: tuple[str, ...] = ("pre", "M3", "M6", "M12")
TRIAL_LINEAGES: tuple[str, ...] = ("WB", "CD3")
TRIAL_KIT = "Identifiler"
_VISIT_MONTH = {"M1": 1, "M2": 2, "M3": 3, "M4": 4, "M6": 6, "M9": 9, "M12": 12}

# Planted effects.  The first three are fold changes applied at every visit when the
# patient is taking lenalidomide (1.0 = no effect): Treg as a share of CD4 T cells
# (so Treg cells/uL change by the same factor against the patient's own course off
# the drug), NK cells/uL, and the HLA-DR+ share of CD4 and CD8 T cells.  The last is
# the hazard ratio of relapse/progression while acute GVHD grade II-IV is present
# (from its onset on, as the ``agvhd_2_4`` interval of immunomon.clinical).
DEFAULT_EFFECTS: dict[str, float] = {
    "Treg": 0.6,
    "NK cells": 1.5,
    "Activated T": 1.8,
    "agvhd_relapse_hr": 0.25,
}
NULL_EFFECTS: dict[str, float] = {k: 1.0 for k in DEFAULT_EFFECTS}

# Populations of the truth table (names of the post-transplant template).
TRIAL_POPULATIONS: tuple[str, ...] = (
    "Leukocytes", "Granulocytes", "Monocytes", "Lymphocytes", "T cells", "CD4 T", "CD8 T",
    "DN T", "Treg", "Activated T", "Activated CD4 T", "Activated CD8 T", "B cells",
    "NK cells", "CD56bright NK", "CD56dim NK", "Dendritic cells", "mDC", "pDC")

# Daily hazards of the clinical course (per day, from the pre-lenalidomide visit on).
_H_AGVHD_ON, _H_AGVHD_OFF = 0.003, 0.0008      # acute GVHD onset, on / off lenalidomide
_H_RELAPSE = 0.0012                            # relapse/progression without GVHD
_H_NRM, _H_NRM_GVHD = 0.0001, 0.0012           # non-relapse death, without / with GVHD
_H_DEATH_AFTER_RELAPSE = 0.004
_LEN_DAYS = 336                                # twelve 28-day cycles
_LEN_DOSE = 10.0                               # mg

# Acute GVHD organ stages at onset (skin, liver, upper GI, lower GI) and their weights.
_AGVHD_ONSET = (((3, 0, 0, 0), 0.35), ((2, 0, 0, 1), 0.2), ((3, 0, 1, 1), 0.15),
                ((1, 0, 0, 2), 0.15), ((2, 2, 0, 0), 0.1), ((4, 0, 0, 0), 0.05))

# Adverse events: term, probability per patient, grades, relation, action while on drug.
_AE_TYPES = (
    ("Fatigue", 0.4, (1, 2), "possible", "none"),
    ("Rash maculo-papular", 0.25, (1, 2), "probable", "none"),
    ("Diarrhea", 0.2, (1, 2), "possible", "none"),
    ("Platelet count decreased", 0.3, (2, 3), "probable", "none"),
    ("Lung infection", 0.25, (3,), "unlikely", "none"),
    ("Peripheral sensory neuropathy", 0.1, (1,), "possible", "none"),
)

# Immune reconstitution after reduced-intensity PBSC transplant, median cells/uL
# (Storek J et al., Am J Hematol 2008;83:...; Bosch M et al., Curr Opin Hematol 2012;
# Ogonek J et al., Front Immunol 2016): NK cells recover within a month, CD8 before
# CD4, B cells after a lag of 4-6 months.  value(day) for day >= 60.
def _saturating(day, start, final, tau):
    return final - (final - start) * np.exp(-(np.maximum(day, 60.0) - 60.0) / tau)


def _kinetics(day: float) -> dict[str, float]:
    return {
        "CD4 T": float(_saturating(day, 120.0, 450.0, 300.0)),
        "CD8 T": float(_saturating(day, 200.0, 550.0, 150.0)),
        "NK cells": 250.0,
        "B cells": float(5.0 + 245.0 / (1.0 + np.exp(-(day - 200.0) / 40.0))),
        "Dendritic cells": float(_saturating(day, 8.0, 20.0, 120.0)),
        "bright_share": float(0.15 + 0.25 * np.exp(-(max(day, 60.0) - 60.0) / 120.0)),
        "treg_share": 0.07, "act_cd4_share": 0.15, "act_cd8_share": 0.30,
        "myeloid": 4000.0,
    }


# STR loci of Identifiler: dye, smallest common allele, its size (bp), common alleles.
_STR_LOCI: dict[str, tuple[str, int, float, tuple[int, ...]]] = {
    "D8S1179": ("B", 8, 123.0, (10, 11, 12, 13, 14, 15, 16)),
    "D21S11": ("B", 24, 185.0, (27, 28, 29, 30, 31, 32)),
    "D7S820": ("B", 6, 255.0, (8, 9, 10, 11, 12)),
    "CSF1PO": ("B", 6, 305.0, (9, 10, 11, 12, 13)),
    "D3S1358": ("G", 12, 112.0, (14, 15, 16, 17, 18)),
    "TH01": ("G", 4, 163.0, (6, 7, 8, 9, 10)),
    "D13S317": ("G", 8, 215.0, (8, 9, 11, 12, 13, 14)),
    "D16S539": ("G", 5, 252.0, (9, 10, 11, 12, 13)),
    "D2S1338": ("G", 15, 307.0, (17, 18, 19, 20, 22, 23, 24, 25)),
    "D19S433": ("Y", 9, 102.0, (12, 13, 14, 15, 16)),
    "vWA": ("Y", 11, 155.0, (14, 15, 16, 17, 18, 19)),
    "TPOX": ("Y", 6, 222.0, (8, 9, 10, 11, 12)),
    "D18S51": ("Y", 7, 262.0, (12, 13, 14, 15, 16, 17, 18, 19)),
    "D5S818": ("R", 7, 134.0, (9, 10, 11, 12, 13)),
    "FGA": ("R", 17, 215.0, (19, 20, 21, 22, 23, 24, 25)),
}
_AMEL_SIZE = {"X": 107.0, "Y": 113.0}
_STR_AREA_PER_COPY = 16000.0     # peak area of one allele copy at 100% of the DNA
_STR_AREA_TO_HEIGHT = 8.0
_STR_STUTTER = 0.10           # back-stutter / parent area (the calculation's default)
_STR_HEADER = ("Dye/Sample Peak\tSample File Name\tMarker\tAllele\tSize\tHeight\tArea\t"
               "Data Point\t")


@dataclass(eq=False)
class Trial:
    """A synthetic trial and its truth (see ``trial``).

    ``tables``: the clinical tables as written to CSV (strings, ``docs/clinical.md``
    layout); ``clinical``: the same as a validated ``ClinicalData``.  ``manifest``:
    one row per FCS file and STR export (paths relative to the study folder).
    ``immune``: true cells/uL per patient, visit and population, from which the FCS
    files are drawn; ``chimerism``: true % donor per patient, visit and lineage;
    ``genotypes``: ``{patient: {"donor"|"recipient": {locus: (allele, allele)}}}``;
    ``course``: one row per patient with the days of the simulated events.
    """

    seed: int
    null: bool
    effects: dict
    tables: dict
    clinical: object
    manifest: "pd.DataFrame"
    immune: "pd.DataFrame"
    chimerism: "pd.DataFrame"
    genotypes: dict
    course: "pd.DataFrame"

    def __repr__(self):
        kind = "null " if self.null else ""
        return (f"<Trial {kind}seed={self.seed}: {len(self.course)} patients, "
                f"{int((self.manifest['kind'] == 'fcs').sum())} blood panels, "
                f"{int((self.manifest['kind'] == 'str').sum())} STR samples>")

    @property
    def patients(self) -> list[str]:
        return list(self.course["patient_id"])


def trial(seed: int = 0, *, n_patients: int = 13, null: bool = False,
          effects: dict | None = None) -> Trial:
    """A synthetic lenalidomide-after-transplant trial with planted effects.

    ``effects`` overrides entries of ``DEFAULT_EFFECTS``; ``null=True`` plants none
    (every fold change and hazard ratio 1).  Deterministic for a given ``seed``.
    """
    import pandas as pd

    if isinstance(n_patients, bool) or not isinstance(n_patients, (int, np.integer)) \
            or not 1 <= n_patients <= 999:
        raise ImmunomonError(f"n_patients must be an integer from 1 to 999, got {n_patients!r}")
    if null and effects:
        raise ImmunomonError("give either null=True or effects, not both")
    planted = dict(NULL_EFFECTS if null else DEFAULT_EFFECTS)
    for key, value in (effects or {}).items():
        if key not in DEFAULT_EFFECTS:
            raise ImmunomonError(f"effects: unknown effect {key!r}; known: "
                                 f"{', '.join(DEFAULT_EFFECTS)}")
        if not (isinstance(value, (int, float)) and value > 0):
            raise ImmunomonError(f"effects[{key!r}] = {value!r}: give a positive factor")
        planted[key] = float(value)

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 2024]))
    courses, immune, chim, genotypes, manifest = [], [], [], {}, []
    tables = {k: [] for k in ("patients", "treatments", "agvhd", "cgvhd", "responses",
                              "adverse_events", "labs", "deaths", "followup")}
    for i in range(int(n_patients)):
        pid = f"P{i + 1:02d}"
        course = _course(rng, pid, planted)
        courses.append(course)
        # dose levels, steroid courses, weights and laboratory values come from a
        # stream of their own, so the draws of everything else stay as they were
        extra = np.random.default_rng(np.random.SeedSequence([int(seed), 2024, 13, i]))
        _clinical_rows(rng, course, tables, extra)
        immune += _immune_rows(rng, course, planted)
        chim += _chimerism_rows(rng, course)
        genotypes[pid] = _genotypes(rng, course)
        manifest += _manifest_rows(course)
    frames = {name: pd.DataFrame(rows, columns=_TABLE_COLUMNS[name], dtype=object)
              for name, rows in tables.items()}
    manifest_df = pd.DataFrame(manifest, columns=list(_MANIFEST_COLUMNS))
    course_df = pd.DataFrame([{k: v for k, v in c.items()
                               if k not in ("visits", "holds", "cgvhd_steroids")}
                              for c in courses])
    for col in ("withdraw_day", "agvhd_onset", "cgvhd_onset", "relapse_day", "death_day"):
        course_df[col] = course_df[col].astype(float)
    return Trial(seed=int(seed), null=bool(null), effects=planted, tables=frames,
                 clinical=clinical_from_tables(frames), manifest=manifest_df,
                 immune=pd.DataFrame(immune, columns=["patient_id", "visit", "day",
                                                      "population", "cells_per_ul"]),
                 chimerism=pd.DataFrame(chim, columns=["patient_id", "visit", "day",
                                                       "lineage", "percent_donor"]),
                 genotypes=genotypes, course=course_df)


# -- the clinical course ---------------------------------------------------------------
_TRIAL_START = _dt.date(2021, 1, 4)


def _iso(transplant: _dt.date, day: float | None) -> str:
    return "" if day is None else (transplant + _dt.timedelta(days=int(day))).isoformat()


def _course(rng, pid: str, effects: dict) -> dict:
    """One patient's course as event days after transplant (None: did not happen)."""
    transplant = _TRIAL_START + _dt.timedelta(days=int(rng.integers(0, 540)))
    pre = int(rng.integers(60, 101))
    start = pre + int(rng.integers(3, 11))
    planned_stop = start + _LEN_DAYS - 1
    end = start + _LEN_DAYS + int(rng.integers(30, 240))     # data cut
    withdraw = start + int(rng.integers(30, 300)) if rng.random() < 0.08 else None
    u = rng.random((end - start, 4))
    gvhd = relapse = death = cause = None
    for k, day in enumerate(range(start + 1, end + 1)):
        on_len = (start <= day <= planned_stop and (withdraw is None or day <= withdraw)
                  and gvhd is None and relapse is None)
        if gvhd is None and relapse is None:
            if u[k, 0] < (_H_AGVHD_ON if on_len else _H_AGVHD_OFF):
                gvhd = day
        present = gvhd is not None and day > gvhd
        if relapse is None:
            h = _H_RELAPSE * (effects["agvhd_relapse_hr"] if present else 1.0)
            if u[k, 1] < h:
                relapse = day
            elif u[k, 2] < (_H_NRM_GVHD if present else _H_NRM):
                death, cause = day, "nrm"
                break
        elif day > relapse and u[k, 3] < _H_DEATH_AFTER_RELAPSE:
            death, cause = day, "relapse"
            break
    last = death if death is not None else end
    stops = [(planned_stop, "completed"), (last, "death")]
    if withdraw is not None:
        stops.append((withdraw, "adverse event"))
    if gvhd is not None:
        stops.append((gvhd, "acute GVHD"))
    if relapse is not None:
        stops.append((relapse, "progression"))
    len_stop, len_stop_reason = min(stops)
    visits = {"pre": pre}
    for v, m in _VISIT_MONTH.items():
        visits[v] = start + 28 * m + int(rng.integers(-3, 4))
    limit = min(x for x in (relapse, death, end + 1) if x is not None)
    visits = {v: d for v, d in visits.items() if d < limit}
    return {"patient_id": pid, "transplant_date": transplant.isoformat(),
            "pre_day": pre, "len_start": start, "len_stop": len_stop,
            "len_stop_reason": len_stop_reason, "withdraw_day": withdraw,
            "agvhd_onset": gvhd, "relapse_day": relapse, "death_day": death,
            "death_cause": cause, "end_day": last, "visits": visits,
            "sex": "M" if rng.random() < 0.6 else "F",
            "donor_sex": "M" if rng.random() < 0.5 else "F",
            "donor_type": "related" if rng.random() < 0.4 else "unrelated"}


def on_lenalidomide(course: dict, day: float) -> bool:
    """Whether the patient takes lenalidomide on ``day`` (holds excluded)."""
    if not course["len_start"] <= day <= course["len_stop"]:
        return False
    return not any(a <= day <= b for a, b in course.get("holds", ()))


_TABLE_COLUMNS = {
    "patients": ["patient_id", "sex", "age", "diagnosis", "transplant_date", "donor_type",
                 "hla_match", "conditioning", "stem_cell_source", "weight_kg"],
    "treatments": ["patient_id", "drug", "start_date", "stop_date", "dose", "dose_unit",
                   "status", "reason", "stop_reason"],
    "agvhd": ["patient_id", "date", "skin", "liver", "upper_gi", "lower_gi"],
    "cgvhd": ["patient_id", "date", "skin", "mouth", "eyes", "gi", "liver", "lungs",
              "joints_fascia", "genital", "lung_fev1_pct"],
    "responses": ["patient_id", "date", "baseline", "category"],
    "adverse_events": ["patient_id", "term", "grade", "onset_date", "resolution_date",
                       "relation", "action", "drug"],
    "labs": ["patient_id", "date", "test", "value", "unit", "lln", "uln", "baseline"],
    "deaths": ["patient_id", "date", "cause", "detail"],
    "followup": ["patient_id", "last_follow_up_date"],
}


# -- the protocol side: dose levels, steroid courses, laboratory values --------------------
_LEN_LEVELS = (10.0, 5.0, 2.5)                 # mg; the protocol's dose levels
_STOP_REASON = {"completed": "completed", "death": "death", "adverse event": "toxicity",
                "acute GVHD": "gvhd", "progression": "progression"}


def _dose_reductions(rng, c: dict, periods: list) -> tuple[list, list]:
    """Further one-level reductions of lenalidomide after grade 3 thrombocytopenia.

    The dose is reduced without interruption, so the days on the drug (and so the
    immune truth) do not change. A patient who stops for an adverse event is first
    brought down to the lowest level: the adverse event that stops the drug then
    happens there. Others are reduced once (35%), and again (40% of those).
    Returns the new periods and the adverse events (term, grade, onset,
    resolution, relation, action).
    """
    stop = c["len_stop"]
    below = [lv for lv in _LEN_LEVELS if lv < periods[-1][2] - 1e-9]
    if not below:
        return periods, []
    if c["withdraw_day"] is not None and c["len_stop_reason"] == "adverse event":
        n, gap = len(below), 3
    else:
        n = 0 if rng.random() >= 0.35 else (2 if rng.random() < 0.4 else 1)
        n, gap = min(n, len(below)), 21
    first, last = periods[-1][0] + gap, stop - gap
    if n == 0 or last - first < 4 * n:
        return periods, []
    edges = np.linspace(first, last, n + 1)
    days = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        r = int(rng.integers(int(lo), max(int(lo) + 1, int(hi) - 1)))
        for h1, h2 in c["holds"]:
            if h1 - 1 <= r <= h2 + 1:
                r = h2 + 2
        if days and r <= days[-1] + 1 or r >= stop:
            return periods, []
        days.append(r)
    periods = list(periods)
    aes = []
    for r, level in zip(days, below):
        a, b, dose, reason = periods[-1]
        periods[-1] = (a, r, dose, reason)
        periods.append((r + 1, b, level, "dose reduced"))
        aes.append(["Platelet count decreased", 3, r, r + int(rng.integers(7, 15)),
                    "probable", "dose_reduced"])
    return periods, aes


def _cgvhd_course(rng, c: dict, onset: int, weight: float, tables: dict, d) -> bool:
    """Prednisone for chronic GVHD (1 mg/kg/day in mg, halved after 2 weeks, quartered
    after 2 months); refractory in 35% of patients. Sets ``c["cgvhd_steroids"]``."""
    pid, end = c["patient_id"], c["end_day"]
    dose = 5.0 * np.ceil(weight / 5.0)                 # at least 1 mg/kg
    taper = [2.5 * np.ceil(dose * f / 2.5) for f in (0.5, 0.25)]   # whole 2.5 mg tablets
    spans = [(onset, onset + 13, dose), (onset + 14, onset + 59, taper[0]),
             (onset + 60, onset + 89, taper[1])]
    c["cgvhd_steroids"] = []
    for a, b, mg in spans:
        if a > end:
            break
        tables["treatments"].append([pid, "prednisone", d(a), d(min(b, end)), _fmt(mg), "mg",
                                     "on", "chronic GVHD", ""])
        c["cgvhd_steroids"].append((a, min(b, end)))
    return bool(rng.random() < 0.35)


# laboratory tests of the demo: test, unit, LLN, ULN, typical value, log SD per draw
_LAB_TESTS = {
    "NEUT": ("10^9/L", 1.8, 7.5, 3.4, 0.22), "PLAT": ("10^9/L", 150, 400, 205, 0.16),
    "HGB": ("g/dL", 12.0, 17.0, 12.6, 0.07), "WBC": ("10^9/L", 4.0, 10.0, 5.6, 0.18),
    "LYM": ("10^9/L", 1.0, 4.0, 1.35, 0.22), "ALT": ("U/L", None, 40, 24, 0.3),
    "AST": ("U/L", None, 40, 25, 0.25), "BILI": ("umol/L", None, 21, 10, 0.3),
    "ALP": ("U/L", None, 120, 80, 0.18), "GGT": ("U/L", None, 60, 34, 0.3),
    "CREAT": ("umol/L", None, 110, 82, 0.12), "K": ("mmol/L", 3.5, 5.1, 4.2, 0.07),
    "SODIUM": ("mmol/L", 135, 145, 139.5, 0.012), "CA": ("mmol/L", 2.15, 2.55, 2.36, 0.03),
    "MG": ("mmol/L", 0.70, 1.00, 0.82, 0.08), "GLUC": ("mmol/L", 3.9, 6.1, 5.1, 0.1),
    "ALB": ("g/L", 35, 50, 39, 0.06), "URATE": ("umol/L", None, 420, 310, 0.15),
}
_BLOOD_COUNTS = ("NEUT", "PLAT", "HGB", "WBC", "LYM")


def _lab_rows(rng, c: dict, tables: dict, aes: list, steroid_days: list) -> None:
    """Laboratory values: blood counts every 14 days and chemistry every 28 days from the
    first dose, a baseline panel at the pre-lenalidomide visit, and values that show
    each reported neutropenia and thrombocytopenia at its grade (so the laboratory and
    the reported event describe one episode)."""
    tx = _dt.date.fromisoformat(c["transplant_date"])
    pid, end, start = c["patient_id"], c["end_day"], c["len_start"]
    # each patient's own level, then visit-to-visit noise (both on the log scale)
    level = {t: v[3] * float(np.exp(rng.normal(0.0, 0.6 * v[4]))) for t, v in _LAB_TESTS.items()}
    counts = set(range(start, end + 1, 14))
    chem = set(range(start, end + 1, 28))
    # values inside reported episodes: neutrophils and platelets at the reported grade
    episodes = []
    ranges = {("NEUT", 3): (0.55, 0.95), ("NEUT", 4): (0.2, 0.45),
              ("PLAT", 2): (52, 72), ("PLAT", 3): (28, 47), ("PLAT", 4): (12, 22)}
    for term, grade, onset, resolution, *_ in aes:
        test = {"Neutrophil count decreased": "NEUT", "Platelet count decreased": "PLAT"}.get(term)
        if test is None or (test, grade) not in ranges or onset > end:
            continue
        stop = min(resolution if resolution is not None else onset + 14, end)
        episodes.append((test, onset, stop, ranges[(test, grade)]))
        counts.update(x for x in (onset, stop + 1) if x <= end)
    draws = [(c["pre_day"], t) for t in _LAB_TESTS]
    draws += [(day, t) for day in sorted(counts) for t in _BLOOD_COUNTS]
    draws += [(day, t) for day in sorted(chem) for t in _LAB_TESTS if t not in _BLOOD_COUNTS]
    for day, test in sorted(draws, key=lambda x: (x[0], list(_LAB_TESTS).index(x[1]))):
        unit, lln, uln, _, sd = _LAB_TESTS[test]
        value = level[test] * float(np.exp(rng.normal(0.0, sd)))
        on_drug = on_lenalidomide(c, day)
        steroid = any(a <= day <= b for a, b in steroid_days)
        if on_drug and test in ("NEUT", "PLAT", "WBC"):
            value *= 0.85                            # mild myelosuppression
        if steroid:
            value *= {"GLUC": 1.45, "LYM": 0.55, "NEUT": 1.3, "K": 0.93}.get(test, 1.0)
        for etest, a, b, (lo, hi) in episodes:
            if etest == test and a <= day <= b:
                value = float(rng.uniform(lo, hi))
        digits = 2 if value < 10 else (1 if value < 100 else 0)
        tables["labs"].append([pid, _iso(tx, day), test, f"{value:.{digits}f}", unit,
                               "" if lln is None else _fmt(lln), _fmt(uln),
                               "yes" if day == c["pre_day"] else ""])


def _clinical_rows(rng, c: dict, tables: dict, extra=None) -> None:
    """Append one patient's rows (strings, CSV layout) to ``tables``; sets ``c["holds"]``.

    ``extra``: the patient's second random stream (dose levels, steroid courses for
    chronic GVHD, weight, laboratory values); ``rng`` draws exactly what it drew
    before these were added.
    """
    extra = extra if extra is not None else np.random.default_rng(0)
    tx = _dt.date.fromisoformat(c["transplant_date"])
    pid, end = c["patient_id"], c["end_day"]

    def d(day):
        return _iso(tx, day)

    tables["patients"].append([
        pid, c["sex"], str(int(rng.integers(42, 68))), "multiple myeloma", d(0),
        c["donor_type"], "10/10" if c["donor_type"] == "related" or rng.random() < 0.8
        else "9/10", "RIC", "PBSC"])
    weight = float(np.clip(extra.normal(76.0 if c["sex"] == "M" else 66.0, 11.0), 45, 130))
    tables["patients"][-1].append(f"{weight:.0f}")

    # lenalidomide: one period, one interruption for neutropenia (dose reduced after grade 4)
    start, stop = c["len_start"], c["len_stop"]
    holds, periods, aes = [], [(start, stop, _LEN_DOSE, "")], []
    if stop - start > 40 and rng.random() < 0.45:
        h1 = int(rng.integers(start + 14, stop - 20))
        h2 = h1 + int(rng.integers(6, 15))
        grade = 4 if rng.random() < 0.3 else 3
        holds.append((h1, h2))
        if grade == 4:
            periods = [(start, h2, _LEN_DOSE, ""), (h2 + 1, stop, 5.0, "dose reduced")]
        aes.append(["Neutrophil count decreased", grade, h1, h2, "probable", "interrupted"])
    c["holds"] = holds
    periods, reductions = _dose_reductions(extra, c, periods)
    aes += reductions
    for k, (a, b, dose, reason) in enumerate(periods):
        last = k == len(periods) - 1
        tables["treatments"].append([pid, "lenalidomide", d(a), d(b), _fmt(dose), "mg", "on",
                                     reason, _STOP_REASON[c["len_stop_reason"]] if last
                                     else ""])
    for a, b in holds:
        tables["treatments"].append([pid, "lenalidomide", d(a), d(b), "", "", "held",
                                     "neutropenia", ""])
    if c["withdraw_day"] is not None and c["len_stop_reason"] == "adverse event":
        w = c["withdraw_day"]
        aes.append(["Rash maculo-papular", 3, w, min(w + 21, end), "probable", "withdrawn"])

    # acute GVHD: onset stages, steroids, then response or progression
    o = c["agvhd_onset"]
    if o is not None:
        stages, weights = zip(*_AGVHD_ONSET)
        s = list(stages[rng.choice(len(stages), p=np.array(weights) / sum(weights))])
        refractory = rng.random() < 0.2
        caps = (4, 4, 1, 4)
        for k, offset in enumerate((0, 7, 14, 28, 56)):
            if o + offset > end:
                break
            if k > 0:
                step = 1 if (refractory and k == 1) else -1
                s = [min(max(x + step, 0), cap) if x > 0 else 0 for x, cap in zip(s, caps)]
            tables["agvhd"].append([pid, d(o + offset), *map(str, s)])
        tables["treatments"].append([pid, "methylprednisolone", d(o), d(min(o + 42, end)),
                                     "2", "mg/kg", "on", "acute GVHD", ""])
    # chronic GVHD: after acute GVHD in half the patients, de novo in a few
    if (o is not None and rng.random() < 0.5) or (o is None and rng.random() < 0.1):
        onset = max(o + 60 if o is not None else 0, 120) + int(rng.integers(0, 121))
        if c["pre_day"] < onset <= end:
            eyes = int(rng.random() < 0.5)
            scores = ["1", "1", str(eyes), "0", "0", "0", "0", "", ""]
            tables["cgvhd"].append([pid, d(onset), *scores])
            refractory = _cgvhd_course(extra, c, onset, weight, tables, d)
            if refractory and onset + 14 <= end:
                # worse after two weeks of prednisone 1 mg/kg/day
                tables["cgvhd"].append([pid, d(onset + 14), "2", "1", str(eyes), "0", "0",
                                        "0", "0", "", ""])
            if onset + 60 <= end:
                tables["cgvhd"].append([pid, d(onset + 60), "2" if refractory else "1",
                                        "1" if refractory else "0", str(eyes), "0", "0",
                                        "0", "0", "", ""])
        c["cgvhd_onset"] = onset if c["pre_day"] < onset <= end else None
    else:
        c["cgvhd_onset"] = None

    # IMWG responses: baseline before lenalidomide, then every 3 months; PD at relapse
    levels = ["PR", "VGPR", "CR"]
    level = int(rng.choice(3, p=[0.35, 0.4, 0.25]))
    r = c["relapse_day"]
    assess = [c["pre_day"]] + [start + 84 * k for k in range(1, 12)]
    for k, day in enumerate(assess):
        if day > end or (r is not None and day >= r):
            break
        if k > 0 and level < 2 and rng.random() < 0.3:
            level += 1
        tables["responses"].append([pid, d(day), "yes" if k == 0 else "", levels[level]])
    if r is not None:
        tables["responses"].append([pid, d(r), "", "PD"])

    # other adverse events, while on lenalidomide or after
    for term, p, grades, relation, action in _AE_TYPES:
        if rng.random() >= p:
            continue
        onset = int(rng.integers(c["pre_day"], end + 1))
        resolution = onset + int(rng.integers(5, 41))
        aes.append([term, int(rng.choice(grades)), onset,
                    resolution if resolution <= end else None,
                    relation if start <= onset <= stop else "unrelated",
                    action if start <= onset <= stop else "not_applicable"])
    for term, grade, onset, resolution, relation, action in sorted(aes, key=lambda a: a[2]):
        tables["adverse_events"].append([pid, term, str(grade), d(onset), d(resolution),
                                         relation, action, "lenalidomide"])

    steroid_days = ([(o, min(o + 42, end))] if o is not None else []) + c.get("cgvhd_steroids", [])
    _lab_rows(extra, c, tables, aes, steroid_days)

    if c["death_day"] is not None:
        detail = "myeloma" if c["death_cause"] == "relapse" else (
            "GVHD" if o is not None else "infection")
        tables["deaths"].append([pid, d(c["death_day"]), c["death_cause"], detail])
    else:
        tables["followup"].append([pid, d(end)])


def clinical_from_tables(tables: dict):
    """A ``ClinicalData`` from string tables in the CSV layout (as ``read_clinical`` would)."""
    from ..clinical import build_clinical
    from ..clinical.tables import FILE_NAMES, coerce_table, read_csv_text

    typed = {}
    for name, frame in tables.items():
        typed[name] = coerce_table(read_csv_text(FILE_NAMES[name], text=_csv_text(frame)),
                                   name, FILE_NAMES[name])
    return build_clinical(typed)


def _csv_text(frame) -> str:
    import csv
    import io
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(frame.columns))
    writer.writerows(frame.astype(str).replace({"None": "", "nan": ""}).values.tolist())
    return buf.getvalue()


# -- immune counts -----------------------------------------------------------------------
_PATIENT_SD = 0.3      # between-patient SD of log levels
_VISIT_SD = 0.12       # visit-to-visit SD of log levels


def _immune_rows(rng, c: dict, effects: dict) -> list:
    keys = ("CD4 T", "CD8 T", "NK cells", "B cells", "Dendritic cells", "myeloid",
            "treg_share", "act_share")
    level = dict(zip(keys, rng.normal(0.0, _PATIENT_SD, len(keys))))
    rows = []
    for visit, day in c["visits"].items():
        noise = dict(zip(keys, rng.normal(0.0, _VISIT_SD, len(keys))))
        counts = true_counts(day, on_lenalidomide(c, day), effects,
                             {k: level[k] + noise[k] for k in keys})
        rows += [[c["patient_id"], visit, day, pop, counts[pop]] for pop in TRIAL_POPULATIONS]
    return rows


def true_counts(day: float, on_len: bool, effects: dict, log_offsets: dict | None = None
                ) -> dict[str, float]:
    """True cells/uL per population of one blood sample (``TRIAL_POPULATIONS``).

    ``log_offsets``: per-patient and per-visit deviations (natural log) of the levels
    ``CD4 T``, ``CD8 T``, ``NK cells``, ``B cells``, ``Dendritic cells``, ``myeloid``
    and of the shares ``treg_share`` and ``act_share``.
    """
    k = _kinetics(day)
    off = log_offsets or {}
    e = {name: float(np.exp(off.get(name, 0.0))) for name in
         ("CD4 T", "CD8 T", "NK cells", "B cells", "Dendritic cells", "myeloid",
          "treg_share", "act_share")}
    drug = effects if on_len else NULL_EFFECTS
    cd4, cd8 = k["CD4 T"] * e["CD4 T"], k["CD8 T"] * e["CD8 T"]
    dn = 0.06 / 0.94 * (cd4 + cd8)
    nk = k["NK cells"] * e["NK cells"] * drug["NK cells"]
    b = k["B cells"] * e["B cells"]
    dc = k["Dendritic cells"] * e["Dendritic cells"]
    treg = cd4 * min(k["treg_share"] * e["treg_share"] * drug["Treg"], 0.3)
    act4 = cd4 * min(k["act_cd4_share"] * e["act_share"] * drug["Activated T"], 0.6)
    act8 = cd8 * min(k["act_cd8_share"] * e["act_share"] * drug["Activated T"], 0.9)
    t = cd4 + cd8 + dn
    lymph = (t + b + nk + dc) / 0.97           # 3% other lymphocytes
    myeloid = k["myeloid"] * e["myeloid"]
    mono = 0.12 * myeloid
    return {
        "Leukocytes": lymph + myeloid, "Granulocytes": myeloid - mono - 0.005 * myeloid,
        "Monocytes": mono, "Lymphocytes": lymph, "T cells": t, "CD4 T": cd4, "CD8 T": cd8,
        "DN T": dn, "Treg": treg, "Activated T": act4 + act8, "Activated CD4 T": act4,
        "Activated CD8 T": act8, "B cells": b, "NK cells": nk,
        "CD56bright NK": nk * k["bright_share"], "CD56dim NK": nk * (1 - k["bright_share"]),
        "Dendritic cells": dc, "mDC": 0.6 * dc, "pDC": 0.4 * dc,
    }


def frequencies_from_counts(counts: dict[str, float], *, beads_per_test: int = 50_000,
                            sample_volume_ul: float = 50.0) -> dict[str, float]:
    """``pbmc_sample`` frequencies whose expected bead-based absolute counts are ``counts``.

    Single-platform counts are events / bead events x beads per test / volume, so
    Leukocytes / Beads = leukocytes per uL x volume / beads per test.
    """
    def split(parent_total, parts):
        out = {name: value / parent_total for name, value in parts.items()}
        last = list(parts)[-1]
        out[last] = 1.0 - sum(v for n, v in out.items() if n != last)
        return out

    leuk, lymph = counts["Leukocytes"], counts["Lymphocytes"]
    ratio = leuk * sample_volume_ul / beads_per_test
    free = 1.0 - DEFAULT_FREQUENCIES["Debris"]
    freqs = {"Beads": free / (1.0 + ratio)}
    freqs["Leukocytes"] = free - freqs["Beads"]
    basophils = 0.005 * (leuk - lymph)
    freqs.update(split(leuk, {"Lymphocytes": lymph, "Monocytes": counts["Monocytes"],
                              "Basophils": basophils, "Granulocytes": counts["Granulocytes"]}))
    t = counts["T cells"]
    freqs.update(split(lymph, {"T cells": t, "B cells": counts["B cells"],
                               "NK cells": counts["NK cells"],
                               "Dendritic cells": counts["Dendritic cells"],
                               "Other lymphocytes": 0.0}))
    freqs.update(split(t, {"CD4 T": counts["CD4 T"], "CD8 T": counts["CD8 T"],
                           "DN T": counts["DN T"]}))
    cd4, cd8 = counts["CD4 T"], counts["CD8 T"]
    freqs.update(split(cd4, {"Treg": counts["Treg"], "Activated CD4 T": counts["Activated CD4 T"],
                             "Resting CD4 T": 0.0}))
    freqs.update(split(cd8, {"Activated CD8 T": counts["Activated CD8 T"], "Resting CD8 T": 0.0}))
    nk, dc = counts["NK cells"], counts["Dendritic cells"]
    freqs.update(split(nk, {"CD56bright NK": counts["CD56bright NK"], "CD56dim NK": 0.0}))
    freqs.update(split(dc, {"mDC": counts["mDC"], "pDC": 0.0}))
    return {k: min(max(v, 0.0), 1.0) for k, v in freqs.items()}


# -- chimerism and STR genotypes ------------------------------------------------------------
def _chimerism_rows(rng, c: dict) -> list:
    """True % donor: whole blood near full donor, CD3+ mixed early and converting."""
    gap = {"WB": rng.uniform(0.0, 6.0), "CD3": rng.uniform(5.0, 40.0)}
    tau = {"WB": 150.0, "CD3": rng.uniform(120.0, 300.0)}
    rows = []
    for visit in TRIAL_STR_VISITS:
        day = c["visits"].get(visit)
        if day is None:
            continue
        for lineage in TRIAL_LINEAGES:
            value = 100.0 - gap[lineage] * np.exp(-(day - 60.0) / tau[lineage])
            rows.append([c["patient_id"], visit, day, lineage, round(float(value), 2)])
    return rows


def _draw_allele(rng, locus: str) -> str:
    return str(int(rng.choice(_STR_LOCI[locus][3])))


def _genotypes(rng, c: dict) -> dict:
    """Recipient and donor genotypes; a related donor shares each allele with p = 1/2."""
    recipient, donor = {}, {}
    for locus in _STR_LOCI:
        r = (_draw_allele(rng, locus), _draw_allele(rng, locus))
        if c["donor_type"] == "related":
            dn = tuple(r[i] if rng.random() < 0.5 else _draw_allele(rng, locus) for i in (0, 1))
        else:
            dn = (_draw_allele(rng, locus), _draw_allele(rng, locus))
        recipient[locus] = tuple(sorted(r, key=int))
        donor[locus] = tuple(sorted(dn, key=int))
    recipient["AMEL"] = ("X", "Y") if c["sex"] == "M" else ("X", "X")
    donor["AMEL"] = ("X", "Y") if c["donor_sex"] == "M" else ("X", "X")
    return {"donor": donor, "recipient": recipient}


def allele_size(locus: str, allele: str) -> float:
    """Fragment size (bp) of an allele in the simulated kit."""
    if locus == "AMEL":
        return _AMEL_SIZE[allele]
    _, smallest, size, _ = _STR_LOCI[locus]
    return size + 4.0 * (float(allele) - smallest)


def str_export(sample: str, genotypes: list[tuple[dict, float]], *, rng=None,
               cv: float = 0.03) -> str:
    """A GeneMapper per-peak report of one sample: DNA mixed from ``(genotype, share)``.

    Each allele's area is the sum over people of copies x share x a per-locus
    amplification efficiency, times log-normal noise of ``cv``, plus 10% back stutter
    from the allele one repeat longer (unlabelled where no allele is); height is
    area / 8.  Peaks lower than 10 RFU are not called (not written).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    lines = [_STR_HEADER]
    counter: dict[str, int] = {}
    loci = list(_STR_LOCI) + ["AMEL"]
    loci.sort(key=lambda lo: ("BGYR".index(_STR_LOCI[lo][0] if lo != "AMEL" else "R"),
                              allele_size(lo, genotypes[0][0][lo][0])))
    efficiency = {lo: float(np.exp(rng.normal(0.0, 0.15))) for lo in loci}
    for locus in loci:
        dye = "R" if locus == "AMEL" else _STR_LOCI[locus][0]
        amounts: dict[str, float] = {}
        for geno, share in genotypes:
            for allele in geno[locus]:
                amounts[allele] = amounts.get(allele, 0.0) + share
        areas = {a: _STR_AREA_PER_COPY * efficiency[locus] * v * float(np.exp(rng.normal(0.0, cv)))
                 for a, v in amounts.items()}
        peaks = {a: [allele_size(locus, a), area, a] for a, area in areas.items()}
        if locus != "AMEL":
            # back stutter one repeat shorter, labelled when it falls in an allele's bin
            for a, area in areas.items():
                below = str(int(a) - 1)
                extra = _STR_STUTTER * area
                if below in peaks:
                    peaks[below][1] += extra
                else:
                    peaks[below] = [allele_size(locus, a) - 4.0, extra, ""]
        for size, area, allele in sorted(peaks.values()):
            height = area / _STR_AREA_TO_HEIGHT
            if height < 10.0:
                continue
            counter[dye] = counter.get(dye, 0) + 1
            size += float(rng.normal(0.0, 0.05))
            marker = locus if allele else ""
            lines.append(f"{dye},{counter[dye]}\t{sample}.fsa\t{marker}\t{allele}\t{size:.2f}\t"
                         f"{height:.0f}\t{area:.0f}\t{int(size * 20)}\t")
    for n, size in enumerate((75.0, 100.0, 139.0, 150.0, 160.0, 200.0, 250.0, 300.0, 340.0),
                             start=1):
        lines.append(f"O,{n}\t{sample}.fsa\t\t\t{size:.2f}\t900\t9000\t{int(size * 20)}\t")
    return "\n".join(lines) + "\n"


# -- manifest and files ----------------------------------------------------------------------
_MANIFEST_COLUMNS = ("file", "kind", "patient_id", "collection_date", "visit", "material",
                     "lineage", "sample")


def _manifest_rows(c: dict) -> list:
    tx = _dt.date.fromisoformat(c["transplant_date"])
    pid, rows = c["patient_id"], []
    for visit, day in c["visits"].items():
        name = f"{pid}_{visit}"
        rows.append([f"fcs/{name}.fcs", "fcs", pid, _iso(tx, day), visit, "blood", "WB", name])
    for visit in TRIAL_STR_VISITS:
        if visit not in c["visits"]:
            continue
        for lineage in TRIAL_LINEAGES:
            name = f"{pid}_{lineage}_{visit}"
            rows.append([f"str/{name}.txt", "str", pid, _iso(tx, c["visits"][visit]), visit,
                         "blood", lineage, name])
    return rows


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_trial_fcs(trial: Trial, folder, *, events_per_sample: int = 2500,
                    only_missing: bool = False, progress=None) -> list[Path]:
    """Write the trial's FCS files (one blood tube per visit) into ``folder/fcs/``.

    Each file's events come from its own seed, derived from the trial's seed
    and the file's place in the manifest, so any subset of the files can be
    written again, alone, byte for byte. ``only_missing`` skips files that
    exist (each file is written under a temporary name, so one that exists is
    whole). ``progress(path)`` is called after each file written. Returns the
    paths written.
    """
    from ..fcs import write_fcs

    n = _check_count(events_per_sample)
    folder = Path(folder)
    (folder / "fcs").mkdir(parents=True, exist_ok=True)
    immune = trial.immune.set_index(["patient_id", "visit", "population"])["cells_per_ul"]
    fcs_rows = trial.manifest[trial.manifest["kind"] == "fcs"]
    written = []
    for k, row in enumerate(fcs_rows.itertuples(index=False)):
        path = folder / row.file
        if only_missing and path.is_file():
            continue
        counts = {p: float(immune[(row.patient_id, row.visit, p)]) for p in TRIAL_POPULATIONS}
        seed = int(np.random.SeedSequence([trial.seed, 7, k]).generate_state(1)[0])
        when = _dt.datetime.fromisoformat(row.collection_date).replace(hour=10)
        sim = pbmc_sample(n, seed=seed, frequencies=frequencies_from_counts(counts),
                          start=when)
        sim.sample.keywords["$FIL"] = f"{row.sample}.fcs"
        sim.sample.keywords["$SMNO"] = row.sample
        sim.sample.keywords["$COM"] = "Simulated post-transplant blood (immunomon demo trial)"
        write_fcs(path, sim.sample)
        written.append(path)
        if progress is not None:
            progress(path)
    return written


def write_trial(trial: Trial, folder, *, events_per_sample: int = 2500,
                fcs: bool = True) -> Path:
    """Write ``trial`` into ``folder``: FCS files, STR exports, clinical CSVs, manifest.

    Layout: ``manifest.csv``; ``fcs/<patient>_<visit>.fcs``;
    ``str/<patient>_donor.txt`` and ``str/<patient>_recipient.txt`` (pre-transplant
    references) and ``str/<patient>_<lineage>_<visit>.txt``; ``clinical/*.csv``
    (docs/clinical.md); ``truth/`` with the true immune counts, chimerism, course and
    planted effects.  Byte-for-byte reproducible for the same trial and settings.
    """
    import json

    import pandas as pd

    n = _check_count(events_per_sample)
    folder = Path(folder)
    for sub in ("fcs", "str", "clinical", "truth"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name, frame in trial.tables.items():
        _write_text(folder / "clinical" / f"{name}.csv", _csv_text(frame))

    if fcs:                      # without: write them later with write_trial_fcs
        write_trial_fcs(trial, folder, events_per_sample=n)

    str_rng = np.random.default_rng(np.random.SeedSequence([trial.seed, 11]))
    truth = trial.chimerism.set_index(["patient_id", "visit", "lineage"])["percent_donor"]
    for pid in trial.patients:
        geno = trial.genotypes[pid]
        for person in ("donor", "recipient"):
            _write_text(folder / "str" / f"{pid}_{person}.txt",
                        str_export(f"{pid}_{person}", [(geno[person], 1.0)], rng=str_rng))
    for row in trial.manifest[trial.manifest["kind"] == "str"].itertuples(index=False):
        f = float(truth[(row.patient_id, row.visit, row.lineage)]) / 100.0
        geno = trial.genotypes[row.patient_id]
        _write_text(folder / row.file, str_export(
            row.sample, [(geno["donor"], f), (geno["recipient"], 1.0 - f)], rng=str_rng))

    _write_text(folder / "manifest.csv", trial.manifest.to_csv(index=False, lineterminator="\n"))
    _write_text(folder / "truth" / "immune.csv",
                trial.immune.to_csv(index=False, lineterminator="\n", float_format="%.4f"))
    _write_text(folder / "truth" / "chimerism.csv",
                trial.chimerism.to_csv(index=False, lineterminator="\n"))
    _write_text(folder / "truth" / "course.csv",
                trial.course.to_csv(index=False, lineterminator="\n"))
    geno_rows = [{"patient_id": pid, "person": person, "locus": locus,
                  "alleles": "/".join(alleles)}
                 for pid, g in trial.genotypes.items() for person, loci in g.items()
                 for locus, alleles in loci.items()]
    _write_text(folder / "truth" / "genotypes.csv",
                pd.DataFrame(geno_rows).to_csv(index=False, lineterminator="\n"))
    _write_text(folder / "truth" / "effects.json",
                json.dumps({"seed": trial.seed, "null": trial.null, "effects": trial.effects,
                            "events_per_sample": n}, indent=2) + "\n")
    return folder

__all__ = ['write_trial_fcs', 'DEFAULT_EFFECTS', 'NULL_EFFECTS', 'TRIAL_KIT', 'TRIAL_LINEAGES', 'TRIAL_POPULATIONS', 'TRIAL_STR_VISITS', 'TRIAL_VISITS', 'Trial', 'allele_size', 'clinical_from_tables', 'frequencies_from_counts', 'on_lenalidomide', 'str_export', 'trial', 'true_counts', 'write_trial']
