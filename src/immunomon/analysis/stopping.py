"""Continuous Bayesian safety monitoring for a small single-arm trial.

After each evaluable patient, the trial stops when the posterior probability
that the toxicity rate exceeds the unacceptable rate ``p0`` is above a
threshold: stop after n patients with x events if

    P(p > p0 | x, n) = 1 - I_{p0}(a + x, b + n - x) > threshold,

with a Beta(a, b) prior (I: the regularised incomplete beta function). This
is the beta-binomial monitoring of Thall, Simon and Estey (Stat Med
1995;14:357-379) with the experimental rate compared with a fixed ``p0``
instead of a second, uncertain rate. :func:`boundaries` gives the smallest
number of events that stops the trial at each n, :func:`operating_characteristics`
the probability of stopping and the expected number of patients at true
rates, exactly (a recursion over the number of events) and by simulation, and
:func:`monitor` applies the rule to an observed sequence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import AnalysisError

__all__ = ["StoppingRule", "posterior_probability", "boundaries", "operating_characteristics",
           "monitor"]


@dataclass(frozen=True)
class StoppingRule:
    """``p0``: the toxicity rate the trial must not accept; stop when
    P(p > p0 | data) > ``threshold``; ``prior``: Beta(a, b) (the default has
    mean 0.3 and the weight of 2 patients); checked after each patient from
    ``min_patients`` to ``max_patients``."""

    p0: float = 0.30
    threshold: float = 0.90
    prior: tuple[float, float] = (0.6, 1.4)
    max_patients: int = 13
    min_patients: int = 1

    def __post_init__(self):
        a, b = self.prior
        if not 0 < self.p0 < 1:
            raise AnalysisError(f"stopping rule: p0 must lie between 0 and 1, not {self.p0!r}")
        if not 0 < self.threshold < 1:
            raise AnalysisError(f"stopping rule: threshold must lie between 0 and 1, not "
                                f"{self.threshold!r}")
        if not (a > 0 and b > 0):
            raise AnalysisError(f"stopping rule: the beta prior needs a, b > 0, not "
                                f"{self.prior!r}")
        if not 1 <= self.min_patients <= self.max_patients:
            raise AnalysisError("stopping rule: need 1 <= min_patients <= max_patients, not "
                                f"{self.min_patients}, {self.max_patients}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["prior"] = list(self.prior)
        return d


def posterior_probability(events, n, rule: StoppingRule) -> np.ndarray:
    """P(p > p0 | events of n) under the rule's beta prior (vectorised)."""
    a, b = rule.prior
    x = np.asarray(events, dtype=float)
    m = np.asarray(n, dtype=float)
    return stats.beta.sf(rule.p0, a + x, b + m - x)


def boundaries(rule: StoppingRule) -> pd.DataFrame:
    """Per number of patients n: ``stop_at`` (the smallest number of events that
    stops the trial; NaN when none can), the posterior probability at that
    count and one below it."""
    rows = []
    for n in range(1, rule.max_patients + 1):
        x = np.arange(n + 1)
        post = posterior_probability(x, n, rule)
        over = np.flatnonzero(post > rule.threshold)
        monitored = n >= rule.min_patients
        k = int(over[0]) if len(over) and monitored else None
        rows.append({"n": n, "stop_at": np.nan if k is None else k,
                     "posterior_at_stop": np.nan if k is None else float(post[k]),
                     "posterior_below": np.nan if not k else float(post[k - 1]),
                     "monitored": monitored})
    return pd.DataFrame(rows)


def _exact(rule: StoppingRule, bound: np.ndarray, rate: float) -> tuple[float, float, float]:
    """P(stop), P(stop before the last patient) and E[patients], by recursion on the
    distribution of events among trials still running."""
    alive = np.array([1.0])                       # P(x events, still running) after 0
    p_stop = p_early = expected = 0.0
    for n in range(1, rule.max_patients + 1):
        nxt = np.zeros(n + 1)
        nxt[:-1] += alive * (1 - rate)
        nxt[1:] += alive * rate
        b = bound[n - 1]
        stop = nxt[int(b):].sum() if not np.isnan(b) else 0.0
        if not np.isnan(b):
            nxt[int(b):] = 0.0
        p_stop += stop
        if n < rule.max_patients:
            p_early += stop
        expected += n * stop
        alive = nxt
    expected += rule.max_patients * alive.sum()
    return p_stop, p_early, expected


def operating_characteristics(rule: StoppingRule, rates=(0.1, 0.2, 0.3, 0.4, 0.5), *,
                              n_sim: int = 10000, seed: int = 0) -> pd.DataFrame:
    """Probability of stopping and expected sample size at each true toxicity rate.

    Columns: ``true_rate``; exact ``p_stop`` (the rule stops the trial at some
    n), ``p_stop_early`` (before the last patient) and ``expected_n``; and the
    same from ``n_sim`` simulated trials at a fixed ``seed`` (``sim_p_stop``,
    ``sim_p_stop_early``, ``sim_expected_n``) as a check of the recursion.
    """
    bound = boundaries(rule)["stop_at"].to_numpy(float)
    limit = np.where(np.isnan(bound), np.inf, bound)
    rng = np.random.default_rng(seed)
    rows = []
    for rate in rates:
        rate = float(rate)
        if not 0 <= rate <= 1:
            raise AnalysisError(f"operating characteristics: rate {rate!r} is not in [0, 1]")
        p_stop, p_early, expected = _exact(rule, bound, rate)
        events = np.cumsum(rng.random((n_sim, rule.max_patients)) < rate, axis=1)
        crossed = events >= limit[None, :]
        stopped = crossed.any(axis=1)
        first = np.where(stopped, crossed.argmax(axis=1) + 1, rule.max_patients)
        rows.append({"true_rate": rate, "p_stop": p_stop, "p_stop_early": p_early,
                     "expected_n": expected, "sim_p_stop": float(stopped.mean()),
                     "sim_p_stop_early": float((first < rule.max_patients)[stopped].sum()
                                               / n_sim),
                     "sim_expected_n": float(first.mean()), "n_sim": n_sim})
    return pd.DataFrame(rows)


def monitor(outcomes, rule: StoppingRule, ids=None) -> pd.DataFrame:
    """The rule applied after each patient of an observed sequence.

    ``outcomes``: 1/True when the patient had the monitored toxicity, in the
    order the patients became evaluable. Columns: ``n``, ``patient_id``,
    ``event``, ``events`` (cumulative), ``posterior`` P(p > p0 | data),
    ``stop_at`` (the boundary at n), ``crossed`` (the boundary is reached),
    ``stop`` (the first crossing: where the trial would have stopped).
    """
    y = np.asarray(outcomes, dtype=float)
    if y.ndim != 1 or np.isnan(y).any() or not np.isin(y, (0, 1)).all():
        raise AnalysisError("monitor: outcomes must be a sequence of 0/1 (or booleans)")
    n = np.arange(1, len(y) + 1)
    x = np.cumsum(y)
    bound = boundaries(StoppingRule(rule.p0, rule.threshold, rule.prior,
                                    max(rule.max_patients, len(y)),
                                    min(rule.min_patients, max(rule.max_patients, len(y))))
                       )["stop_at"].to_numpy(float)[:len(y)]
    crossed = ~np.isnan(bound) & (x >= np.where(np.isnan(bound), np.inf, bound))
    stop = np.zeros(len(y), dtype=bool)
    if crossed.any():
        stop[int(np.argmax(crossed))] = True
    return pd.DataFrame({"n": n, "patient_id": list(ids) if ids is not None else n,
                         "event": y.astype(int), "events": x.astype(int),
                         "posterior": posterior_probability(x, n, rule), "stop_at": bound,
                         "crossed": crossed, "stop": stop})
