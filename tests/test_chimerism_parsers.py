"""GeneMapper / GeneMarker / Peak Scanner exports and kit definitions."""

import math

import pytest

from immunomon.chimerism import (builtin_kits, detect_layout, genotype_from_peaks, load_kit,
                                 normalize_locus, read_export)
from immunomon.chimerism.genotype import GenotypingRules
from immunomon.errors import ChimerismError

PEAK_HEADER = ("Dye/Sample Peak\tSample File Name\tMarker\tAllele\tSize\tHeight\tArea\t"
               "Data Point\t")

# A per-peak report as GeneMapper writes it: trailing tab, some quoted cells, an
# unlabelled stutter peak, an off-ladder peak, size-standard rows, an empty area.
PEAK_REPORT = "\n".join([
    PEAK_HEADER,
    '"B,1"\t"DON_pre.fsa"\tD8S1179\t12\t148.05\t2100\t21000\t3001\t',
    "B,2\tDON_pre.fsa\t\t\t144.1\t150\t1500\t2950\t",
    "B,3\tDON_pre.fsa\tD8S1179\t14\t156.12\t1900\t19000\t3102\t",
    "G,1\tDON_pre.fsa\tTH01\tOL\t201.4\t1200\t\t3500\t",
    "G,2\tDON_pre.fsa\tTH01\t6\t184.0\t1300\t13000\t3400\t",
    "O,1\tDON_pre.fsa\t\t\t75.0\t800\t8000\t1000\t",
    "O,2\tDON_pre.fsa\t\t\t100.0\t820\t8100\t1300\t",
    "",
]) + "\n"

WIDE_TABLE = "\n".join([
    "Sample Name\tPanel\tMarker\tDye\tAllele 1\tAllele 2\tAllele 3\tSize 1\tSize 2\t"
    "Size 3\tHeight 1\tHeight 2\tHeight 3\tArea 1\tArea 2\tArea 3",
    "REC_pre\tIdentifiler_v1\tD8S1179\tB\t15\t17\t\t160.1\t168.0\t\t1800\t1700\t\t"
    "18000\t17000\t",
    'REC_pre\tIdentifiler_v1\t"TH01"\tG\t7\tOL\t\t188.0\t197.6\t\t900\t1000\t\t9000\t10000\t',
    "REC_pre\tIdentifiler_v1\tAMEL\tR\tX\t\t\t107.0\t\t\t2500\t\t\t25000\t\t",
    "GS500\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t",
]) + "\n"


def write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_text(text, encoding=encoding)
    return p


# ----------------------------------------------------------------- per-peak report
def test_peak_report_rows_and_columns(tmp_path):
    df = read_export(write(tmp_path, "donor.txt", PEAK_REPORT))
    assert df.attrs["layout"] == "peaks"
    # size-standard (orange) rows are dropped; 5 locus-dye rows remain
    assert len(df) == 5
    assert set(df["dye"]) == {"B", "G"}
    assert set(df["sample"]) == {"DON_pre"}            # .fsa suffix removed
    first = df.iloc[0]
    assert (first["locus"], first["allele"], first["size"], first["height"],
            first["area"], first["line"]) == ("D8S1179", "12", 148.05, 2100, 21000, 2)
    unlabelled = df[df["allele"] == ""]
    assert len(unlabelled) == 1 and unlabelled.iloc[0]["size"] == 144.1
    ol = df[df["allele"] == "OL"].iloc[0]
    assert math.isnan(ol["area"]) and ol["size"] == 201.4 and ol["line"] == 5


def test_size_standard_dropped_by_kit_dye(tmp_path):
    kit = load_kit("Identifiler")
    df = read_export(write(tmp_path, "donor.txt", PEAK_REPORT), kit=kit)
    assert "O" not in set(df["dye"])


def test_genotype_from_peak_report_rejects_off_ladder_and_stutter(tmp_path):
    df = read_export(write(tmp_path, "donor.txt", PEAK_REPORT))
    g = genotype_from_peaks(df, "donor")
    assert g.alleles("D8S1179") == ("12", "14")         # the 150 RFU stutter is not an allele
    # An off-ladder peak is never an allele unless asked for; one as tall as the alleles
    # (1200 RFU against 1300) leaves the locus unresolved rather than homozygous.
    assert g.alleles("TH01") == ()
    assert {"off_ladder:OL@201.4", "unresolved"} <= set(g.flags["TH01"])
    calls = g.calls.set_index(["locus", "allele"])
    assert calls.loc[("TH01", "OL@201.4"), "reason"] == "off_ladder"
    assert calls.loc[("D8S1179", "12"), "call"] == "allele"
    assert calls.loc[("", "")]["reason"] == "unlabelled"
    assert g.dyes == {"D8S1179": "B", "TH01": "G"}
    assert g.loci["D8S1179"][0].size == pytest.approx(148.05)
    kept = genotype_from_peaks(df, "donor", rules=GenotypingRules(off_ladder=True))
    assert kept.alleles("TH01") == ("6", "OL@201.4")
    assert "off_ladder_allele" in kept.flags["TH01"]


def test_homozygous_call_and_relative_threshold(tmp_path):
    text = "\n".join([PEAK_HEADER,
                      "B,1\tX.fsa\tD8S1179\t12\t148\t2000\t20000\t1\t",
                      "B,2\tX.fsa\tD8S1179\t13\t152\t400\t4000\t2\t"]) + "\n"
    df = read_export(write(tmp_path, "x.txt", text))
    g = genotype_from_peaks(df, "d")
    assert g.alleles("D8S1179") == ("12",)        # 400 is 20 % of 2000: under 50 %
    assert g.calls.iloc[1]["reason"] == "minor_peak"
    assert "20% of 12" in g.calls.iloc[1]["detail"]
    assert genotype_from_peaks(df, "d", relative_threshold=0.15).alleles("D8S1179") == \
        ("12", "13")


def test_comma_separated_and_latin1(tmp_path):
    text = ("Sample Name,Marker,Allele,Size,Height,Area\n"
            "Échantillon,vWA,16,150.0,900,9000\n")
    df = read_export(write(tmp_path, "c.csv", text, encoding="latin-1"))
    assert df.iloc[0]["sample"] == "Échantillon" and df.iloc[0]["locus"] == "VWA"


def test_peak_scanner_area_in_point(tmp_path):
    text = ("Status\tSample Name\tDye/Sample Peak\tSample File Name\tSize\tHeight\t"
            "Area in Point\tArea in BP\tData Point\n"
            "\tS1\tB,1\tS1.fsa\t148.0\t500\t5000\t40.5\t3000\n")
    df = read_export(write(tmp_path, "ps.txt", text))
    assert df.iloc[0]["area"] == 5000 and df.iloc[0]["allele"] == ""
    assert df.iloc[0]["sample"] == "S1"


# ----------------------------------------------------------------- wide genotype table
def test_wide_table(tmp_path):
    df = read_export(write(tmp_path, "rec.txt", WIDE_TABLE))
    assert df.attrs["layout"] == "wide"
    assert list(df["allele"]) == ["15", "17", "7", "OL", "X"]
    assert list(df["line"]) == [2, 2, 3, 3, 4]
    assert list(df["dye"]) == ["B", "B", "G", "G", "R"]
    g = genotype_from_peaks(df, "recipient")
    assert g.alleles("TH01") == ()            # an OL as tall as the 7: unresolved
    assert "unresolved" in g.flags["TH01"]
    assert g.alleles("AMEL") == ("X",)


def test_wide_table_without_sizes_or_heights(tmp_path):
    text = ("Sample File\tMarker\tAllele 1\tAllele 2\n"
            "R.fsa\tD8S1179\t15\t17\n"
            "R.fsa\tTH01\t7\t\n")
    df = read_export(write(tmp_path, "g.txt", text))
    assert df["size"].isna().all() and df["height"].isna().all()
    g = genotype_from_peaks(df, "recipient")
    assert g.alleles("D8S1179") == ("15", "17") and g.alleles("TH01") == ("7",)


def test_detect_layout():
    assert detect_layout(["Sample Name", "Marker", "Allele 1", "Size 1"]) == "wide"
    assert detect_layout(["Dye/Sample Peak", "Sample File Name", "Size", "Height"]) == "peaks"
    assert detect_layout(["Name", "Value"]) is None


# ----------------------------------------------------------------- malformed exports
def test_bad_number_names_file_line_and_column(tmp_path):
    bad = PEAK_REPORT.replace("156.12", "15x6")
    path = write(tmp_path, "bad.txt", bad)
    with pytest.raises(ChimerismError) as err:
        read_export(path)
    msg = str(err.value)
    assert str(path) in msg and "line 4" in msg and "column 5" in msg and "'Size'" in msg
    assert "\n" not in msg


def test_missing_column_names_header_line(tmp_path):
    path = write(tmp_path, "h.txt", "\n\nSample Name\tMarker\tAllele\tHeight\n"
                                   "S\tTH01\t6\t100\n")
    with pytest.raises(ChimerismError, match=r"line 3: no size column"):
        read_export(path)


def test_unrecognised_header(tmp_path):
    with pytest.raises(ChimerismError, match="line 1: not a recognised export"):
        read_export(write(tmp_path, "u.txt", "Name\tValue\na\t1\n"))


def test_extra_cell_names_line_and_column(tmp_path):
    text = ("Sample Name\tMarker\tAllele\tSize\tHeight\n"
            "S\tTH01\t6\t184\t100\n"
            "S\tTH01\t7\t188\t100\tstray\n")
    with pytest.raises(ChimerismError, match=r"line 3, column 6"):
        read_export(write(tmp_path, "x.txt", text))


def test_negative_height_and_empty_sample(tmp_path):
    text = "Sample Name\tMarker\tAllele\tSize\tHeight\nS\tTH01\t6\t184\t-5\n"
    with pytest.raises(ChimerismError, match=r"line 2, column 5"):
        read_export(write(tmp_path, "n.txt", text))
    text = "Sample Name\tMarker\tAllele\tSize\tHeight\n\tTH01\t6\t184\t5\n"
    with pytest.raises(ChimerismError, match=r"line 2, column 1 .*sample name is empty"):
        read_export(write(tmp_path, "e.txt", text))


def test_binary_and_empty_and_missing_files(tmp_path):
    with pytest.raises(ChimerismError, match="binary"):
        read_export(write(tmp_path, "b.fsa", "ABIF\x00\x65\x00\x00"))
    with pytest.raises(ChimerismError, match="empty"):
        read_export(write(tmp_path, "e.txt", "\n\n"))
    with pytest.raises(ChimerismError, match="cannot read"):
        read_export(tmp_path / "nope.txt")


def test_reference_without_labels_is_an_error(tmp_path):
    text = "Sample Name\tDye/Sample Peak\tSize\tHeight\nS\tB,1\t148\t500\n"
    df = read_export(write(tmp_path, "p.txt", text))
    with pytest.raises(ChimerismError, match="no labelled alleles"):
        genotype_from_peaks(df, "donor")


# ----------------------------------------------------------------- kits
@pytest.mark.parametrize("name, n_loci, dyes", [
    ("Identifiler", 16, {"B", "G", "Y", "R"}),
    ("Identifiler Plus", 16, {"B", "G", "Y", "R"}),
    ("PowerPlex 16", 16, {"B", "G", "Y"}),
    ("PowerPlex Fusion", 24, {"B", "G", "Y", "R"}),
    ("GlobalFiler", 24, {"B", "G", "Y", "R", "P"}),
    ("NGM SElect", 17, {"B", "G", "Y", "R"}),
    ("Mentype Chimera", 13, {"B", "G", "Y"}),
])
def test_builtin_kits(name, n_loci, dyes):
    kit = load_kit(name)
    assert len(kit.loci) == n_loci
    assert kit.dyes == dyes


def test_kit_details():
    assert load_kit("globalfiler").locus("D22S1045").repeat == 3
    assert load_kit("PowerPlex Fusion").locus("Penta E").repeat == 5
    assert load_kit("PowerPlex 16").locus("PENTA_D").dye == "G"
    assert load_kit("Mentype Chimera").locus("D10S2325").repeat == 5
    assert load_kit("Identifiler").locus("Amelogenin").repeat is None
    assert load_kit("identifiler").locus("vWA").dye == "Y"
    assert len(builtin_kits()) == 6
    assert normalize_locus("Penta E") == "PENTAE" and normalize_locus("THO1") == "TH01"


def test_custom_kit_yaml(tmp_path):
    p = write(tmp_path, "lab.yaml", "name: Lab panel\nloci:\n"
                                    "  - {name: D8S1179, dye: B, repeat: 4, stutter: 0.08}\n"
                                    "  - {name: D22S1045, dye: g, repeat: 3}\n")
    kit = load_kit(p)
    assert kit.name == "Lab panel"
    assert kit.locus("D8S1179").stutter == 0.08
    assert kit.locus("D22S1045").dye == "G"


@pytest.mark.parametrize("text, match", [
    ("name: K\nloci:\n  - {name: TH01, dye: Z}\n", "loci entry 1 \\(TH01\\): 'dye'"),
    ("name: K\nloci:\n  - {name: TH01, repeat: 40}\n", "'repeat'"),
    ("name: K\nloci: []\n", "'loci'"),
    ("loci:\n  - {name: TH01}\n", "'name'"),
    ("name: K\nloci:\n  - {name: TH01}\n  - {name: THO1}\n", "listed twice"),
    ("name: K\nloci: [\n", "line \\d+, column \\d+: not valid YAML"),
    ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),
])
def test_custom_kit_errors(tmp_path, text, match):
    with pytest.raises(ChimerismError, match=match):
        load_kit(write(tmp_path, "k.yaml", text))


def test_a_kit_file_that_is_not_text_is_named(tmp_path):
    path = tmp_path / "k.yaml"
    path.write_bytes(b"name: K\nloci: \xf4\x9c\x00\xff\n")
    with pytest.raises(ChimerismError, match="k.yaml: not a kit file: byte 14 is not UTF-8"):
        load_kit(path)


def test_unknown_kit_name():
    with pytest.raises(ChimerismError, match="unknown kit 'Profiler'"):
        load_kit("Profiler")


# ----------------------------------------------------------------- other exporters' spellings
def test_header_spellings_of_other_exporters(tmp_path):
    # EuroForMix / R write.table reference and evidence tables: "SampleName", "Allele1",
    # NA in the empty slots (the homozygote listed twice)
    refs = write(tmp_path, "refs.csv", "SampleName,Marker,Allele1,Allele2\r\n"
                                       "ref1,D3S1358,16,16\r\nref1,TH01,9.3,NA\r\n")
    df = read_export(refs)
    assert list(df["allele"]) == ["16", "16", "9.3"]
    assert genotype_from_peaks(df, "donor").alleles("D3S1358") == ("16",)
    # strvalidator: "Sample.Name", "Allele.1", "Size.1", NA for no number
    dotted = write(tmp_path, "set.txt",
                   "Sample.Name\tMarker\tDye\tAllele.1\tAllele.2\tSize.1\tSize.2\t"
                   "Height.1\tHeight.2\n"
                   "A2.1\tD3S1358\tB\t15\tNA\t130.7\tNA\t3960\tNA\n")
    df = read_export(dotted)
    assert df.attrs["layout"] == "wide" and list(df["allele"]) == ["15"]
    assert df.iloc[0]["size"] == 130.7 and df.iloc[0]["dye"] == "B"
    # GeneMapper ID-X allele report: "Allele#1", "Height#1", no sizes
    hashed = write(tmp_path, "AlleleReport.txt",
                   "Sample Name\tMarker\tAllele#1\tHeight#1\tAllele#2\tHeight#2\n"
                   "1_11148_1A2\tD3S1358\t14\t3950\t15\t8780\n")
    df = read_export(hashed)
    assert list(df["allele"]) == ["14", "15"] and list(df["height"]) == [3950, 8780]


def test_peak_scanner_csv_with_starred_standard_sizes(tmp_path):
    # Peak Scanner's CSV: "Sample Filename", "Dye Color", "Dye, Sample Peak", two area
    # columns, and a star before the sizes of the size-standard fragments
    text = ('"Sample Filename","Dye Color","Dye, Sample Peak","Size","Height",'
            '"Area (Data Point)","Area (Base Pairs)","Data Point",\n'
            '"K1_A04.fsa","BLUE","B, 12","151.16","2223.00","36077.00","150.66","3975.00",\n'
            '"K1_A04.fsa","ORANGE","O, 5","*100.00","800.00","8000.00","60.5","3000.00",\n')
    df = read_export(write(tmp_path, "peakscanner.csv", text))
    assert list(df["sample"]) == ["K1_A04", "K1_A04"]
    assert list(df["dye"]) == ["B", "O"] and list(df["size"]) == [151.16, 100.0]
    assert df.iloc[0]["area"] == 36077 and df.iloc[0]["data_point"] == 3975
    # the star is read only where Peak Scanner puts it
    with pytest.raises(ChimerismError, match=r"line 2, column 5 \('Height'\): '\*2223.00'"):
        read_export(write(tmp_path, "bad.csv", text.replace('"2223.00"', '"*2223.00"')))


# -- exports of other labs (a sweep of public STR files) ----------------------------
def test_line_endings_of_a_carriage_return_alone_and_comment_lines(tmp_path):
    """Excel for Mac's tab-delimited text ends lines with CR alone (the csv reader had
    refused it with its own message); a header may follow '#' comment lines."""
    text = "# exported 2024-03-01\n# by a script\n" + WIDE_TABLE
    df = read_export(write(tmp_path, "cr.txt", text.replace("\n", "\r")))
    assert set(df["locus"]) == {"D8S1179", "TH01", "AMEL"} and len(df) == 5


def test_peak_area_columns_of_genemapper_id_x_and_sinofiler(tmp_path):
    text = WIDE_TABLE.replace("Height 1\tHeight 2\tHeight 3\tArea 1\tArea 2\tArea 3",
                              "Peak Height 1\tPeak Height 2\tPeak Height 3\tPeak Area 1\t"
                              "Peak Area 2\tPeak Area 3")
    df = read_export(write(tmp_path, "idx.txt", text))
    row = df[(df["locus"] == "D8S1179") & (df["allele"] == "15")].iloc[0]
    assert (row["height"], row["area"]) == (1800, 18000)


def test_an_area_column_of_zeros_gives_way_to_one_with_values(tmp_path):
    """Peak Scanner writes 0.00 into every row of 'Area (Data Point)' and the areas into
    'Area (Base Pairs)': read as areas, every sample had come out not determined."""
    header = "Sample Name\tMarker\tAllele\tSize\tHeight\tArea (Data Point)\tArea (Base Pairs)"
    rows = ["S1\tD8S1179\t12\t148.0\t2100\t0.00\t3150.5", "S1\tD8S1179\t14\t156.1\t1900\t0.00\t2870.2"]
    path = write(tmp_path, "ps.txt", "\n".join([header, *rows]) + "\n")
    df = read_export(path)
    assert df["area"].tolist() == [3150.5, 2870.2]
    assert any("'Area (Data Point)' column holds only zeros: areas read from 'Area (Base "
               "Pairs)'" in w for w in df.attrs["warnings"])
    # its only area column all zeros: no areas (heights are used, with a warning)
    only = "\n".join(line.rsplit("\t", 1)[0] for line in [header, *rows]) + "\n"
    df = read_export(write(tmp_path, "zero.txt", only))
    assert df["area"].isna().all() and df["height"].tolist() == [2100, 1900]
    assert any("holds only zeros: no areas" in w for w in df.attrs["warnings"])


def test_two_runs_of_one_name_are_told_apart_and_an_empty_one_is_said(tmp_path):
    """strvalidator's example export holds two positive controls of one name (their
    peaks had been pooled into one sample) and a negative control with no allele (it
    had vanished without a word)."""
    rows = WIDE_TABLE.strip().split("\n")
    again = [r.replace("1800", "1500") for r in rows[1:3]]           # a re-injection
    neg = "NEG\tIdentifiler_v1\tD8S1179\tB" + "\t" * 12
    text = "\n".join([rows[0], *rows[1:3], neg, *again]) + "\n"
    df = read_export(write(tmp_path, "plate.txt", text))
    assert list(dict.fromkeys(df["sample"])) == ["REC_pre", "REC_pre #2"]
    assert sorted(df.loc[df["sample"] == "REC_pre #2", "height"]) == [900, 1000, 1500, 1700]
    warnings = df.attrs["warnings"]
    assert any("a second run named 'REC_pre'" in w and "'REC_pre #2'" in w for w in warnings)
    assert any("no allele at any marker for 'NEG'" in w for w in warnings)
    # back to back, the second run's markers come round again
    back = "\n".join([rows[0], *rows[1:3], *again]) + "\n"
    df = read_export(write(tmp_path, "b2b.txt", back))
    assert list(dict.fromkeys(df["sample"])) == ["REC_pre", "REC_pre #2"]


def test_a_sample_with_usable_peaks_at_under_half_its_informative_loci_is_not_reported(
        tmp_path):
    """A third person's diluted DNA was reported "full donor, 100 %" from the one locus
    of 16 where its peaks fell on the donor's alleles. Peaks at one of four informative
    loci: not reported, and said why; at three of four: reported."""
    from immunomon.chimerism import chimerism_from_exports

    loci = [("D8S1179", "B", (12, 14), (13, 15)), ("D21S11", "B", (28, 30), (29, 31)),
            ("TH01", "G", (6, 8), (7, 9)), ("FGA", "Y", (20, 22), (21, 23))]
    head = "Sample Name\tMarker\tDye\tAllele 1\tAllele 2\tHeight 1\tHeight 2\n"

    def table(name, rows):
        return head + "".join(f"{name}\t{m}\t{d}\t{a}\t{b}\t{ha}\t{hb}\n"
                              for m, d, (a, b), (ha, hb) in rows)

    donor = write(tmp_path, "d.txt", table("D", [(m, d, g, (2000, 2000)) for m, d, g, _ in loci]))
    rec = write(tmp_path, "r.txt", table("R", [(m, d, g, (2000, 2000)) for m, d, _, g in loci]))
    for n, reported in ((1, False), (3, True)):
        sample = write(tmp_path, f"s{n}.txt", table(f"S{n}", [
            (m, d, g, (1500, 1500)) for m, d, g, _ in loci[:n]]))
        s = chimerism_from_exports(donor, rec, sample).samples[0]
        assert (s.classification != "not determined") == reported, n
        if not reported:
            assert "most_loci_not_computable" in s.flags and math.isnan(s.mean)
            assert any(w.startswith(f"sample 'S{n}': no usable peak for the formula at 3 "
                                    "of 4 informative loci") for w in s.warnings)


def test_a_typed_reference_with_three_alleles_is_taken_as_listed(tmp_path):
    """EuroForMix's tri-allelic example: a typed reference lists 18, 16 and 19 at
    D3S1358 with no heights to choose two by; the first two had been kept and the donor's
    19 in the sample read as nobody's."""
    from immunomon.chimerism import chimerism_from_exports

    refs = write(tmp_path, "refs.csv", "SampleName,Marker,Allele1,Allele2,Allele3\n"
                 "ref1,D3S1358,18,16,19\nref2,D3S1358,14,14,\n")
    sample = write(tmp_path, "s.csv", "Sample Name,Marker,Allele 1,Allele 2,Allele 3,Allele 4,"
                   "Height 1,Height 2,Height 3,Height 4\n"
                   "stain,D3S1358,14,16,18,19,600,700,700,700\n")
    s = chimerism_from_exports(f"{refs}::ref1", f"{refs}::ref2", sample).samples[0]
    (locus,) = [r for r in s.loci if r.locus == "D3S1358"]
    assert "donor_tri_allelic" in locus.flags
    assert not any(f.startswith("unknown_allele") for f in locus.flags)
    assert locus.percent_donor == pytest.approx(100 * 2100 / 2700)


def test_one_column_per_marker_with_its_heights(tmp_path):
    """GeneMapper's genotypes with one column per marker, alleles and heights joined by
    commas (LRmix Studio's example export), had been refused as not an export."""
    text = ("Sample File\tSample Name\tD10S1248\tHeight\tvWA\tHeight\tAMEL\tHeight\n"
            "A01.fsa\tS1\t12, 13, , , \t58, 261, , , \tOL, 17, , \t319, 164, , \tX, Y, \t"
            "399, 565, \n")
    assert detect_layout(text.split("\n")[0].split("\t")) == "markers"
    df = read_export(write(tmp_path, "gm.txt", text))
    assert df.attrs["layout"] == "markers"
    assert list(zip(df["locus"], df["allele"], df["height"])) == [
        ("D10S1248", "12", 58), ("D10S1248", "13", 261), ("VWA", "OL", 319),
        ("VWA", "17", 164), ("AMEL", "X", 399), ("AMEL", "Y", 565)]
    assert df["sample"].unique().tolist() == ["S1"] and df["area"].isna().all()


def test_a_one_sample_table_without_a_sample_column_is_named_after_its_file(tmp_path):
    """LRmix Studio's eDNA example: alleles and heights with no sample column."""
    text = ("Marker,Dye,Allele 1,Allele 2,Height 1,Height 2\n"
            "D8S1179,B,12,14,800,700\nTH01,G,6,9.3,900,850\n")
    df = read_export(write(tmp_path, "stain_7.csv", text))
    assert df["sample"].unique().tolist() == ["stain_7"] and len(df) == 4
    assert df.attrs["warnings"] == [f"{tmp_path / 'stain_7.csv'}: no sample column: its "
                                    "rows are one sample, 'stain_7'"]
