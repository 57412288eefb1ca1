"""Acute and chronic GVHD rules: overall grade, steroid refractoriness, NIH severity.

Every function here is pure: organ stages or scores in, a grade or category out.
The published tables they implement are quoted in each docstring; the tests work
through the same tables by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AGVHD_ORGANS", "AGVHD_STAGE_MAX", "CGVHD_ORGANS", "NIH_SEVERITIES",
    "magic_grade", "glucksberg_grade", "lung_score_from_fev1", "nih_global_severity",
    "StageSet", "agvhd_progressed", "agvhd_improved", "steroid_refractory",
    "steroid_refractory_day", "OrganScores", "cgvhd_progressed", "cgvhd_improved",
    "steroid_refractory_chronic", "PREDNISONE_EQUIVALENT",
]

AGVHD_ORGANS = ("skin", "liver", "upper_gi", "lower_gi")
# Upper GI is staged 0-1 in both systems; the other organs 0-4.
AGVHD_STAGE_MAX = {"skin": 4, "liver": 4, "upper_gi": 1, "lower_gi": 4}
CGVHD_ORGANS = ("skin", "mouth", "eyes", "gi", "liver", "lungs", "joints_fascia", "genital")
NIH_SEVERITIES = ("none", "mild", "moderate", "severe")


def _check_stages(skin, liver, upper_gi, lower_gi) -> None:
    for name, value in zip(AGVHD_ORGANS, (skin, liver, upper_gi, lower_gi)):
        if isinstance(value, bool) or not isinstance(value, int) \
                or not 0 <= value <= AGVHD_STAGE_MAX[name]:
            raise ValueError(f"{name} stage must be an integer 0-{AGVHD_STAGE_MAX[name]}, "
                             f"not {value!r}")


def magic_grade(skin: int, liver: int, upper_gi: int, lower_gi: int) -> int:
    """Overall acute GVHD grade 0-4 by the MAGIC criteria.

    Harris AC et al., "International, multicenter standardization of acute
    graft-versus-host disease clinical data collection: a report from the
    Mount Sinai Acute GVHD International Consortium", Biol Blood Marrow
    Transplant 2016;22:4-10, Table 2 (overall clinical grade):

    - grade 0: no stage 1-4 in any organ;
    - grade I: stage 1-2 skin without liver, upper GI or lower GI involvement;
    - grade II: stage 3 rash and/or stage 1 liver and/or stage 1 upper GI
      and/or stage 1 lower GI;
    - grade III: stage 2-3 liver and/or stage 2-3 lower GI, with stage 0-3 skin
      and/or stage 0-1 upper GI;
    - grade IV: stage 4 skin, liver or lower GI, with stage 0-1 upper GI.

    The grade is therefore the worst grade any single organ reaches.
    """
    _check_stages(skin, liver, upper_gi, lower_gi)
    by_skin = (0, 1, 1, 2, 4)[skin]
    by_liver = (0, 2, 3, 3, 4)[liver]
    by_upper = (0, 2)[upper_gi]
    by_lower = (0, 2, 3, 3, 4)[lower_gi]
    return max(by_skin, by_liver, by_upper, by_lower)


def glucksberg_grade(skin: int, liver: int, upper_gi: int, lower_gi: int) -> int:
    """Overall acute GVHD grade 0-4 by the modified Glucksberg (Seattle) consensus.

    Przepiorka D et al., "1994 Consensus Conference on Acute GVHD Grading",
    Bone Marrow Transplant 1995;15:825-828, Table 2 (the Glucksberg grades
    without the performance-status criterion):

    ======  ===========  ===========  ===========
    grade   skin         liver        gut
    ======  ===========  ===========  ===========
    I       stage 1-2    0            0
    II      stage 3 or   stage 1 or   stage 1
    III     --           stage 2-3 or stage 2-4
    IV      stage 4 or   stage 4      --
    ======  ===========  ===========  ===========

    The consensus stages a single "gut" organ: lower-GI diarrhoea volume, with
    persistent nausea (upper GI) counting as gut stage 1. So the gut stage is
    ``max(lower_gi, upper_gi)``. Unlike MAGIC, gut stage 4 alone is grade III.
    """
    _check_stages(skin, liver, upper_gi, lower_gi)
    gut = max(lower_gi, upper_gi)
    by_skin = (0, 1, 1, 2, 4)[skin]
    by_liver = (0, 2, 3, 3, 4)[liver]
    by_gut = (0, 2, 3, 3, 3)[gut]
    return max(by_skin, by_liver, by_gut)


def lung_score_from_fev1(fev1_percent_predicted: float) -> int:
    """NIH 2014 lung score from FEV1 (% predicted).

    Jagasia MH et al., "National Institutes of Health Consensus Development
    Project on Criteria for Clinical Trials in Chronic Graft-versus-Host
    Disease: I. The 2014 Diagnosis and Staging Working Group Report", Biol
    Blood Marrow Transplant 2015;21:389-401, Figure 1 (organ scoring):
    FEV1 >= 80% scores 0, 60-79% scores 1, 40-59% scores 2, <= 39% scores 3.
    Values between the printed integer bands (e.g. 79.5) fall to the lower band.
    """
    f = float(fev1_percent_predicted)
    if not 0 <= f <= 200:
        raise ValueError(f"FEV1 % predicted must be between 0 and 200, not {f!r}")
    if f >= 80:
        return 0
    if f >= 60:
        return 1
    if f >= 40:
        return 2
    return 3


def nih_global_severity(skin: int, mouth: int, eyes: int, gi: int, liver: int,
                        lungs: int, joints_fascia: int, genital: int | None = 0) -> str:
    """Chronic GVHD global severity ("none", "mild", "moderate", "severe").

    Jagasia et al. 2015 (the 2014 NIH consensus, reference in
    :func:`lung_score_from_fev1`), Table 5 (global severity):

    - mild: 1 or 2 organs involved with no more than score 1, plus lung score 0;
    - moderate: 3 or more organs involved with no more than score 1, or at
      least 1 organ (not lung) with score 2, or lung score 1;
    - severe: at least 1 organ with score 3, or lung score 2 or 3.

    "none" when no organ scores above 0. ``lungs`` must be the lung score the
    consensus uses for global severity: the FEV1-based score whenever FEV1 is
    available (see :func:`lung_score_from_fev1`). Scores must be those
    attributed to chronic GVHD: the consensus excludes an organ whose whole
    abnormality has another documented cause. ``genital`` may be None when not
    examined (counted as not involved).
    """
    scores = {"skin": skin, "mouth": mouth, "eyes": eyes, "gi": gi, "liver": liver,
              "lungs": lungs, "joints_fascia": joints_fascia,
              "genital": 0 if genital is None else genital}
    for name, value in scores.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3:
            raise ValueError(f"{name} score must be an integer 0-3, not {value!r}")
    lung = scores["lungs"]
    others = [v for k, v in scores.items() if k != "lungs"]
    involved = sum(v > 0 for v in scores.values())
    if max(others) == 3 or lung >= 2:
        return "severe"
    if lung == 1 or max(others) == 2 or involved >= 3:
        return "moderate"
    if involved >= 1:
        return "mild"
    return "none"


# --- steroid-refractory acute GVHD -------------------------------------------------


@dataclass(frozen=True)
class StageSet:
    """Acute GVHD organ stages on one assessment day (days from any fixed origin)."""

    day: float
    skin: int
    liver: int
    upper_gi: int
    lower_gi: int

    def stages(self) -> tuple[int, int, int, int]:
        return (self.skin, self.liver, self.upper_gi, self.lower_gi)


def agvhd_progressed(before: StageSet, after: StageSet) -> bool:
    """Progression: at least one organ worse by >= 1 stage and no organ better.

    The organ-level response definitions used by MAGIC and the CIBMTR
    (MacMillan ML et al., Biol Blood Marrow Transplant 2002;8:387-394;
    Martin PJ et al., Biol Blood Marrow Transplant 2012;18:1150-1163).
    """
    d = [a - b for a, b in zip(after.stages(), before.stages())]
    return any(x > 0 for x in d) and not any(x < 0 for x in d)


def agvhd_improved(before: StageSet, after: StageSet) -> bool:
    """Improvement (partial or complete response): some organ better, none worse."""
    d = [a - b for a, b in zip(after.stages(), before.stages())]
    return any(x < 0 for x in d) and not any(x > 0 for x in d)


def steroid_refractory_day(assessments: Sequence[StageSet], steroid_start: float,
                           *, progression_day: float = 3, no_response_day: float = 7
                           ) -> tuple[bool | None, float | None]:
    """:func:`steroid_refractory` and the day it is established.

    The day is that of the assessment that shows it: the first progression at
    least ``progression_day`` days after the steroid start, or else the first
    assessment at least ``no_response_day`` days after it, if not improved.
    """
    seq = sorted(assessments, key=lambda a: a.day)
    base = [a for a in seq if a.day <= steroid_start]
    if not base:
        return None, None
    baseline = base[-1]
    after = [a for a in seq if a.day > steroid_start]
    progressed = [a for a in after if a.day - steroid_start >= progression_day
                  and agvhd_progressed(baseline, a)]
    late = [a for a in after if a.day - steroid_start >= no_response_day]
    if late and not agvhd_improved(baseline, late[0]):
        first = late[0].day
        if progressed and progressed[0].day < first:
            first = progressed[0].day
        return True, first
    if progressed:
        return True, progressed[0].day
    if late:
        return False, None
    return None, None


def steroid_refractory(assessments: Sequence[StageSet], steroid_start: float,
                       *, progression_day: float = 3, no_response_day: float = 7
                       ) -> bool | None:
    """Steroid-refractory acute GVHD from serial organ stages.

    Rule (Martin PJ et al., "First- and second-line systemic treatment of
    acute graft-versus-host disease: recommendations of the American Society
    of Blood and Marrow Transplantation", Biol Blood Marrow Transplant
    2012;18:1150-1163, as adopted by MAGIC): GVHD is steroid-refractory if,
    compared with the organ stages when systemic steroids started, it

    1. has progressed (:func:`agvhd_progressed`) at any assessment made at
       least ``progression_day`` (3) days after the steroid start, or
    2. has not improved (:func:`agvhd_improved`) at the first assessment made
       at least ``no_response_day`` (7) days after the steroid start.

    The baseline is the last assessment on or before ``steroid_start`` (same
    time origin as ``StageSet.day``). Returns None when there is no baseline
    or no assessment late enough to decide (not assessable), False when
    neither condition holds.
    """
    return steroid_refractory_day(assessments, steroid_start,
                                  progression_day=progression_day,
                                  no_response_day=no_response_day)[0]


# --- steroid-refractory chronic GVHD ------------------------------------------------

# mg of prednisone per mg of the steroid (equal anti-inflammatory doses: prednisone
# 5 mg = prednisolone 5 mg = methylprednisolone 4 mg = dexamethasone 0.75 mg =
# hydrocortisone 20 mg)
PREDNISONE_EQUIVALENT = {"prednisone": 1.0, "prednisolone": 1.0,
                         "methylprednisolone": 1.25, "dexamethasone": 20 / 3,
                         "hydrocortisone": 0.25}
_CGVHD_SCORED = ("skin", "mouth", "eyes", "gi", "liver", "lungs", "joints_fascia")


@dataclass(frozen=True)
class OrganScores:
    """NIH chronic GVHD organ scores (0-3) on one assessment day; ``fev1``: FEV1 %
    predicted when measured (it then judges the lungs)."""

    day: float
    skin: int
    mouth: int
    eyes: int
    gi: int
    liver: int
    lungs: int
    joints_fascia: int
    fev1: float | None = None

    def scores(self) -> dict[str, int]:
        return {o: getattr(self, o) for o in _CGVHD_SCORED}


def _organ_changes(before: OrganScores, after: OrganScores) -> tuple[bool, bool]:
    """(some organ worse, some organ better) by the NIH 2014 response criteria,
    read on the organ scores.

    Lee SJ et al., "Measuring therapeutic response in chronic graft-versus-host
    disease. National Institutes of Health Consensus Development Project on
    Criteria for Clinical Trials in Chronic GVHD: IV. The 2014 Response Criteria
    Working Group Report", Biol Blood Marrow Transplant 2015;21:984-999: an organ
    progresses when its score rises by 1 or more, except from 0 to 1; the lungs
    progress when FEV1 falls by 10 or more points of % predicted (the lung score
    when FEV1 is not measured at both visits). An organ improves when its score
    falls (FEV1 rises by 10 points or more). Mouth, liver and joint changes are
    read on their 0-3 scores, since the table does not hold the OMRS, liver
    tests or P-ROM the criteria measure them with.
    """
    worse = better = False
    for organ, a in before.scores().items():
        b = after.scores()[organ]
        if organ == "lungs" and before.fev1 is not None and after.fev1 is not None:
            worse |= after.fev1 <= before.fev1 - 10
            better |= after.fev1 >= before.fev1 + 10
            continue
        worse |= b - a >= 1 and not (a == 0 and b == 1)
        better |= b < a
    return worse, better


def cgvhd_progressed(before: OrganScores, after: OrganScores) -> bool:
    """Progression: some organ worse (see :func:`_organ_changes`)."""
    return _organ_changes(before, after)[0]


def cgvhd_improved(before: OrganScores, after: OrganScores) -> bool:
    """Complete or partial response: some organ better and none worse."""
    worse, better = _organ_changes(before, after)
    return better and not worse


def _daily_dose(doses, first: int, last: int) -> np.ndarray:
    """Prednisone mg/kg/day on each day first..last (overlapping periods add up)."""
    out = np.zeros(last - first + 1)
    for a, b, mgkg in doses:
        lo, hi = max(int(a), first), min(int(b), last)
        if lo <= hi:
            out[lo - first:hi - first + 1] += mgkg
    return out


def steroid_refractory_chronic(assessments: Sequence[OrganScores],
                               doses: Sequence[tuple[float, float, float]], *,
                               progression_dose: float = 1.0, progression_days: int = 7,
                               persistence_dose: float = 0.5, persistence_days: int = 28
                               ) -> tuple[bool | None, float | None]:
    """Steroid-refractory chronic GVHD by the NIH definition, and the day it shows.

    Martin PJ et al., "National Institutes of Health Consensus Development
    Project on Criteria for Clinical Trials in Chronic Graft-versus-Host Disease:
    VI. The 2014 Clinical Trial Design Working Group Report", Biol Blood Marrow
    Transplant 2015;21:1343-1359: chronic GVHD is steroid-refractory when it

    1. progresses despite prednisone >= 1 mg/kg/day for at least 1 week, or
    2. persists without improvement despite prednisone >= 0.5 mg/kg/day (or
       1 mg/kg every other day) for at least 4 weeks.

    ``doses``: (first day, last day, prednisone-equivalent mg/kg/day) periods,
    inclusive (alternate-day dosing as its daily average). An assessment
    qualifies for rule 1 when each of the ``progression_days`` days before it had
    at least ``progression_dose``, for rule 2 likewise with ``persistence_days``
    and ``persistence_dose``. It is compared with the last assessment on or
    before the start of that run of steroid days. Returns (True, day of the
    first qualifying assessment), (False, None) when some assessment was made
    after steroids began and none qualifies, (None, None) when there was no
    steroid or no assessment after it. The 2005 criteria (2 weeks, 4-8 weeks)
    are ``progression_days=14, persistence_days=56``.
    """
    seq = sorted(assessments, key=lambda a: a.day)
    if not seq or not doses:
        return None, None
    first = int(min(min(a.day for a in seq), min(d[0] for d in doses)))
    last = int(max(a.day for a in seq))
    daily = _daily_dose(doses, first, last)
    started = min(d[0] for d in doses)
    after = [a for a in seq if a.day > started]
    if not after:
        return None, None
    for a in after:
        day = int(a.day)
        for need_dose, need_days, rule in ((progression_dose, progression_days, 1),
                                           (persistence_dose, persistence_days, 2)):
            window = daily[day - need_days - first:day - first] \
                if day - need_days >= first else None
            if window is None or len(window) < need_days or (window < need_dose - 1e-9).any():
                continue
            # the start of the run of steroid days at this dose that ends here
            run = day - need_days
            while run - 1 >= first and daily[run - 1 - first] >= need_dose - 1e-9:
                run -= 1
            base = [b for b in seq if b.day <= run] or [seq[0]]
            baseline = base[-1]
            if baseline is a:
                continue
            if rule == 1 and cgvhd_progressed(baseline, a):
                return True, a.day
            if rule == 2 and any(a.scores().values()) and not cgvhd_improved(baseline, a):
                return True, a.day
    return False, None
