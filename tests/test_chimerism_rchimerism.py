"""Real GeneMapper exports: Rchimerism's public examples, judged against Rchimerism.

The files (tests/data/chimerism/, see SOURCES.md) are PowerPlex 16 per-peak reports of
a single-donor and a double-donor (double cord) patient, with CD3 and CD33 fractions,
and a GlobalFiler patient, as the laboratories exported them: anonymised, so donor,
recipient and post-transplant sample carry the same ``Sample File Name``.

The reference numbers are Rchimerism's own, from running its ``locSD``/``chiSD`` and
``locDD``/``chiDD`` functions (R, repository BioHPC/Rchimerism at 330c3f3) on these files:
an independent implementation, not this code. Where immunomon deliberately differs the
test checks the reason named in docs/chimerism.md.
"""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from immunomon.chimerism import ChimerismSettings, chimerism_from_exports
from immunomon.cli import main

DATA = Path(__file__).parent / "data" / "chimerism"
SINGLE = DATA / "rchimerism" / "single"
DOUBLE = DATA / "rchimerism" / "double"
GLOBALFILER = DATA / "rchimerism_globalfiler"
CD3 = SINGLE / "08_22_19" / "cd3_SELECT" / "sdata.txt"
CD33 = SINGLE / "08_22_19" / "cd33_SELECT" / "sdata.txt"
# One peak of the first donor's export was anonymised with one "x" fewer: the file holds
# two sample names, so the donor's run is named.
DONOR1 = f"{DOUBLE / 'd1data.txt'}::xxxxxxxxxxxxxxxxx"

# Rchimerism's per-sample means (% donor), Donor%_Mean of chiSD / chiDD.
RCHIMERISM = {"single_cd33": 99.89655, "single_cd3": 52.5365, "globalfiler": 32.5937,
              "double_cd33": {"donor1": 39.2671, "donor2": 40.5024, "recipient": 18.05878}}
# Rchimerism's per-locus shares for the double-donor CD33 fraction (chiDD), loci where
# it reads every person.
RCHIMERISM_CD33_LOCI = {
    "D18S51": (41.91358, 40.4784, 17.5),
    "PENTAE": (40.57022, 36.20369, 18.04405),
    "VWA": (35.20541, 46.76348, 14.4026),
    "FGA": (41.54232, 42.58643, 15.87125),
}


def single(samples, **settings):
    return chimerism_from_exports(SINGLE / "ddata.txt", SINGLE / "rdata.txt", samples,
                                  settings=ChimerismSettings(**settings))


def reason(calls, locus_name, allele):
    row = calls[(calls["locus"] == locus_name) & (calls["allele"] == allele)]
    return row["reason"].item(), row["detail"].item()


def locus(result, sample_index, name):
    return next(r for r in result.samples[sample_index].loci if r.locus == name)


def test_roles_come_from_the_command_line_not_the_names(tmp_path):
    # Donor, recipient and both samples are all called "xxxxxxxxxxxxxxxxx".
    names = {pd.read_csv(p, sep="\t")["Sample File Name"].iloc[0]
             for p in (SINGLE / "ddata.txt", SINGLE / "rdata.txt", CD3, CD33)}
    assert len(names) == 1
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["chimerism", "--donor", str(SINGLE / "ddata.txt"),
                                    "--recipient", str(SINGLE / "rdata.txt"), str(CD3),
                                    str(CD33), "--kit", "PowerPlex 16", "--json",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    samples = {s["sample"]: s for s in doc["samples"]}
    # Two samples of one name are told apart by the folder they came from.
    assert set(samples) == {"xxxxxxxxxxxxxxxxx [cd3_SELECT/sdata.txt]",
                            "xxxxxxxxxxxxxxxxx [cd33_SELECT/sdata.txt]"}
    cd3 = samples["xxxxxxxxxxxxxxxxx [cd3_SELECT/sdata.txt]"]["percent_donor"]
    cd33 = samples["xxxxxxxxxxxxxxxxx [cd33_SELECT/sdata.txt]"]["percent_donor"]
    assert cd3 == pytest.approx(RCHIMERISM["single_cd3"], abs=0.5)
    assert cd33 == pytest.approx(RCHIMERISM["single_cd33"], abs=0.5)
    for name in ("chimerism_loci.csv", "chimerism_samples.csv", "chimerism_genotypes.csv",
                 "chimerism_reference_calls.csv", "chimerism.json", "chimerism.html"):
        assert (out / name).is_file()


def test_a_manifest_names_anonymised_samples_by_label_file_or_their_files_one_run(tmp_path):
    """Both post-transplant exports call their sample "xxxxxxxxxxxxxxxxx": a manifest row
    names one by the label it is shown with, by its file and name, or (its file holding
    one run) by its file alone, under a name of the row's; a row that names no run, and a
    shared name given without its file, are said, never silently dropped."""
    manifest = tmp_path / "samples.csv"

    def run(text):
        manifest.write_text(text, encoding="utf-8")
        result = chimerism_from_exports(SINGLE / "ddata.txt", SINGLE / "rdata.txt",
                                        [CD3, CD33], manifest=manifest)
        return {s.sample: (s.patient, s.lineage) for s in result.samples}, result.warnings

    got, said = run("sample,patient,lineage\n"
                    "xxxxxxxxxxxxxxxxx [cd3_SELECT/sdata.txt],P01,CD3\n"
                    "xxxxxxxxxxxxxxxxx [cd33_SELECT/sdata.txt],P01,CD33\n")
    assert got == {"xxxxxxxxxxxxxxxxx [cd3_SELECT/sdata.txt]": ("P01", "CD3"),
                   "xxxxxxxxxxxxxxxxx [cd33_SELECT/sdata.txt]": ("P01", "CD33")}
    assert not [w for w in said if str(manifest) in w]

    got, said = run(f"sample,file,patient,lineage\n"
                    f"P01_CD3_D60,{CD3},P01,CD3\n"
                    f"xxxxxxxxxxxxxxxxx,{CD33},P01,CD33\n"
                    f"P09_CD3_D30,,P09,CD3\n")
    assert got == {"P01_CD3_D60": ("P01", "CD3"),
                   "xxxxxxxxxxxxxxxxx [cd33_SELECT/sdata.txt]": ("P01", "CD33")}
    assert [w for w in said if str(manifest) in w] == [
        f"{manifest}: 1 row(s) name no run in these exports, and were not used: "
        "'P09_CD3_D30'"]

    got, said = run("sample,lineage\nxxxxxxxxxxxxxxxxx,CD3\n")
    assert set(got.values()) == {(None, "CD3")}
    shared = [w for w in said if "is in several files" in w]
    assert len(shared) == 1 and "or a file column" in shared[0]


def test_reference_genotypes_reject_artefacts_as_an_analyst_would():
    res = single([CD33])
    donor, recipient = res.references
    # Pull-up, stutter, minor and off-ladder peaks are not alleles.
    assert donor.alleles("D18S51") == ("19",)         # 10: 44 % of 19 (3459 vs 7841 RFU)
    assert donor.alleles("FGA") == ("21", "23")       # 20: pull-up from CSF1PO 11 (green)
    assert donor.alleles("VWA") == ("16",)            # 13: 35 % of 16
    assert donor.alleles("D5S818") == ("12",)         # 11: 18 % stutter of 12
    assert recipient.alleles("FGA") == ("21", "23")   # 20: 3 % pull-up
    calls = donor.calls
    assert reason(calls, "D18S51", "10")[0] == "minor_peak"
    assert reason(calls, "FGA", "20")[0] == "pull_up"
    assert "G peak at 336.97 bp" in reason(calls, "FGA", "20")[1]
    assert reason(calls, "D5S818", "11")[0] == "stutter"
    assert reason(calls, "CSF1PO", "8")[0] == "pull_up"   # under D18S51 19, blue
    # The donor's D16S539 peak of 6737 RFU is off-ladder and the labelled "11" is its
    # stutter (15 %): the locus is unresolved rather than typed 11.
    assert donor.alleles("D16S539") == ()
    assert {"off_ladder:OL@290.6", "unresolved"} <= set(donor.flags["D16S539"])
    assert reason(calls, "D16S539", "11")[0] == "stutter"
    # The genotypes Rchimerism derives (its 50 %-of-area rule) at the other loci.
    expected = {"D3S1358": ("14", "15"), "TH01": ("6", "7"), "D21S11": ("28", "30"),
                "PENTAE": ("7", "8"), "D13S317": ("12", "13"), "D7S820": ("8", "13"),
                "CSF1PO": ("11",), "PENTAD": ("9",), "D8S1179": ("13", "14"),
                "TPOX": ("11",)}
    assert {k: donor.alleles(k) for k in expected} == expected


def test_single_donor_cd33_and_cd3_agree_with_rchimerism():
    res = single([CD3, CD33])
    cd3, cd33 = res.samples
    assert cd33.mean == pytest.approx(RCHIMERISM["single_cd33"], abs=0.5)
    assert cd33.reported == "recipient < LOD" and cd33.classification == "full donor"
    assert cd3.mean == pytest.approx(RCHIMERISM["single_cd3"], abs=0.5)
    # D7S820 reads 72 % (CD33) and 34 % (CD3): the recipient allele 10 sits on a broad
    # peak (a dye blob, 23 scans wide at 248 RFU); both tools leave the locus out.
    for s, value in ((cd33, 71.99), (cd3, 34.03)):
        d7 = next(r for r in s.loci if r.locus == "D7S820")
        assert d7.percent_donor == pytest.approx(value, abs=0.01)
        assert not d7.used and "outlier" in d7.flags
        assert d7.exclusion.startswith("outlier:")
    assert "broad_peak:10" in locus(res, 1, "D7S820").flags
    # Without stutter correction the per-locus values are Rchimerism's own.
    plain = single([CD3], stutter="flag").samples[0]
    rvalues = {"D3S1358": 53.6864, "TH01": 52.5778, "D21S11": 51.92046, "D18S51": 45.16206,
               "PENTAE": 55.94311, "D5S818": 51.15047, "D13S317": 56.50068,
               "PENTAD": 54.60117}
    got = {r.locus: r.percent_donor for r in plain.loci if r.locus in rvalues}
    assert got == pytest.approx(rvalues, abs=1e-3)


def test_globalfiler_export_agrees_with_rchimerism():
    files = (GLOBALFILER / "ddata.txt", GLOBALFILER / "rdata.txt", [GLOBALFILER / "sdata.txt"])
    plain = chimerism_from_exports(*files, settings=ChimerismSettings(stutter="flag"))
    assert plain.samples[0].mean == pytest.approx(RCHIMERISM["globalfiler"], abs=0.05)
    res = chimerism_from_exports(*files, kit="GlobalFiler")
    s = res.samples[0]
    # The recipient is the major contributor here, so donor alleles one repeat below a
    # recipient allele lose the recipient's stutter (TH01 6 under 7, D1S1656 12 under 13).
    assert s.mean == pytest.approx(RCHIMERISM["globalfiler"], abs=1.0)
    assert "stutter_corrected:6" in locus(res, 0, "TH01").flags
    assert "stutter_corrected:12" in locus(res, 0, "D1S1656").flags
    # CSF1PO: the donor allele 11 is present (740 RFU) but left unlabelled by GeneMapper.
    # Rchimerism reads 0 % there; immunomon finds the peak by size, reads 18.7 %, and the
    # robust rule still leaves the locus out.
    csf = locus(res, 0, "CSF1PO")
    assert csf.percent_donor == pytest.approx(18.70, abs=0.05)
    assert "matched_by_size:11" in csf.flags and not csf.used
    # Yindel and DYS391 (male donor) are reported but never averaged.
    assert not locus(res, 0, "AMEL").used


def test_double_donor_shares_are_rchimerisms_normalised():
    res = chimerism_from_exports(
        [DONOR1, DOUBLE / "d2data.txt"], DOUBLE / "rdata.txt",
        [DOUBLE / "08_19_2019" / "cd33_SELECT" / "sdata.txt"],
        settings=ChimerismSettings(stutter="flag"))
    s = res.samples[0]
    assert sum(s.shares.values()) == pytest.approx(100.0)
    ref = RCHIMERISM["double_cd33"]
    assert s.shares["recipient"] == pytest.approx(ref["recipient"], abs=1.0)
    assert s.shares["donor1"] == pytest.approx(ref["donor1"], abs=1.5)
    assert s.shares["donor2"] == pytest.approx(ref["donor2"], abs=2.0)
    # Rchimerism divides each person's unique-allele area by the locus total, so its
    # three shares need not add to 100; immunomon's dose model gives the same shares
    # scaled to add to 100.
    for name, rshares in RCHIMERISM_CD33_LOCI.items():
        ours = locus(res, 0, name).shares
        total = sum(rshares)
        expected = [100 * x / total for x in rshares]
        assert [ours["donor1"], ours["donor2"], ours["recipient"]] == \
            pytest.approx(expected, abs=0.05), name


def test_peaks_where_the_references_show_artefacts_are_no_unknown_alleles():
    """The double-cord CD33 sample's six 'unknown alleles' at D5S818 sat where the
    donors' own runs had pull-up and off-ladder peaks: artefacts of the run, flagged as
    such, not a third person's alleles."""
    res = chimerism_from_exports(
        [DONOR1, DOUBLE / "d2data.txt"], DOUBLE / "rdata.txt",
        [DOUBLE / "08_19_2019" / "cd33_SELECT" / "sdata.txt"])
    d5 = locus(res, 0, "D5S818")
    assert not [f for f in d5.flags if f.startswith("unknown_allele")]
    assert len([f for f in d5.flags if f.startswith("reference_artefact:")]) == 6
    assert not any(f.startswith("unknown_allele") for r in res.samples[0].loci
                   for f in r.flags)


def test_reference_with_two_names_says_how_many_peaks_each(tmp_path):
    res = CliRunner().invoke(main, ["chimerism", "--donor", str(DOUBLE / "d1data.txt"),
                                    "--donor", str(DOUBLE / "d2data.txt"), "--recipient",
                                    str(DOUBLE / "rdata.txt"), str(CD33)])
    assert res.exit_code == 2
    assert "'xxxxxxxxxxxxxxxx' (1 peak), 'xxxxxxxxxxxxxxxxx' (69 peaks)" in res.stderr


def test_double_donor_dropout_and_off_ladder_allele():
    res = chimerism_from_exports(
        [DONOR1, DOUBLE / "d2data.txt"], DOUBLE / "rdata.txt",
        [DOUBLE / "08_19_2019" / "cd3_SELECT" / "sdata.txt"])
    s = res.samples[0]
    # Donor 2's D7S820 allele is off-ladder (248.4 bp, 76 % of its 9): unresolved.
    donor2 = res.references[1]
    assert donor2.alleles("D7S820") == () and "unresolved" in donor2.flags["D7S820"]
    # A weak sample (30-300 RFU): where an allele of donor 2 (about 30 % of the sample)
    # falls under 50 RFU the locus under-reads donor 2 and is left out.
    dropped = {r.locus for r in s.loci if "dropout" in r.flags}
    assert {"D18S51", "D5S818", "D8S1179"} <= dropped
    assert all(r.exclusion.startswith("dropout: allele") for r in s.loci
               if "dropout" in r.flags)
    assert s.shares["donor2"] == pytest.approx(29.66, abs=1.0)    # Rchimerism: 29.66
    assert s.shares["recipient"] < 1.0


# ----------------------------------------------------------------- missing columns
def _drop_column(src: Path, column: str, dst: Path) -> Path:
    df = pd.read_csv(src, sep="\t", dtype=str, keep_default_na=False)
    df.drop(columns=[c for c in df.columns if c.startswith("Unnamed")] + [column]) \
        .to_csv(dst, sep="\t", index=False)
    return dst


def test_export_without_height_warns_and_records_it(tmp_path):
    sample = _drop_column(CD33, "Height", tmp_path / "cd33_no_height.txt")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["chimerism", "--donor", str(SINGLE / "ddata.txt"),
                                    "--recipient", str(SINGLE / "rdata.txt"), str(sample),
                                    "--json", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "no Height column" in res.stderr and str(sample) in res.stderr
    doc = json.loads(res.stdout)
    assert any("no Height column: the call used peak areas alone" in w
               and "detection threshold" in w for w in doc["warnings"])
    assert "no Height column" in doc["samples"][0]["warnings"]
    assert "no_heights" in doc["samples"][0]["flags"]
    table = pd.read_csv(out / "chimerism_samples.csv")
    assert "no Height column" in table.loc[0, "warnings"]
    assert "no Height column" in (out / "chimerism.html").read_text()


def test_export_without_area_uses_heights_and_says_so(tmp_path):
    sample = _drop_column(CD33, "Area", tmp_path / "cd33_no_area.txt")
    res = CliRunner().invoke(main, ["chimerism", "--donor", str(SINGLE / "ddata.txt"),
                                    "--recipient", str(SINGLE / "rdata.txt"), str(sample),
                                    "--json"])
    assert res.exit_code == 0, res.output
    assert "allele 10 has no area" not in res.output
    doc = json.loads(res.stdout)
    row = doc["samples"][0]
    assert row["quantity"] == "height"
    assert "no Area column" in row["warnings"] and "peak heights instead" in row["warnings"]
    assert "quantity:height" in row["flags"]
    # The same sample from heights, computed directly, gives the same number.
    direct = single([CD33], quantity="height").samples[0]
    assert row["percent_donor"] == pytest.approx(direct.mean)


def test_export_without_marker_is_accepted_with_a_note(tmp_path):
    sample = _drop_column(CD33, "Marker", tmp_path / "cd33_no_marker.txt")
    res = single([sample])
    assert any("no Marker column" in w and "inferred from its dye and size" in w
               for w in res.warnings)
    with_marker = single([CD33]).samples[0]
    assert res.samples[0].mean == pytest.approx(with_marker.mean, abs=0.05)


def test_export_without_marker_or_dye_is_an_error(tmp_path):
    no_marker = _drop_column(CD33, "Marker", tmp_path / "a.txt")
    sample = _drop_column(no_marker, "Dye/Sample Peak", tmp_path / "cd33_bare.txt")
    res = CliRunner().invoke(main, ["chimerism", "--donor", str(SINGLE / "ddata.txt"),
                                    "--recipient", str(SINGLE / "rdata.txt"), str(sample)])
    assert res.exit_code == 2
    assert str(sample) in res.stderr and "no Marker column and no Dye column" in res.stderr
    assert "Traceback" not in res.output


def test_reference_without_marker_is_an_error(tmp_path):
    donor = _drop_column(SINGLE / "ddata.txt", "Marker", tmp_path / "donor.txt")
    res = CliRunner().invoke(main, ["chimerism", "--donor", str(donor),
                                    "--recipient", str(SINGLE / "rdata.txt"), str(CD33)])
    assert res.exit_code == 2
    assert str(donor) in res.stderr and "no Marker column" in res.stderr


def test_reference_from_a_plate_export_by_name(tmp_path):
    # One file with the donor and the recipient under their own names, as a plate
    # export is: each reference is picked as FILE::SAMPLE; the sample file is separate.
    d = pd.read_csv(SINGLE / "ddata.txt", sep="\t", dtype=str, keep_default_na=False)
    r = pd.read_csv(SINGLE / "rdata.txt", sep="\t", dtype=str, keep_default_na=False)
    d["Sample File Name"], r["Sample File Name"] = "DON_pre.fsa", "REC_pre.fsa"
    plate = tmp_path / "plate.txt"
    pd.concat([d, r]).to_csv(plate, sep="\t", index=False)
    res = chimerism_from_exports(f"{plate}::DON_pre", f"{plate}::REC_pre", [CD33])
    assert res.samples[0].mean == pytest.approx(single([CD33]).samples[0].mean)
    res = CliRunner().invoke(main, ["chimerism", "--donor", str(plate), "--recipient",
                                    f"{plate}::REC_pre", str(CD33)])
    assert res.exit_code == 2 and "::<sample name>" in res.stderr
    res = CliRunner().invoke(main, ["chimerism", "--donor", f"{plate}::NOPE",
                                    "--recipient", f"{plate}::REC_pre", str(CD33)])
    assert res.exit_code == 2 and "no sample 'NOPE'" in res.stderr


def test_page_lists_every_exclusion():
    from immunomon.chimerism.page import chimerism_html

    page = chimerism_html(single([CD3, CD33]))
    assert page.count("outlier: ") >= 2                      # D7S820 in both samples
    assert "unresolved" in page and "minor_peak" in page
    assert "44% of 19 (under the 50% balance threshold)" in page
    assert math.isfinite(float(page.count("<table>")))


def test_references_of_another_patient_are_not_reported():
    """The single-donor patient's CD3 fraction against the double-donor patient's first
    donor and recipient: its alleles are neither's at 13 of 16 typed loci. A mix-up of
    references (or of the sample) gives no % donor for the cohort, and says why; its
    own references give 52.9% as before. A single export path (not a list) is one file."""
    wrong = chimerism_from_exports(DONOR1, DOUBLE / "rdata.txt", CD3)
    s = wrong.samples[0]
    assert "identity_mismatch" in s.flags
    assert math.isnan(s.mean) and s.reported == "" and s.classification == "not determined"
    assert any(w.startswith(f"sample {s.sample!r}: alleles of neither donor nor recipient "
                            "at 13 of 16 typed loci") and "not reported" in w
               for w in s.warnings)
    row = wrong.summary_frame().iloc[0]
    assert math.isnan(row["percent_donor"]) and "identity_mismatch" in row["flags"]
    own = chimerism_from_exports(SINGLE / "ddata.txt", SINGLE / "rdata.txt", CD3).samples[0]
    assert "identity_mismatch" not in own.flags
    assert own.mean == pytest.approx(RCHIMERISM["single_cd3"], abs=0.5)
