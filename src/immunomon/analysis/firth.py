"""Firth-penalised Cox regression (Heinze and Schemper 2001), as R's ``coxphf``.

With 13 patients a Cox model is often separated: no patient with GVHD
relapses, the partial likelihood rises for ever and the hazard ratio has no
finite estimate. Firth's penalty, half the log determinant of the information
matrix (Jeffreys' prior), removes the first-order bias of the estimate and
keeps it finite. Inference uses the penalised likelihood itself: profile
penalised-likelihood intervals and penalised likelihood-ratio tests, which
Heinze and Schemper showed to hold their level where Wald's do not.

Everything here is the Breslow partial likelihood on counting-process rows
(start, stop], with optional case weights (Fine-Gray's censoring weights),
computed for all event times at once from an at-risk matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

__all__ = ["FirthFit", "firth_cox", "breslow_penalised"]


def _risk_layout(start, stop, event, weights):
    """At-risk matrix (event times x rows) and the weighted deaths per time."""
    times = np.unique(stop[event == 1])
    at_risk = (start[None, :] < times[:, None]) & (stop[None, :] >= times[:, None])
    dead = (stop[None, :] == times[:, None]) & (event[None, :] == 1)
    deaths = dead.astype(float) @ weights
    return at_risk.astype(float), deaths


def _moments(beta, X, layout, weights, third: bool):
    at_risk, deaths = layout
    n, p = X.shape
    r = weights * np.exp(X @ beta - (X @ beta).max())       # shift: ratios are unchanged
    A = at_risk * r[None, :]
    s0 = A.sum(axis=1)
    m = (A @ X) / s0[:, None]
    xx = (X[:, :, None] * X[:, None, :]).reshape(n, p * p)
    e2 = ((A @ xx) / s0[:, None]).reshape(-1, p, p)
    e3 = None
    if third:
        xxx = (xx[:, :, None] * X[:, None, :]).reshape(n, p ** 3)
        e3 = ((A @ xxx) / s0[:, None]).reshape(-1, p, p, p)
    shift = (X @ beta).max()
    return s0, m, e2, e3, np.log(s0) + shift


def breslow_penalised(beta, X, start, stop, event, weights=None, *, penalty: float = 0.5,
                      layout=None, score: bool = True):
    """Penalised log partial likelihood (Breslow), its gradient and the information.

    Returns (penalised loglik, penalised score, information I(beta), loglik).
    The penalty is ``penalty * log det I(beta)``; its gradient is
    ``penalty * tr(I^-1 dI/dbeta_l)`` with dI from the third risk-set moments.
    """
    beta = np.asarray(beta, float)
    w = np.ones(len(stop)) if weights is None else np.asarray(weights, float)
    layout = layout or _risk_layout(start, stop, event, w)
    _, deaths = layout
    s0, m, e2, e3, log_s0 = _moments(beta, X, layout, w, third=score)
    wd = w * (event == 1)
    loglik = float(wd @ (X @ beta) - deaths @ log_s0)
    V = e2 - m[:, :, None] * m[:, None, :]
    info = np.einsum("t,tjk->jk", deaths, V)
    sign, logdet = np.linalg.slogdet(info)
    pen = loglik + penalty * (logdet if sign > 0 else -np.inf)
    if not score:
        return pen, None, info, loglik
    u = X.T @ wd - deaths @ m
    # dI_jk/dbeta_l = E3 - E2_jk m_l - E2_jl m_k - E2_kl m_j + 2 m_j m_k m_l
    d_info = (e3 - np.einsum("tjk,tl->tjkl", e2, m) - np.einsum("tjl,tk->tjkl", e2, m)
              - np.einsum("tkl,tj->tjkl", e2, m)
              + 2 * np.einsum("tj,tk,tl->tjkl", m, m, m))
    d_info = np.einsum("t,tjkl->jkl", deaths, d_info)
    inv = np.linalg.inv(info)
    u_pen = u + penalty * np.einsum("kj,jkl->l", inv, d_info)
    return pen, u_pen, info, loglik


def _maximise(X, start, stop, event, w, layout, beta0, free, penalty, tol=1e-9,
              max_iter=100):
    """Newton-Raphson on the penalised likelihood over the ``free`` coordinates.

    The information (positive definite) stands in for the negative Hessian,
    as in coxphf; steps are capped and halved while the penalised likelihood
    falls (beyond rounding). The information leaves out the penalty's own
    curvature, so a step can overshoot the maximum and the next come back, for
    ever (a single-covariate fit of four patients ended 1.8e-4 short after 100):
    where the penalised score along the step changes sign, the step is cut to
    where it crosses zero (secant).
    """
    beta = np.array(beta0, float)
    pen, u, info, _ = breslow_penalised(beta, X, start, stop, event, w, penalty=penalty,
                                        layout=layout)

    def at(step):
        trial = beta.copy()
        trial[free] += step
        return (trial, *breslow_penalised(trial, X, start, stop, event, w, penalty=penalty,
                                          layout=layout)[:3])

    for _ in range(max_iter):
        step = np.linalg.solve(info[np.ix_(free, free)], u[free])
        big = np.abs(step).max()
        if big > 5:
            step *= 5 / big
        for _halving in range(20):
            trial, pen1, u1, info1 = at(step)
            if pen1 >= pen - 1e-10 * (1 + abs(pen)):
                break
            step /= 2
        slope0, slope1 = float(step @ u[free]), float(step @ u1[free])
        if slope0 > 0 > slope1:
            cut = slope0 / (slope0 - slope1)
            trial2, pen2, u2, info2 = at(step * cut)
            if pen2 >= pen1:
                step, trial, pen1, u1, info1 = step * cut, trial2, pen2, u2, info2
        beta, pen, u, info = trial, pen1, u1, info1
        if np.abs(step).max() < tol:
            return beta, pen, True
    return beta, pen, False


@dataclass(frozen=True)
class FirthFit:
    """A Firth-penalised Cox fit.

    ``coef`` log hazard ratios; ``se`` from the inverse information at the
    estimate (as coxphf); ``lower``/``upper`` profile penalised-likelihood
    limits of the log hazard ratio; ``p_penalised`` the penalised
    likelihood-ratio test of each coefficient = 0 (others re-estimated);
    ``lr``/``lr_p`` the penalised likelihood-ratio test of all coefficients.
    """
    coef: np.ndarray
    se: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    chi2: np.ndarray
    p_penalised: np.ndarray
    loglik_penalised: float
    loglik_penalised_null: float
    lr: float
    lr_p: float
    converged: bool
    conf_level: float


def _profile(j, value, X, start, stop, event, w, layout, beta_hat, penalty):
    """Maximum penalised loglik with coefficient j fixed at ``value``."""
    p = X.shape[1]
    beta0 = beta_hat.copy()
    beta0[j] = value
    free = np.array([k for k in range(p) if k != j], dtype=int)
    if free.size == 0:
        return breslow_penalised(beta0, X, start, stop, event, w, penalty=penalty,
                                 layout=layout, score=False)[0]
    return _maximise(X, start, stop, event, w, layout, beta0, free, penalty)[1]


def firth_cox(X, start, stop, event, weights=None, *, conf_level: float = 0.95,
              penalty: float = 0.5) -> FirthFit:
    """Fit the Firth-penalised Cox model (Breslow ties) and its profile inference.

    ``X``: rows x covariates; ``start``/``stop``: the (start, stop] intervals;
    ``event``: 0/1 at ``stop``; ``weights``: case weights or None.
    """
    X = np.asarray(X, float)
    if X.ndim == 1:
        X = X[:, None]
    start, stop = np.asarray(start, float), np.asarray(stop, float)
    event = np.asarray(event).astype(int)
    w = np.ones(len(stop)) if weights is None else np.asarray(weights, float)
    # Standardise as coxphf does: the estimates are equivariant, the sums better
    # conditioned, and the penalised log-likelihoods equal coxphf's printed ones.
    scale = X.std(axis=0, ddof=1) if len(X) > 1 else np.ones(X.shape[1])
    scale = np.where(scale > 0, scale, 1.0)
    X = (X - X.mean(axis=0)) / scale
    layout = _risk_layout(start, stop, event, w)
    p = X.shape[1]
    free = np.arange(p)
    beta, pen, converged = _maximise(X, start, stop, event, w, layout, np.zeros(p), free,
                                     penalty)
    _, _, info, _ = breslow_penalised(beta, X, start, stop, event, w, penalty=penalty,
                                      layout=layout, score=False)
    se = np.sqrt(np.diag(np.linalg.inv(info)))
    pen0 = breslow_penalised(np.zeros(p), X, start, stop, event, w, penalty=penalty,
                             layout=layout, score=False)[0]
    crit = stats.chi2.ppf(conf_level, 1)
    lower, upper, chi2 = np.empty(p), np.empty(p), np.empty(p)
    for j in range(p):
        def drop(value, j=j):
            return 2 * (pen - _profile(j, value, X, start, stop, event, w, layout, beta,
                                       penalty)) - crit
        lower[j] = _root(drop, beta[j], -se[j])
        upper[j] = _root(drop, beta[j], se[j])
        chi2[j] = max(drop(0.0) + crit, 0.0)
    lr = max(2 * (pen - pen0), 0.0)
    return FirthFit(coef=beta / scale, se=se / scale, lower=lower / scale,
                    upper=upper / scale, chi2=chi2,
                    p_penalised=stats.chi2.sf(chi2, 1), loglik_penalised=float(pen),
                    loglik_penalised_null=float(pen0), lr=float(lr),
                    lr_p=float(stats.chi2.sf(lr, p)), converged=converged,
                    conf_level=conf_level)


def _root(drop, centre: float, step: float) -> float:
    """Where ``drop`` crosses 0 walking from ``centre`` in the direction of ``step``.

    ``drop(centre) < 0``; widen the bracket geometrically until the sign
    changes, then Brent. An unbounded side (the penalised profile flattens
    below the cut) gives +-inf.
    """
    step = step if np.isfinite(step) and step != 0 else np.sign(step or 1.0)
    a, b = centre, centre + step
    for _ in range(60):
        if drop(b) > 0:
            return float(optimize.brentq(drop, a, b, xtol=1e-10, rtol=1e-12))
        a, b = b, b + 2 * (b - centre)
    return float(np.inf if step > 0 else -np.inf)
