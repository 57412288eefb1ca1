"""ddPCR and qPCR chimerism, and following a patient's series, against hand-computed values."""

import math
import re

import pandas as pd
import pytest

from immunomon.chimerism import (ddpcr_chimerism, ddpcr_percent_recipient,
                                 flag_rising_recipient, parse_sample_name, poisson_lambda,
                                 qpcr_chimerism, qpcr_percent_recipient, read_manifest)
from immunomon.errors import ChimerismError


# ----------------------------------------------------------------- digital PCR
def test_poisson_lambda():
    assert poisson_lambda(10000, 20000) == pytest.approx(0.6931471806)     # ln 2
    assert poisson_lambda(0, 20000) == 0.0


def test_ddpcr_heterozygous_marker():
    # lambda_m = -ln(0.9) = 0.1053605157, lambda_ref = ln 2 = 0.6931471806
    # %R = 0.1053605157 / (0.6931471806 / 2) x 100 = 30.40061869
    pct = ddpcr_percent_recipient(2000, 20000, 10000, 20000)
    assert pct == pytest.approx(30.40061869, rel=1e-9)


def test_ddpcr_homozygous_marker_and_low_level():
    # marker in both recipient copies: divide by 2 instead of 1
    assert ddpcr_percent_recipient(2000, 20000, 10000, 20000, marker_copies=2) == \
        pytest.approx(15.20030934, rel=1e-9)
    # 50 of 20000 marker droplets, 8000 of 20000 reference droplets:
    # 0.0025031302 / (0.5108256238 / 2) x 100 = 0.98003315
    pct = ddpcr_percent_recipient(50, 20000, 8000, 20000)
    assert pct == pytest.approx(0.98003315, rel=1e-7)


def test_ddpcr_result_flags_and_classification():
    r = ddpcr_chimerism(50, 20000, 8000, 20000)
    assert r.percent_donor == pytest.approx(100 - 0.98003315, rel=1e-9)
    assert r.classification == "full donor" and r.reported == "99.0"
    r = ddpcr_chimerism(3, 20000, 8000, 20000, lod=0.1)
    # 3/20000 -> lambda 1.50011e-4; / 0.2554128 = 0.0587 % < 0.1 % LOD
    assert r.reported == "recipient < LOD" and "recipient_below_lod" in r.flags


def test_ddpcr_saturated_or_empty_reference_is_an_error():
    with pytest.raises(ChimerismError, match="saturated"):
        ddpcr_percent_recipient(20000, 20000, 8000, 20000)
    with pytest.raises(ChimerismError, match="reference"):
        ddpcr_percent_recipient(10, 20000, 0, 20000)
    with pytest.raises(ChimerismError):
        ddpcr_percent_recipient(30, 20, 8000, 20000)


# ----------------------------------------------------------------- quantitative PCR
def test_qpcr_delta_delta_ct():
    # dCt sample = 32 - 24 = 8, dCt pre = 25 - 24.5 = 0.5, ddCt = 7.5: 100 x 2^-7.5
    assert qpcr_percent_recipient(32.0, 24.0, 25.0, 24.5) == pytest.approx(0.55242717, rel=1e-7)
    assert qpcr_percent_recipient(26.0, 24.0, 25.0, 24.0) == pytest.approx(50.0)
    assert qpcr_percent_recipient(25.0, 24.0, 25.0, 24.0) == pytest.approx(100.0)
    # efficiency 90 %: 100 / 1.9
    assert qpcr_percent_recipient(26.0, 24.0, 25.0, 24.0, efficiency=0.9) == \
        pytest.approx(52.63157895, rel=1e-8)


def test_qpcr_result():
    r = qpcr_chimerism(32.0, 24.0, 25.0, 24.5, lod=0.1)
    assert r.method == "qPCR" and r.percent_donor == pytest.approx(99.44757283, rel=1e-8)
    assert r.classification == "full donor"
    r = qpcr_chimerism(24.0, 24.0, 25.0, 24.0)
    assert "out_of_range" in r.flags and r.percent_donor == 0.0
    with pytest.raises(ChimerismError, match="undetermined"):
        qpcr_percent_recipient(float("nan"), 24.0, 25.0, 24.0)


# ----------------------------------------------------------------- series
def test_rising_recipient_and_loss_of_full_donor():
    summary = pd.DataFrame({
        "patient": ["P1"] * 4 + ["P2"] * 2,
        "lineage": ["CD3"] * 4 + ["CD3"] * 2,
        "date": ["2024-03-01", "2024-01-01", "2024-02-01", "2024-04-01",
                 "2024-01-01", "2024-02-01"],
        "percent_donor": [93.0, 99.0, 98.0, 85.0, 90.0, 89.0],
    })
    out = flag_rising_recipient(summary, min_rise=2.0)
    by = out.set_index(["patient", "date"])
    # P1 in date order: recipient 1, 2, 7, 15 -> rises 1, 5, 8
    assert math.isnan(by.loc[("P1", "2024-01-01"), "recipient_rise"])
    assert by.loc[("P1", "2024-02-01"), "recipient_rise"] == pytest.approx(1.0)
    assert not by.loc[("P1", "2024-02-01"), "rising_recipient"]
    assert by.loc[("P1", "2024-03-01"), "rising_recipient"]
    assert by.loc[("P1", "2024-03-01"), "lost_full_donor"]
    assert by.loc[("P1", "2024-04-01"), "recipient_rise"] == pytest.approx(8.0)
    assert not by.loc[("P1", "2024-04-01"), "lost_full_donor"]         # already mixed
    # P2 rises by 1 point: within assay variation
    assert not by.loc[("P2", "2024-02-01"), "rising_recipient"]
    assert list(out["classification"]) == ["mixed", "full donor", "full donor", "mixed",
                                           "mixed", "mixed"]


def test_a_graft_lost_after_full_donor_is_flagged():
    summary = pd.DataFrame({"patient": ["P1"] * 3,
                            "date": ["2024-01-01", "2024-02-01", "2024-03-01"],
                            "percent_donor": [99.0, 2.0, 1.0]})
    out = flag_rising_recipient(summary, min_rise=2.0)
    assert list(out["classification"]) == ["full donor", "full recipient", "full recipient"]
    assert list(out["lost_full_donor"]) == [False, True, False]


def test_pcr_results_take_the_three_classes():
    # the marker as far from the reference as before transplant: all recipient, no donor
    assert qpcr_chimerism(25.0, 20.0, 25.0, 20.0).classification == "full recipient"
    assert qpcr_chimerism(25.0, 20.0, 25.0, 20.0, full_recipient=0.0).classification \
        == "mixed"


def test_series_are_per_lineage():
    summary = pd.DataFrame({"patient": ["P1"] * 4, "lineage": ["CD3", "CD33", "CD3", "CD33"],
                            "date": ["2024-01-01", "2024-01-01", "2024-02-01", "2024-02-01"],
                            "percent_donor": [80.0, 99.0, 79.0, 99.5]})
    out = flag_rising_recipient(summary, min_rise=2.0)
    assert list(out["recipient_rise"].iloc[2:]) == pytest.approx([1.0, -0.5])
    assert not out["rising_recipient"].any()


def test_samples_without_a_date_are_said_not_compared():
    # the demo's names carry a visit (P02_CD3_M3), not a date: every row was False with
    # no word that nothing had been compared
    summary = pd.DataFrame({"sample": ["P02_CD3_M3", "P02_CD3_M6"], "patient": ["P02"] * 2,
                            "lineage": ["CD3"] * 2, "date": [None, None],
                            "percent_donor": [90.8, 83.8]})
    with pytest.warns(UserWarning, match=r"2 sample\(s\) without a date were not compared "
                                         r"in their series \(P02_CD3_M3, P02_CD3_M6\)"):
        out = flag_rising_recipient(summary)
    assert not out["rising_recipient"].any() and out["recipient_rise"].isna().all()
    dated = summary.assign(date=["2024-01-01", "2024-04-01"])
    assert flag_rising_recipient(dated)["rising_recipient"].tolist() == [False, True]


def test_parse_sample_name():
    assert parse_sample_name("P07_CD3_2023-05-04_A01") == \
        {"patient": "P07", "lineage": "CD3", "date": "2023-05-04"}
    assert parse_sample_name("UPN-12 CD33+ 20240131") == \
        {"patient": "UPN12", "lineage": "CD33", "date": "2024-01-31"}
    assert parse_sample_name("sample1") == {"patient": None, "lineage": None, "date": None}


def test_read_manifest(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("sample,patient,lineage,date\nS1,P01,CD3,2024-01-05\nS2,P01,,\n")
    m = read_manifest(p)
    assert m["S1"] == {"patient": "P01", "lineage": "CD3", "date": "2024-01-05"}
    assert m["S2"] == {"patient": "P01", "lineage": None, "date": None}
    p.write_text("sample,date\nS1,yesterday\n")
    with pytest.raises(ChimerismError, match="line 2, column 2"):
        read_manifest(p)


def test_manifest_dates_read_as_the_clinical_tables_read_them(tmp_path):
    # a dotted date is day-first (it was taken as 4 August), a slashed one ambiguous (it
    # was taken as 8 April without a word); a sample twice and a row with cells beyond
    # the header are refused, naming the line
    p = tmp_path / "m.csv"
    p.write_text("sample,date\nS1,08.04.2021\nS2,20210408\n")
    assert [v["date"] for v in read_manifest(p).values()] == ["2021-04-08", "2021-04-08"]
    for text, words in (("sample,date\nS1,04/08/2021\n", "line 2, column 2: '04/08/2021' "
                                                          "is ambiguous"),
                        ("sample,date\nS1,2021-02-30\n", "not a real calendar date"),
                        ("sample,date\nS1,2021-01-05\nS1,2021-02-05\n",
                         "line 3: sample 'S1' is listed twice"),
                        ("sample,date\nS1,2021-01-05,extra\n", "line 2: 3 cells for 2 columns")):
        p.write_text(text)
        with pytest.raises(ChimerismError, match=re.escape(words)):
            read_manifest(p)
