"""Clinical tables of a transplant study: read, validate, grade, and derive endpoints.

Read a folder of documented CSV files (:func:`read_clinical`), a flat REDCap
export (:func:`read_redcap`) or CDISC SDTM domains (:func:`read_sdtm`) into
one :class:`ClinicalData`. Acute GVHD grades (MAGIC and Glucksberg), chronic
GVHD NIH severity and IMWG responses are computed from the recorded organ
stages, organ scores and laboratory values by the pure rules in
:mod:`immunomon.clinical.gvhd` and :mod:`immunomon.clinical.imwg`.
:func:`endpoints` and :func:`intervals` give the per-patient outcomes and the
time-varying covariates. Laboratory values are graded by CTCAE v3.0 or v5.0
(:func:`ctcae_grade`) and become adverse events (:func:`lab_adverse_events`,
:func:`merge_adverse_events`); :func:`dose_days` follows the dose levels and
:func:`primary_endpoint` applies a :class:`Protocol`'s primary endpoint.
Column definitions: ``docs/clinical.md``.
"""

from .data import ClinicalData, build_clinical, read_clinical
from .ctcae import ctcae_grade, grade_values, lab_terms, resolve_term
from .dates import parse_date
from .endpoints import endpoints, exposure_runs, intervals
from .exposure import dose_days, exposure_summary
from .gvhd import (
    OrganScores, StageSet, glucksberg_grade, lung_score_from_fev1, magic_grade,
    nih_global_severity, steroid_refractory, steroid_refractory_chronic,
)
from .labs import grade_labs, lab_adverse_events, merge_adverse_events
from .protocol import Protocol, primary_endpoint
from .imwg import LabValues, imwg_category, imwg_progression, imwg_series, measurable_disease
from .redcap import read_redcap
from .sdtm import read_sdtm
from .tables import FILE_NAMES, SCHEMAS, read_table

__all__ = [
    "ClinicalData", "read_clinical", "read_redcap", "read_sdtm", "build_clinical",
    "read_table", "SCHEMAS", "FILE_NAMES", "parse_date",
    "endpoints", "intervals", "exposure_runs",
    "magic_grade", "glucksberg_grade", "nih_global_severity", "lung_score_from_fev1",
    "steroid_refractory", "StageSet",
    "imwg_category", "imwg_progression", "imwg_series", "measurable_disease", "LabValues",
    "ctcae_grade", "grade_values", "lab_terms", "resolve_term",
    "grade_labs", "lab_adverse_events", "merge_adverse_events",
    "dose_days", "exposure_summary", "steroid_refractory_chronic", "OrganScores",
    "Protocol", "primary_endpoint",
]
