"""Graft-versus-myeloma statistics on plain DataFrames.

Survival with log-log intervals, Cox models with time-varying covariates and
an explicit check for monotone likelihood, landmark analyses, competing risks
(Aalen-Johansen, Gray's test, Fine-Gray), mixed models of immune trajectories
and small-sample correlation tests. Formulas, assumptions and the reasons for
each default are in docs/analysis.md.
"""

from .survival import (FollowUpResult, KaplanMeierResult, LogrankResult, kaplan_meier,
                       logrank, median_followup)
from .timevarying import (CoxResult, LandmarkResult, TestResult, counting_process,
                          cox_time_varying, landmark)

__all__ = [
    "CoxResult", "LandmarkResult", "TestResult",
    "counting_process", "cox_time_varying", "landmark",
    "KaplanMeierResult", "LogrankResult", "FollowUpResult",
    "kaplan_meier", "logrank", "median_followup",
]
