"""Clinical tables: patients, treatments, GVHD, IMWG responses, adverse events, outcomes."""

from .gvhd import glucksberg_grade, lung_score_from_fev1, magic_grade, nih_global_severity
from .imwg import imwg_category, imwg_progression
