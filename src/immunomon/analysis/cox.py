"""Cox partial likelihood pieces lifelines does not expose.

lifelines fits the models; this module adds what a careful small-sample
report needs on top: the score (log-rank type) test at beta = 0, which stays
valid when the maximum likelihood estimate does not exist, and an exact check
for a monotone likelihood (Bryson and Johnson 1981).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog


def _risk_sets(start: np.ndarray, stop: np.ndarray, event: np.ndarray):
    """Yield (event mask, risk mask) for each distinct event time.

    Counting-process convention: a row (start, stop] is at risk at time t when
    start < t <= stop.
    """
    for t in np.unique(stop[event == 1]):
        at_risk = (start < t) & (stop >= t)
        yield (stop == t) & (event == 1), at_risk


def efron_loglik(beta: np.ndarray, X: np.ndarray, start: np.ndarray, stop: np.ndarray,
                 event: np.ndarray, weights: np.ndarray | None = None):
    """Log partial likelihood, score vector and information matrix (Efron ties).

    With case weights the tied deaths share their mean weight in the Efron
    correction, as R's coxph does.
    """
    n, p = X.shape
    w = np.ones(n) if weights is None else np.asarray(weights, float)
    eta = X @ beta
    r = w * np.exp(eta)
    loglik, score, info = 0.0, np.zeros(p), np.zeros((p, p))
    for dead, risk in _risk_sets(start, stop, event):
        d = int(dead.sum())
        wd = w[dead]
        mean_w = wd.sum() / d
        s0 = r[risk].sum()
        s1 = r[risk] @ X[risk]
        s2 = (X[risk] * r[risk, None]).T @ X[risk]
        t0 = r[dead].sum()
        t1 = r[dead] @ X[dead]
        t2 = (X[dead] * r[dead, None]).T @ X[dead]
        loglik += wd @ eta[dead]
        score += wd @ X[dead]
        for k in range(d):
            f = k / d
            a0 = s0 - f * t0
            a1 = s1 - f * t1
            a2 = s2 - f * t2
            mean = a1 / a0
            loglik -= mean_w * np.log(a0)
            score -= mean_w * mean
            info += mean_w * (a2 / a0 - np.outer(mean, mean))
    return loglik, score, info


def score_test(X, start, stop, event, weights=None):
    """Score statistic U(0)' I(0)^-1 U(0) and the null log partial likelihood."""
    ll0, u, i = efron_loglik(np.zeros(X.shape[1]), X, start, stop, event, weights)
    stat = float(u @ np.linalg.lstsq(i, u, rcond=None)[0])
    return stat, ll0


def monotone_direction(X: np.ndarray, start: np.ndarray, stop: np.ndarray,
                       event: np.ndarray, tol: float = 1e-6) -> np.ndarray | None:
    """Direction along which the partial likelihood rises for ever, or None.

    The likelihood is monotone (no finite maximum) exactly when some direction
    d != 0 gives every event the largest d'x in its risk set, with at least one
    strict inequality. This is a linear programme: maximise sum d'(x_i - x_j)
    over the constraints d'(x_i - x_j) >= 0, |d_k| <= 1. A positive optimum is
    the direction of separation.
    """
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    Z = X / scale
    rows = []
    for dead, risk in _risk_sets(start, stop, event):
        diff = Z[dead][:, None, :] - Z[risk][None, :, :]
        rows.append(diff.reshape(-1, Z.shape[1]))
    if not rows:
        return None
    A = np.unique(np.round(np.concatenate(rows), 12), axis=0)
    A = A[np.abs(A).sum(axis=1) > 0]
    if A.shape[0] == 0:
        return None
    res = linprog(-A.sum(axis=0), A_ub=-A, b_ub=np.zeros(A.shape[0]),
                  bounds=[(-1, 1)] * A.shape[1], method="highs")
    if res.status != 0 or -res.fun <= tol:
        return None
    d = res.x / scale
    return d / np.abs(d).max()


def nearly_separated(X: np.ndarray, start: np.ndarray, stop: np.ndarray,
                     event: np.ndarray, max_events: int = 30) -> bool:
    """True when censoring any one event would make the likelihood monotone.

    Such a fit has a finite but unstable estimate, driven by a single event;
    the Firth estimate is the honest companion. Checked exactly (one linear
    programme per event) up to ``max_events`` events: the trial-sized data where a
    single event can decide; larger data sets are not checked.
    """
    rows = np.flatnonzero(event == 1)
    if rows.size > max_events or rows.size < 2:
        return False
    for i in rows:
        flipped = event.copy()
        flipped[i] = 0
        if monotone_direction(X, start, stop, flipped) is not None:
            return True
    return False
