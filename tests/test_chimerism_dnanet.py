"""A real GeneMapper ID-X allele report and typed reference profiles (NFI, DNANet).

The report (``Allele#1``/``Height#1`` columns, no sizes or areas) holds three
injections of one two-person mixture of the persons whose typed profiles are
``1A.csv`` and ``1B.csv`` (``SampleName;Marker;Allele1;Allele2``, a homozygote listed
twice). Both dialects were refused before; see ``data/chimerism/SOURCES.md``.
"""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from immunomon.chimerism import genotype_from_peaks, read_export
from immunomon.chimerism.workflow import chimerism_from_exports
from immunomon.cli import main

DATA = Path(__file__).parent / "data" / "chimerism" / "dnanet"
REPORT = DATA / "dataset1_DTH_AlleleReport.txt"


def test_allele_report_and_profiles_are_read():
    report = read_export(REPORT)
    assert report.attrs["layout"] == "wide"
    assert report["sample"].nunique() == 3
    assert report.groupby("sample")["marker"].nunique().eq(27).all()
    assert report["size"].isna().all() and report["height"].notna().all()
    for name in ("1A", "1B"):
        profile = read_export(DATA / f"{name}.csv")
        genotype = genotype_from_peaks(profile, name)
        typed = {(locus, a) for locus in genotype.loci for a in genotype.alleles(locus)}
        assert len(genotype.loci) == 23
        # each person's alleles are all in each injection of their mixture
        for _, peaks in report.groupby("sample"):
            assert typed <= set(zip(peaks["locus"], peaks["allele"]))


def test_replicate_injections_agree():
    result = chimerism_from_exports([DATA / "1A.csv"], DATA / "1B.csv", [REPORT])
    donor = [s.mean for s in result.samples]
    assert len(donor) == 3 and all(s.n_used == s.n_informative == 19
                                   for s in result.samples)
    assert max(donor) - min(donor) < 3.0
    assert all(50 < d < 100 for d in donor)      # 1A the major contributor
    # the same from the command line, with the kit the profiles were typed with
    r = CliRunner().invoke(main, ["chimerism", "--donor", str(DATA / "1A.csv"),
                                  "--recipient", str(DATA / "1B.csv"), str(REPORT),
                                  "--kit", "PowerPlex Fusion", "--json"])
    assert r.exit_code == 0, r.output
    doc, _ = json.JSONDecoder().raw_decode(r.output)
    assert [s["percent_donor"] for s in doc["samples"]] == pytest.approx(donor)
