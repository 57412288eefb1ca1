"""A readable summary of a cohort: what ``immunomon cohort show`` prints."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..fmt import counted

__all__ = ["summarise", "format_summary", "qc_failures"]


def _coverage(ds) -> pd.DataFrame:
    """Per visit: median day, patients with flow data, with chimerism per lineage."""
    out = pd.DataFrame({"visit": [str(v) for v in ds["timepoint"].values]})
    if "median_day" in ds.coords:
        out["median_day"] = ds["median_day"].values
    flow = ds["count"].notnull().any("population") if ds.sizes.get("population") else None
    out["flow"] = flow.sum("patient").values.astype(int) if flow is not None else 0
    for lin in ds["lineage"].values:
        has = ds["donor_chimerism_percent"].sel(lineage=lin).notnull()
        out[f"chimerism {lin}"] = has.sum("patient").values.astype(int)
    return out


def _median_follow_up(ep: pd.DataFrame) -> float:
    """Median potential follow-up by reverse Kaplan-Meier (a patient who died early
    does not shorten it, as the crude median of observed times lets them); the crude
    median where every patient died and no one's follow-up was cut short."""
    from ..analysis.survival import median_followup
    from ..errors import AnalysisError

    try:
        return float(median_followup(ep, "end_day", "os_event").median)
    except AnalysisError:
        return float(np.median(ep["end_day"]))


def _endpoints(ep: pd.DataFrame) -> dict:
    if ep.empty or "os_event" not in ep:
        return {}
    out = {"patients": int(len(ep)),
           "deaths": int(ep["os_event"].sum()),
           "median_follow_up_days": _median_follow_up(ep)}
    if "death_cause" in ep:
        causes = ep["death_cause"].dropna().value_counts()
        out["death_causes"] = {str(k): int(v) for k, v in causes.items()}
    for name in ("progression_day",):
        out["progressions"] = int(ep[name].notna().sum())
    for name in ("agvhd_2_4", "agvhd_3_4", "cgvhd", "cgvhd_modsev"):
        col = f"{name}_event"
        if col in ep:
            out[name] = int((ep[col] == 1).sum())
    return out


def qc_failures(ds) -> pd.DataFrame:
    """The visits whose flow samples failed gating QC (``qc_status``): patient_id, visit."""
    if "qc_status" not in ds:
        return pd.DataFrame(columns=["patient_id", "visit"])
    status = ds["qc_status"].transpose("patient", "timepoint")
    i, j = np.nonzero(status.to_numpy().astype(str) == "failure")
    return pd.DataFrame({"patient_id": status["patient"].to_numpy().astype(str)[i],
                         "visit": status["timepoint"].to_numpy().astype(str)[j]})


def summarise(cohort) -> dict:
    """Counts, dimensions, coverage, endpoints, provenance and warnings as plain data."""
    ds = cohort.dataset
    samples = cohort.samples
    status = samples["status"].value_counts().to_dict() if "status" in samples else {}
    return {
        "patients": [str(p) for p in ds["patient"].values],
        "visits": [str(v) for v in ds["timepoint"].values],
        "populations": [str(p) for p in ds["population"].values],
        "markers": [str(m) for m in ds["marker"].values],
        "lineages": [str(x) for x in ds["lineage"].values],
        "samples": {str(k): int(v) for k, v in status.items()},
        "coverage": json.loads(_coverage(ds).to_json(orient="records")),
        "qc_failures": [f"{r.patient_id} {r.visit}" for r in qc_failures(ds).itertuples()],
        "endpoints": _endpoints(cohort.endpoints),
        "created": ds.attrs.get("created", ""),
        "software_version": ds.attrs.get("software_version", ""),
        "template": " ".join(x for x in (ds.attrs.get("template", ""),
                                         ds.attrs.get("template_version", "")) if x),
        "warnings": cohort.warnings,
    }


def _names(items: list[str], limit: int = 12) -> str:
    text = ", ".join(items[:limit])
    return text + (f", ... ({len(items)} in all)" if len(items) > limit else "") if items \
        else "none"


def format_summary(cohort, *, title: str = "cohort") -> str:
    s = summarise(cohort)
    ds = cohort.dataset
    lines = [f"{title}: " + ", ".join(counted(len(s[key]), noun) for key, noun in (
                 ("patients", "patient"), ("visits", "visit"), ("populations", "population"),
                 ("markers", "marker"), ("lineages", "chimerism lineage"))),
             f"built {s['created']} with immunomon {s['software_version']}"
             + (f"; template {s['template']}" if s["template"] else ""),
             "",
             f"Patients:    {_names(s['patients'])}",
             f"Populations: {_names(s['populations'])}",
             f"Markers:     {_names(s['markers'])}",
             "Samples:     " + (", ".join(f"{v} {k}" for k, v in s["samples"].items())
                                 or "none"),
             "",
             "Coverage (patients with data per visit)"]
    cov = _coverage(ds)
    if "median_day" in cov:
        cov["median_day"] = cov["median_day"].map(lambda d: "" if np.isnan(d) else f"{d:g}")
    lines.append(cov.to_string(index=False))
    if s["qc_failures"]:
        lines.append(f"Flow QC: {counted(len(s['qc_failures']), 'visit')} whose gating failed "
                     f"({_names(s['qc_failures'])}), left out of the GvM analysis")
    ep = s["endpoints"]
    lines.append("")
    if ep:
        causes = ", ".join(f"{k} {v}" for k, v in ep.get("death_causes", {}).items())
        lines.append(
            f"Endpoints: {counted(ep['deaths'], 'death')}" + (f" ({causes})" if causes else "")
            + f", {counted(ep['progressions'], 'progression')}, acute GVHD II-IV "
            f"{ep.get('agvhd_2_4', 0)}"
            f" (III-IV {ep.get('agvhd_3_4', 0)}), chronic GVHD {ep.get('cgvhd', 0)} "
            f"(moderate-severe {ep.get('cgvhd_modsev', 0)}); median follow-up "
            f"{ep['median_follow_up_days']:g} days (reverse Kaplan-Meier)")
    else:
        lines.append("Endpoints: none (built without clinical data)")
    if s["warnings"]:
        lines.append(f"{counted(len(s['warnings']), 'build warning')}:")
        lines += [f"  {w}" for w in s["warnings"][:20]]
        if len(s["warnings"]) > 20:
            lines.append(f"  ... and {len(s['warnings']) - 20} more")
    return "\n".join(lines)
