"""The graft-versus-myeloma report: the declared questions, figures and one HTML page.

``gvm_report(cohort, out_dir)`` turns a :class:`immunomon.cohort.Cohort` into

- ``questions.csv``: one row per question (columns in
  :data:`immunomon.analysis.questions.COLUMNS`);
- ``results.json``: the same answers with the plan, the gating QC per
  population and the figure files;
- ``provenance.json``: input files with their SHA-256 hashes, template and
  software versions, paths relative to the study folder (linked from the page);
- ``figures/*.png`` and ``*.svg``;
- ``gvm_report.html``: a self-contained page (figures embedded) with the
  methods and the caveats.

Every file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..cohort.summary import qc_failures
from ..errors import AnalysisError
from .questions import COLUMNS, Plan, answer_all, gating_verdicts

__all__ = ["gvm_report", "cohort_tables", "provenance_record", "REPORT_NAME",
           "PROVENANCE_NAME"]

REPORT_NAME = "gvm_report.html"
PROVENANCE_NAME = "provenance.json"


def _long(ds, variable: str, third: str, value: str) -> pd.DataFrame:
    """(patient, timepoint, <third>) variable as a long table with the visit day."""
    cols = ["patient_id", "visit", "day", third, value]
    if variable not in ds or "day" not in ds.variables:
        return pd.DataFrame(columns=cols)
    da = ds[variable].transpose("patient", "timepoint", third)
    day = ds["day"].transpose("patient", "timepoint").to_numpy().astype(float)
    p, t, k = (np.asarray(da[d].to_numpy()).astype(str) for d in da.dims)
    ip, it, ik = np.meshgrid(np.arange(len(p)), np.arange(len(t)), np.arange(len(k)),
                             indexing="ij")
    out = pd.DataFrame({"patient_id": p[ip.ravel()], "visit": t[it.ravel()],
                        "day": day[ip.ravel(), it.ravel()], third: k[ik.ravel()],
                        value: da.to_numpy().astype(float).ravel()})
    return out.dropna(subset=[value]).reset_index(drop=True)


def cohort_tables(cohort, *, exclude_qc_failures: bool = True) -> dict[str, pd.DataFrame]:
    """The long tables the questions and figures read, taken from a Cohort; with
    ``exclude_qc_failures``, without the populations of visits whose flow samples failed
    gating QC (``cohort.summary.qc_failures`` lists them)."""
    ds = cohort.dataset
    immune = _long(ds, "cells_per_ul", "population", "cells_per_ul")
    counts = _long(ds, "count", "population", "count")
    if "percent_near_cut" in ds:        # how much each count turns on its cuts
        keys = ["patient_id", "visit", "population"]
        near = _long(ds, "percent_near_cut", "population", "percent_near_cut")
        counts = counts.merge(near[keys + ["percent_near_cut"]], on=keys, how="left")
    failed = qc_failures(ds)
    if exclude_qc_failures and len(failed):
        keys = pd.MultiIndex.from_frame(failed)
        immune, counts = (f[~pd.MultiIndex.from_frame(f[["patient_id", "visit"]].astype(str))
                            .isin(keys)].reset_index(drop=True) for f in (immune, counts))
    chim = _long(ds, "donor_chimerism_percent", "lineage", "percent_donor")
    endpoints = cohort.endpoints.copy()
    endpoints["patient_id"] = endpoints["patient_id"].astype(str)
    for frame in (immune, chim, counts):
        frame["patient_id"] = frame["patient_id"].astype(str)
    ae = getattr(cohort, "adverse_events", None)
    ae = pd.DataFrame(columns=["patient_id", "grade"]) if ae is None else ae.copy()
    if "patient_id" in ae:
        ae["patient_id"] = ae["patient_id"].astype(str)
    intervals = getattr(cohort, "intervals", None)
    events = getattr(cohort, "events", None)
    return {"immune": immune, "chimerism": chim, "endpoints": endpoints, "counts": counts,
            "adverse_events": ae, "qc_failures": failed if exclude_qc_failures
            else failed.iloc[:0],
            "intervals": pd.DataFrame(columns=["patient_id", "start", "stop", "covariate",
                                               "value"]) if intervals is None else intervals,
            "events": pd.DataFrame(columns=["patient_id", "day", "event", "value"])
            if events is None else events}


def _check_endpoints(endpoints: pd.DataFrame) -> None:
    needed = ["patient_id", "relapse_days", "relapse_event", "pfs_days", "pfs_event",
              "os_days", "os_event", "trm_event", "agvhd_2_4_days", "agvhd_2_4_event"]
    missing = [c for c in needed if c not in endpoints]
    if missing:
        raise AnalysisError(f"gvm_report: the cohort's endpoints table lacks column(s) "
                            f"{missing}; rebuild the cohort with clinical data "
                            "(immunomon.clinical endpoints)")
    if len(endpoints) == 0:
        raise AnalysisError("gvm_report: the cohort has no patients")


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if math.isnan(v) else (str(v) if math.isinf(v) else v)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if value is pd.NA:
        return None
    return value


def answers_records(answers: pd.DataFrame) -> list[dict]:
    return [{k: _jsonable(v) for k, v in r.items()} for r in answers.to_dict("records")]


def _parse(value):
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _relative(value, root: Path | None, out: Path):
    """Every absolute path in ``value`` made relative: to the study folder when it
    lies inside it, else to the report folder (outputs of earlier stages)."""
    if isinstance(value, dict):
        return {_relative(k, root, out): _relative(v, root, out) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative(v, root, out) for v in value]
    if isinstance(value, str) and value.startswith("/") and len(value) > 1:
        path = Path(os.path.normpath(value))
        base = root if root is not None and path.is_relative_to(root) else out
        return Path(os.path.relpath(path, base)).as_posix()
    return value


def provenance_record(attrs: dict, out_dir, study_root=None) -> dict:
    """The cohort's provenance with paths relative to the study folder.

    ``study_root`` defaults to the folder of the study's manifest (the input
    whose role is "manifest"), else the deepest folder holding every input."""
    parsed = {k: _parse(v) for k, v in attrs.items()}
    out = Path(os.path.normpath(Path(out_dir).resolve()))
    root = None if study_root is None else Path(os.path.normpath(Path(study_root).resolve()))
    inputs = [i for i in parsed.get("inputs") or [] if isinstance(i, dict)]
    if root is None:
        manifests = [i["path"] for i in inputs
                     if i.get("role") == "manifest" and str(i.get("path", "")).startswith("/")]
        files = [os.path.normpath(p) for p in (parsed.get("input_hashes") or {})
                 if isinstance(p, str) and p.startswith("/")]
        if manifests:
            root = Path(os.path.normpath(manifests[0])).parent
        elif files:
            root = Path(os.path.commonpath(files))
            root = root.parent if len(files) == 1 else root
    record = {k: _relative(v, root, out) for k, v in parsed.items()}
    record["paths"] = ("relative to the study folder " + repr(root.name) if root is not None
                       else "as recorded") + "; outputs of earlier stages relative to " \
        "this file's folder"
    return record


def _write_csv_atomic(frame: pd.DataFrame, path: Path) -> Path:
    from ..report.pages import write_text_atomic
    return write_text_atomic(path, frame.to_csv(index=False))


def _note_adverse_event_source(answers: pd.DataFrame, *, graded: bool) -> pd.DataFrame:
    """Say which adverse events the grade questions counted: with the study's protocol,
    laboratory values graded by CTCAE join the reported events; without it (a cohort
    alone) only the reported ones count, and the same trial can answer differently."""
    source = ("reported adverse events and laboratory values graded by CTCAE, merged" if graded
              else "reported adverse events only: laboratory values are graded only with the "
                   "study's protocol (immunomon run, or gvm_report(protocol=...))")
    rows = answers["question"].astype(str).str.startswith("5.ae_")
    notes = answers.loc[rows, "note"].fillna("").astype(str)
    answers = answers.copy()
    answers.loc[rows, "note"] = [f"{n}; {source}" if n else source for n in notes]
    return answers


def gvm_report(cohort, out_dir, *, seed: int = 0, plan: Plan | None = None,
               title: str = "Graft-versus-myeloma report", study_root=None, protocol=None,
               clinical=None) -> Path:
    """Answer the declared GvM questions for ``cohort`` and write the report.

    Returns the path of the HTML page. ``seed`` fixes the permutation p-values
    (the same seed gives the same numbers); ``plan`` overrides the declared
    settings (baseline and primary visit, landmark day, horizon, populations),
    which must be chosen before looking at the outcomes. ``study_root``: the
    folder the provenance paths are made relative to (default: the deepest
    folder holding every input file). ``protocol``: the study's
    :class:`~immunomon.analysis.protocol.ProtocolResults` (from
    :func:`~immunomon.analysis.protocol.protocol_results`), written as
    ``protocol/*.csv`` and the "Protocol endpoints" section; its graded adverse
    events (laboratory and reported) then also answer the safety question.
    ``clinical``: the study's ClinicalData, for the dose-level figure.
    """
    from ..report.figures import gvm_figures
    from ..report.gvm_page import write_gvm_page
    from ..report.pages import write_text_atomic

    plan = Plan(seed=seed) if plan is None else plan
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = cohort_tables(cohort, exclude_qc_failures=plan.exclude_qc_failures)
    _check_endpoints(tables["endpoints"])
    if protocol is not None:
        tables["adverse_events"] = protocol.graded_adverse_events
    answers, matrix = answer_all(immune=tables["immune"], chimerism=tables["chimerism"],
                                 endpoints=tables["endpoints"],
                                 adverse_events=tables["adverse_events"], plan=plan,
                                 counts=tables["counts"])
    answers = _note_adverse_event_source(answers, graded=protocol is not None)
    verdicts = gating_verdicts(tables["counts"], plan)
    figures = gvm_figures(tables, answers, matrix, plan, out / "figures")
    _write_csv_atomic(answers[COLUMNS], out / "questions.csv")
    attrs = {k: _jsonable(v) if not isinstance(v, (np.ndarray, list, tuple)) else
             [_jsonable(x) for x in np.ravel(v)] for k, v in cohort.dataset.attrs.items()}
    provenance = provenance_record(attrs, out, study_root)
    write_text_atomic(out / PROVENANCE_NAME, json.dumps(provenance, indent=2, default=str))
    results = {"title": title, "plan": plan.as_dict(),
               "n_patients": int(len(tables["endpoints"])),
               "provenance": PROVENANCE_NAME,
               "gating_qc": answers_records(verdicts),
               "qc_failures_left_out": tables["qc_failures"].to_dict("records"),
               "figures": {k: [p.name for p in v] for k, v in figures.items()},
               "questions": answers_records(answers[COLUMNS])}
    sections = []
    if protocol is not None:
        from ..report.gvm_page import Section
        from ..report.protocol_page import protocol_records, write_protocol_outputs
        sections.append(Section("protocol-endpoints", "Protocol endpoints",
                                write_protocol_outputs(protocol, out, clinical=clinical)))
        results["protocol"] = protocol_records(protocol)
    write_text_atomic(out / "results.json", json.dumps(results, indent=2, default=str))
    return write_gvm_page(out / REPORT_NAME, title=title, answers=answers, plan=plan,
                          figures=figures, n_patients=len(tables["endpoints"]),
                          provenance=provenance, provenance_link=PROVENANCE_NAME,
                          gating_qc=verdicts, left_out=tables["qc_failures"],
                          sections=sections)
