"""Raw ABIF traces to % donor: sizing, allele calls, positive controls, in-silico chimeras.

Real runs (tests/data/chimerism/osiris/, xz-compressed; see SOURCES.md): the public
NCBI OSIRIS test data of the NIST MIX05 study on an ABI 3100: the Identifiler and
PowerPlex 16 allelic ladders, their positive controls (DNA standard 9947A) and the
runs of a second single-source sample with both kits. Ground truth, none of it from this
code: 9947A's published genotype; the fragments the instrument's own sizing matched,
stored in each file (tag SdPk); and mixing fractions chosen here.
"""

import struct
from pathlib import Path

import numpy as np
import pytest
from testdata import unpacked
from click.testing import CliRunner

pytest.importorskip("Bio")

from immunomon.chimerism import ChimerismSettings, load_kit  # noqa: E402
from immunomon.chimerism.calling import (bins_misfit, call_alleles, kit_bins,  # noqa: E402
                                         ladder_bins, read_and_size)
from immunomon.chimerism.genotype import genotype_from_peaks  # noqa: E402
from immunomon.chimerism.sizing import (SIZE_STANDARDS, calibrate,  # noqa: E402
                                        load_size_standard)
from immunomon.chimerism.trace import (Trace, dna_amount, mix_traces,  # noqa: E402
                                       read_trace)
from immunomon.chimerism.workflow import chimerism_from_traces  # noqa: E402
from immunomon.cli import main  # noqa: E402
from immunomon.errors import ChimerismError  # noqa: E402

DATA = Path(__file__).parent / "data" / "chimerism" / "osiris"

# 9947A, as published for the NIST SRM 2391 DNA standard (the positive control of both
# kits; the same genotype is in NCBI OSIRIS's StandardPositiveControls.xml).
GENOTYPE_9947A = {
    "D8S1179": ("13",), "D21S11": ("30",), "D7S820": ("10", "11"), "CSF1PO": ("10", "12"),
    "D3S1358": ("14", "15"), "TH01": ("8", "9.3"), "D13S317": ("11",),
    "D16S539": ("11", "12"), "D2S1338": ("19", "23"), "D19S433": ("14", "15"),
    "VWA": ("17", "18"), "TPOX": ("8",), "D18S51": ("15", "19"), "AMEL": ("X",),
    "D5S818": ("11",), "FGA": ("23", "24"), "PENTAE": ("12", "13"), "PENTAD": ("12",),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The committed runs, decompressed: name -> path."""
    return unpacked(DATA, "*.fsa.xz", tmp_path_factory.mktemp("osiris"))


@pytest.fixture(scope="module")
def identifiler(runs):
    kit = load_kit("Identifiler")
    sized = {name: read_and_size(runs[name], kit)
             for name in ("identifiler_ladder", "identifiler_9947A",
                          "identifiler_mix05_case2_victim")}
    return kit, sized, ladder_bins([sized["identifiler_ladder"]], kit)


def instrument_fragments(path) -> dict:
    """bp -> scan of the size-standard fragments the data collection software matched."""
    from Bio import SeqIO

    raw = SeqIO.read(str(path), "abi").annotations["abif_raw"]
    data = bytes((x + 256) % 256 for x in raw["SdPk1"])
    rows = [struct.unpack(">HHHH", data[i:i + 8]) for i in range(0, len(data) - 7, 8)]
    return {float(size): scan for size, _, scan, _ in rows}


@pytest.mark.parametrize("name, kit", [
    ("identifiler_ladder", "Identifiler"), ("identifiler_9947A", "Identifiler"),
    ("identifiler_mix05_case2_victim", "Identifiler"), ("pp16_ladder", "PowerPlex 16"),
    ("pp16_9947A", "PowerPlex 16"), ("pp16_mix05_case2_victim", "PowerPlex 16")])
def test_size_standard_fragments_are_the_instruments(runs, name, kit):
    run = read_and_size(runs[name], load_kit(kit))
    theirs = instrument_fragments(runs[name])
    ours = dict(zip(run.calibration.sizes, run.calibration.scans))
    assert set(theirs) <= set(ours) | set(run.calibration.standard.exclude)
    for size, scan in theirs.items():
        assert ours[size] == pytest.approx(scan, abs=2.5), size
    assert run.calibration.standard.name == ("GS500 LIZ" if kit == "Identifiler"
                                             else "ILS 600")


def _genotype(run, bins, kit):
    peaks = call_alleles(run, bins, kit)
    return genotype_from_peaks(peaks, "control")


def test_9947A_identifiler_against_the_batch_ladder(identifiler):
    kit, sized, bins = identifiler
    assert bins.source == "allelic ladder identifiler_ladder"
    geno = _genotype(sized["identifiler_9947A"], bins, kit)
    expected = {k: v for k, v in GENOTYPE_9947A.items() if k in kit.loci}
    assert {k: geno.alleles(k) for k in expected} == expected


def test_9947A_powerplex16_against_the_batch_ladder(runs):
    kit = load_kit("PowerPlex 16")
    bins = ladder_bins([read_and_size(runs["pp16_ladder"], kit)], kit)
    geno = _genotype(read_and_size(runs["pp16_9947A"], kit), bins, kit)
    expected = {k: v for k, v in GENOTYPE_9947A.items() if k in kit.loci}
    assert {k: geno.alleles(k) for k in expected} == expected


def test_9947A_against_the_kit_bins_without_a_ladder(identifiler):
    kit, sized, _ = identifiler
    bins = kit_bins(kit)
    assert "no allelic ladder in the batch" in bins.warnings[0]
    geno = _genotype(sized["identifiler_9947A"], bins, kit)
    expected = {k: v for k, v in GENOTYPE_9947A.items() if k in kit.loci}
    assert {k: geno.alleles(k) for k in expected} == expected
    # the kit's bins fit this run: nothing said of them
    calls = call_alleles(sized["identifiler_9947A"], bins, kit)
    assert bins_misfit(calls, bins, "9947A.fsa") is None
    # were its peaks a bin's width further on (another instrument's mobility), the
    # tallest peaks of most loci fall between bins, and that is said
    moved = sized["identifiler_9947A"]
    shifted = type(moved)(moved.trace, moved.calibration, moved.dyes, moved.signal,
                          moved.peaks.assign(size=moved.peaks["size"] + 1.6))
    said = bins_misfit(call_alleles(shifted, bins, kit), bins, "9947A.fsa")
    assert said is not None and "the kit's bins do not fit this run" in said
    assert bins_misfit(call_alleles(shifted, bins, kit), ladder_bins(
        [sized["identifiler_ladder"]], kit), "9947A.fsa") is None     # a ladder's bins


def test_pull_up_under_an_off_scale_peak_is_flagged(identifiler):
    kit, sized, bins = identifiler
    run = sized["identifiler_mix05_case2_victim"]
    geno = _genotype(run, bins, kit)
    calls = geno.calls
    # The green peak at 180.1 bp is off-scale (7781 RFU, scans marked by the
    # instrument); blue and yellow show it at the same scan as 6-7 % pull-up.
    under = calls[((calls["data_point"] - 2595.4).abs() < 3) & (calls["dye"] != "G")
                  & (calls["allele"] != "") & (calls["height"] >= 50)]
    assert set(under["dye"]) == {"B", "Y"} and set(under["reason"]) == {"pull_up"}
    assert (run.peaks.loc[(run.peaks["scan"] - 2595.4).abs() < 3, "saturated"]).all()


# True % donor of the in-silico chimeras: 0.5 to 99.5 (docs/chimerism.md has the table).
FRACTIONS = (0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8,
             0.9, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995)
KIT_RUNS = [("Identifiler", "identifiler"), ("PowerPlex 16", "pp16")]


def sized_pair(runs, kit_name, prefix):
    """The kit, its ladder's bins and the sized ladder, donor (9947A) and recipient
    (the MIX05 case 2 victim) runs."""
    kit = load_kit(kit_name)
    ladder, donor, recipient = (read_and_size(runs[f"{prefix}_{name}"], kit)
                                for name in ("ladder", "9947A", "mix05_case2_victim"))
    return kit, ladder_bins([ladder], kit), ladder, donor, recipient


def in_silico_chimeras(runs, kit_name, prefix, fractions=FRACTIONS) -> dict:
    """True fraction -> the measured sample, for mixes of the donor's DNA into the
    recipient's in equal amounts of DNA (:func:`dna_amount`)."""
    kit, bins, ladder, donor, recipient = sized_pair(runs, kit_name, prefix)
    weights = dict(major_weight=dna_amount(recipient, bins, kit),
                   minor_weight=dna_amount(donor, bins, kit))
    names = {f"mix{1000 * f:04.0f}": f for f in fractions}
    mixes = [mix_traces(recipient.trace, donor.trace, f, major_calibration=recipient.calibration,
                        minor_calibration=donor.calibration,
                        standard_channel=recipient.calibration.channel, name=name, **weights)
             for name, f in names.items()]
    result = chimerism_from_traces(donor.trace, recipient.trace, mixes, kit=kit,
                                   ladders=[ladder.trace])
    return {names[s.sample]: s for s in result.samples}


@pytest.mark.parametrize("kit_name, prefix", KIT_RUNS)
def test_in_silico_chimeras_are_recovered_within_two_points(runs, kit_name, prefix):
    samples = in_silico_chimeras(runs, kit_name, prefix)
    assert set(samples) == set(FRACTIONS)
    errors = {100 * f: round(s.mean - 100 * f, 2) for f, s in samples.items()}
    assert max(abs(e) for e in errors.values()) < 2.0, errors
    assert all(s.n_used >= 12 for f, s in samples.items() if 0.05 <= f <= 0.95)
    # Half a percent of either person is below the 1 % limit of detection.
    assert samples[0.005].reported == "donor < LOD"
    assert samples[0.995].reported == "recipient < LOD"


def test_dna_amount_does_not_depend_on_the_scans_per_bp(runs):
    # The donor run takes 5 % more scans per bp than the recipient's: its alleles,
    # moved onto the recipient's scans, are 5 % narrower but the same DNA.
    kit, bins, _, donor, recipient = sized_pair(runs, "PowerPlex 16", "pp16")
    moved = read_and_size(mix_traces(recipient.trace, donor.trace, 1.0,
                                     major_calibration=recipient.calibration,
                                     minor_calibration=donor.calibration,
                                     standard_channel=recipient.calibration.channel), kit)
    assert dna_amount(moved, bins, kit) == pytest.approx(dna_amount(donor, bins, kit),
                                                         rel=0.01)
    blank = donor.trace.data.copy()                 # the size standard alone
    blank[np.arange(len(blank)) != donor.calibration.channel] = 100.0
    empty = Trace(donor.trace.path, "blank", blank, dye_names=donor.trace.dye_names)
    with pytest.raises(ChimerismError, match="no autosomal allele"):
        dna_amount(read_and_size(empty, kit), bins, kit)


def test_mix_of_nothing_is_the_major_run(identifiler):
    kit, sized, _ = identifiler
    a, b = sized["identifiler_9947A"], sized["identifiler_mix05_case2_victim"]
    same = mix_traces(a.trace, b.trace, 0.0, major_calibration=a.calibration,
                      minor_calibration=b.calibration, standard_channel=4)
    assert np.array_equal(same.data, a.trace.data)


# ----------------------------------------------------------------- peak areas
def test_peak_area_stops_at_five_percent_of_its_height():
    """A weak peak on noise that sits a few RFU above zero, between two spectral-
    correction dips: its area is the peak's, not hundreds of scans of noise, and its
    width the peak's own (full width at half its height), so it is no broad blob."""
    from immunomon.chimerism.peaks import find_peaks

    rng = np.random.default_rng(1)
    t = np.arange(1000, dtype=float)
    x = 5.0 + rng.normal(0.0, 2.0, t.size) + 300 * np.exp(-0.5 * ((t - 500) / 4.0) ** 2)
    for dip in (200, 800):
        x -= 40 * np.exp(-0.5 * ((t - dip) / 3.0) ** 2)
    peaks = find_peaks(x, min_height=50)
    assert len(peaks) == 1
    assert peaks["area"].iloc[0] == pytest.approx(300 * 4.0 * np.sqrt(2 * np.pi), rel=0.05)
    assert peaks["width"].iloc[0] == pytest.approx(2.3548 * 4.0, rel=0.1)


# ----------------------------------------------------------------- ladder matching
def test_ladder_fragments_at_the_far_end_are_found_when_the_listed_sizes_are_off():
    """A locus whose listed ladder sizes are 20 bp below where its fragments run (more
    than the 12 bp the matching looks around them): the fragments beyond the last listed
    size + 12 bp, microvariants included, are found too, on their own peaks, and not
    the next locus's fragments."""
    from immunomon.chimerism.calling import _match_ladder_locus

    alleles = ["6", "7", "8", "9", "10", "11", "12", "12.2", "13", "13.2", "14",
               "14.2", "15", "15.2", "16", "16.2", "17", "17.2", "18.2", "19.2"]

    def bp(allele, start):
        repeats, _, extra = allele.partition(".")
        return start + 4 * (int(repeats) - 6) + (int(extra) if extra else 0)

    listed = {a: float(bp(a, 94)) for a in alleles}
    # Measured: 20 bp higher, slightly compressed; stutter one repeat below each
    # fragment; the neighbouring locus below and above, as tall as the ladder.
    true = {a: 114.0 + 0.99 * (v - 94.0) for a, v in listed.items()}
    ladder = np.array(list(true.values()))
    others = np.r_[np.arange(76.0, 111.0, 4.0), np.arange(175.0, 215.0, 4.0)]
    sizes = np.r_[ladder, ladder - 4.0, others]
    heights = np.r_[np.full(len(ladder), 2400.0), np.full(len(ladder), 150.0),
                    np.full(len(others), 2400.0)]
    order = np.argsort(sizes)
    got = _match_ladder_locus(listed, sizes[order], heights[order])
    assert set(got) == set(alleles)
    for allele, size in got.items():
        assert size == pytest.approx(true[allele]), allele
    # Listed sizes that are right are matched in one go, to the same peaks.
    assert _match_ladder_locus(true, sizes[order], heights[order]) == got


# ----------------------------------------------------------------- size standards
def _synthetic_run(sizes, *, junk=(), scans=9000, seed=0):
    """A 5-dye run whose orange channel carries ``sizes`` at scans given by a known
    mobility curve (scan = 40 + 21 bp - 0.004 bp^2), plus ``junk`` peaks and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(scans, dtype=float)
    data = rng.normal(100.0, 3.0, size=(5, scans))

    def where(bp):
        return 40 + 21 * bp - 0.004 * bp ** 2

    for bp in sizes:
        data[4] += 1500 * np.exp(-0.5 * ((t - where(bp)) / 4.0) ** 2)
    for scan, height in junk:
        data[4] += height * np.exp(-0.5 * ((t - scan) / 4.0) ** 2)
    return Trace("synthetic.fsa", "synthetic", data), where


def test_gs600_liz_calibration_recovers_a_known_curve():
    standard = SIZE_STANDARDS["GS600 LIZ"]
    # The 20 and 40 bp fragments lost in the primer front, two stray peaks.
    present = [s for s in standard.sizes if s >= 60]
    trace, where = _synthetic_run(present, junk=[(700, 6000), (5105, 400)], scans=12000)
    run = read_and_size(trace, None, "GS600 LIZ")
    assert run.calibration.missing == (20.0, 40.0)
    probe = np.array([75.0, 150.0, 333.0, 487.0, 590.0])
    got = run.calibration.size(where(probe))
    assert got == pytest.approx(probe, abs=0.05)


def test_the_standard_the_file_names_when_the_kits_does_not_fit():
    # Identifiler is usually run with GS500 LIZ, but a 3500 lab may load GS600 LIZ and
    # the run file says so (StdF1); the label is tried when the kit's standard fails.
    present = [s for s in SIZE_STANDARDS["GS600 LIZ"].sizes if s >= 60]
    trace, where = _synthetic_run(present, scans=12000)
    kit = load_kit("Identifiler")
    trace.size_standard = "GS600LIZ(60-600)+Normalization"
    run = read_and_size(trace, kit)
    # the label's range, 60-600 bp, kept to (its 20 and 40 bp fragments are not used)
    assert run.calibration.standard.name == "GS600 LIZ (60-600)"
    assert run.calibration.size(where(np.array([333.0])))[0] == pytest.approx(333, abs=0.05)
    assert any("sized with GS600 LIZ (60-600), the size standard the file names" in w
               for w in run.warnings)
    # no label, or a label naming the kit's own standard: the fitting error stands
    for label in (None, "GS500LIZ"):
        trace.size_standard = label
        with pytest.raises(ChimerismError, match="GS500 LIZ"):
            read_and_size(trace, kit)
    # a given --size-standard is never replaced
    trace.size_standard = "GS600LIZ"
    with pytest.raises(ChimerismError, match="GS500 LIZ"):
        read_and_size(trace, kit, "GS500 LIZ")


def test_custom_ladder_file(tmp_path):
    sizes = (50, 75, 100, 125, 150, 200, 250, 300, 350, 400, 450)
    trace, where = _synthetic_run(sizes)
    text = tmp_path / "lab_ladder.txt"
    text.write_text("\n".join(str(s) for s in sizes) + "\n")
    yml = tmp_path / "lab_ladder.yaml"
    yml.write_text(f"name: Lab ladder\nsizes: {list(sizes)}\n")
    for path in (text, yml):
        run = read_and_size(trace, None, str(path))
        assert run.calibration.size(where(np.array([222.0])))[0] == pytest.approx(222, abs=0.05)
    assert load_size_standard(yml).name == "Lab ladder"
    bad = tmp_path / "bad.txt"
    bad.write_text("50\n75\nabc\n")
    with pytest.raises(ChimerismError, match="bad.txt: the size standard file must list"):
        load_size_standard(bad)


def test_a_standard_that_cannot_be_fitted_is_a_qc_error(tmp_path):
    sizes = (50, 75, 100, 125, 150, 200, 250, 300, 350, 400, 450)
    trace, _ = _synthetic_run(sizes[:4])            # a failed injection: 4 fragments
    ladder = tmp_path / "lab.txt"
    ladder.write_text("\n".join(str(s) for s in sizes))
    with pytest.raises(ChimerismError) as err:
        read_and_size(trace, None, str(ladder))
    msg = str(err.value)
    assert msg.startswith("synthetic.fsa: the size standard (lab) cannot be fitted")
    assert "fragments found" in msg and "--size-standard" in msg
    # The wrong standard for the run: an ILS 600 run sized as GS500 LIZ.
    full, _ = _synthetic_run(SIZE_STANDARDS["ILS 600"].sizes, scans=13000)
    with pytest.raises(ChimerismError, match="GS500 LIZ.*cannot be fitted"):
        read_and_size(full, None, "GS500 LIZ")


def test_calibrate_rejects_too_few_peaks():
    with pytest.raises(ChimerismError, match="2 peaks in its channel"):
        calibrate([100.0, 200.0], [1000.0, 1000.0], SIZE_STANDARDS["GS500 LIZ"], source="x")


# ----------------------------------------------------------------- ABIF files
def _abif(entries, payloads):
    """An ABIF file: header, payloads, then a directory of (name, number, type, size,
    count, payload index)."""
    data, offsets = b"", []
    for p in payloads:
        offsets.append(128 + len(data))
        data += p
    directory = b"".join(
        struct.pack(">4sIHHIIII", name.encode(), num, etype, esize, count,
                    len(payloads[i]), offsets[i], 0)
        for name, num, etype, esize, count, i in entries)
    header = b"ABIF" + struct.pack(">H4sIHHIIII", 101, b"tdir", 1, 1023, 28, len(entries),
                                   28 * len(entries), 128 + len(data), 0)
    return header.ljust(128, b"\x00") + data + directory


def test_hid_with_encrypted_data_fails_with_a_clear_message(tmp_path):
    payload = bytes(range(256)) * 4              # 1024 bytes of unreadable data
    entries = [("DATA", n, 28, 1, len(payload), 0) for n in (1, 2, 3, 4, 105)]
    path = tmp_path / "GF_1_A01.hid"
    path.write_bytes(_abif(entries, [payload]))
    with pytest.raises(ChimerismError) as err:
        read_trace(path)
    msg = str(err.value)
    assert str(path) in msg and "non-standard ABIF element type 28" in msg
    assert ".hid" in msg and "Export the run as .fsa" in msg


def test_a_malformed_abif_header_is_said_not_blamed_on_encryption(tmp_path):
    """A script's .fsa (18 such files in one public repository) writes its header's
    directory entry with element type 0 and size 0: the dye data, ordinary int16, cannot
    be found, which had been put down to a 3500's encryption."""
    scans = 400
    raw = bytearray(_abif([("DATA", n, 4, 2, scans, 0) for n in (1, 2, 3, 4)],
                          [np.arange(scans, dtype=">i2").tobytes()]))
    raw[14:18] = b"\x00\x00\x00\x00"
    path = tmp_path / "PT001_Child_001.fsa"
    path.write_bytes(bytes(raw))
    with pytest.raises(ChimerismError) as err:
        read_trace(path)
    msg = str(err.value)
    assert "malformed ABIF header" in msg and "element type 0 and size 0" in msg
    assert "encrypt" not in msg


def test_readable_minimal_abif_and_bad_files(tmp_path):
    scans = 400
    payloads = [np.arange(scans, dtype=">i2").tobytes()]
    entries = [("DATA", n, 4, 2, scans, 0) for n in (1, 2, 3, 4)]
    path = tmp_path / "tiny.fsa"
    path.write_bytes(_abif(entries, payloads))
    trace = read_trace(path)
    assert trace.data.shape == (4, scans) and trace.data[2, 399] == 399.0
    text = tmp_path / "notes.fsa"
    text.write_text("Dye/Sample Peak\tSize\n")
    with pytest.raises(ChimerismError, match="notes.fsa: not an ABIF run file"):
        read_trace(text)


# ----------------------------------------------------------------- command line
def test_command_line_on_raw_traces(runs, tmp_path, identifiler):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, [
        "chimerism", "--fsa", "--kit", "Identifiler",
        "--ladder", str(runs["identifiler_ladder"]),
        "--donor", str(runs["identifiler_9947A"]),
        "--recipient", str(runs["identifiler_mix05_case2_victim"]),
        str(runs["identifiler_9947A"].with_name("sample.fsa")) if False else
        str(runs["identifiler_mix05_case2_victim"]), "--json", "--out", str(out)])
    # The recipient's own run given as a sample is the reference, not a sample.
    assert res.exit_code == 2 and "no post-transplant sample" in res.stderr
    sample = tmp_path / "P07_CD3_2024-05-02.fsa"
    sample.write_bytes(runs["identifiler_9947A"].read_bytes())
    res = CliRunner().invoke(main, [
        "chimerism", "--kit", "Identifiler", "--ladder", str(runs["identifiler_ladder"]),
        "--donor", str(runs["identifiler_9947A"]),
        "--recipient", str(runs["identifiler_mix05_case2_victim"]), str(sample),
        "--json", "--out", str(out)])
    assert res.exit_code == 0, res.output
    import json
    doc = json.loads(res.stdout)
    row = doc["samples"][0]
    assert row["sample"] == "P07_CD3_2024-05-02" and row["lineage"] == "CD3"
    assert row["percent_donor"] == pytest.approx(100.0, abs=0.5)     # the donor's own run
    donor = {(g["locus"], g["allele"]) for g in doc["genotypes"] if g["person"] == "donor"}
    assert ("TH01", "9.3") in donor and ("D2S1338", "19") in donor
    assert {r["role"] for r in doc["runs"]} == {"ladder", "donor", "recipient", "sample"}
    page = (out / "chimerism.html").read_text()
    assert "<img" in page and "Runs and sizing" in page
    assert (out / "chimerism_runs.csv").is_file()


def test_study_pipeline_runs_the_raw_path(runs, tmp_path):
    from immunomon.pipeline import run_pipeline

    folder = tmp_path / "str"
    folder.mkdir()
    (folder / "P01_donor.fsa").write_bytes(runs["identifiler_9947A"].read_bytes())
    (folder / "P01_recipient.fsa").write_bytes(
        runs["identifiler_mix05_case2_victim"].read_bytes())
    (folder / "P01_CD3_M3.fsa").write_bytes(runs["identifiler_9947A"].read_bytes())
    (folder / "ladder.fsa").write_bytes(runs["identifiler_ladder"].read_bytes())
    (tmp_path / "manifest.csv").write_text(
        "file,kind,patient_id,collection_date,visit,material,lineage,sample\n"
        "str/P01_CD3_M3.fsa,str,P01,2021-07-01,M3,blood,CD3,P01_CD3_M3\n")
    (tmp_path / "study.yaml").write_text(
        "study: raw\nout: results\ninputs:\n  manifest: manifest.csv\n"
        "  references:\n    donor: str/{patient}_donor.fsa\n"
        "    recipient: str/{patient}_recipient.fsa\n"
        "  kit: Identifiler\n  ladder: str/ladder.fsa\n  size_standard: GS500 LIZ\n"
        "stages:\n  chimerism: {quantity: area}\n")
    run = run_pipeline(tmp_path / "study.yaml")
    assert [(s.name, s.status) for s in run.stages] == [("chimerism", "ran")]
    import pandas as pd
    table = pd.read_csv(tmp_path / "results" / "chimerism" / "P01" / "chimerism_samples.csv")
    assert table.loc[0, "sample"] == "P01_CD3_M3"
    assert table.loc[0, "percent_donor"] == pytest.approx(100.0, abs=0.5)
    assert (tmp_path / "results" / "chimerism" / "P01" / "chimerism_runs.csv").is_file()


def test_a_size_standards_range_in_the_files_label_is_kept_to():
    """A 3130xl's label `GS500LIZ(75-450)` says the lab sized on 75-450 bp; its 35 and
    50 bp fragments ran off the curve through the others and the run (an allelic ladder,
    seqinr's example data) had been refused."""
    from immunomon.chimerism.sizing import guess_size_standard

    ranged = guess_size_standard("GS500LIZ(75-450)")
    assert ranged.sizes == SIZE_STANDARDS["GS500 LIZ"].sizes
    assert ranged.exclude == (35, 50, 250, 490, 500) and "75-450" in ranged.name
    assert guess_size_standard("GS500(-250)") == SIZE_STANDARDS["GS500 LIZ"]
    assert guess_size_standard("GS600LIZ") == SIZE_STANDARDS["GS600 LIZ"]
    assert guess_size_standard("GS500LIZ(400-450)") == SIZE_STANDARDS["GS500 LIZ"]  # too few
