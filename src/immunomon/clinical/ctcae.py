"""CTCAE grades of laboratory values, versions 3.0 and 5.0.

The thresholds live in ``ctcae.yaml`` beside this module (sources cited there
and in docs/clinical.md); this module reads them once and applies them:

- :func:`ctcae_grade` grades one value: ``ctcae_grade("Neutrophil count
  decreased", 0.8, unit="10^9/L", lln=1.8)`` is 3 in both versions;
- :func:`grade_values` does the same for arrays (one term, one unit);
- :func:`resolve_term` finds a term by any version's name, short name or a
  common synonym; :func:`lab_terms` lists the terms a laboratory test can raise
  (potassium: hypokalemia and hyperkalemia).

Conventions, in the words of the criteria: a high term reaches a grade when the
value is above the grade's threshold (">3.0 - 5.0 x ULN"), a low term when it is
below it ("<1500 - 1000/mm3"); a value exactly on a boundary stays in the lower
grade unless the printed range includes its lower end ("1.5 - 3.0 x baseline").
Values are compared with a relative tolerance of 1e-9, so 3 x 40 U/L is exactly
"3.0 x ULN". Grades defined by symptoms or interventions are not reached by a
number: a value is graded as if the patient were asymptomatic.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from ..errors import ClinicalDataError

__all__ = ["VERSIONS", "Analyte", "Criterion", "TermSpec", "ctcae_grade", "grade_values",
           "resolve_term", "lab_terms", "analyte_for_test", "normalize_unit", "convert",
           "term_keys", "term_name", "normalize_version"]

VERSIONS = ("3.0", "5.0")
_TOL = 1e-9


@dataclass(frozen=True)
class Analyte:
    key: str
    name: str
    kind: str                  # count, mass, molar, activity, ratio, time, rate
    molar_mass: float | None = None
    valence: int | None = None
    tests: tuple[str, ...] = ()


@dataclass(frozen=True)
class Criterion:
    """One printed threshold: ``op`` ``factor`` x ``ref`` (+ ``offset`` ``unit``).

    ``ref`` is "abs" (``factor`` is the threshold in ``unit``), "uln", "lln" or
    "baseline".
    """

    op: str
    ref: str
    factor: float
    unit: str | None = None
    offset: float = 0.0
    text: str = ""


@dataclass(frozen=True)
class TermSpec:
    """One CTCAE term in one version, with its grading criteria."""

    key: str
    version: str
    term: str
    short: str
    analyte: Analyte
    direction: str             # "low" or "high"
    grades: dict = field(default_factory=dict)                # grade -> (Criterion, ...)
    abnormal_baseline: dict | None = None
    anticoagulated: dict | None = None
    not_graded_by_value: str | None = None


# ----------------------------------------------------------------------------- units
# canonical unit -> (dimension, factor to the dimension's base unit)
# bases: count /mm3 (= /uL), mass g/L, molar mmol/L, activity U/L, time s, rate mL/min
_UNITS = {
    "/mm3": ("count", 1.0), "10^9/L": ("count", 1000.0), "10^6/L": ("count", 1.0),
    "/L": ("count", 1e-6), "10^12/L": ("count", 1e6),
    "g/dL": ("mass", 10.0), "g/L": ("mass", 1.0), "mg/dL": ("mass", 0.01),
    "mg/L": ("mass", 0.001), "mg/mL": ("mass", 1.0), "ug/mL": ("mass", 0.001),
    "ug/dL": ("mass", 1e-5),
    "mmol/L": ("molar", 1.0), "umol/L": ("molar", 0.001), "mol/L": ("molar", 1000.0),
    "nmol/L": ("molar", 1e-6), "mEq/L": ("equivalent", 1.0),
    "U/L": ("activity", 1.0), "ukat/L": ("activity", 60.0), "nkat/L": ("activity", 0.06),
    "ratio": ("ratio", 1.0), "s": ("time", 1.0), "mL/min": ("rate", 1.0),
}
_SPELLINGS = {
    "/mm3": ["/mm3", "/mm^3", "cells/mm3", "/ul", "cells/ul", "/microl", "n/ul",
             "10^6/l", "x10^6/l"],
    "10^9/L": ["10^9/l", "x10^9/l", "10e9/l", "x10e9/l", "10*9/l", "x10*9/l", "10^3/ul",
               "x10^3/ul", "10e3/ul", "10^3/mm3", "x10^3/mm3", "k/ul", "thou/ul", "gpt/l", "gi/l",
               "giga/l"],
    "/L": ["/l", "cells/l"], "10^12/L": ["10^12/l", "x10^12/l", "tpt/l", "ti/l"],
    "g/dL": ["g/dl", "gm/dl", "g/100ml", "g%"], "g/L": ["g/l", "gm/l"],
    "mg/dL": ["mg/dl", "mg%", "mg/100ml"], "mg/L": ["mg/l"], "mg/mL": ["mg/ml"],
    "ug/mL": ["ug/ml", "mcg/ml"], "ug/dL": ["ug/dl", "mcg/dl"],
    "mmol/L": ["mmol/l", "mm/l", "mmol"], "umol/L": ["umol/l", "micromol/l", "mcmol/l"],
    "mol/L": ["mol/l"], "nmol/L": ["nmol/l"], "mEq/L": ["meq/l"],
    "U/L": ["u/l", "iu/l", "ui/l", "units/l"], "ukat/L": ["ukat/l"], "nkat/L": ["nkat/l"],
    "ratio": ["", "ratio", "inr", "1", "-"],
    "s": ["s", "sec", "secs", "second", "seconds"],
    "mL/min": ["ml/min", "ml/min/1.73m2", "ml/min/1.73m^2", "ml/min/1.73"],
}
_UNIT_KEY = {spelling: unit for unit, spellings in _SPELLINGS.items() for spelling in spellings}
# which dimensions an analyte's values may come in
_ALLOWED = {"count": {"count"}, "mass": {"mass", "molar", "equivalent"},
            "molar": {"mass", "molar", "equivalent"}, "activity": {"activity"},
            "ratio": {"ratio"}, "time": {"time"}, "rate": {"rate"}}


def _squash_unit(text: str) -> str:
    s = str(text).strip().replace("µ", "u").replace("μ", "u").replace("×", "x")
    s = s.replace("³", "3").replace("⁹", "^9").replace("¹²", "^12")
    return re.sub(r"\s+", "", s).lower()


def normalize_unit(text, analyte: Analyte | None = None) -> str:
    """The canonical spelling of a unit ("x10e9 /L" -> "10^9/L", "mEq/l" -> "mEq/L").

    "G/L" means giga per litre for a cell count and grams per litre otherwise.
    Raises ``ValueError`` for a unit we do not know, or one that does not fit
    the analyte (a count in mg/dL).
    """
    raw = "" if text is None else str(text)
    key = _squash_unit(raw)
    if analyte is not None and analyte.kind == "count" and key == "g/l":
        unit = "10^9/L"
    else:
        unit = _UNIT_KEY.get(key)
    if unit is None:
        raise ValueError(f"unknown unit {raw!r}")
    if analyte is not None and _UNITS[unit][0] not in _ALLOWED[analyte.kind]:
        raise ValueError(f"unit {raw!r} does not fit {analyte.name} "
                         f"({analyte.kind} values)")
    return unit


def _to_base(value, unit: str, analyte: Analyte, dimension: str):
    """``value`` in ``unit`` expressed in the base unit of ``dimension``.

    Mass, molar and equivalent concentrations convert through mmol/L with the
    analyte's molar mass and valence.
    """
    dim, factor = _UNITS[unit]
    v = np.asarray(value, dtype=float) * factor
    if dim == dimension:
        return v
    chemical = ("mass", "molar", "equivalent")
    if dim not in chemical or dimension not in chemical:
        raise ValueError(f"{unit} cannot be converted to {dimension} units for "
                         f"{analyte.name}")
    need = {"mass": analyte.molar_mass, "equivalent": analyte.valence}
    for d in (dim, dimension):
        if d in need and not need[d]:
            raise ValueError(f"{analyte.name} values in {unit} cannot be converted to "
                             f"{dimension} units (no {'molar mass' if d == 'mass' else 'valence'})")
    mmol = {"molar": v, "mass": v / (analyte.molar_mass or 1.0) * 1000.0,
            "equivalent": v / (analyte.valence or 1)}[dim]
    return {"molar": mmol, "mass": mmol * (analyte.molar_mass or 1.0) / 1000.0,
            "equivalent": mmol * (analyte.valence or 1)}[dimension]


def convert(value, from_unit: str, to_unit: str, analyte: Analyte):
    """Convert values of ``analyte`` between canonical units (mass, molar, mEq, counts)."""
    if from_unit == to_unit:
        return np.asarray(value, dtype=float)
    dim_to, factor_to = _UNITS[to_unit]
    return _to_base(value, from_unit, analyte, dim_to) / factor_to


# ----------------------------------------------------------------------------- the table
_CRITERION = re.compile(
    r"^(?P<op>>=|<=|>|<)?\s*"
    r"(?:(?P<ref1>uln|lln|baseline)\s*\+\s*(?P<offset>[\d.]+)\s*(?P<ounit>\S+)"
    r"|(?P<factor>[\d.]+)?\s*(?P<ref>uln|lln|baseline)"
    r"|(?P<value>[\d.]+)\s*(?P<unit>\S+)?)$")


def _criterion(text, direction: str) -> Criterion:
    m = _CRITERION.match(str(text).strip())
    if not m:
        raise ValueError(f"ctcae.yaml: cannot read criterion {text!r}")
    op = m["op"] or (">" if direction == "high" else "<")
    if m["ref1"]:
        return Criterion(op, m["ref1"], 1.0, normalize_unit(m["ounit"]), float(m["offset"]),
                         str(text))
    if m["ref"]:
        return Criterion(op, m["ref"], float(m["factor"] or 1.0), text=str(text))
    unit = normalize_unit(m["unit"]) if m["unit"] else "ratio"
    return Criterion(op, "abs", float(m["value"]), unit, text=str(text))


def _grades(mapping, direction) -> dict:
    return {int(g): tuple(_criterion(c, direction) for c in crits)
            for g, crits in sorted(mapping.items())}


def _key(text) -> str:
    return re.sub(r"[\s_\-]+", " ", str(text).strip().lower())


@dataclass(frozen=True)
class _Table:
    analytes: dict
    specs: dict                 # (key, version) -> TermSpec
    names: dict                 # normalised name -> key
    tests: dict                 # normalised test name -> analyte key
    keys: tuple


@functools.lru_cache(maxsize=1)
def _table() -> _Table:
    from ..yamlio import load
    text = resources.files(__package__).joinpath("ctcae.yaml").read_text(encoding="utf-8")
    doc = load(text)
    analytes = {k: Analyte(k, v["name"], v["kind"], v.get("molar_mass"), v.get("valence"),
                           tuple(str(t) for t in v.get("tests", ())))
                for k, v in doc["analytes"].items()}
    specs, names = {}, {}
    tests = {_key(t): a.key for a in analytes.values() for t in (a.key, *a.tests)}
    for key, entry in doc["terms"].items():
        analyte, direction = analytes[entry["analyte"]], entry["direction"]
        spellings = [key, *entry.get("aliases", ())]
        for version in VERSIONS:
            v = entry.get(version)
            if v is None:
                continue
            spellings += [v["term"], v.get("short", v["term"])]
            specs[(key, version)] = TermSpec(
                key=key, version=version, term=v["term"], short=v.get("short", v["term"]),
                analyte=analyte, direction=direction,
                grades=_grades(v.get("grades", {}), direction),
                abnormal_baseline=_grades(v["abnormal_baseline"], direction)
                if "abnormal_baseline" in v else None,
                anticoagulated=_grades(v["anticoagulated"], direction)
                if "anticoagulated" in v else None,
                not_graded_by_value=v.get("not_graded_by_value"))
        for s in spellings:
            names.setdefault(_key(s), key)    # the first term keeps a shared name
    return _Table(analytes, specs, names, tests, tuple(doc["terms"]))


def normalize_version(version) -> str:
    """"3", "3.0", "v3", 3 -> "3.0"; likewise for 5."""
    s = str(version).strip().lower().lstrip("v")
    for v in VERSIONS:
        if s in (v, v.split(".")[0], v + "0"):
            return v
    raise ClinicalDataError(f"CTCAE version {version!r} is not supported; use one of "
                            f"{', '.join(VERSIONS)}")


def term_keys() -> tuple[str, ...]:
    """Every term of the table, by key (``neutrophil_count_decreased``, ...)."""
    return _table().keys


def resolve_term(term, version="3.0") -> TermSpec:
    """The term ``term`` (any version's name, short name, key or synonym) in ``version``."""
    version = normalize_version(version)
    t = _table()
    key = t.names.get(_key(term))
    if key is None:
        raise ClinicalDataError(f"{term!r} is not a CTCAE term graded from laboratory "
                                "values here; see docs/clinical.md for the list")
    spec = t.specs.get((key, version))
    if spec is None:
        other = [v for v in VERSIONS if (key, v) in t.specs]
        raise ClinicalDataError(f"{term!r} has no laboratory grading in CTCAE v{version} "
                                f"(only in v{', v'.join(other)})")
    return spec


def term_name(term, version="3.0") -> str:
    """The official name of ``term`` in ``version`` (None if it is not a lab term)."""
    try:
        return resolve_term(term, version).term
    except ClinicalDataError:
        return None


def analyte_for_test(test) -> Analyte | None:
    """The analyte a laboratory test name or code measures, or None."""
    t = _table()
    key = t.tests.get(_key(test))
    return t.analytes[key] if key else None


def lab_terms(test, version="3.0") -> list[TermSpec]:
    """The terms of ``version`` a laboratory test can raise (both directions)."""
    version = normalize_version(version)
    analyte = analyte_for_test(test)
    if analyte is None:
        return []
    t = _table()
    return [spec for (key, v), spec in t.specs.items()
            if v == version and spec.analyte.key == analyte.key]


# ----------------------------------------------------------------------------- grading
def _abs_unit(crits: dict, unit: str | None, analyte: Analyte) -> str | None:
    """The printed unit to grade in: the value's own, else one of its dimension."""
    printed = list(dict.fromkeys(c.unit for cs in crits.values() for c in cs
                                 if c.ref == "abs"))
    if not printed or unit is None:
        return printed[0] if printed else None
    if unit in printed:
        return unit
    same = [u for u in printed if _UNITS[u][0] == _UNITS[unit][0]]
    return same[0] if same else printed[0]


def _compare(op: str, v: np.ndarray, t: np.ndarray) -> np.ndarray:
    tol = _TOL * np.maximum(np.abs(t), 1e-300)
    if op == ">":
        return v - t > tol
    if op == ">=":
        return v - t >= -tol
    if op == "<":
        return t - v > tol
    return t - v >= -tol


def _branch_grades(crits: dict, spec: TermSpec, v, unit, refs) -> tuple[np.ndarray, np.ndarray]:
    """Grades 0-4 and, per value, a missing reference that could raise it ("" if none)."""
    n = len(v)
    grade = np.zeros(n, dtype=np.int64)
    need = {}
    chosen = _abs_unit(crits, unit, spec.analyte)
    for g in sorted(crits, reverse=True):
        sat = np.zeros(n, dtype=bool)
        missing = np.full(n, "", dtype=object)
        for c in crits[g]:
            if c.ref == "abs":
                if c.unit != chosen:
                    continue               # the same threshold printed in another unit
                if unit is None and chosen != "ratio":
                    raise ClinicalDataError(
                        f"{spec.term} (CTCAE v{spec.version}): give the unit of the value; "
                        f"the criteria are in {chosen}")
                sat |= _compare(c.op, v, np.full(n, convert(c.factor, c.unit, unit or chosen,
                                                             spec.analyte)))
                continue
            ref = refs[c.ref]
            known = ~np.isnan(ref)
            t = c.factor * np.where(known, ref, 0.0)
            if c.offset:
                if unit is None:
                    raise ClinicalDataError(f"{spec.term} (CTCAE v{spec.version}): give the "
                                            "unit of the value; the criteria add an amount "
                                            "to the ULN")
                t = t + convert(c.offset, c.unit, unit, spec.analyte)
            sat |= known & _compare(c.op, v, t)
            missing[~known & (missing == "")] = c.ref
        grade[(grade == 0) & sat] = g
        need[g] = np.where(sat, "", missing)
    blocked = np.full(n, "", dtype=object)
    for g, miss in need.items():
        hit = (miss != "") & (g > grade) & (blocked == "")
        blocked[hit] = miss[hit]
    return grade, blocked


def grade_values(term, values, *, version="3.0", unit=None, uln=None, lln=None,
                 baseline=None, anticoagulated=False) -> np.ndarray:
    """CTCAE grades (0-4) of an array of values of one term in one unit.

    ``uln``, ``lln`` and ``baseline`` are scalars or arrays in the values' unit
    (NaN: unknown). Raises :class:`~immunomon.ClinicalDataError` when a value
    cannot be graded: unknown term or unit, a grade that depends on a missing
    ULN/LLN, or a term the version grades by symptoms only.
    """
    spec = resolve_term(term, version)
    if spec.not_graded_by_value:
        raise ClinicalDataError(f"{spec.term} (CTCAE v{spec.version}): "
                                f"{spec.not_graded_by_value}; record it as a "
                                "clinician-graded adverse event")
    v = np.atleast_1d(np.asarray(values, dtype=float))
    n = len(v)

    def arr(x):
        a = np.atleast_1d(np.asarray(np.nan if x is None else x, dtype=float))
        return np.broadcast_to(a, (n,)).copy()

    refs = {"uln": arr(uln), "lln": arr(lln), "baseline": arr(baseline)}
    canonical = None
    if unit is not None and not (isinstance(unit, float) and np.isnan(unit)):
        try:
            canonical = normalize_unit(unit, spec.analyte)
        except ValueError as exc:
            raise ClinicalDataError(f"{spec.term} (CTCAE v{spec.version}): {exc}") from None
    if np.isnan(v).any():
        raise ClinicalDataError(f"{spec.term}: a value is missing")
    anti = np.broadcast_to(np.atleast_1d(np.asarray(anticoagulated, dtype=bool)), (n,))
    grade, blocked = _branch_grades(spec.grades, spec, v, canonical, refs)
    base = refs["baseline"]
    if spec.abnormal_baseline is not None:
        limit = refs["uln"] if spec.direction == "high" else refs["lln"]
        abnormal = ~np.isnan(base) & ~np.isnan(limit) & (
            base > limit if spec.direction == "high" else base < limit)
        if abnormal.any():
            g2, b2 = _branch_grades(spec.abnormal_baseline, spec, v, canonical, refs)
            grade, blocked = np.where(abnormal, g2, grade), np.where(abnormal, b2, blocked)
    if spec.anticoagulated is not None and anti.any():
        if np.isnan(base[anti]).any():
            raise ClinicalDataError(f"{spec.term} (CTCAE v{spec.version}): under "
                                    "anticoagulation the grade is a multiple of the "
                                    "baseline; give the baseline value")
        g3, b3 = _branch_grades(spec.anticoagulated, spec, v, canonical, refs)
        grade, blocked = np.where(anti, g3, grade), np.where(anti, b3, blocked)
    bad = np.flatnonzero(blocked != "")
    if len(bad):
        i = bad[0]
        what = {"uln": "upper limit of normal (uln)", "lln": "lower limit of normal (lln)",
                "baseline": "baseline value"}[blocked[i]]
        raise ClinicalDataError(
            f"{spec.term} (CTCAE v{spec.version}): the grade of {v[i]:g} depends on the "
            f"{what}; give it")
    return grade


def ctcae_grade(term, value, *, version="3.0", unit=None, uln=None, lln=None,
                baseline=None, anticoagulated=False) -> int:
    """CTCAE grade (0-4) of one laboratory value.

    ``term``: the adverse-event term in any version's wording ("Neutrophil count
    decreased", "Neutrophils/granulocytes (ANC/AGC)", "neutropenia"); ``unit``:
    the value's unit ("/mm3", "10^9/L", "g/dL", "mmol/L", "mg/dL", "umol/L",
    "mEq/L", ...), needed when the criteria are absolute numbers and converted
    as needed; ``uln``/``lln``: the laboratory's limits of normal, in the value's
    unit; ``baseline``: the patient's baseline value (version 5.0 grades ALT,
    AST, ALP, GGT, bilirubin and fibrinogen against an abnormal baseline, and
    creatinine against any baseline); ``anticoagulated``: INR under
    anticoagulation (5.0). Grade 5 (death) never comes from a value.
    """
    return int(grade_values(term, [value], version=version, unit=unit, uln=uln, lln=lln,
                            baseline=baseline, anticoagulated=anticoagulated)[0])
