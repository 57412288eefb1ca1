"""``immunomon chimerism`` end to end on exports written here.

References (Identifiler dyes: D8S1179 blue, TH01 green, FGA/D5S818/AMEL red):

    locus     donor   recipient  pattern                    sample at 70 % donor
    D8S1179   12/14   15/17      no shared                  700 700 | 300 300
    TH01      6/9.3   7/8        no shared                  700 700 | 300 300
    FGA       21/24   21/22      one shared, both het       24: 700, 22: 300
    D5S818    11/12   11         donor het, recipient hom   12: 700, 11: 700 + 2x300
    AMEL      X       X/Y        kept out of the mean

so every informative locus gives 70.0 % donor, and the sample mean is 70.0.
"""

import csv
import json

import pytest
from click.testing import CliRunner

from immunomon.cli import main

SIZES = {
    "D8S1179": {"12": 148.0, "14": 156.0, "15": 160.0, "17": 168.0, "11": 144.0},
    "TH01": {"6": 184.0, "7": 188.0, "8": 192.0, "9.3": 199.0},
    "FGA": {"21": 284.0, "22": 288.0, "24": 296.0},
    "D5S818": {"11": 144.0, "12": 148.0},
    "AMEL": {"X": 107.0, "Y": 113.0},
}
DYES = {"D8S1179": "B", "TH01": "G", "FGA": "R", "D5S818": "R", "AMEL": "R"}
DONOR = {"D8S1179": ["12", "14"], "TH01": ["6", "9.3"], "FGA": ["21", "24"],
         "D5S818": ["11", "12"], "AMEL": ["X"]}
RECIPIENT = {"D8S1179": ["15", "17"], "TH01": ["7", "8"], "FGA": ["21", "22"],
             "D5S818": ["11"], "AMEL": ["X", "Y"]}
HEADER = "Dye/Sample Peak\tSample File Name\tMarker\tAllele\tSize\tHeight\tArea\tData Point\t"


def peak_row(dye, n, sample, marker, allele, size, area):
    return f"{dye},{n}\t{sample}.fsa\t{marker}\t{allele}\t{size:.2f}\t{area / 10:.0f}\t" \
           f"{area:.0f}\t{int(size * 20)}\t"


def size_standard(sample):
    return [peak_row("O", i, sample, "", "", s, 5000) for i, s in enumerate((75, 100, 139))]


def reference_export(sample, genotype):
    rows = [HEADER]
    for marker, alleles in genotype.items():
        for i, a in enumerate(alleles):
            area = 20000 if len(alleles) == 2 else 40000
            rows.append(peak_row(DYES[marker], i, sample, marker, a, SIZES[marker][a], area))
    rows += size_standard(sample)
    return "\n".join(rows) + "\n"


def sample_export(sample, donor_amount, recipient_amount, *, unlabelled_donor=True):
    """A per-peak report with donor peaks at D8S1179 left unlabelled (no marker)."""
    d, r = donor_amount, recipient_amount
    areas = {
        "D8S1179": {"12": d, "14": d, "15": r, "17": r},
        "TH01": {"6": d, "9.3": d, "7": r, "8": r},
        "FGA": {"21": d + r, "24": d, "22": r},
        "D5S818": {"12": d, "11": d + 2 * r},
        "AMEL": {"X": 2 * d + r, "Y": r},
    }
    rows = [HEADER]
    for marker, peaks in areas.items():
        for i, (a, area) in enumerate(peaks.items()):
            if area == 0:
                continue
            size = SIZES[marker][a]
            if unlabelled_donor and marker == "D8S1179" and a in ("12", "14"):
                rows.append(peak_row(DYES[marker], i, sample, "", "", size + 0.2, area))
            else:
                rows.append(peak_row(DYES[marker], i, sample, marker, a, size, area))
    rows += size_standard(sample)
    return "\n".join(rows) + "\n"


@pytest.fixture
def exports(tmp_path):
    (tmp_path / "donor.txt").write_text(reference_export("DON_pre", DONOR))
    (tmp_path / "recipient.txt").write_text(reference_export("REC_pre", RECIPIENT))
    text = sample_export("P07_2024-03-01_S1", 7000, 3000)
    text += "\n".join(sample_export("P07_2024-04-01_S2", 9000, 0).splitlines()[1:]) + "\n"
    (tmp_path / "samples.txt").write_text(text)
    return tmp_path


def invoke(*args):
    return CliRunner().invoke(main, ["chimerism", *map(str, args)])


def test_json_output(exports):
    r = invoke("--donor", exports / "donor.txt", "--recipient", exports / "recipient.txt",
               exports / "samples.txt", "--kit", "Identifiler", "--lineage", "CD3", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    s1, s2 = data["samples"]
    assert s1["sample"] == "P07_2024-03-01_S1"
    assert (s1["patient"], s1["lineage"], s1["date"]) == ("P07", "CD3", "2024-03-01")
    assert s1["percent_donor"] == pytest.approx(70.0)
    assert s1["sd"] == pytest.approx(0.0, abs=1e-9)
    assert s1["n_informative"] == 4 and s1["n_used"] == 4
    assert s1["classification"] == "mixed"
    assert s2["percent_donor"] == pytest.approx(100.0)
    assert s2["reported"] == "recipient < LOD" and s2["classification"] == "full donor"
    loci = {(row["sample"], row["locus"]): row for row in data["loci"]}
    d8 = loci[("P07_2024-03-01_S1", "D8S1179")]
    # the unlabelled donor peaks were found by dye and size
    assert d8["percent_donor"] == pytest.approx(70.0)
    assert "matched_by_size:12" in d8["flags"]
    assert loci[("P07_2024-03-01_S1", "D5S818")]["pattern"] == "one_shared_dhet_rhom"
    assert loci[("P07_2024-03-01_S1", "FGA")]["pattern"] == "one_shared_het_het"
    assert not loci[("P07_2024-03-01_S1", "AMEL")]["used"]


def test_text_output_and_csv_files(exports):
    out = exports / "results"
    r = invoke("--donor", exports / "donor.txt", "--recipient", exports / "recipient.txt",
               exports / "samples.txt", "--out", out)
    assert r.exit_code == 0, r.output
    assert "Sample P07_2024-03-01_S1" in r.output and "Summary" in r.output
    assert "70.00" in r.output and "recipient < LOD" in r.output
    with open(out / "chimerism_samples.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert float(rows[0]["percent_donor"]) == pytest.approx(70.0)
    assert rows[1]["classification"] == "full donor"
    with open(out / "chimerism_loci.csv", newline="") as fh:
        loci = list(csv.DictReader(fh))
    assert {"sample", "patient", "lineage", "date", "locus", "pattern", "alleles_used",
            "percent_donor", "flags"} <= set(loci[0])
    assert (out / "chimerism_genotypes.csv").exists()
    assert not list(out.glob(".tmp-*"))


def test_double_donor(exports, tmp_path):
    # Second donor homozygous for alleles nobody else has at two loci.
    donor2 = {"D8S1179": ["11"], "TH01": ["8"]}
    (tmp_path / "donor2.txt").write_text(reference_export("DON2_pre", donor2))
    donor1 = {"D8S1179": ["12", "14"], "TH01": ["6", "9.3"]}
    (tmp_path / "donor1.txt").write_text(reference_export("DON1_pre", donor1))
    rec = {"D8S1179": ["15", "17"], "TH01": ["7"]}
    (tmp_path / "rec.txt").write_text(reference_export("REC_pre", rec))
    # donor1 500, donor2 300, recipient 200 per allele copy
    rows = [HEADER]
    for i, (m, a, area) in enumerate([("D8S1179", "12", 500), ("D8S1179", "14", 500),
                                      ("D8S1179", "11", 600), ("D8S1179", "15", 200),
                                      ("D8S1179", "17", 200), ("TH01", "6", 500),
                                      ("TH01", "9.3", 500), ("TH01", "8", 600),
                                      ("TH01", "7", 400)]):
        rows.append(peak_row(DYES[m], i, "CORD_S1", m, a, SIZES[m][a], area * 10))
    (tmp_path / "cord.txt").write_text("\n".join(rows) + "\n")
    r = invoke("--donor", tmp_path / "donor1.txt", "--donor", tmp_path / "donor2.txt",
               "--recipient", tmp_path / "rec.txt", tmp_path / "cord.txt", "--json",
               "--stutter", "flag")
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)["samples"][0]
    assert s["percent_donor1"] == pytest.approx(50.0)
    assert s["percent_donor2"] == pytest.approx(30.0)
    assert s["percent_recipient"] == pytest.approx(20.0)
    assert s["percent_donor"] == pytest.approx(80.0)
    # the median column is % donor as for one donor (it was the recipient's share, 20)
    assert s["median"] == pytest.approx(80.0)


def test_wide_genotype_tables_as_references(exports, tmp_path):
    def wide(sample, genotype):
        lines = ["Sample Name\tMarker\tAllele 1\tAllele 2\tSize 1\tSize 2\tHeight 1\t"
                 "Height 2\tArea 1\tArea 2"]
        for m, alleles in genotype.items():
            a = alleles + [""] * (2 - len(alleles))
            s = [f"{SIZES[m][x]:.1f}" if x else "" for x in a]
            h = ["2000" if x else "" for x in a]
            lines.append("\t".join([sample, m, *a, *s, *h, *h]))
        return "\n".join(lines) + "\n"
    (tmp_path / "dw.txt").write_text(wide("DON", DONOR))
    (tmp_path / "rw.txt").write_text(wide("REC", RECIPIENT))
    r = invoke("--donor", tmp_path / "dw.txt", "--recipient", tmp_path / "rw.txt",
               exports / "samples.txt", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["samples"][0]["percent_donor"] == pytest.approx(70.0)


def test_typed_reference_profiles_as_references(exports, tmp_path):
    # One file of typed profiles, as EuroForMix and strvalidator keep them: R's spelling
    # of the headers, a homozygote listed twice, NA for no second allele, no peaks.
    lines = ["SampleName;Marker;Allele1;Allele2"]
    for name, genotype in (("ref1", DONOR), ("ref2", RECIPIENT)):
        for m, alleles in genotype.items():
            a = alleles if len(alleles) == 2 else alleles * 2
            lines.append(";".join([name, m, *a]))
    lines[-1] = lines[-1].rsplit(";", 1)[0] + ";NA"       # ref2's AMEL as "X;NA"
    refs = tmp_path / "refs.csv"
    refs.write_text("\n".join(lines) + "\n")
    r = invoke("--donor", f"{refs}::ref1", "--recipient", f"{refs}::ref2",
               exports / "samples.txt", "--json")
    assert r.exit_code == 0, r.output
    doc, _ = json.JSONDecoder().raw_decode(r.output)   # the warnings follow on stderr
    assert doc["samples"][0]["percent_donor"] == pytest.approx(70.0)
    assert "a genotype table without heights or areas" in r.output
    assert "chosen by peak area" not in r.output


def test_malformed_export_is_one_line_error(exports):
    bad = (exports / "samples.txt").read_text().splitlines()
    cells = bad[3].split("\t")
    cells[5] = "12O0"                          # letter O typed for a zero, in Height
    bad[3] = "\t".join(cells)
    (exports / "bad.txt").write_text("\n".join(bad) + "\n")
    r = invoke("--donor", exports / "donor.txt", "--recipient", exports / "recipient.txt",
               exports / "bad.txt")
    assert r.exit_code == 2
    err = r.output.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert err.startswith("error: ") and "bad.txt, line 4, column 6 ('Height')" in err


def test_reference_with_several_samples_is_an_error(exports):
    r = invoke("--donor", exports / "samples.txt", "--recipient", exports / "recipient.txt",
               exports / "samples.txt")
    assert r.exit_code == 2 and "holds 2 samples" in r.output


def test_a_reference_export_with_no_peaks_is_named(exports):
    (exports / "empty.txt").write_text(HEADER + "\n")
    r = invoke("--donor", exports / "empty.txt", "--recipient", exports / "recipient.txt",
               exports / "samples.txt")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "empty.txt: reference donor: the export holds no peaks" in r.output


def test_an_option_out_of_range_is_named(exports):
    r = invoke("--donor", exports / "donor.txt", "--recipient", exports / "recipient.txt",
               exports / "samples.txt", "--full-donor", "200")
    assert r.exit_code == 2 and "Invalid value for --full-donor: full_donor must be a number " \
        "from 0 to 100, not 200.0" in r.output
    r = invoke("--donor", exports / "donor.txt", "--recipient", exports / "recipient.txt",
               exports / "samples.txt", "--full-recipient", "96")
    assert r.exit_code == 2 and "Invalid value for --full-recipient: full_recipient (96 % " \
        "donor) must be below full_donor (95 % donor)" in r.output


def test_the_detection_threshold_and_saturation_are_options(exports):
    """A 3100's overloaded references (7,000-8,600 RFU) were never flagged saturated at
    the 3500's 30,000, and a weak run's peaks between the lab's 30 RFU and the default 50
    were lost: both are options, and the settings record what was used."""
    r = invoke("--donor", exports / "donor.txt", "--recipient", exports / "recipient.txt",
               exports / "samples.txt", "--kit", "Identifiler", "--json",
               "--detection-threshold", "30", "--saturation", "9000")
    assert r.exit_code == 0, r.output
    settings = json.loads(r.output)["settings"]
    assert settings["detection_threshold"] == 30 and settings["saturation"] == 9000
    bad = invoke("--donor", exports / "donor.txt", "--recipient", exports / "recipient.txt",
                 exports / "samples.txt", "--saturation", "0")
    assert bad.exit_code == 2 and "Invalid value for --saturation" in bad.output


def test_unknown_kit_is_an_error(exports):
    r = invoke("--donor", exports / "donor.txt", "--recipient", exports / "recipient.txt",
               exports / "samples.txt", "--kit", "NoSuchKit")
    assert r.exit_code == 2 and "unknown kit 'NoSuchKit'" in r.output


def test_manifest_and_custom_kit(exports):
    (exports / "manifest.csv").write_text(
        "sample,patient,lineage,date\nP07_2024-03-01_S1,UPN7,CD33,2024-03-02\n")
    (exports / "kit.yaml").write_text(
        "name: Lab panel\nloci:\n"
        "  - {name: D8S1179, dye: B, repeat: 4}\n  - {name: TH01, dye: G, repeat: 4}\n"
        "  - {name: FGA, dye: R, repeat: 4}\n  - {name: D5S818, dye: R, repeat: 4}\n"
        "  - {name: AMEL, dye: R}\n")
    r = invoke("--donor", exports / "donor.txt", "--recipient", exports / "recipient.txt",
               exports / "samples.txt", "--kit", exports / "kit.yaml",
               "--manifest", exports / "manifest.csv", "--json")
    assert r.exit_code == 0, r.output
    s1, s2 = json.loads(r.output)["samples"]
    assert (s1["patient"], s1["lineage"], s1["date"]) == ("UPN7", "CD33", "2024-03-02")
    assert s1["percent_donor"] == pytest.approx(70.0)
    # not in the manifest: taken from the sample name
    assert (s2["patient"], s2["date"]) == ("P07", "2024-04-01")


def test_series_flags_rising_recipient(exports):
    text = (exports / "samples.txt").read_text()
    text += "\n".join(sample_export("P07_2024-05-01_S3", 6000, 4000).splitlines()[1:]) + "\n"
    (exports / "series.txt").write_text(text)
    r = invoke("--donor", exports / "donor.txt", "--recipient", exports / "recipient.txt",
               exports / "series.txt", "--json", "--min-rise", "5")
    assert r.exit_code == 0, r.output
    s1, s2, s3 = json.loads(r.output)["samples"]
    # recipient 30 % -> 0 % -> 40 %: only the last step is a rise (40 points > 5)
    assert s2["recipient_rise"] == pytest.approx(-30.0)
    assert s3["recipient_rise"] == pytest.approx(40.0)
    assert (s1["rising_recipient"], s2["rising_recipient"], s3["rising_recipient"]) == \
        (False, False, True)
    assert s3["lost_full_donor"] and "rising_recipient" in s3["flags"]
    assert "lost_full_donor" in s3["flags"]


def test_no_post_transplant_sample_is_an_error(exports):
    r = invoke("--donor", exports / "donor.txt", "--recipient", exports / "recipient.txt",
               exports / "donor.txt")
    assert r.exit_code == 2 and "no post-transplant sample" in r.output
