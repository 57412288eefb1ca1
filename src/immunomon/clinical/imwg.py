"""IMWG response categories and progression from laboratory values.

Kumar S et al., "International Myeloma Working Group consensus criteria for
response and minimal residual disease assessment in multiple myeloma",
Lancet Oncol 2016;17:e328-e346, Panel 3 (standard IMWG response criteria),
which keeps the uniform criteria of Durie BGM et al., Leukemia 2006;20:1467-1473
and Rajkumar SV et al., Blood 2011;117:4691-4695.

Units: serum M-protein in g/dL, urine M-protein in mg/24 h, serum free light
chains (FLC) in mg/L, marrow plasma cells in percent. (IMWG states FLC limits
in mg/dL: 10 mg/dL = 100 mg/L.)

Soft-tissue plasmacytomas, bone imaging, calcium (CRAB) and the confirmation
of each category by a second consecutive assessment are not derived here:
record such a category explicitly in the response table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "IMWG_CATEGORIES", "IMWG_ORDER", "FLC_RATIO_NORMAL", "LabValues", "Measurable",
    "measurable_disease", "flc_difference", "update_nadir", "imwg_progression",
    "imwg_category", "imwg_series",
]

# Best to worst; "NE" (not evaluable) is allowed in tables but never derived.
IMWG_CATEGORIES = ("sCR", "CR", "VGPR", "PR", "MR", "SD", "PD")
IMWG_ORDER = {c: i for i, c in enumerate(IMWG_CATEGORIES)}
# Normal kappa/lambda ratio of the serum FLC assay (Katzenstein 2002), used by IMWG.
FLC_RATIO_NORMAL = (0.26, 1.65)

# Measurable disease (Kumar 2016 Panel 3 notes; Rajkumar 2011).
SERUM_MEASURABLE_G_DL = 1.0
URINE_MEASURABLE_MG_24H = 200.0
FLC_MEASURABLE_MG_L = 100.0


# Lab values are decimals typed by people: 0.9 of a fall computed in binary floating
# point may come out as 0.8999999999999999. Thresholds are met within this tolerance.
_TOL = 1e-9


def _ge(a: float, b: float) -> bool:
    return a >= b - _TOL


def _nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


@dataclass(frozen=True)
class LabValues:
    """Disease measurements at one assessment; None (or NaN) = not done.

    ``serum_ife``/``urine_ife``: immunofixation positive (True) or negative
    (False). ``marrow_clonal``: clonal plasma cells in marrow by
    immunohistochemistry or flow (True present, False absent).
    ``new_lesion``: new bone lesion or plasmacytoma (True) or not.
    """

    serum_m: float | None = None
    urine_m: float | None = None
    kappa: float | None = None
    lambda_: float | None = None
    marrow_pc: float | None = None
    serum_ife: bool | None = None
    urine_ife: bool | None = None
    marrow_clonal: bool | None = None
    new_lesion: bool | None = None

    def get(self, name):
        v = getattr(self, name)
        return None if _nan(v) else v


@dataclass(frozen=True)
class Measurable:
    """Which parameters were measurable at baseline, and the involved light chain."""

    serum: bool
    urine: bool
    flc: bool
    marrow: bool
    involved: str | None  # "kappa", "lambda" or None


def measurable_disease(baseline: LabValues) -> Measurable:
    """Measurable disease at baseline (Kumar 2016 Panel 3; Rajkumar 2011).

    Serum M-protein >= 1 g/dL, urine M-protein >= 200 mg/24 h; the FLC assay
    counts only when neither is measurable: involved FLC >= 10 mg/dL (100 mg/L)
    with an abnormal kappa/lambda ratio. Marrow plasma cells count only when
    none of those is measurable and the baseline marrow holds >= 30% plasma
    cells (the PR rule; progression by marrow needs no such baseline).
    """
    s, u = baseline.get("serum_m"), baseline.get("urine_m")
    serum = s is not None and s >= SERUM_MEASURABLE_G_DL
    urine = u is not None and u >= URINE_MEASURABLE_MG_24H
    involved = _involved_chain(baseline)
    flc = False
    if not (serum or urine) and involved is not None:
        inv = baseline.get("kappa") if involved == "kappa" else baseline.get("lambda_")
        flc = inv >= FLC_MEASURABLE_MG_L
    pc = baseline.get("marrow_pc")
    marrow = not (serum or urine or flc) and pc is not None and pc >= 30
    return Measurable(serum, urine, flc, marrow, involved)


def _involved_chain(v: LabValues) -> str | None:
    k, lam = v.get("kappa"), v.get("lambda_")
    if k is None or lam is None or lam <= 0:
        return None
    ratio = k / lam
    if ratio > FLC_RATIO_NORMAL[1]:
        return "kappa"
    if ratio < FLC_RATIO_NORMAL[0]:
        return "lambda"
    return None


def flc_difference(v: LabValues, involved: str | None) -> float | None:
    """Involved minus uninvolved free light chain (mg/L), the IMWG "dFLC"."""
    k, lam = v.get("kappa"), v.get("lambda_")
    if involved is None or k is None or lam is None:
        return None
    return k - lam if involved == "kappa" else lam - k


def _flc_ratio_normal(v: LabValues) -> bool | None:
    k, lam = v.get("kappa"), v.get("lambda_")
    if k is None or lam is None or lam <= 0:
        return None
    return FLC_RATIO_NORMAL[0] <= k / lam <= FLC_RATIO_NORMAL[1]


def _reduction(now, base) -> float | None:
    """Fractional fall from baseline (0.5 = halved); None if not computable."""
    if now is None or base is None or base <= 0:
        return None
    return (base - now) / base


def imwg_progression(current: LabValues, nadir: LabValues, measurable: Measurable) -> bool:
    """Progressive disease relative to the nadir (Kumar 2016 Panel 3, "PD").

    An increase of >= 25% from the lowest response value in one or more of:

    - serum M-protein, with an absolute increase >= 0.5 g/dL; or an increase of
      >= 1 g/dL when the lowest value was >= 5 g/dL;
    - urine M-protein, with an absolute increase >= 200 mg/24 h;
    - only without measurable serum and urine M-protein: the involved minus
      uninvolved FLC difference, with an absolute increase > 10 mg/dL (100 mg/L);
    - only without measurable serum, urine or FLC disease: marrow plasma-cell
      percentage, with an absolute increase >= 10 percentage points;

    or a new bone lesion or plasmacytoma (``new_lesion``). ``nadir`` holds, per
    parameter, the lowest value seen so far (baseline included).
    """
    if current.get("new_lesion"):
        return True

    def rose(now, low, absolute, strict=False):
        if now is None or low is None:
            return False
        inc = now - low
        big = inc > absolute + _TOL if strict else _ge(inc, absolute)
        return _ge(inc, 0.25 * low) and big

    s, s0 = current.get("serum_m"), nadir.get("serum_m")
    if rose(s, s0, 0.5) or (s is not None and s0 is not None and _ge(s0, 5)
                             and _ge(s - s0, 1)):
        return True
    if rose(current.get("urine_m"), nadir.get("urine_m"), 200):
        return True
    if not (measurable.serum or measurable.urine):
        if rose(flc_difference(current, measurable.involved),
                flc_difference(nadir, measurable.involved), FLC_MEASURABLE_MG_L, strict=True):
            return True
        if not measurable.flc and rose(current.get("marrow_pc"), nadir.get("marrow_pc"), 10):
            return True
    return False


def imwg_category(current: LabValues, baseline: LabValues, nadir: LabValues | None = None
                  ) -> str:
    """IMWG response category of one assessment (Kumar 2016 Panel 3).

    ``baseline`` defines measurable disease and the reductions; ``nadir`` (per
    parameter, lowest value so far including baseline; defaults to baseline)
    defines progression. In order:

    - PD: :func:`imwg_progression`;
    - CR: negative serum and urine immunofixation and < 5% marrow plasma cells;
      sCR if also a normal FLC ratio and no clonal marrow plasma cells
      (IFE-negative without a marrow result can be no better than VGPR);
    - VGPR: M-protein detectable by immunofixation but not electrophoresis
      (serum and urine M-protein 0 with positive IFE), or >= 90% fall in serum
      M-protein plus urine M-protein < 100 mg/24 h; for disease measurable only
      by FLC, a >= 90% fall in dFLC (Rajkumar 2011);
    - PR: >= 50% fall in serum M-protein plus a >= 90% fall in urine M-protein
      or urine < 200 mg/24 h; when neither is measurable, >= 50% fall in dFLC;
      when FLC are not measurable either, >= 50% fall in marrow plasma cells
      from a baseline >= 30%;
    - MR: 25-49% fall in serum M-protein and 50-89% fall in urine M-protein;
    - SD: none of the above.

    Each criterion applies to the parameters measurable at baseline; a
    required value missing at this assessment means the criterion is not met.
    """
    nadir = nadir or baseline
    m = measurable_disease(baseline)
    if not (m.serum or m.urine or m.flc or m.marrow):
        raise ValueError("no measurable disease at baseline (serum M-protein >= 1 g/dL, "
                         "urine M-protein >= 200 mg/24 h, involved FLC >= 100 mg/L with an "
                         "abnormal ratio, or marrow plasma cells >= 30%): record the IMWG "
                         "category explicitly")
    if imwg_progression(current, nadir, m):
        return "PD"

    pc = current.get("marrow_pc")
    if current.get("serum_ife") is False and current.get("urine_ife") is False \
            and pc is not None and pc < 5:
        ratio_normal = _flc_ratio_normal(current)
        if ratio_normal and current.get("marrow_clonal") is False:
            return "sCR"
        # Disease measurable only by FLC also needs a normal ratio for CR (Rajkumar 2011).
        if not m.flc or ratio_normal:
            return "CR"

    s, u = current.get("serum_m"), current.get("urine_m")
    rs = _reduction(s, baseline.get("serum_m")) if m.serum else None
    ru = _reduction(u, baseline.get("urine_m")) if m.urine else None
    dflc = _reduction(flc_difference(current, m.involved),
                      flc_difference(baseline, m.involved)) if m.flc else None
    rpc = _reduction(pc, baseline.get("marrow_pc")) if m.marrow else None

    def every(pairs):
        """Every parameter measurable at baseline meets its condition."""
        return all(ok() for measured, ok in pairs if measured)

    if m.serum or m.urine:
        # Not detectable by electrophoresis (only by immunofixation).
        ife_only = every([(m.serum, lambda: s == 0), (m.urine, lambda: u == 0)])
        urine_below_100 = u < 100 if u is not None else not m.urine
        if m.serum:
            vgpr = rs is not None and _ge(rs, 0.9) and urine_below_100
        else:
            vgpr = u is not None and u < 100
        if ife_only or vgpr:
            return "VGPR"
        if every([(m.serum, lambda: rs is not None and _ge(rs, 0.5)),
                  (m.urine, lambda: u is not None and (_ge(ru, 0.9) or u < 200))]):
            return "PR"
        if every([(m.serum, lambda: rs is not None and _ge(rs, 0.25)),
                  (m.urine, lambda: ru is not None and _ge(ru, 0.5))]):
            return "MR"
        return "SD"
    if m.flc:
        if dflc is not None and _ge(dflc, 0.9):
            return "VGPR"
        if dflc is not None and _ge(dflc, 0.5):
            return "PR"
        return "SD"
    if rpc is not None and _ge(rpc, 0.5):
        return "PR"
    return "SD"


def update_nadir(nadir: LabValues, current: LabValues, involved: str | None) -> LabValues:
    """The lowest value so far of each parameter after ``current``.

    Serum and urine M-protein and marrow plasma cells take their own minimum;
    the light chains are kept as the pair with the smallest involved-minus-
    uninvolved difference, because IMWG measures FLC progression on that
    difference. (IMWG speaks of the lowest *confirmed* value; we take the
    lowest measured value, the stricter reading.)
    """
    def low(name):
        a, b = nadir.get(name), current.get(name)
        if a is None:
            return b
        return a if b is None else min(a, b)

    kappa, lam = nadir.get("kappa"), nadir.get("lambda_")
    d_old, d_new = flc_difference(nadir, involved), flc_difference(current, involved)
    if d_new is not None and (d_old is None or d_new < d_old):
        kappa, lam = current.get("kappa"), current.get("lambda_")
    return LabValues(serum_m=low("serum_m"), urine_m=low("urine_m"), kappa=kappa,
                     lambda_=lam, marrow_pc=low("marrow_pc"))


def imwg_series(assessments: list[LabValues]) -> list[tuple[str | None, bool]]:
    """Category and progression flag of each assessment after the first (baseline).

    The first item is the baseline: its entry is ``(None, False)``. Each later
    assessment is judged against the baseline (reductions) and the nadir of
    all earlier assessments, baseline included (progression).
    """
    if not assessments:
        return []
    baseline = assessments[0]
    m = measurable_disease(baseline)
    nadir = update_nadir(LabValues(), baseline, m.involved)
    out: list[tuple[str | None, bool]] = [(None, False)]
    for current in assessments[1:]:
        cat = imwg_category(current, baseline, nadir)
        out.append((cat, cat == "PD"))
        nadir = update_nadir(nadir, current, m.involved)
    return out
