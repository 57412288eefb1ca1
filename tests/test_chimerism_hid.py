"""Real 3500-series .hid runs: reading them, and GS600 LIZ / ILS 500 sizing against the
instrument's own.

The runs (tests/data/chimerism/osiris_3500/, xz-compressed; see SOURCES.md) are NCBI
OSIRIS's public 3500 test data of one plate of FTA samples: the GlobalFiler allelic
ladder and FTA sample 1 (GeneScan 600 LIZ) and the PowerPlex Fusion allelic ladder
(Promega's 5-dye internal lane standard, the ILS 500 fragments). Their dye data are
stored encrypted under the header's directory and in the clear under a second copy of
the directory, which is what is read.

Ground truth, none of it from this code: the size-standard fragments the instrument's
sizing software (SizeCaller v1.1.0) matched, stored in each file's peak table
(``Peak1`` dye, ``Peak2`` scan, ``Peak21`` the fragment's bp), with its sizing quality
(``SamQ1``) and its scan -> bp curve (``SMap2``).
"""

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from testdata import unpacked

pytest.importorskip("Bio")

from immunomon.chimerism import load_kit  # noqa: E402
from immunomon.chimerism.abif import read_fsa_metadata  # noqa: E402
from immunomon.chimerism.calling import read_and_size  # noqa: E402
from immunomon.chimerism.trace import abif_directory, read_trace  # noqa: E402
from immunomon.errors import ChimerismError  # noqa: E402

DATA = Path(__file__).parent / "data" / "chimerism" / "osiris_3500"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The committed runs, decompressed: name -> path."""
    return unpacked(DATA, "*.hid.xz", tmp_path_factory.mktemp("osiris_3500"))


def instrument_sizing(path):
    """What the 3500's own sizing stored: {bp: scan} of the size-standard fragments it
    matched, its sizing quality (SQ) and its bp of every scan."""
    from Bio import SeqIO

    raw, _ = abif_directory(Path(path).read_bytes())
    tags = SeqIO.read(io.BytesIO(raw), "abi").annotations["abif_raw"]
    scans, frags = np.array(tags["Peak2"], float), np.array(tags["Peak21"], float)
    matched = frags > 0
    quality = float(tags["SamQ1"].decode().split(",")[0].split("=")[1])
    return dict(zip(frags[matched], scans[matched])), quality, np.array(tags["SMap2"])


def test_hid_dye_data_are_read_from_the_unencrypted_directory(runs):
    path = runs["globalfiler_ladder"]
    raw = path.read_bytes()
    # The header's directory lists DATA1 under an encrypted element type (28) ...
    count, _, offset = struct.unpack(">III", raw[18:30])
    entries = [struct.unpack(">4sIH", raw[offset + 28 * i: offset + 28 * i + 10])
               for i in range(count)]
    assert (b"DATA", 1, 28) in entries
    # ... and the trace comes from the copy in the clear.
    trace = read_trace(path)
    assert trace.data.shape == (6, 9639)
    assert trace.dye_names == ("6-FAM", "VIC", "NED", "PET", "LIZ", "SID")
    assert trace.size_standard == "GS600LIZ" and trace.instrument == "3500"
    meta = read_fsa_metadata(path)
    assert meta["dyes"][4] == "LIZ" and meta["dye_set"] == "J6" and meta["channels"] == 6
    assert meta["well"] == "A11" and meta["instrument"] == "3500 Instrument"
    # the 3500 writes the sample type ("Sample") in SMPL1 and the name in SpNm1
    assert trace.sample == meta["sample"] == "GF_ladder1"


def test_hid_without_an_unencrypted_copy_fails_in_one_line(runs, tmp_path):
    raw = bytearray(runs["fusion_ladder"].read_bytes())
    head = struct.unpack(">I", raw[26:30])[0]
    # Wipe every copy of the directory but the header's (encrypted) one.
    at = raw.find(b"DATA\x00\x00\x00\x01")
    while at >= 0:
        if not head <= at < head + 28 * struct.unpack(">I", raw[18:22])[0]:
            raw[at:at + 4] = b"XXXX"
        at = raw.find(b"DATA\x00\x00\x00\x01", at + 1)
    path = tmp_path / "PPF_no_copy_A12.hid"
    path.write_bytes(bytes(raw))
    with pytest.raises(ChimerismError) as err:
        read_trace(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path))
    assert "non-standard ABIF element type 28" in msg and "no unencrypted copy" in msg


@pytest.mark.parametrize("name, kit, standard, n", [
    ("globalfiler_ladder", "GlobalFiler", "GS600 LIZ", 36),
    ("fusion_ladder", "PowerPlex Fusion", "ILS 500", 21)])
def test_size_standard_fragments_are_the_instruments(runs, name, kit, standard, n):
    run = read_and_size(runs[name], load_kit(kit))
    theirs, quality, smap = instrument_sizing(runs[name])
    assert quality >= 0.99 and len(theirs) == n
    cal = run.calibration
    assert cal.standard.name == standard and len(cal.sizes) == n and not cal.missing
    ours = dict(zip(cal.sizes, cal.scans))
    assert set(theirs) == set(ours)
    for size, scan in theirs.items():
        assert ours[size] == pytest.approx(scan, abs=1.0), size
    # Sizes between the fragments: our Local Southern against the instrument's curve.
    scans = np.arange(int(cal.scan(60.0)), int(cal.scan(460.0)))
    diff = cal.size(scans) - smap[scans]
    assert np.abs(diff).max() < (1.1 if standard == "GS600 LIZ" else 0.1)
    assert abs(diff.mean()) < 0.1


def test_gs600_found_where_the_instruments_sizing_failed(runs):
    """FTA sample 1: over-amplified (471 off-scale scans; peaks of up to 24,000 RFU in
    the LIZ channel below 60 bp, at scans marked off-scale). The 3500 flagged its own sizing as failed (SQ 0.0):
    it matched 30 fragments, starting its 20 bp fragment on the peak that is 120 bp
    (its own curve then puts its 180 bp fragment at 168 bp). All 36 are found here, on
    the same peaks it found, six fragments further down."""
    run = read_and_size(runs["globalfiler_fta1"], load_kit("GlobalFiler"))
    theirs, quality, _ = instrument_sizing(runs["globalfiler_fta1"])
    assert quality == 0.0 and len(theirs) == 30
    cal = run.calibration
    assert len(cal.sizes) == 36 and cal.max_residual < 0.5
    sizes = list(cal.sizes)
    for size, scan in theirs.items():
        ours = sizes[sizes.index(size) + 6]
        assert cal.scans[sizes.index(ours)] == pytest.approx(scan, abs=1.0), size
    # Run in the ladder's capillary (1): the 20 bp fragment within a few scans of the
    # ladder's, where the instrument put 20 bp over 1,000 scans later.
    ladder = read_and_size(runs["globalfiler_ladder"], load_kit("GlobalFiler")).calibration
    assert abs(cal.scans[0] - ladder.scans[0]) < 5 and theirs[20.0] > ladder.scans[0] + 1000


def test_globalfiler_ladder_blue_loci_are_found(runs):
    """D16S539, CSF1PO and TPOX of the real GlobalFiler ladder: every fragment found, on
    the 9, 10 and 11 blue peaks from 228 to 379 bp (the kit's approximate sizes used to
    be 22-126 bp off, and CSF1PO's bins came out one repeat too high)."""
    from immunomon.chimerism.calling import ladder_bins

    kit = load_kit("GlobalFiler")
    bins = ladder_bins([read_and_size(runs["globalfiler_ladder"], kit)], kit)
    assert not [w for w in bins.warnings if any(x in w for x in ("D16S539", "CSF1PO",
                                                                  "TPOX"))]
    expected = {"D16S539": (9, 227.8, 268.3), "CSF1PO": (10, 283.2, 319.1),
                "TPOX": (11, 338.7, 379.1)}
    for locus, (n, low, high) in expected.items():
        centres = bins.centres[kit.locus(locus).key]
        assert len(centres) == n
        assert min(centres.values()) == pytest.approx(low, abs=0.3)
        assert max(centres.values()) == pytest.approx(high, abs=0.3)
    csf = bins.centres[kit.locus("CSF1PO").key]
    assert csf["10"] == pytest.approx(299.0, abs=0.3)


def test_globalfiler_ladder_every_fragment_is_found(runs):
    """All 24 loci of the real GlobalFiler ladder, every fragment the kit lists (the
    composition of OSIRIS's GlobalFiler_LadderInfo.xml), with no warning. The end
    fragments of D19S433 (17-19.2), TH01 (13.3) and FGA (48.2-51.2) used to be lost:
    the kit's sizes for these loci were 15-26 bp below where GS600 LIZ sizes them, and
    the matching looked no further than 12 bp past the last one. Where they are is
    checked against the repeat structure: 4 bp a repeat from the fragment below, a .2
    2 bp above its integer allele, TH01 13.3 two repeats and 3 bp above 11, FGA 50.2
    two repeats above 48.2 (the ladder has no 49.2)."""
    from immunomon.chimerism.calling import ladder_bins

    kit = load_kit("GlobalFiler")
    bins = ladder_bins([read_and_size(runs["globalfiler_ladder"], kit)], kit)
    assert bins.warnings == []
    assert {k: set(v) for k, v in bins.centres.items()} == \
        {k: set(v) for k, v in kit.ladder.items()}
    assert sum(len(v) for v in bins.centres.values()) == 343
    d19, th01, fga = (bins.centres[k] for k in ("D19S433", "TH01", "FGA"))
    steps = [(d19, "16", "17", 4), (d19, "17", "17.2", 2), (d19, "17.2", "18.2", 4),
             (d19, "18.2", "19.2", 4), (th01, "11", "13.3", 11),
             (fga, "47.2", "48.2", 4), (fga, "48.2", "50.2", 8),
             (fga, "50.2", "51.2", 4)]
    for centres, low, high, bp in steps:
        assert centres[high] - centres[low] == pytest.approx(bp, abs=0.25), (low, high)
    ends = {"D19S433": ("19.2", 171.3), "TH01": ("13.3", 218.4), "FGA": ("51.2", 378.2)}
    for locus, (allele, size) in ends.items():
        assert bins.centres[locus][allele] == pytest.approx(size, abs=0.3)
        # the kit's sizes for these loci are the ones measured here
        for a, listed in kit.ladder[locus].items():
            assert bins.centres[locus][a] == pytest.approx(listed, abs=0.06), (locus, a)


def test_globalfiler_ladder_found_from_osiris_relative_sizes(runs):
    """With OSIRIS's own numbers for D19S433, TH01 and FGA (GlobalFiler_LadderInfo.xml:
    94 bp for D19S433 6, 164 for TH01 4, 198 for FGA 13, then 4 bp a repeat; 15-26 bp
    below GS600 LIZ's sizes), the ladder is still found whole, on the same peaks: the
    matching moves the list onto the fragments it found and matches again."""
    import dataclasses

    from immunomon.chimerism.calling import ladder_bins

    def osiris(alleles, first, start):
        out = {}
        for a in alleles:
            repeats, _, extra = a.partition(".")
            out[a] = start + 4 * (int(repeats) - first) + int(extra or 0)
        return out

    kit = load_kit("GlobalFiler")
    starts = {"D19S433": (6, 94), "TH01": (4, 164), "FGA": (13, 198)}
    old = dataclasses.replace(kit, ladder={
        **kit.ladder, **{k: osiris(kit.ladder[k], *v) for k, v in starts.items()}})
    assert old.ladder["D19S433"]["19.2"] == 148 and old.ladder["TH01"]["13.3"] == 203
    assert old.ladder["FGA"]["51.2"] == 352 and old.ladder["FGA"]["42.2"] == 316
    sized = read_and_size(runs["globalfiler_ladder"], kit)
    ours, theirs = ladder_bins([sized], kit), ladder_bins([sized], old)
    assert theirs.warnings == [] and theirs.centres == ours.centres


def test_the_3500s_promega_label_names_ils_500():
    # PowerPlex Fusion runs on a 3500 name their standard "Promega_CC5_ILS": without --kit
    # or --size-standard the run is still sized on ILS 500
    from immunomon.chimerism.sizing import SIZE_STANDARDS, guess_size_standard
    for label in ("Promega_CC5_ILS", "CC5 ILS 500", "WEN ILS 500", "ILS500"):
        assert guess_size_standard(label) is SIZE_STANDARDS["ILS 500"]
    assert guess_size_standard("ILS600") is SIZE_STANDARDS["ILS 600"]
