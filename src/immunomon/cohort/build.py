"""Assemble the longitudinal cohort: populations, chimerism and clinical data on one time axis.

``build`` places every manifest sample on ``patient x timepoint`` (the nominal
visit), with the populations of flow samples on ``population`` (and
``marker`` for MFIs) and donor chimerism on ``lineage``. A cell without a
sample is NaN, never zero. The per-patient endpoints, the time-varying
intervals, the event table, the adverse events and the sample list travel
beside the dataset in the :class:`~immunomon.cohort.Cohort`.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import ClinicalDataError
from .manifest import add_days, manifest_from_frame, read_manifest
from .model import Cohort

__all__ = ["build", "UNITS", "event_table", "PATIENT_VARIABLES", "EVENT_COLUMNS"]

# variable -> (units, long name)
UNITS = {
    "count": ("events", "events in the population gate"),
    "percent_of_parent": ("%", "percent of the parent population"),
    "cells_per_ul": ("cells/uL", "absolute count per microlitre of blood"),
    "percent_near_cut": ("%", "share of the population's events within one density "
                              "bandwidth of a cut found in its file"),
    "mfi": ("a.u.", "median fluorescence intensity (compensated, linear scale)"),
    "donor_chimerism_percent": ("%", "donor chimerism (mean of the informative STR loci)"),
    "qc_flags": ("1", "number of QC warnings and failures of the flow samples"),
    "day": ("days", "day after transplant of the collection"),
    "median_day": ("days", "median day after transplant of the visit"),
    "age": ("year", "age at transplant"),
}
PATIENT_VARIABLES = ("sex", "age", "diagnosis", "transplant_date", "donor_type", "hla_match",
                     "conditioning", "stem_cell_source")
PROVENANCE_KEYS = ("input_hashes", "template", "template_version")
#: a gated sample's status (``summary.json``), from best to worst
QC_STATUSES = ("ok", "warning", "failure")
_DIMS3 = ("patient", "timepoint", "population")


def _strings(values) -> np.ndarray:
    """Object array of str ("" for a missing value): what NetCDF and Zarr both keep."""
    return np.array(["" if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA
                     else str(v) for v in values], dtype=object)


def _order_visits(manifest: pd.DataFrame) -> list[str]:
    """Visits by ``visit_order`` (when given), then by first appearance."""
    first = {v: i for i, v in enumerate(dict.fromkeys(manifest["visit"]))}
    if "visit_order" not in manifest:
        return list(first)
    order = manifest.groupby("visit")["visit_order"].min().fillna(np.inf)
    return sorted(first, key=lambda v: (order[v], first[v]))


def _dedupe(rows: pd.DataFrame, keys: list[str], what: str, warnings: list[str]) -> pd.DataFrame:
    """Keep the first row of each key; report the others."""
    dup = rows.duplicated(keys, keep="first")
    for r in rows[dup].itertuples():
        first = rows[(rows[keys] == pd.Series({k: getattr(r, k) for k in keys})).all(axis=1)]
        warnings.append(
            f"{r.source_file}, row {r.source_line}: {what} sample {r.sample!r} duplicates "
            f"sample {first.iloc[0]['sample']!r} (row {first.iloc[0]['source_line']}) for "
            f"patient {r.patient_id}, visit {r.visit}"
            + (f", lineage {r.lineage}" if what == "chimerism" else "")
            + (f", tube {r.tube}" if what == "flow" and r.tube else "") + "; the first is kept")
    return rows[~dup]


def _marker_columns(table: pd.DataFrame) -> dict[str, str]:
    return {c: c[len("median "):] for c in table.columns if c.startswith("median ")}


def _index(values: pd.Series, labels: Sequence) -> np.ndarray:
    pos = {v: i for i, v in enumerate(labels)}
    return values.map(pos).to_numpy(dtype=np.int64)


def _populations(rows: pd.DataFrame, populations: pd.DataFrame, patients, visits,
                 warnings: list[str], given: bool = True):
    """Arrays of the population variables from the kept flow samples."""
    have = set(populations["sample"]) if len(populations) else set()
    for r in rows[~rows["sample"].isin(have)].itertuples() if given else ():
        warnings.append(f"{r.source_file}, row {r.source_line}: no gating result for flow "
                        f"sample {r.sample!r}; its visit is left empty")
    long = rows[["patient_id", "visit", "sample", "order"]].merge(
        populations, on="sample", how="inner").sort_values(["order"], kind="stable")
    # Several tubes of one visit can share a population: the first tube listed wins.
    long = long.drop_duplicates(["patient_id", "visit", "population"], keep="first")
    names = list(dict.fromkeys(populations["population"])) if len(populations) else []
    names = [n for n in names if n in set(long["population"])]
    markers = _marker_columns(populations)
    shape = (len(patients), len(visits), len(names))
    pi, ti = _index(long["patient_id"], patients), _index(long["visit"], visits)
    ni = _index(long["population"], names)
    out = {}
    # how much each count turns on its cut, where the gating wrote it (immunomon gate)
    near = ("percent_near_cut",) if "percent_near_cut" in populations else ()
    for var in (*VALUE_COLUMNS, *near):
        arr = np.full(shape, np.nan)
        if var in long:
            arr[pi, ti, ni] = pd.to_numeric(long[var], errors="coerce").to_numpy(float)
        out[var] = arr
    mfi = np.full(shape + (len(markers),), np.nan)
    for k, col in enumerate(markers):
        mfi[pi, ti, ni, k] = pd.to_numeric(long[col], errors="coerce").to_numpy(float)
    return names, list(markers.values()), out, mfi


def _chimerism(rows: pd.DataFrame, table: pd.DataFrame, patients, visits, lineages,
               warnings: list[str], given: bool = True):
    shape = (len(patients), len(visits), len(lineages))
    pct = np.full(shape, np.nan)
    flags = np.full(shape, "", dtype=object)
    if rows.empty:
        return pct, flags
    table = table.drop_duplicates("sample", keep="first") if len(table) else table
    have = set(table["sample"]) if len(table) else set()
    for r in rows[~rows["sample"].isin(have)].itertuples() if given else ():
        warnings.append(f"{r.source_file}, row {r.source_line}: no chimerism result for STR "
                        f"sample {r.sample!r}; its visit is left empty")
    keep = [c for c in ("sample", "percent_donor", "flags") if c in table]
    long = rows[["patient_id", "visit", "lineage", "sample"]].merge(
        table[keep], on="sample", how="inner")
    if "percent_donor" not in long:
        return pct, flags
    pi, ti = _index(long["patient_id"], patients), _index(long["visit"], visits)
    li = _index(long["lineage"], lineages)
    pct[pi, ti, li] = pd.to_numeric(long["percent_donor"], errors="coerce").to_numpy(float)
    if "flags" in long:
        flags[pi, ti, li] = _strings(long["flags"])
    return pct, flags


def _qc(rows: pd.DataFrame, qc: Mapping | None, patients, visits):
    n = np.full((len(patients), len(visits)), np.nan)
    text = np.full(n.shape, "", dtype=object)
    if qc is None:
        return n, text
    for r in rows.itertuples():
        if r.sample not in qc:
            continue
        i, j = patients.index(r.patient_id), visits.index(r.visit)
        flags = [str(f) for f in qc[r.sample]]
        n[i, j] = (0 if np.isnan(n[i, j]) else n[i, j]) + len(flags)
        text[i, j] = "; ".join([t for t in (text[i, j], *flags) if t])
    return n, text


def _qc_status(rows: pd.DataFrame, status: Mapping | None, patients, visits) -> np.ndarray:
    """The worst status of each visit's flow samples; "" without a sample or a status."""
    out = np.full((len(patients), len(visits)), "", dtype=object)
    for r in rows.itertuples():
        level = (status or {}).get(r.sample)
        if level not in QC_STATUSES:
            continue
        i, j = patients.index(r.patient_id), visits.index(r.visit)
        if not out[i, j] or QC_STATUSES.index(level) > QC_STATUSES.index(out[i, j]):
            out[i, j] = level
    return out


def _visit_coords(manifest: pd.DataFrame, patients, visits) -> dict:
    shape = (len(patients), len(visits))
    date = np.full(shape, np.datetime64("NaT"), dtype="datetime64[ns]")
    first = manifest.groupby(["patient_id", "visit"])["collection_date"].min()
    for (p, v), d in first.items():
        date[patients.index(p), visits.index(v)] = np.datetime64(d, "ns")
    coords = {"collection_date": (("patient", "timepoint"), date,
                                  {"long_name": "date the sample was drawn"})}
    if "day" in manifest:
        day = np.full(shape, np.nan)
        dmin = manifest.groupby(["patient_id", "visit"])["day"].min()
        for (p, v), d in dmin.items():
            day[patients.index(p), visits.index(v)] = d
        med = manifest.groupby("visit")["day"].median()
        coords["day"] = (("patient", "timepoint"), day, _attrs("day"))
        coords["median_day"] = ("timepoint", np.array([med.get(v, np.nan) for v in visits]),
                                _attrs("median_day"))
    return coords


def _attrs(var: str) -> dict:
    units, name = UNITS[var]
    return {"units": units, "long_name": name}


def _patient_variables(clinical, endpoints: pd.DataFrame | None, patients) -> dict:
    """Patient table columns and endpoint columns on ``patient``: numbers as float
    (NaN missing), text as str ("" missing), the transplant date as ISO text."""
    if clinical is None:
        return {}
    p = clinical.patients.set_index("patient_id").reindex(patients)
    out = {}
    for col in PATIENT_VARIABLES:
        if col not in p:
            continue
        s = p[col]
        if col == "transplant_date":
            iso = [d.strftime("%Y-%m-%d") if not pd.isna(d) else "" for d in s]
            out[col] = ("patient", np.array(iso, dtype=object),
                        {"long_name": "date of the stem-cell transplant (day 0), ISO 8601"})
        elif col == "age":
            out[col] = ("patient", s.to_numpy(dtype=float), _attrs("age"))
        else:
            out[col] = ("patient", _strings(s), {"long_name": col.replace("_", " ")})
    if endpoints is not None and len(endpoints):
        ep = endpoints.set_index("patient_id").reindex(patients)
        for col in ep.columns:
            if col in out:
                continue
            s = ep[col]
            attrs = {"long_name": f"endpoint {col}", "source": "endpoints table"}
            if col.endswith("_days") or col.endswith("_day"):
                attrs["units"] = "days"
            if col.endswith("_event"):
                # the codes travel with the numbers (CF flags): `relapse_event > 0` read a
                # death without relapse, coded 2, as a relapse
                attrs.update(_EVENT_FLAGS[col in BINARY_EVENTS])
            if s.dtype == object:
                out[col] = ("patient", _strings(s), attrs)
            else:
                out[col] = ("patient", pd.to_numeric(s.astype("Float64"), errors="coerce")
                            .to_numpy(dtype=float, na_value=np.nan), attrs)
    return out


EVENT_COLUMNS = ["patient_id", "day", "event", "value"]
#: endpoints with no competing event (overall and progression-free survival)
BINARY_EVENTS = {"os_event", "pfs_event"}
_EVENT_FLAGS = {
    True: {"flag_values": np.array([0, 1], dtype=np.int8), "flag_meanings": "censored event"},
    False: {"flag_values": np.array([0, 1, 2], dtype=np.int8),
            "flag_meanings": "censored event competing_event"},
}


def _episodes(table: pd.DataFrame, severity: str, levels=None) -> list[tuple]:
    """(patient, onset day, worst value) per episode: a run of assessments whose
    ``severity`` is above the lowest level, ending at an assessment back at it.
    ``levels``: the ordered values of a category (default: the values are numbers)."""
    rank = {v: i for i, v in enumerate(levels)} if levels else None

    def level(value) -> int:
        if pd.isna(value):
            return 0
        return rank.get(value, 0) if rank else int(value)

    out = []
    for pid, grp in table.sort_values("day", kind="stable").groupby("patient_id", sort=False):
        onset, worst = None, None
        for day, value in zip(grp["day"], grp[severity]):
            if level(value) == 0:
                if onset is not None:
                    out.append((pid, float(onset), str(worst)))
                onset = None
            elif onset is None:
                onset, worst = day, value
            elif level(value) > level(worst):
                worst = value
        if onset is not None:
            out.append((pid, float(onset), str(worst)))
    return out


def event_table(clinical, endpoints: pd.DataFrame | None = None) -> pd.DataFrame:
    """Event-time table: ``patient_id, day, event, value`` (value as text).

    - ``agvhd_onset``: first assessment of an acute GVHD episode (overall MAGIC
      grade >= I until a grade 0 assessment); value: the worst grade of the episode;
    - ``cgvhd_onset``: likewise for chronic GVHD (NIH severity above none);
      value: the worst severity;
    - ``response``: each disease assessment with an IMWG response; value: category;
    - ``relapse``: the progression day of the endpoints (first PD, or a death from
      relapse); ``death``: value the cause (``relapse`` or ``nrm``);
    - ``drug_start``/``drug_stop`` (value: drug) for each treatment period,
      ``drug_hold_start``/``drug_hold_stop`` for interruptions;
    - ``last_followup``.
    """
    if clinical is None:
        return pd.DataFrame({"patient_id": pd.Series([], dtype=object),
                             "day": pd.Series([], dtype="float64"),
                             "event": pd.Series([], dtype=object),
                             "value": pd.Series([], dtype=object)})
    ep = endpoints if endpoints is not None else clinical.endpoints()
    rows = []
    ag = clinical.agvhd
    if len(ag):
        rows += [(p, d, "agvhd_onset", v) for p, d, v in _episodes(ag, "grade_magic")]
    cg = clinical.cgvhd
    if len(cg):
        rows += [(p, d, "cgvhd_onset", v) for p, d, v in
                 _episodes(cg, "nih_severity", ("none", "mild", "moderate", "severe"))]
    resp = clinical.responses
    if len(resp):
        hit = resp[resp["response"].notna()]
        rows += [(p, float(d), "response", str(v)) for p, d, v in
                 zip(hit["patient_id"], hit["day"], hit["response"])]
    prog = ep[ep["progression_day"].notna()]
    rows += [(p, float(d), "relapse", "") for p, d in
             zip(prog["patient_id"], prog["progression_day"])]
    for r in clinical.deaths.itertuples():
        rows.append((r.patient_id, float(r.day), "death", str(r.cause)))
    for r in clinical.followup.itertuples():
        rows.append((r.patient_id, float(r.day), "last_followup", ""))
    for r in clinical.treatments.itertuples():
        kind = "drug" if r.status == "on" else "drug_hold"
        rows.append((r.patient_id, float(r.start_day), f"{kind}_start", str(r.drug)))
        if not pd.isna(r.stop_day):
            rows.append((r.patient_id, float(r.stop_day), f"{kind}_stop", str(r.drug)))
    out = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    order = {p: i for i, p in enumerate(clinical.patients["patient_id"])}
    out["_p"] = out["patient_id"].map(order)
    out = out.sort_values(["_p", "day"], kind="stable").drop(columns="_p")
    return out.astype({"patient_id": object, "day": "float64", "event": object,
                       "value": object}).reset_index(drop=True)


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Default index; missing values in text columns as None (stores exactly)."""
    df = df.reset_index(drop=True).copy()
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].astype(object).where(df[col].notna(), None)
    return df


def _side_tables(clinical, manifest: pd.DataFrame) -> dict:
    if clinical is None:
        empty = pd.DataFrame({"patient_id": pd.Series([], dtype=object)})
        return {"endpoints": empty, "intervals": empty.copy(), "events": event_table(None),
                "adverse_events": empty.copy()}
    ep = clinical.endpoints()
    return {"endpoints": _tidy(ep), "intervals": _tidy(clinical.intervals()),
            "events": _tidy(event_table(clinical, ep)),
            "adverse_events": _tidy(clinical.adverse_events)}


def _json_attr(value):
    if isinstance(value, (str, int, float)):
        return value
    return json.dumps(value, default=str)


#: the population variables a populations table fills, each from its own column
VALUE_COLUMNS = ("count", "percent_of_parent", "cells_per_ul")


def _check_table(table, name: str, required: Sequence[str], any_of: Sequence[str] = ()):
    """A result table given to ``build`` must be a DataFrame with the columns it is read
    by: a missing one would leave its variables empty (NaN) without a word."""
    if table is None:
        return
    if not isinstance(table, pd.DataFrame):
        raise ClinicalDataError(
            f"{name}= takes a DataFrame (the table of results), not "
            f"{type(table).__name__}; read a file first, or use cohort.build_from_files")
    missing = [c for c in required if c not in table.columns]
    if any_of and not any(c in table.columns for c in any_of):
        missing.append(" or ".join(any_of))
    if missing:
        raise ClinicalDataError(f"the {name} table lacks column(s) {', '.join(missing)}; "
                                f"it has: {', '.join(map(str, table.columns)) or 'none'}")


def build(manifest, *, populations: pd.DataFrame | None = None,
          chimerism: pd.DataFrame | None = None, clinical=None,
          qc: Mapping[str, Sequence[str]] | None = None,
          qc_status: Mapping[str, str] | None = None, material: str = "blood",
          provenance: Mapping | None = None) -> Cohort:
    """Build the cohort from a manifest and the per-sample result tables.

    ``manifest``: a table from :func:`read_manifest` (or its path).
    ``populations``: population rows of ``immunomon gate`` (``sample``,
    ``population``, ``count``, ``percent_of_parent``, ``cells_per_ul``,
    ``median <marker>``...). ``chimerism``: per-sample rows of ``immunomon
    chimerism`` (``sample``, ``percent_donor``, ``flags``). ``clinical``: a
    :class:`~immunomon.clinical.ClinicalData` (adds day after transplant, patient
    variables, endpoints, intervals, events, adverse events). ``qc``: sample ->
    QC flags; ``qc_status``: sample -> its status ("ok", "warning" or "failure", as
    ``summary.json`` has it). ``material``: whose flow samples fill the population variables
    (whole ``blood`` by default; others are listed as not placed).
    ``provenance``: extra dataset attributes (input file hashes, template).

    Several samples for one patient, visit and lineage (and tube): the first in
    the manifest is kept and the others are reported in ``Cohort.warnings``.
    """
    _check_table(populations, "populations", ("sample", "population"), VALUE_COLUMNS)
    _check_table(chimerism, "chimerism", ("sample", "percent_donor"))
    if not isinstance(manifest, pd.DataFrame):
        manifest = read_manifest(manifest)
    elif not {"path", "source_file", "source_line"} <= set(manifest.columns):
        manifest = manifest_from_frame(manifest)
    if manifest.empty:
        raise ClinicalDataError("the sample manifest lists no samples")
    warnings: list[str] = []
    if populations is not None:
        warnings += [f"the populations table has no {c!r} column: that variable is empty"
                     for c in VALUE_COLUMNS if c not in populations.columns]
    manifest = manifest.reset_index(drop=True).copy()
    if clinical is not None:
        manifest = add_days(manifest, clinical.patients)
    manifest["order"] = np.arange(len(manifest))
    manifest["status"] = "used"
    if clinical is not None:
        patients = list(clinical.patients["patient_id"])
    else:
        patients = list(dict.fromkeys(manifest["patient_id"]))
    visits = _order_visits(manifest)

    fcs = manifest[manifest["kind"] == "fcs"]
    placed = (fcs["material"] == material) & (fcs["lineage"].isin(["WB", "BM"]))
    for r in fcs[~placed].itertuples():
        manifest.loc[r.Index, "status"] = "not placed"
        warnings.append(f"{r.source_file}, row {r.source_line}: flow sample {r.sample!r} "
                        f"({r.material}, lineage {r.lineage}) is not on the {material} "
                        "population variables")
    fcs_kept = _dedupe(fcs[placed], ["patient_id", "visit", "tube"], "flow", warnings)
    strs = manifest[manifest["kind"] == "str"]
    str_kept = _dedupe(strs, ["patient_id", "visit", "lineage"], "chimerism", warnings)
    dropped = manifest.index.isin(fcs[placed].index.difference(fcs_kept.index)) | \
        manifest.index.isin(strs.index.difference(str_kept.index))
    manifest.loc[dropped, "status"] = "duplicate"

    pops = populations if populations is not None else pd.DataFrame(
        columns=["sample", "population"])
    pop_names, markers, pvars, mfi = _populations(fcs_kept, pops, patients, visits, warnings,
                                                  given=populations is not None)
    listed = set(manifest.loc[manifest["kind"] == "fcs", "sample"])
    extra = sorted(set(pops["sample"]) - listed) if len(pops) else []
    if extra:
        warnings.append(f"{len(extra)} gated sample(s) not in the manifest: "
                        f"{', '.join(map(str, extra[:10]))}" + (" ..." if len(extra) > 10 else ""))
    # the lineages the kept STR samples name, whole blood first
    lineages = sorted(dict.fromkeys(str_kept["lineage"]), key=lambda lineage: lineage != "WB")
    chim = chimerism if chimerism is not None else pd.DataFrame(columns=["sample"])
    pct, chim_flags = _chimerism(str_kept, chim, patients, visits, lineages, warnings,
                                 given=chimerism is not None)
    n_qc, qc_text = _qc(fcs_kept, qc, patients, visits)

    have_pop = set(pops["sample"]) if len(pops) else set()
    have_chim = set(chim["sample"]) if len(chim) else set()
    for idx, frame, have in ((fcs_kept.index, fcs_kept, have_pop),
                             (str_kept.index, str_kept, have_chim)):
        manifest.loc[idx[~frame["sample"].isin(have).to_numpy()], "status"] = "no result"

    data = {var: (_DIMS3, pvars[var], _attrs(var)) for var in pvars}
    data["mfi"] = (_DIMS3 + ("marker",), mfi, _attrs("mfi"))
    data["donor_chimerism_percent"] = (("patient", "timepoint", "lineage"), pct,
                                       _attrs("donor_chimerism_percent"))
    data["chimerism_flags"] = (("patient", "timepoint", "lineage"), chim_flags,
                               {"long_name": "chimerism flags, ';'-separated"})
    data["qc_flags"] = (("patient", "timepoint"), n_qc, _attrs("qc_flags"))
    data["qc_flag_text"] = (("patient", "timepoint"), qc_text,
                            {"long_name": "QC warnings and failures of the flow samples, "
                                          "'; '-separated"})
    data["qc_status"] = (("patient", "timepoint"),
                         _qc_status(fcs_kept, qc_status, patients, visits),
                         {"long_name": "worst QC status of the visit's flow samples: ok, "
                                       "warning or failure ('' without a sample or status)"})
    tables = _side_tables(clinical, manifest)
    data.update(_patient_variables(clinical, tables["endpoints"] if clinical is not None
                                   else None, patients))
    coords = {"patient": np.array(patients, dtype=object),
              "timepoint": np.array(visits, dtype=object),
              "population": np.array(pop_names, dtype=object),
              "marker": np.array(markers, dtype=object),
              "lineage": np.array(lineages, dtype=object)}
    coords.update(_visit_coords(manifest[manifest["status"] != "duplicate"], patients, visits))

    from .. import __version__
    attrs = {"title": "immunomon longitudinal cohort", "software_version": __version__,
             "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
             "material": material, "input_hashes": "{}", "template": "",
             "template_version": ""}
    for key, value in (provenance or {}).items():
        attrs[key] = _json_attr(value)
    attrs["warnings"] = json.dumps(warnings)
    ds = xr.Dataset(data, coords=coords, attrs=attrs)

    tables["samples"] = _tidy(manifest.drop(columns=["order"]))
    return Cohort(ds, **tables)
