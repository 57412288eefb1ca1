# Reference values for tests/test_analysis_firth.py.
# Run from tests/reference: Rscript firth.R   (R 4.2, survival 3.5-3, coxphf 1.13.4)
#
# Two independent sources for each number:
# - coxphf (Heinze and Ploner), the Firth-penalised Cox model with profile
#   penalised-likelihood intervals and penalised likelihood-ratio tests, with
#   convergence tightened (epsilon = gconv = 1e-10) so the printed digits are
#   the estimator's, not the stopping rule's;
# - firth_ref() below: the same penalised partial likelihood written here from
#   survival::coxph (Breslow ties, iter.max = 0 gives the log-likelihood and the
#   information at any beta), maximised with optim and profiled with uniroot.
#   It also takes case weights, which coxphf does not (Fine-Gray rows).
library(survival)
have_coxphf <- requireNamespace("coxphf", quietly = TRUE)
options(digits = 12)
ctl0 <- coxph.control(iter.max = 0, toler.chol = 1e-300)
p <- function(...) cat(sprintf("%.10f", c(...)), "\n")

# Penalised log partial likelihood at beta: Breslow loglik + 0.5 log det I(beta).
pen_loglik <- function(beta, formula, data, weights = NULL) {
  data$.w <- if (is.null(weights)) 1 else weights
  fit <- suppressWarnings(coxph(formula, data = data, weights = .w, ties = "breslow",
                                robust = FALSE,
                                init = beta, control = ctl0))
  # Far from the optimum the information can be numerically singular: no maximum there.
  logdet <- tryCatch(-as.numeric(determinant(fit$var, logarithm = TRUE)$modulus),
                     error = function(e) -1e10)
  if (!is.finite(logdet)) logdet <- -1e10
  fit$loglik[2] + 0.5 * logdet
}

firth_ref <- function(formula, data, weights = NULL, level = 0.95) {
  k <- length(attr(terms(formula), "term.labels"))
  f <- function(b) -pen_loglik(b, formula, data, weights)
  if (k == 1) {
    opt <- optimize(f, c(-30, 30), tol = 1e-12)
    beta <- opt$minimum
    top <- -opt$objective
  } else {
    opt <- optim(rep(0, k), f, method = "BFGS",
                 control = list(reltol = 1e-15, maxit = 1000, ndeps = rep(1e-6, k)))
    opt <- optim(opt$par, f, method = "Nelder-Mead", control = list(reltol = 1e-15,
                                                                        maxit = 5000))
    beta <- opt$par
    top <- -opt$value
  }
  data$.w <- if (is.null(weights)) 1 else weights
  fit <- suppressWarnings(coxph(formula, data = data, weights = .w, ties = "breslow",
                                robust = FALSE,
                                init = beta, control = ctl0))
  se <- sqrt(diag(fit$var))
  # Profile over the other coefficients with coefficient j fixed at v.
  profile <- function(j, v) {
    if (k == 1) return(pen_loglik(v, formula, data, weights))
    g <- function(rest) { b <- beta; b[j] <- v; b[-j] <- rest; -pen_loglik(b, formula, data,
                                                                           weights) }
    -optim(beta[-j], g, method = "BFGS", control = list(reltol = 1e-15, maxit = 1000))$value
  }
  crit <- qchisq(level, 1)
  lims <- t(sapply(seq_len(k), function(j) {
    d <- function(v) 2 * (top - profile(j, v)) - crit
    # A limit is infinite when the profile never falls by the cut (separation).
    limit <- function(far) if (d(far) < 0) sign(far - beta[j]) * Inf else
      uniroot(d, sort(c(beta[j], far)), tol = 1e-11)$root
    c(limit(beta[j] - 20 * se[j]), limit(beta[j] + 20 * se[j]),
      2 * (top - profile(j, 0)))
  }))
  null <- pen_loglik(rep(0, k), formula, data, weights)
  list(coef = beta, se = se, lower = lims[, 1], upper = lims[, 2], chisq = lims[, 3],
       lr = 2 * (top - null))
}

show <- function(formula, data, weights = NULL) {
  r <- firth_ref(formula, data, weights)
  cat("firth_ref coef se lower upper chisq lr\n")
  p(r$coef); p(r$se); p(r$lower); p(r$upper); p(r$chisq); p(r$lr)
  if (have_coxphf && is.null(weights)) {
    f <- coxphf::coxphf(formula, data = data, epsilon = 1e-10, gconv = 1e-10, maxit = 500)
    cat("coxphf coef se lower upper chisq lr loglik(null, fit)\n")
    p(f$coefficients); p(sqrt(diag(f$var))); p(log(f$ci.lower)); p(log(f$ci.upper))
    p(qchisq(1 - f$prob, 1)); p(2 * diff(f$loglik)); p(f$loglik)
  }
}

cat("--- 1. breast cancer (Heinze and Schemper 2001; coxphf's data set 'breast')\n")
b <- read.csv("../data/firth/breast.csv")
show(Surv(TIME, CENS) ~ T + N + G + CD, b)
cat("--- 1b. breast: CD alone\n")
show(Surv(TIME, CENS) ~ CD, b)

cat("--- 2. coxphf's counting-process example with tied stop times (test2)\n")
test2 <- data.frame(start = c(1, 2, 5, 2, 1, 7, 3, 4, 8, 8),
                    stop = c(2, 3, 6, 7, 8, 9, 9, 9, 14, 17),
                    event = c(1, 1, 1, 1, 1, 1, 1, 0, 0, 0),
                    x = c(1, 0, 0, 1, 0, 1, 1, 1, 0, 0))
show(Surv(start, stop, event) ~ x, test2)

cat("--- 3. separated trial-sized case: 13 patients, no relapse after GVHD onset\n")
sep <- data.frame(
  id = 1:13,
  time = c(40, 75, 120, 200, 365, 365, 90, 150, 365, 300, 365, 60, 250),
  relapse = c(1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0, 1, 0),
  gvhd_day = c(NA, NA, NA, NA, 30, 45, 100, NA, 60, NA, 25, NA, 200))
st <- tmerge(sep[, c("id", "gvhd_day")], sep, id = id, relapse = event(time, relapse))
st <- tmerge(st, sep, id = id, gvhd = tdc(gvhd_day))
show(Surv(tstart, tstop, relapse) ~ gvhd, st)

cat("--- 4. two covariates, one separated: the same plus age\n")
st$age <- c(55, 61, 48, 66, 59, 52, 63, 47, 58, 60, 64, 51, 57)[st$id]
show(Surv(tstart, tstop, relapse) ~ gvhd + age, st)

cat("--- 5. weighted (Fine-Gray rows, seeded weights), separated\n")
set.seed(7)
st$w <- round(runif(nrow(st), 0.3, 1), 3)
write.csv(st, "data/firth_separated_rows.csv", row.names = FALSE)
show(Surv(tstart, tstop, relapse) ~ gvhd, st, weights = st$w)

cat("--- 6. tests/test_analysis_report.py's small cohort: relapse ~ GVHD (time-varying)\n")
d <- data.frame(id = 1:10, time = c(365, 365, 365, 365, 150, 200, 260, 300, 330, 120),
                rel = c(0, 0, 0, 0, 1, 1, 1, 1, 1, 0), gv = c(30, 80, 120, 200, rep(NA, 6)))
sc <- tmerge(d[, c("id", "gv")], d, id = id, rel = event(time, rel))
sc <- tmerge(sc, d, id = id, gvhd = tdc(gv))
show(Surv(tstart, tstop, rel) ~ gvhd, sc)
# hazard ratio 0.0522607226, 95% PL interval 0.0003862164 0.5273551889, p 0.0086814415
