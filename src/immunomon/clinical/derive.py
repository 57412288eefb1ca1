"""Columns computed from the validated tables: days, grades, severities, IMWG."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from .gvhd import glucksberg_grade, lung_score_from_fev1, magic_grade, nih_global_severity
from .imwg import LabValues, imwg_category, measurable_disease, update_nadir
from .tables import clinical_error

__all__ = ["derive_tables", "LAB_COLUMNS"]

LAB_COLUMNS = ("serum_m_protein_g_dl", "urine_m_protein_mg_24h", "serum_ife", "urine_ife",
               "kappa_flc_mg_l", "lambda_flc_mg_l", "marrow_plasma_cells_pct",
               "marrow_clonal_cells", "new_lesion")

# date column -> day column, per table
DAY_COLUMNS = {
    "treatments": {"start_date": "start_day", "stop_date": "stop_day"},
    "agvhd": {"date": "day"},
    "cgvhd": {"date": "day"},
    "responses": {"date": "day"},
    "adverse_events": {"onset_date": "onset_day", "resolution_date": "resolution_day"},
    "labs": {"date": "day"},
    "deaths": {"date": "day"},
    "followup": {"last_follow_up_date": "day"},
}


def _days(dates: pd.Series, origin: pd.Series) -> pd.Series:
    """Whole days from transplant (day 0 = transplant day); <NA> for a missing date."""
    return pd.Series(((dates - origin).dt.days).to_numpy(), index=dates.index, dtype="Int64")


def _int(v):
    return None if pd.isna(v) else int(v)


def _lab(row) -> LabValues:
    def num(c):
        v = row[c]
        return None if pd.isna(v) else float(v)

    def flag(c, yes):
        v = row[c]
        return None if pd.isna(v) else bool(v == yes if isinstance(yes, str) else v)

    return LabValues(serum_m=num("serum_m_protein_g_dl"), urine_m=num("urine_m_protein_mg_24h"),
                     kappa=num("kappa_flc_mg_l"), lambda_=num("lambda_flc_mg_l"),
                     marrow_pc=num("marrow_plasma_cells_pct"),
                     serum_ife=flag("serum_ife", "positive"),
                     urine_ife=flag("urine_ife", "positive"),
                     marrow_clonal=flag("marrow_clonal_cells", "present"),
                     new_lesion=flag("new_lesion", True))


def _derive_responses(resp: pd.DataFrame) -> pd.DataFrame:
    """Resolve the baseline, derive IMWG categories from labs, and the final response.

    Per patient, the baseline is the row marked ``baseline=yes``, else the
    earliest row with laboratory values and no recorded category. Rows before
    the baseline are history: kept, not judged.
    ``category_derived`` is computed for every later row with laboratory
    values; ``response`` is the recorded ``category`` when given, else the
    derived one; ``progression`` is ``response == "PD"``.
    """
    resp = resp.sort_values(["patient_id", "date"], kind="stable").copy()
    has_lab = resp[list(LAB_COLUMNS)].notna().any(axis=1)
    no_info = ~has_lab & resp["category"].isna()
    if no_info.any():
        row = resp[no_info].iloc[0]
        raise clinical_error(row["source_file"], row["source_line"], "category",
                             "give an IMWG category or the laboratory values it is derived "
                             "from")
    is_base = pd.Series(False, index=resp.index)
    derived = pd.Series(None, index=resp.index, dtype=object)
    for _, grp in resp.groupby("patient_id", sort=False):
        marked = grp.index[grp["baseline"].fillna(False).astype(bool)]
        candidates = grp.index[has_lab[grp.index] & grp["category"].isna()]
        if len(marked):
            base_idx = marked[0]
        elif len(candidates):
            base_idx = candidates[0]
        else:
            continue   # categories recorded, nothing to derive
        is_base[base_idx] = True
        after = grp.loc[grp["date"] > grp.at[base_idx, "date"]]
        need = after.index[has_lab[after.index]]
        if len(need) == 0:
            continue
        base_row = grp.loc[base_idx]
        baseline = _lab(base_row)
        m = measurable_disease(baseline)
        if not (m.serum or m.urine or m.flc or m.marrow):
            if after.loc[need, "category"].isna().any():
                raise clinical_error(
                    base_row["source_file"], base_row["source_line"], "serum_m_protein_g_dl",
                    "no measurable disease at this baseline (serum M-protein >= 1 g/dL, urine "
                    ">= 200 mg/24h, involved FLC >= 100 mg/L with abnormal ratio, or marrow "
                    "plasma cells >= 30%), so later categories cannot be derived; record "
                    "the IMWG category on each assessment")
            continue
        nadir = update_nadir(LabValues(), baseline, m.involved)
        for idx in after.index:
            if not has_lab[idx]:
                continue
            current = _lab(resp.loc[idx])
            derived[idx] = imwg_category(current, baseline, nadir)
            nadir = update_nadir(nadir, current, m.involved)
    resp["baseline"] = is_base.astype("boolean")
    resp["category_derived"] = derived
    response = resp["category"].where(resp["category"].notna(), derived)
    response[is_base & resp["category"].isna()] = None
    resp["response"] = response.astype(object)
    resp["progression"] = (resp["response"] == "PD").astype(bool)
    return resp


def derive_tables(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Add day-from-transplant columns and the computed grades, severities, responses."""
    out = {k: v.copy() for k, v in tables.items()}
    transplant = out["patients"].set_index("patient_id")["transplant_date"]
    for name, cols in DAY_COLUMNS.items():
        t = out[name]
        origin = t["patient_id"].map(transplant)
        for date_col, day_col in cols.items():
            t[day_col] = _days(t[date_col], origin)

    ag = out["agvhd"]
    stages = list(zip(*(ag[o].map(_int) for o in ("skin", "liver", "upper_gi", "lower_gi")))) \
        if len(ag) else []
    ag["grade_magic"] = pd.Series([magic_grade(*s) for s in stages], index=ag.index,
                                  dtype="Int64")
    ag["grade_glucksberg"] = pd.Series([glucksberg_grade(*s) for s in stages], index=ag.index,
                                       dtype="Int64")

    cg = out["cgvhd"]
    lung = [lung_score_from_fev1(f) if not pd.isna(f) else _int(s)
            for f, s in zip(cg["lung_fev1_pct"], cg["lungs"])]
    cg["lung_score"] = pd.Series(lung, index=cg.index, dtype="Int64")
    organs = ("skin", "mouth", "eyes", "gi", "liver", "lung_score", "joints_fascia", "genital")
    cg["nih_severity"] = pd.Series(
        [nih_global_severity(*(_int(r[o]) for o in organs)) for _, r in cg.iterrows()],
        index=cg.index, dtype=object)

    out["responses"] = _derive_responses(out["responses"])
    _check_lab_units(out["labs"])
    return out


def _check_lab_units(labs: pd.DataFrame) -> None:
    """Every unit of a test that CTCAE grades must be one we can read for it."""
    if labs.empty:
        return
    from .ctcae import analyte_for_test, normalize_unit
    for (test, unit), grp in labs.groupby([labs["test"], labs["unit"].fillna("")],
                                           sort=False):
        analyte = analyte_for_test(test)
        if analyte is None or not unit:
            continue
        try:
            normalize_unit(unit, analyte)
        except ValueError as exc:
            row = grp.iloc[0]
            raise clinical_error(row["source_file"], row["source_line"],
                                 labs.attrs.get("labels", {}).get("unit", "unit"),
                                 f"{exc}; write it as e.g. 10^9/L, /mm3, g/dL, g/L, mg/dL, "
                                 "mmol/L, umol/L, mEq/L or U/L") from None


