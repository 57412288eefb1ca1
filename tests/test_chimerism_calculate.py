"""% donor per locus and per sample, against values computed by hand.

The issue's worked examples appear verbatim. Allele n is placed at 100 + 4n bp so
that sizes behave like a tetranucleotide locus.
"""

import math

import numpy as np
import pandas as pd
import pytest

from immunomon.chimerism import (Allele, ChimerismSettings, Genotype, classify_locus,
                                 classify_sample, combine_loci, compute_chimerism,
                                 dose_model_shares, locus_chimerism, lod_status,
                                 percent_dhet_rhom, percent_dhom_rhet, percent_no_shared,
                                 reported_value)
from immunomon.chimerism.genotype import (MULTI_SHARED, MULTI_UNIQUE, NO_SHARED,
                                          NON_INFORMATIVE, SHARED_DHET_RHOM,
                                          SHARED_DHOM_RHET, SHARED_HET_HET)
from immunomon.errors import ChimerismError


def size_of(allele: str) -> float:
    return 100.0 + 4.0 * float(allele)


def ref(*alleles):
    return tuple(Allele(a, size_of(a), 1000.0, 2000.0) for a in alleles)


def peaks(areas: dict, *, locus="D8S1179", heights=None, labels=None, sample="S1",
          shift=0.0):
    """A sample's peaks at one locus: allele -> area; heights default to 500 RFU."""
    rows = []
    for i, (allele, area) in enumerate(areas.items()):
        label = allele if labels is None else labels.get(allele, allele)
        rows.append({"sample": sample, "marker": locus if label != "" else "",
                     "locus": locus if label != "" else "",
                     "allele": label, "size": size_of(allele) + shift,
                     "height": (heights or {}).get(allele, 500.0), "area": float(area),
                     "dye": "B", "data_point": np.nan, "file": "s.txt", "line": i + 2})
    return pd.DataFrame(rows)


def run(donor, recipient, areas, settings=None, **kw):
    s = settings or ChimerismSettings()
    return locus_chimerism("S1", "D8S1179", {"donor": ref(*donor),
                                             "recipient": ref(*recipient)},
                           peaks(areas, **kw), s, repeat=4)


# ----------------------------------------------------------------- the issue's examples
@pytest.mark.parametrize("donor, recipient, areas, expected, pattern", [
    (("12", "14"), ("15", "17"), {"12": 900, "14": 1100, "15": 450, "17": 550},
     66.667, NO_SHARED),
    (("14", "16"), ("14", "18"), {"14": 500, "16": 400, "18": 600}, 40.0, SHARED_HET_HET),
    (("14", "16"), ("14",), {"14": 700, "16": 300}, 60.0, SHARED_DHET_RHOM),
    (("14",), ("14", "18"), {"14": 800, "18": 200}, 60.0, SHARED_DHOM_RHET),
    (("10",), ("12", "13"), {"10": 900, "12": 50, "13": 50}, 90.0, NO_SHARED),
])
def test_worked_examples(donor, recipient, areas, expected, pattern):
    res = run(donor, recipient, areas)
    assert res.pattern == pattern
    assert res.percent_donor == pytest.approx(expected, abs=5e-4)
    assert res.informative


def test_pattern_formulas_directly():
    assert percent_no_shared([900, 1100], [450, 550]) == pytest.approx(200 / 3)
    assert percent_dhet_rhom(300, 700) == pytest.approx(60.0)
    assert percent_dhom_rhet(200, 800) == pytest.approx(60.0)
    assert math.isnan(percent_no_shared([0], [0]))


def test_dose_model_reproduces_each_two_person_formula():
    # Solving the dose model gives the same numbers as the closed forms.
    cases = [
        ({"donor": ("12", "14"), "recipient": ("15", "17")},
         {"12": 900, "14": 1100, "15": 450, "17": 550}, 2 / 3),
        ({"donor": ("14", "16"), "recipient": ("14", "18")},
         {"14": 500, "16": 400, "18": 600}, 0.4),
        ({"donor": ("14", "16"), "recipient": ("14",)}, {"14": 700, "16": 300}, 0.6),
        ({"donor": ("14",), "recipient": ("14", "18")}, {"14": 800, "18": 200}, 0.6),
        ({"donor": ("10",), "recipient": ("12", "13")}, {"10": 900, "12": 50, "13": 50}, 0.9),
    ]
    for genos, areas, expected in cases:
        assert dose_model_shares(areas, genos)["donor"] == pytest.approx(expected)


def test_non_informative_locus_has_no_percentage():
    res = run(("12", "14"), ("12", "14"), {"12": 500, "14": 500})
    assert res.pattern == NON_INFORMATIVE and not res.informative
    assert math.isnan(res.percent_donor)


def test_classify_locus_zygosity():
    cls = classify_locus({"donor": ("14",), "recipient": ("14", "18")})
    assert cls.zygosity == {"donor": "hom", "recipient": "het"}
    assert cls.shared == ("14",)


# ----------------------------------------------------------------- stutter
STUTTER_AREAS = {"10": 950, "13": 126, "14": 950, "16": 50}


def test_stutter_corrected_issue_example():
    res = run(("10", "14"), ("13", "16"), STUTTER_AREAS,
              ChimerismSettings(stutter="correct", stutter_ratio=0.08))
    # 13 corrected: 126 - 0.08 x 950 = 50; D = 1900 / (1900 + 50 + 50)
    assert res.percent_donor == pytest.approx(95.0)
    assert "stutter_corrected:13" in res.flags
    assert res.amounts["13"] == pytest.approx(50.0)


def test_stutter_uncorrected_issue_example():
    res = run(("10", "14"), ("13", "16"), STUTTER_AREAS,
              ChimerismSettings(stutter="flag", stutter_ratio=0.08))
    assert round(res.percent_donor, 2) == 91.52      # 1900 / 2076
    assert "stutter_position:13" in res.flags


def test_stutter_excluded_allele():
    res = run(("10", "14"), ("13", "16"), STUTTER_AREAS,
              ChimerismSettings(stutter="exclude", stutter_ratio=0.08))
    assert res.percent_donor == pytest.approx(1900 / 1950 * 100)    # 97.436
    assert "stutter_excluded:13" in res.flags
    assert "13" not in res.alleles_used


def test_stutter_uses_locus_ratio_over_default():
    donor = Genotype("donor", ("DON",), {"D8S1179": ref("10", "14")})
    recipient = Genotype("recipient", ("REC",), {"D8S1179": ref("13", "16")})
    s = ChimerismSettings(stutter_ratio=0.5, stutter_ratios={"D8S1179": 0.08})
    result = compute_chimerism(peaks(STUTTER_AREAS), donor, recipient, settings=s)
    assert result.samples[0].loci[0].percent_donor == pytest.approx(95.0)
    s = ChimerismSettings(stutter_ratio=0.08)
    result = compute_chimerism(peaks(STUTTER_AREAS), donor, recipient, settings=s)
    assert result.samples[0].loci[0].percent_donor == pytest.approx(95.0)


def test_no_stutter_between_alleles_of_the_same_person():
    # Donor 13/14: 13 is one repeat below 14 but both are the donor's.
    res = run(("13", "14"), ("16", "17"), {"13": 500, "14": 500, "16": 250, "17": 250})
    assert res.percent_donor == pytest.approx(2 / 3 * 100)
    assert not any(f.startswith("stutter") for f in res.flags)


def test_stutter_on_trinucleotide_by_size_when_names_are_not_numbers():
    # Off-ladder alleles compare by size: 3 bp apart at a trinucleotide locus.
    d = (Allele("OL@150.0", 150.0, 1000, 2000),)
    r = (Allele("OL@147.0", 147.0, 1000, 2000), Allele("OL@160.0", 160.0, 1000, 2000))
    pk = pd.DataFrame([
        {"sample": "S1", "marker": "D22S1045", "locus": "D22S1045", "allele": "OL",
         "size": s, "height": 500.0, "area": a, "dye": "B", "data_point": np.nan,
         "file": "s", "line": 2}
        for s, a in ((150.1, 1000.0), (147.1, 150.0), (160.0, 50.0))])
    res = locus_chimerism("S1", "D22S1045", {"donor": d, "recipient": r}, pk,
                          ChimerismSettings(stutter_ratio=0.1), repeat=3)
    # 147 corrected: 150 - 0.1 x 1000 = 50; D = 1000 / (1000 + 50 + 50)
    assert res.percent_donor == pytest.approx(1000 / 1100 * 100)


# ----------------------------------------------------------------- matching by size
def test_unlabelled_donor_peaks_are_matched_by_size():
    areas = {"12": 900, "14": 1100, "15": 450, "17": 550}
    res = run(("12", "14"), ("15", "17"), areas, labels={"12": "", "14": ""}, shift=0.3)
    assert res.percent_donor == pytest.approx(200 / 3)
    assert "matched_by_size:12" in res.flags and "matched_by_size:14" in res.flags


def test_peaks_outside_size_tolerance_are_not_matched():
    areas = {"12": 900, "14": 1100, "15": 450, "17": 550}
    res = run(("12", "14"), ("15", "17"), areas, labels={"12": "", "14": ""}, shift=0.8)
    # Donor peaks 0.8 bp off with a 0.5 bp tolerance: the donor is not seen at all.
    assert res.percent_donor == pytest.approx(0.0)
    res = run(("12", "14"), ("15", "17"), areas, ChimerismSettings(size_tolerance=1.0),
              labels={"12": "", "14": ""}, shift=0.8)
    assert res.percent_donor == pytest.approx(200 / 3)


def test_off_ladder_reference_allele_matched_by_size():
    d = (Allele("OL@174.5", 174.5, 1000, 2000), Allele("14", size_of("14"), 1000, 2000))
    r = ref("15", "17")
    pk = peaks({"15": 450, "17": 550, "14": 1100})
    ol = pk.iloc[[0]].assign(allele="OL", size=174.7, area=900.0, height=450.0)
    res = locus_chimerism("S1", "D8S1179", {"donor": d, "recipient": r},
                          pd.concat([pk, ol], ignore_index=True), ChimerismSettings())
    assert res.percent_donor == pytest.approx(200 / 3)


def test_height_as_quantity():
    areas = {"12": 900, "14": 1100, "15": 450, "17": 550}
    heights = {"12": 100, "14": 100, "15": 100, "17": 100}
    res = run(("12", "14"), ("15", "17"), areas, ChimerismSettings(quantity="height"),
              heights=heights)
    assert res.percent_donor == pytest.approx(50.0)


# ----------------------------------------------------------------- flags
def test_unknown_allele_flagged_but_stutter_is_not():
    areas = {"12": 900, "14": 1100, "15": 450, "17": 550, "19": 300, "11": 60}
    res = run(("12", "14"), ("15", "17"), areas)
    assert "unknown_allele:19" in res.flags
    assert "unknown_allele:11" not in res.flags        # 60 <= 2 x 0.1 x 900: stutter of 12
    assert res.percent_donor == pytest.approx(200 / 3)  # unknown peaks do not count


def test_large_peak_in_stutter_position_is_unknown():
    res = run(("12", "14"), ("15", "17"),
              {"12": 900, "14": 1100, "15": 450, "17": 550, "11": 400})
    assert "unknown_allele:11" in res.flags


def test_below_detection_threshold_not_counted_and_flagged():
    areas = {"12": 900, "14": 1100, "15": 60, "17": 60}
    res = run(("12", "14"), ("15", "17"), areas, heights={"15": 30, "17": 30})
    assert "below_threshold:15" in res.flags and "below_threshold:17" in res.flags
    assert res.percent_donor == pytest.approx(100.0)
    assert res.reported == "recipient < LOD"


def test_saturated_peak_flagged():
    res = run(("12", "14"), ("15", "17"), {"12": 900, "14": 1100, "15": 450, "17": 550},
              heights={"14": 31000})
    assert "saturated:14" in res.flags


def test_lod_reported_instead_of_100_or_0():
    areas = {"12": 995, "14": 995, "15": 5, "17": 5}
    heights = {"15": 60, "17": 60}
    res = run(("12", "14"), ("15", "17"), areas, heights=heights)
    assert res.percent_donor == pytest.approx(99.5)
    assert res.reported == "recipient < LOD" and "recipient_below_lod" in res.flags
    res = run(("12", "14"), ("15", "17"), areas, ChimerismSettings(lod=0.25),
              heights=heights)
    assert res.reported == "99.5" and "recipient_below_lod" not in res.flags
    res = run(("12", "14"), ("15", "17"), {"12": 5, "14": 5, "15": 995, "17": 995},
              heights={"12": 60, "14": 60})
    assert res.reported == "donor < LOD"


def test_lod_helpers():
    assert lod_status(99.5, 1.0) == "recipient"
    assert lod_status(0.5, 1.0) == "donor"
    assert lod_status(50.0, 5.0) is None
    assert lod_status(96.0, 5.0) == "recipient"
    assert reported_value(66.6666, 1.0) == "66.7"


def test_out_of_range_is_clipped_and_flagged():
    # Donor het, recipient hom: donor-only peak above the shared one gives > 100%.
    res = run(("14", "16"), ("14",), {"14": 300, "16": 700})
    assert res.percent_donor == 100.0 and "out_of_range" in res.flags


def test_settings_are_validated():
    with pytest.raises(ChimerismError, match="stutter"):
        ChimerismSettings(stutter="maybe")
    with pytest.raises(ChimerismError, match="lod"):
        ChimerismSettings(lod=-1)
    with pytest.raises(ChimerismError, match=r"full_recipient \(95 % donor\) must be below "
                                             r"full_donor \(95 % donor\)"):
        ChimerismSettings(full_recipient=95)


# ----------------------------------------------------------------- combining loci
OUTLIER_VALUES = [60, 61, 59, 60, 62, 58, 60, 90]


def test_combine_loci_by_hand():
    # Median 60, MAD 1, robust SD max(1.4826, floor 2) = 2: with k = 3.5, 90 lies 30 > 7
    # points away and is dropped; 58 and 62 (2 points) stay.
    c = combine_loci(OUTLIER_VALUES, 3.5)
    assert list(c.keep) == [True] * 7 + [False]
    assert c.mean == pytest.approx(60.0)
    assert c.sd == pytest.approx(math.sqrt(10 / 6))
    assert c.cv == pytest.approx(100 * math.sqrt(10 / 6) / 60)
    c = combine_loci(OUTLIER_VALUES, None)
    assert c.mean == pytest.approx(63.75) and c.n == 8
    assert c.sd == pytest.approx(math.sqrt(797.5 / 7))


LOCI = ["D8S1179", "D21S11", "D7S820", "CSF1PO", "D3S1358", "TH01", "D13S317", "D16S539"]


def _references(loci=LOCI):
    donor = Genotype("donor", ("DON",), {lo: ref("10", "11") for lo in loci})
    recipient = Genotype("recipient", ("REC",), {lo: ref("13", "14") for lo in loci})
    return donor, recipient


def _sample_peaks(values, loci=LOCI, sample="P01_CD3_2024-01-10"):
    frames = []
    for lo, p in zip(loci, values):
        frames.append(peaks({"10": 10 * p, "11": 10 * p, "13": 10 * (100 - p),
                             "14": 10 * (100 - p)}, locus=lo, sample=sample))
    return pd.concat(frames, ignore_index=True)


def test_sample_mean_excludes_outlier_locus():
    donor, recipient = _references()
    result = compute_chimerism(_sample_peaks(OUTLIER_VALUES), donor, recipient)
    s = result.samples[0]
    assert s.mean == pytest.approx(60.0) and s.n_used == 7 and s.n_informative == 8
    assert s.sd == pytest.approx(math.sqrt(10 / 6))
    assert "outlier:D16S539" in s.flags
    assert s.classification == "mixed"
    table = result.loci_frame()
    row = table[table["locus"] == "D16S539"].iloc[0]
    assert not row["used"] and "outlier" in row["flags"]
    assert set(["sample", "patient", "lineage", "date", "locus", "pattern", "alleles_used",
                "percent_donor", "flags"]) <= set(table.columns)


def test_sample_without_outlier_exclusion():
    donor, recipient = _references()
    s = compute_chimerism(_sample_peaks(OUTLIER_VALUES), donor, recipient,
                          settings=ChimerismSettings(outlier_mad=None)).samples[0]
    assert s.mean == pytest.approx(63.75) and s.n_used == 8


def test_robust_rule_catches_what_mean_2sd_misses():
    # Two loci read 0 % in a full-donor sample. Mean +- 2 SD keeps them: the mean is
    # 71.43 and the SD (n-1) 48.80, so 0 lies only 1.46 SD away. The median is 100, the
    # MAD 0, the robust SD its floor of 2 points: both lie 100 > 7 points away.
    values = [100, 100, 100, 100, 100, 0, 0]
    v = np.array(values, float)
    assert abs(0 - v.mean()) / v.std(ddof=1) == pytest.approx(1.4638, abs=1e-4)
    c = combine_loci(values)
    assert list(c.keep) == [True] * 5 + [False, False]
    assert c.mean == 100.0 and c.median == 100.0 and c.limit == pytest.approx(7.0)
    # Fewer than 4 loci: nothing is excluded.
    assert combine_loci([100, 100, 0]).n == 3


def test_full_donor_classification_and_few_loci():
    donor, recipient = _references(LOCI[:2])
    s = compute_chimerism(_sample_peaks([96, 98], LOCI[:2]), donor, recipient).samples[0]
    assert s.mean == pytest.approx(97.0)
    assert s.classification == "full donor"
    assert "few_informative_loci" in s.flags
    s = compute_chimerism(_sample_peaks([96, 98], LOCI[:2]), donor, recipient,
                          settings=ChimerismSettings(full_donor=98.0)).samples[0]
    assert s.classification == "mixed"


def test_three_classes_at_their_boundaries():
    assert classify_sample(95.0) == "full donor"
    assert classify_sample(94.99) == "mixed" and classify_sample(5.0) == "mixed"
    assert classify_sample(4.99) == classify_sample(0.0) == "full recipient"
    assert classify_sample(0.0, full_recipient=0.0) == "mixed"          # 0: never
    assert classify_sample(float("nan")) == "not determined"
    assert classify_sample(97.0, 98.0, 1.0) == "mixed"


def test_a_lost_graft_is_full_recipient_not_mixed():
    # every locus at 2 % donor: the graft lost (or autologous recovery), which a
    # two-class rule had called mixed, as it would 50 %
    donor, recipient = _references()
    s = compute_chimerism(_sample_peaks([2] * 8), donor, recipient).samples[0]
    assert s.mean == pytest.approx(2.0)
    assert s.classification == "full recipient" and s.reported == "2.0"
    s = compute_chimerism(_sample_peaks([2] * 8), donor, recipient,
                          settings=ChimerismSettings(full_recipient=1.0)).samples[0]
    assert s.classification == "mixed"


def test_amelogenin_reported_but_not_averaged():
    loci = LOCI[:3] + ["AMEL"]
    donor = Genotype("donor", ("DON",), {lo: ref("10", "11") for lo in LOCI[:3]})
    recipient = Genotype("recipient", ("REC",), {lo: ref("13", "14") for lo in LOCI[:3]})
    donor.loci["AMEL"] = (Allele("X", 104.0, 1000, 2000),)
    recipient.loci["AMEL"] = (Allele("X", 104.0, 1000, 2000), Allele("Y", 110.0, 1000, 2000))
    pk = _sample_peaks([70, 70, 70], LOCI[:3])
    amel = pd.DataFrame([{"sample": pk["sample"][0], "marker": "AMEL", "locus": "AMEL",
                          "allele": a, "size": s, "height": 500.0, "area": ar, "dye": "B",
                          "data_point": np.nan, "file": "s", "line": 9}
                         for a, s, ar in (("X", 104.0, 1000.0), ("Y", 110.0, 1000.0))])
    s = compute_chimerism(pd.concat([pk, amel], ignore_index=True), donor,
                          recipient).samples[0]
    amel_row = next(r for r in s.loci if r.locus == "AMEL")
    assert amel_row.informative and not amel_row.used
    assert "excluded_locus" in amel_row.flags
    assert s.mean == pytest.approx(70.0) and s.n_used == 3


# ----------------------------------------------------------------- double donor
def test_double_donor_unique_alleles():
    genos = {"donor1": ref("10", "11"), "donor2": ref("13"), "recipient": ref("17", "18")}
    areas = {"10": 400, "11": 400, "13": 600, "17": 200, "18": 200}
    res = locus_chimerism("S1", "D8S1179", genos, peaks(areas), ChimerismSettings())
    assert res.pattern == MULTI_UNIQUE
    # genome equivalents: donor1 400, donor2 600/2 = 300, recipient 200 -> of 900
    assert res.shares["donor1"] == pytest.approx(400 / 9)
    assert res.shares["donor2"] == pytest.approx(300 / 9)
    assert res.shares["recipient"] == pytest.approx(200 / 9)
    assert res.percent_donor == pytest.approx(700 / 9)


def test_double_donor_shared_alleles_solved_exactly():
    genos = {"donor1": ref("12", "14"), "donor2": ref("15", "16"),
             "recipient": ref("12", "16")}
    # donor1 500, donor2 300, recipient 200 per allele copy
    areas = {"12": 700, "14": 500, "15": 300, "16": 500}
    res = locus_chimerism("S1", "D8S1179", genos, peaks(areas), ChimerismSettings())
    assert res.pattern == MULTI_SHARED
    assert res.shares["donor1"] == pytest.approx(50.0)
    assert res.shares["donor2"] == pytest.approx(30.0)
    assert res.shares["recipient"] == pytest.approx(20.0)
    assert res.percent_donor == pytest.approx(80.0)


def test_double_donor_identical_donors_not_informative():
    genos = {"donor1": ref("12", "14"), "donor2": ref("12", "14"),
             "recipient": ref("15", "17")}
    res = locus_chimerism("S1", "D8S1179", genos, peaks({"12": 1, "14": 1, "15": 1, "17": 1}),
                          ChimerismSettings())
    assert res.pattern == NON_INFORMATIVE and math.isnan(res.percent_donor)


def test_double_donor_sample_summary():
    loci = LOCI[:3]
    d1 = Genotype("donor1", ("D1",), {lo: ref("10", "11") for lo in loci})
    d2 = Genotype("donor2", ("D2",), {lo: ref("13") for lo in loci})
    rec = Genotype("recipient", ("R",), {lo: ref("17", "18") for lo in loci})
    pk = pd.concat([peaks({"10": 400, "11": 400, "13": 600, "17": 200, "18": 200},
                          locus=lo) for lo in loci], ignore_index=True)
    result = compute_chimerism(pk, [d1, d2], rec)
    s = result.samples[0]
    assert s.shares["donor1"] == pytest.approx(400 / 9)
    assert s.shares["donor2"] == pytest.approx(300 / 9)
    assert s.mean == pytest.approx(700 / 9)
    summary = result.summary_frame()
    assert summary.loc[0, "percent_donor2"] == pytest.approx(300 / 9)


def test_stutter_in_donor_homozygous_pattern():
    # Donor 14, recipient 13/14: recipient-only 13 sits in the stutter of the donor's 14.
    areas = {"14": 900, "13": 190}
    res = run(("14",), ("13", "14"), areas)
    # 13 corrected: 190 - 0.1 x 900 = 100; D = 1 - 2 x 100 / (100 + 900) = 0.80
    assert res.pattern == SHARED_DHOM_RHET
    assert res.percent_donor == pytest.approx(80.0)
    res = run(("14",), ("13", "14"), areas, ChimerismSettings(stutter="flag"))
    assert res.percent_donor == pytest.approx(100 * (1 - 380 / 1090))
    res = run(("14",), ("13", "14"), areas, ChimerismSettings(stutter="exclude"))
    assert math.isnan(res.percent_donor) and "not_computable" in res.flags


def test_unknown_allele_reported_in_sample_flags():
    donor, recipient = _references(LOCI[:3])
    pk = _sample_peaks([70, 70, 70], LOCI[:3])
    extra = pk.iloc[[0]].assign(allele="19", size=size_of("19"), area=800.0)
    s = compute_chimerism(pd.concat([pk, extra], ignore_index=True), donor,
                          recipient).samples[0]
    assert "unknown_allele:D8S1179:19" in s.flags
    assert s.mean == pytest.approx(70.0)


@pytest.mark.parametrize("odd_loci, mismatch", [(2, False), (3, False), (4, True)])
def test_alleles_of_nobody_at_most_loci_make_the_sample_not_reported(odd_loci, mismatch):
    # One or two loci with a peak of nobody's genotype are a third person's trace or an
    # artefact; at half of the typed loci (here 4 of 8) or more, another person's DNA
    donor, recipient = _references()
    pk = _sample_peaks([70] * len(LOCI))
    extra = pd.concat([pk[pk["locus"] == lo].iloc[[0]].assign(
        allele="19", size=size_of("19"), area=800.0) for lo in LOCI[:odd_loci]])
    s = compute_chimerism(pd.concat([pk, extra], ignore_index=True), donor,
                          recipient).samples[0]
    assert ("identity_mismatch" in s.flags) is mismatch
    if mismatch:
        assert math.isnan(s.mean) and s.reported == ""
        assert any("at 4 of 8 typed loci" in w for w in s.warnings)
    else:
        assert s.mean == pytest.approx(70.0) and s.reported == "70.0"


def test_forward_stutter_of_the_major_allele_is_optional():
    # Donor 12/14 (major), recipient 15/17: 15 sits one repeat above the donor's 14.
    areas = {"12": 900, "14": 1100, "15": 450, "17": 550}
    assert run(("12", "14"), ("15", "17"), areas).percent_donor == pytest.approx(200 / 3)
    res = run(("12", "14"), ("15", "17"), areas,
              ChimerismSettings(forward_stutter_ratio=0.02))
    # 15 loses 2 % of 14: 450 - 22 = 428; %D = 2000 / (2000 + 428 + 550).
    assert res.percent_donor == pytest.approx(100 * 2000 / 2978)
    assert "forward_stutter_corrected:15" in res.flags
