"""Acute and chronic GVHD rules: overall grade, steroid refractoriness, NIH severity.

Every function here is pure: organ stages or scores in, a grade or category out.
The published tables they implement are quoted in each docstring; the tests work
through the same tables by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AGVHD_ORGANS", "AGVHD_STAGE_MAX", "CGVHD_ORGANS", "NIH_SEVERITIES",
    "magic_grade", "glucksberg_grade", "lung_score_from_fev1", "nih_global_severity",
    "StageSet", "agvhd_progressed", "agvhd_improved", "steroid_refractory",
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
    seq = sorted(assessments, key=lambda a: a.day)
    base = [a for a in seq if a.day <= steroid_start]
    if not base:
        return None
    baseline = base[-1]
    after = [a for a in seq if a.day > steroid_start]
    if any(agvhd_progressed(baseline, a) for a in after
           if a.day - steroid_start >= progression_day):
        return True
    late = [a for a in after if a.day - steroid_start >= no_response_day]
    if late:
        return not agvhd_improved(baseline, late[0])
    return None
