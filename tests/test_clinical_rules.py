"""Clinical rules against the published tables, worked by hand.

Sources:
- MAGIC: Harris AC et al., Biol Blood Marrow Transplant 2016;22:4-10, Table 2.
- Glucksberg/Seattle consensus: Przepiorka D et al., Bone Marrow Transplant
  1995;15:825-828, Table 2.
- NIH 2014 chronic GVHD: Jagasia MH et al., Biol Blood Marrow Transplant
  2015;21:389-401, Figure 1 (lung FEV1 bands) and the global severity table.
- Steroid refractoriness: Martin PJ et al., Biol Blood Marrow Transplant
  2012;18:1150-1163.
- IMWG: Kumar S et al., Lancet Oncol 2016;17:e328-e346, Panel 3.
"""

import itertools

import pytest

from immunomon.clinical.gvhd import (
    StageSet, glucksberg_grade, lung_score_from_fev1, magic_grade, nih_global_severity,
    steroid_refractory,
)
from immunomon.clinical.imwg import (
    LabValues, imwg_category, imwg_progression, imwg_series, measurable_disease,
)

# ---------------------------------------------------------------------- MAGIC
# (skin, liver, upper GI, lower GI) -> grade, each read off Harris 2016 Table 2.
MAGIC_CASES = [
    ((0, 0, 0, 0), 0),
    ((1, 0, 0, 0), 1),   # stage 1-2 skin alone: grade I
    ((2, 0, 0, 0), 1),
    ((3, 0, 0, 0), 2),   # stage 3 rash: grade II
    ((4, 0, 0, 0), 4),   # stage 4 skin: grade IV
    ((0, 1, 0, 0), 2),   # stage 1 liver: II
    ((0, 2, 0, 0), 3),   # stage 2-3 liver: III
    ((0, 3, 0, 0), 3),
    ((0, 4, 0, 0), 4),
    ((0, 0, 1, 0), 2),   # stage 1 upper GI: II
    ((0, 0, 0, 1), 2),
    ((0, 0, 0, 2), 3),   # stage 2-3 lower GI: III
    ((0, 0, 0, 3), 3),
    ((0, 0, 0, 4), 4),   # stage 4 lower GI: IV under MAGIC
    ((2, 0, 1, 0), 2),   # skin 2 with upper GI 1: no longer "skin alone"
    ((3, 2, 1, 0), 3),   # skin 0-3 and upper GI 0-1 with liver 2: III
    ((1, 0, 1, 4), 4),
]


@pytest.mark.parametrize("stages,grade", MAGIC_CASES)
def test_magic_grade_table(stages, grade):
    assert magic_grade(*stages) == grade


# (skin, liver, upper GI, lower GI) -> grade, read off Przepiorka 1995 Table 2,
# with upper GI (persistent nausea) scored as gut stage 1.
GLUCKSBERG_CASES = [
    ((0, 0, 0, 0), 0),
    ((2, 0, 0, 0), 1),
    ((3, 0, 0, 0), 2),
    ((4, 0, 0, 0), 4),
    ((0, 1, 0, 0), 2),
    ((0, 3, 0, 0), 3),
    ((0, 4, 0, 0), 4),
    ((0, 0, 1, 0), 2),   # nausea = gut stage 1: II
    ((0, 0, 0, 2), 3),
    ((0, 0, 0, 4), 3),   # gut stage 4 is grade III in the consensus, IV in MAGIC
    ((1, 0, 1, 4), 3),
    ((4, 0, 0, 4), 4),
    ((1, 1, 0, 1), 2),
]


@pytest.mark.parametrize("stages,grade", GLUCKSBERG_CASES)
def test_glucksberg_grade_table(stages, grade):
    assert glucksberg_grade(*stages) == grade


def test_magic_and_glucksberg_differ_only_for_lower_gi_stage_4():
    # The two tables coincide except that gut stage 4 is III (consensus) vs IV (MAGIC).
    for skin, liver, upper, lower in itertools.product(range(5), range(5), range(2), range(5)):
        m = magic_grade(skin, liver, upper, lower)
        g = glucksberg_grade(skin, liver, upper, lower)
        if lower == 4 and skin < 4 and liver < 4:
            assert (m, g) == (4, 3)
        else:
            assert m == g


@pytest.mark.parametrize("bad", [(5, 0, 0, 0), (0, 0, 2, 0), (0, -1, 0, 0), (1.0, 0, 0, 0)])
def test_grades_reject_out_of_range_stages(bad):
    with pytest.raises(ValueError):
        magic_grade(*bad)
    with pytest.raises(ValueError):
        glucksberg_grade(*bad)


# ------------------------------------------------------------ NIH chronic GVHD
ZERO = dict(skin=0, mouth=0, eyes=0, gi=0, liver=0, lungs=0, joints_fascia=0, genital=0)


@pytest.mark.parametrize("scores,severity", [
    ({}, "none"),
    ({"skin": 1}, "mild"),                             # 1 organ, score 1, lung 0
    ({"skin": 1, "mouth": 1}, "mild"),                 # 2 organs, score 1
    ({"skin": 1, "mouth": 1, "eyes": 1}, "moderate"),  # 3 or more organs at score 1
    ({"mouth": 2}, "moderate"),                        # one non-lung organ at 2
    ({"lungs": 1}, "moderate"),                        # lung score 1 alone
    ({"skin": 1, "lungs": 1}, "moderate"),
    ({"lungs": 2}, "severe"),                          # lung 2 or 3
    ({"lungs": 3}, "severe"),
    ({"joints_fascia": 3}, "severe"),                  # any organ at 3
    ({"eyes": 2, "mouth": 2, "gi": 2}, "moderate"),
    ({"genital": 1, "liver": 1}, "mild"),
])
def test_nih_global_severity(scores, severity):
    assert nih_global_severity(**{**ZERO, **scores}) == severity


def test_nih_genital_not_examined_counts_as_uninvolved():
    assert nih_global_severity(**{**ZERO, "skin": 1, "mouth": 1, "genital": None}) == "mild"


@pytest.mark.parametrize("fev1,score", [
    (100, 0), (80, 0), (79, 1), (60, 1), (59, 2), (40, 2), (39, 3), (10, 3), (79.5, 1),
])
def test_lung_score_from_fev1_bands(fev1, score):
    assert lung_score_from_fev1(fev1) == score


def test_lung_rule_fev1_decides_global_severity():
    # Skin 1 only would be mild; FEV1 55% gives lung score 2 and makes it severe.
    lung = lung_score_from_fev1(55)
    assert nih_global_severity(**{**ZERO, "skin": 1, "lungs": lung}) == "severe"


# ---------------------------------------------------------- steroid-refractory
def _s(day, skin=0, liver=0, upper=0, lower=0):
    return StageSet(day, skin, liver, upper, lower)


def test_steroid_refractory_progression_after_day_3():
    seq = [_s(0, skin=3, lower=1), _s(4, skin=3, lower=2)]   # gut worse on day 4
    assert steroid_refractory(seq, 0) is True


def test_progression_before_day_3_does_not_count_if_improved_by_day_7():
    seq = [_s(0, skin=3), _s(2, skin=4), _s(7, skin=1)]
    assert steroid_refractory(seq, 0) is False


def test_no_improvement_at_day_7_is_refractory():
    assert steroid_refractory([_s(0, skin=3, liver=1), _s(7, skin=3, liver=1)], 0) is True


def test_mixed_response_at_day_7_is_not_improvement():
    # Skin better, liver worse: neither progression (skin improved) nor improvement.
    assert steroid_refractory([_s(0, skin=3, liver=1), _s(8, skin=1, liver=2)], 0) is True


def test_steroid_refractory_not_assessable():
    assert steroid_refractory([_s(5, skin=3)], 0) is None          # no baseline
    assert steroid_refractory([_s(0, skin=3), _s(5, skin=3)], 0) is None  # too early


# ------------------------------------------------------------------ IMWG
BASE = LabValues(serum_m=3.0, urine_m=400.0)


@pytest.mark.parametrize("current,category", [
    # 0.2/3.0: 93% fall, urine 50 < 100: VGPR
    (LabValues(serum_m=0.2, urine_m=50), "VGPR"),
    # 1.2/3.0: 60% fall; urine 400 -> 30: 92.5% fall: PR
    (LabValues(serum_m=1.2, urine_m=30), "PR"),
    # urine 400 -> 150 is only a 62.5% fall but < 200 mg/24 h: PR
    (LabValues(serum_m=1.2, urine_m=150), "PR"),
    # serum 60% fall but urine 400 -> 250 (37.5%, >= 200): neither PR nor MR: SD
    (LabValues(serum_m=1.2, urine_m=250), "SD"),
    # serum 3.0 -> 2.0: 33% fall; urine 400 -> 200: 50% fall, not < 200: MR
    (LabValues(serum_m=2.0, urine_m=200), "MR"),
    # serum 3.0 -> 2.4 is a 20% fall: SD
    (LabValues(serum_m=2.4, urine_m=200), "SD"),
    # not detectable on electrophoresis, IFE positive: VGPR
    (LabValues(serum_m=0, urine_m=0, serum_ife=True, urine_ife=True), "VGPR"),
    # IFE negative but marrow not done: at most VGPR
    (LabValues(serum_m=0, urine_m=0, serum_ife=False, urine_ife=False), "VGPR"),
    # IFE negative, marrow 3% plasma cells: CR
    (LabValues(serum_m=0, urine_m=0, serum_ife=False, urine_ife=False, marrow_pc=3), "CR"),
    # ... plus normal FLC ratio 12/10 = 1.2 and no clonal plasma cells: sCR
    (LabValues(serum_m=0, urine_m=0, serum_ife=False, urine_ife=False, marrow_pc=3,
               kappa=12, lambda_=10, marrow_clonal=False), "sCR"),
    # ... ratio 30/10 = 3.0 abnormal: CR only
    (LabValues(serum_m=0, urine_m=0, serum_ife=False, urine_ife=False, marrow_pc=3,
               kappa=30, lambda_=10, marrow_clonal=False), "CR"),
    # 3.0 -> 0.3 is exactly a 90% fall: VGPR (threshold inclusive)
    (LabValues(serum_m=0.3, urine_m=90), "VGPR"),
    # new bone lesion: PD whatever the M-protein
    (LabValues(serum_m=0.3, urine_m=90, new_lesion=True), "PD"),
])
def test_imwg_category_serum_and_urine(current, category):
    assert imwg_category(current, BASE) == category


@pytest.mark.parametrize("nadir_serum,current_serum,pd_", [
    (1.0, 1.5, True),    # +0.5 g/dL and +50%
    (1.0, 1.4, False),   # +0.4 g/dL: below the 0.5 g/dL absolute floor
    (0.4, 0.8, False),   # +100% but only +0.4 g/dL
    (0.0, 0.5, True),    # reappearance at 0.5 g/dL from 0
    (5.2, 6.2, True),    # nadir >= 5: +1 g/dL suffices (25% would need +1.3)
    (4.0, 4.9, False),   # nadir < 5: needs +25% = +1.0
    (4.0, 5.0, True),
])
def test_imwg_serum_progression_from_nadir(nadir_serum, current_serum, pd_):
    m = measurable_disease(BASE)
    assert imwg_progression(LabValues(serum_m=current_serum), LabValues(serum_m=nadir_serum),
                            m) is pd_


@pytest.mark.parametrize("nadir_urine,current_urine,pd_", [
    (300, 500, True),    # +200 mg and +67%
    (300, 480, False),   # +180 mg
    (1000, 1240, False), # +240 mg but only +24%
    (1000, 1250, True),
])
def test_imwg_urine_progression_from_nadir(nadir_urine, current_urine, pd_):
    m = measurable_disease(BASE)
    assert imwg_progression(LabValues(urine_m=current_urine), LabValues(urine_m=nadir_urine),
                            m) is pd_


# Light-chain-only disease: serum 0.3 g/dL and urine 50 mg are not measurable;
# kappa 400 / lambda 10 mg/L: ratio 40, kappa involved, dFLC 390 mg/L >= 100.
FLC_BASE = LabValues(serum_m=0.3, urine_m=50, kappa=400, lambda_=10)


def test_flc_only_measurability():
    m = measurable_disease(FLC_BASE)
    assert (m.serum, m.urine, m.flc, m.involved) == (False, False, True, "kappa")


@pytest.mark.parametrize("kappa,category", [
    (30, "VGPR"),   # dFLC 20: 94.9% fall
    (150, "PR"),    # dFLC 140: 64.1% fall
    (300, "SD"),    # dFLC 290: 25.6% fall (no MR for FLC-only disease)
])
def test_imwg_category_flc_only(kappa, category):
    assert imwg_category(LabValues(kappa=kappa, lambda_=10), FLC_BASE) == category


@pytest.mark.parametrize("kappa,pd_", [
    (140, True),    # dFLC 20 -> 130: +110 mg/L > 100 and > 25%
    (125, False),   # dFLC 20 -> 115: +95 mg/L
])
def test_imwg_flc_progression(kappa, pd_):
    m = measurable_disease(FLC_BASE)
    nadir = LabValues(kappa=30, lambda_=10)
    assert imwg_progression(LabValues(kappa=kappa, lambda_=10), nadir, m) is pd_


def test_imwg_marrow_only_disease():
    base = LabValues(serum_m=0.2, marrow_pc=40)
    assert imwg_category(LabValues(marrow_pc=15), base) == "PR"    # 62.5% fall
    assert imwg_category(LabValues(marrow_pc=25), base) == "SD"    # 37.5% fall
    m = measurable_disease(base)
    assert imwg_progression(LabValues(marrow_pc=26), LabValues(marrow_pc=15), m)  # +11 points
    assert not imwg_progression(LabValues(marrow_pc=24), LabValues(marrow_pc=15), m)


def test_imwg_no_measurable_disease_is_an_error():
    with pytest.raises(ValueError, match="measurable"):
        imwg_category(LabValues(serum_m=0.2), LabValues(serum_m=0.5, urine_m=100))


def test_imwg_series_uses_running_nadir():
    # 3.0 -> 1.2 (60% fall, PR) -> 0.9 (70%, PR) -> 1.3 (+0.4 from nadir 0.9: not PD;
    # 56.7% fall: PR) -> 1.5 (+0.6 >= 0.5 and >= 25% of 0.9: PD)
    seq = [LabValues(serum_m=v) for v in (3.0, 1.2, 0.9, 1.3, 1.5)]
    assert imwg_series(seq) == [(None, False), ("PR", False), ("PR", False),
                                ("PR", False), ("PD", True)]


# ------------------------------------------------------- properties of the tables
from hypothesis import given, strategies as st  # noqa: E402

_stages = st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 1), st.integers(0, 4))


@given(_stages, _stages)
def test_acute_grades_never_fall_when_an_organ_worsens(a, b):
    # Both tables grade by the worst organ, so raising any stage cannot lower the grade.
    worse = tuple(max(x, y) for x, y in zip(a, b))
    for grade in (magic_grade, glucksberg_grade):
        assert grade(*worse) >= grade(*a)


_scores = st.lists(st.integers(0, 3), min_size=8, max_size=8)


@given(_scores, _scores)
def test_nih_severity_never_falls_when_an_organ_worsens(a, b):
    names = list(ZERO)
    order = ["none", "mild", "moderate", "severe"]
    worse = [max(x, y) for x, y in zip(a, b)]
    s_a = nih_global_severity(**dict(zip(names, a)))
    s_w = nih_global_severity(**dict(zip(names, worse)))
    assert order.index(s_w) >= order.index(s_a)


# ------------------------------------------------- steroid-refractory chronic GVHD
# NIH 2014 (Martin PJ et al., Biol Blood Marrow Transplant 2015;21:1343-1359):
# progression despite prednisone >= 1 mg/kg/day for >= 1 week, or persistence
# without improvement despite >= 0.5 mg/kg/day for >= 4 weeks. Organ changes by
# Lee SJ et al., Biol Blood Marrow Transplant 2015;21:984-999 (0 -> 1 is not
# progression; FEV1 down 10 points is).

from immunomon.clinical.gvhd import (  # noqa: E402
    OrganScores, cgvhd_improved, cgvhd_progressed, steroid_refractory_chronic,
    steroid_refractory_day,
)


def _scores(day, skin=1, mouth=1, eyes=0, gi=0, liver=0, lungs=0, joints=0, fev1=None):
    return OrganScores(day, skin, mouth, eyes, gi, liver, lungs, joints, fev1)


def test_cgvhd_organ_changes():
    base = _scores(0)
    assert cgvhd_progressed(base, _scores(10, skin=2))
    assert not cgvhd_progressed(base, _scores(10, eyes=1))          # 0 -> 1 is not
    assert cgvhd_progressed(base, _scores(10, eyes=2))              # 0 -> 2 is
    assert cgvhd_progressed(_scores(0, fev1=75), _scores(9, fev1=65))
    assert not cgvhd_progressed(_scores(0, fev1=75), _scores(9, fev1=66))
    assert cgvhd_improved(base, _scores(10, skin=0))
    assert not cgvhd_improved(base, _scores(10, skin=0, mouth=3))   # mixed: not improved
    assert not cgvhd_improved(base, _scores(10))


def test_steroid_refractory_chronic_progression_rule():
    doses = [(0, 40, 1.0)]
    # progression on day 7 after days 0-6 at 1 mg/kg/day: refractory on day 7
    assert steroid_refractory_chronic([_scores(0), _scores(7, skin=2)], doses) == (True, 7)
    # on day 6 only six days have been given: not yet; improved by day 30: not refractory
    assert steroid_refractory_chronic([_scores(0), _scores(6, skin=2), _scores(30, skin=0)],
                                      doses) == (False, None)
    # 0.9 mg/kg/day is below the progression dose: day 7 does not count, and day 28
    # (28 days >= 0.5) shows the disease not improved: refractory by the second rule
    seq = [_scores(0), _scores(7, skin=2), _scores(28, skin=2)]
    assert steroid_refractory_chronic(seq, [(0, 40, 0.9)]) == (True, 28)


def test_steroid_refractory_chronic_persistence_rule():
    seq = [_scores(0), _scores(14), _scores(28)]
    # 1 mg/kg/day for two weeks, then 0.5: 28 days >= 0.5 by day 28, unchanged
    assert steroid_refractory_chronic(seq, [(0, 13, 1.0), (14, 60, 0.5)]) == (True, 28)
    # "1 mg/kg every other day" entered as its daily average
    assert steroid_refractory_chronic(seq, [(0, 60, 0.5)]) == (True, 28)
    # tapered to 0.25 from day 21: never four weeks at 0.5
    assert steroid_refractory_chronic(seq, [(0, 20, 0.5), (21, 60, 0.25)]) == (False, None)
    # improved on day 28: not refractory
    assert steroid_refractory_chronic([_scores(0), _scores(28, mouth=0)],
                                      [(0, 60, 1.0)]) == (False, None)
    # the 2005 durations: four weeks are not enough, eight are
    seq = [_scores(0), _scores(28), _scores(56)]
    assert steroid_refractory_chronic(seq, [(0, 80, 0.5)], progression_days=14,
                                      persistence_days=56) == (True, 56)
    assert steroid_refractory_chronic(seq, [], persistence_days=56) == (None, None)


def test_steroid_refractory_acute_day():
    seq = [StageSet(0, 3, 0, 0, 0), StageSet(4, 3, 1, 0, 0), StageSet(7, 2, 0, 0, 0)]
    assert steroid_refractory_day(seq, 0) == (True, 4)          # progressed on day 4
    seq = [StageSet(0, 3, 0, 0, 0), StageSet(7, 3, 0, 0, 0)]
    assert steroid_refractory_day(seq, 0) == (True, 7)          # no response by day 7
    seq = [StageSet(0, 3, 0, 0, 0), StageSet(7, 1, 0, 0, 0)]
    assert steroid_refractory_day(seq, 0) == (False, None)
    assert steroid_refractory(seq, 0) is False
