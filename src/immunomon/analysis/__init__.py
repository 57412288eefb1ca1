"""Graft-versus-myeloma statistics on plain DataFrames.

Survival with log-log intervals, Cox models with time-varying covariates,
an explicit check for monotone likelihood and Firth's penalised estimate, landmark analyses, competing risks
(Aalen-Johansen, Gray's test, Fine-Gray), mixed models of immune trajectories
and small-sample correlation tests. Formulas, assumptions and the reasons for
each default are in docs/analysis.md.
"""

from .correlations import (FisherResult, SpearmanResult, WilcoxonResult, benjamini_hochberg,
                           clopper_pearson, correlations, fisher_exact, spearman,
                           wilcoxon_rank_sum)
from .competing import (CumulativeIncidenceResult, GrayTestResult, cause_specific_cox,
                        cumulative_incidence, fine_gray, finegray_expand, grays_test)
from .firth import FirthFit, firth_cox
from .survival import (FollowUpResult, KaplanMeierResult, LogrankResult, kaplan_meier,
                       logrank, median_followup)
from .protocol import (ProtocolResults, adverse_event_table, outcome_table, primary_summary,
                       protocol_results)
from .stopping import (StoppingRule, boundaries, monitor, operating_characteristics,
                       posterior_probability)
from .trajectories import (TrajectoryResult, change_from_baseline, log_counts, trajectories,
                           visit_summary)
from .timevarying import (CoxResult, LandmarkResult, TestResult, counting_process,
                          cox_time_varying, landmark)

__all__ = [
    "SpearmanResult", "FisherResult", "WilcoxonResult", "spearman", "benjamini_hochberg",
    "correlations", "fisher_exact", "wilcoxon_rank_sum", "clopper_pearson",
    "TrajectoryResult", "trajectories", "log_counts", "visit_summary", "change_from_baseline",
    "CumulativeIncidenceResult", "GrayTestResult",
    "cumulative_incidence", "grays_test", "fine_gray", "finegray_expand", "cause_specific_cox",
    "CoxResult", "LandmarkResult", "TestResult", "FirthFit", "firth_cox",
    "counting_process", "cox_time_varying", "landmark",
    "KaplanMeierResult", "LogrankResult", "FollowUpResult",
    "kaplan_meier", "logrank", "median_followup",
    "ProtocolResults", "protocol_results", "primary_summary", "outcome_table",
    "adverse_event_table", "StoppingRule", "boundaries", "monitor",
    "operating_characteristics", "posterior_probability",
]
