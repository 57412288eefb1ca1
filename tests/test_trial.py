"""The simulated demo trial: determinism, planted effects, clinical tables, STR exports."""

import numpy as np
import pandas as pd
import pytest

from immunomon import simulate as sim
from immunomon.chimerism import chimerism_from_exports, read_export
from immunomon.clinical import read_clinical
from immunomon.errors import ImmunomonError


@pytest.fixture(scope="module")
def planted():
    return sim.trial(5)


@pytest.fixture(scope="module")
def null():
    return sim.trial(5, null=True)


def test_deterministic_for_a_seed():
    a, b, c = sim.trial(2, n_patients=4), sim.trial(2, n_patients=4), sim.trial(3, n_patients=4)
    pd.testing.assert_frame_equal(a.immune, b.immune)
    pd.testing.assert_frame_equal(a.manifest, b.manifest)
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name])
    assert a.genotypes == b.genotypes
    assert not a.immune["cells_per_ul"].equals(c.immune["cells_per_ul"])


def test_shape_of_the_trial(planted):
    assert planted.patients == [f"P{i:02d}" for i in range(1, 14)]
    assert set(planted.immune["visit"]) <= set(sim.TRIAL_VISITS)
    # every patient has the pre-lenalidomide panel, days 60-100
    pre = planted.immune[planted.immune["visit"] == "pre"].drop_duplicates("patient_id")
    assert len(pre) == 13 and pre["day"].between(60, 100).all()
    # one FCS file per patient and visit, WB and CD3 STR samples at the chimerism visits
    fcs = planted.manifest[planted.manifest["kind"] == "fcs"]
    assert len(fcs) == planted.immune.groupby(["patient_id", "visit"]).ngroups
    strs = planted.manifest[planted.manifest["kind"] == "str"]
    assert set(strs["lineage"]) == {"WB", "CD3"}
    assert len(strs) == len(planted.chimerism)
    assert planted.effects == sim.DEFAULT_EFFECTS


def test_kinetics_nk_early_cd8_before_cd4_b_late():
    early, late = sim.true_counts(80, False, sim.NULL_EFFECTS), \
        sim.true_counts(365, False, sim.NULL_EFFECTS)
    assert early["NK cells"] == pytest.approx(late["NK cells"])       # NK already recovered
    assert early["CD8 T"] > early["CD4 T"] and late["CD8 T"] > late["CD4 T"]
    assert early["B cells"] < 25 and late["B cells"] > 200           # B after a lag
    # the drug changes only what is planted: Treg x 0.6 of CD4, NK x 1.5
    on = sim.true_counts(200, True, sim.DEFAULT_EFFECTS)
    off = sim.true_counts(200, False, sim.DEFAULT_EFFECTS)
    assert on["Treg"] / off["Treg"] == pytest.approx(0.6)
    assert on["NK cells"] / off["NK cells"] == pytest.approx(1.5)
    assert on["CD4 T"] == pytest.approx(off["CD4 T"])
    assert on["Activated CD4 T"] / off["Activated CD4 T"] == pytest.approx(1.8)


def _median_change(trial, numerator, denominator=None):
    """Median over patients of (median on-drug ratio) / (pre ratio), on-drug days taken
    from the clinical intervals (independent of the simulator's own state)."""
    iv = trial.clinical.intervals()
    on = iv[iv["covariate"] == "on_lenalidomide"]
    wide = trial.immune.pivot_table(index=["patient_id", "visit", "day"], columns="population",
                                    values="cells_per_ul").reset_index()
    value = wide[numerator] / (wide[denominator] if denominator else 1.0)
    wide = wide.assign(value=value)
    changes = []
    for pid, rows in wide.groupby("patient_id"):
        spans = on[on["patient_id"] == pid]
        taking = rows["day"].apply(lambda d: bool(((spans["start"] < d)
                                                   & (d <= spans["stop"])).any()))
        pre = rows.loc[rows["visit"] == "pre", "value"]
        if taking.any() and len(pre):
            changes.append(rows.loc[taking, "value"].median() / pre.iloc[0])
    return float(np.median(changes)), len(changes)


@pytest.mark.parametrize("numerator,denominator,key", [
    ("Treg", "CD4 T", "Treg"), ("NK cells", None, "NK cells"),
    ("Activated CD4 T", "CD4 T", "Activated T")])
def test_planted_lenalidomide_effects_present_and_absent_in_null(planted, null, numerator,
                                                                 denominator, key):
    change, n = _median_change(planted, numerator, denominator)
    assert n >= 10
    assert abs(np.log(change) - np.log(sim.DEFAULT_EFFECTS[key])) < 0.15
    change0, _ = _median_change(null, numerator, denominator)
    assert abs(np.log(change0)) < 0.15


def _relapse_rate_ratio(trial):
    """Relapses per day at risk with acute GVHD present / without, from the course."""
    c = trial.course
    days = {True: 0.0, False: 0.0}
    events = {True: 0, False: 0}
    for row in c.itertuples():
        stop = row.end_day if np.isnan(row.relapse_day) else row.relapse_day
        onset = row.agvhd_onset if not np.isnan(row.agvhd_onset) else np.inf
        days[False] += min(onset, stop) - row.len_start
        days[True] += max(0.0, stop - onset)
        if not np.isnan(row.relapse_day):
            events[row.relapse_day > onset] += 1
    return (events[True] / days[True]) / (events[False] / days[False])


def test_gvhd_relapses_less_only_when_planted():
    assert _relapse_rate_ratio(sim.trial(11, n_patients=200)) < 0.5
    assert 0.6 < _relapse_rate_ratio(sim.trial(11, n_patients=200, null=True)) < 1.6


def test_effect_arguments_are_checked():
    with pytest.raises(ImmunomonError, match="unknown effect"):
        sim.trial(0, effects={"Tregs": 0.5})
    with pytest.raises(ImmunomonError, match="positive"):
        sim.trial(0, effects={"Treg": 0})
    with pytest.raises(ImmunomonError, match="either"):
        sim.trial(0, null=True, effects={"Treg": 0.5})
    assert sim.trial(0, n_patients=2, effects={"Treg": 0.8}).effects["Treg"] == 0.8


def test_frequencies_reproduce_the_absolute_counts():
    counts = sim.true_counts(150, True, sim.DEFAULT_EFFECTS)
    freqs = sim.resolve_frequencies(sim.frequencies_from_counts(counts))
    absolute = sim.absolute_frequencies(freqs)
    for pop in ("Lymphocytes", "Treg", "NK cells", "CD56bright NK", "pDC", "Monocytes"):
        expected = absolute[pop] / absolute["Beads"] * 50_000 / 50.0
        assert expected == pytest.approx(counts[pop], rel=1e-9)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    t = sim.trial(4, n_patients=2)
    folder = sim.write_trial(t, tmp_path_factory.mktemp("trial"), events_per_sample=1000)
    return t, folder


def test_written_clinical_tables_load(written):
    t, folder = written
    clin = read_clinical(folder / "clinical")
    assert list(clin.patients["patient_id"]) == t.patients
    ep = clin.endpoints().set_index("patient_id")
    course = t.course.set_index("patient_id")
    for pid in t.patients:
        assert ep.loc[pid, "end_day"] == course.loc[pid, "end_day"]
        assert ep.loc[pid, "os_event"] == int(not np.isnan(course.loc[pid, "death_day"]))
    for name in ("treatments", "responses"):
        assert len(getattr(clin, name)) == len(t.tables[name])


def test_written_files_match_the_manifest(written):
    t, folder = written
    manifest = pd.read_csv(folder / "manifest.csv")
    assert all((folder / f).is_file() for f in manifest["file"])
    from immunomon import read_fcs
    s = read_fcs(folder / manifest.loc[manifest["kind"] == "fcs", "file"].iloc[0])
    assert s.n_events == 1000


def test_str_exports_give_the_true_percent_donor(written):
    t, folder = written
    for pid in t.patients:
        rows = t.manifest[(t.manifest["kind"] == "str") & (t.manifest["patient_id"] == pid)]
        peaks = read_export(folder / rows["file"].iloc[0], kit=None)
        assert set(peaks["sample"]) == {rows["sample"].iloc[0]}
        result = chimerism_from_exports(folder / "str" / f"{pid}_donor.txt",
                                        folder / "str" / f"{pid}_recipient.txt",
                                        [folder / f for f in rows["file"]], kit="Identifiler")
        got = result.summary_frame().set_index("sample")["percent_donor"]
        truth = t.chimerism[t.chimerism["patient_id"] == pid]
        for row, sample in zip(truth.itertuples(), rows["sample"]):
            assert got[sample] == pytest.approx(row.percent_donor, abs=3.0)


def test_str_export_of_a_known_mixture():
    donor = {lo: ("10", "12") if lo != "AMEL" else ("X", "X") for lo in sim._trial._STR_LOCI}
    donor["AMEL"] = ("X", "X")
    recipient = {lo: ("14", "16") for lo in sim._trial._STR_LOCI}
    recipient["AMEL"] = ("X", "Y")
    text = sim.str_export("S1", [(donor, 0.7), (recipient, 0.3)], cv=0.0)
    lines = [ln.split("\t") for ln in text.splitlines()[1:]]
    d8 = {cells[3]: float(cells[6]) for cells in lines if cells[2] == "D8S1179"}
    # 10 and 12 carry donor DNA (12 also 10% stutter of no allele 13); 14 and 16 recipient
    assert d8["12"] / (d8["12"] + d8["16"]) == pytest.approx(0.7, abs=1e-3)
    assert d8["10"] / d8["12"] == pytest.approx(1.0, abs=1e-3)
