# Reference values for tests/test_analysis_competing.py.
# Run from tests/reference: Rscript competing.R   (R 4.2, cmprsk 2.2-11, survival 3.5-3)
library(cmprsk)
library(survival)
options(digits = 12)
p <- function(...) cat(sprintf("%.10f", c(...)), "\n")
ctl <- coxph.control(eps = 1e-11, iter.max = 100)

# 1. Scrucca et al. (2007) bmt data (scikit-survival's load_bmt): dis 0 ALL, 1 AML;
#    status 0 censored, 1 relapse, 2 transplant-related death; ftime in months.
b <- read.csv("data/scrucca_bmt.csv")
ci <- cuminc(b$ftime, b$status, b$dis)
print(ci$Tests)
tp <- timepoints(ci, c(5, 10, 20, 40))
print(tp$est); print(tp$var)
ci1 <- cuminc(b$ftime, b$status)
tp <- timepoints(ci1, c(1, 3, 8, 13, 30))
print(tp$est); print(tp$var)
cat("rho = 1:\n"); print(cuminc(b$ftime, b$status, b$dis, rho = 1)$Tests)

# 2. KMsurv bmt: relapse (cause 1) vs death in remission (cause 2), 3 disease groups,
#    stratified Gray test by FAB class z8.
k <- read.csv("data/kmsurv_bmt.csv")
k$status <- ifelse(k$d2 == 1, 1, ifelse(k$d1 == 1, 2, 0))
ci <- cuminc(k$t2, k$status, k$group)
print(ci$Tests)
tp <- timepoints(ci, c(100, 365, 1000)); print(tp$est); print(tp$var)
print(cuminc(k$t2, k$status, k$group, strata = k$z8)$Tests)

# 3. Fine-Gray on KMsurv bmt: relapse ~ AML low risk, AML high risk, patient age.
k$aml_low <- as.integer(k$group == 2); k$aml_high <- as.integer(k$group == 3)
X <- cbind(k$aml_low, k$aml_high, k$z1)
z <- crr(k$t2, k$status, X, failcode = 1, cencode = 0)
print(summary(z))
p(z$coef)
# Tight convergence, sandwich SEs, pseudo log-likelihoods; score test at 0 (maxiter = 0).
z <- crr(k$t2, k$status, X, failcode = 1, cencode = 0, gtol = 1e-10, maxiter = 50)
p(z$coef, sqrt(diag(z$var)), z$loglik, z$loglik.null)
z0 <- crr(k$t2, k$status, X, failcode = 1, cencode = 0, maxiter = 0)
p(z0$score %*% solve(z0$inf, z0$score))
k$fstat <- factor(k$status, 0:2, c("censor", "relapse", "death"))
fg <- finegray(Surv(t2, fstat) ~ ., data = k[, c("t2", "fstat", "aml_low", "aml_high", "z1")],
               etype = "relapse")
fit <- coxph(Surv(fgstart, fgstop, fgstatus) ~ aml_low + aml_high + z1, weights = fgwt,
             data = fg, control = ctl)
print(summary(fit)$coefficients)
p(fit$coef, sqrt(diag(fit$var)), sqrt(diag(fit$naive.var)), fit$loglik, fit$score)
cat("finegray rows", nrow(fg), "\n")

# Fine-Gray on Scrucca bmt: relapse ~ dis
z <- crr(b$ftime, b$status, b$dis, failcode = 1, gtol = 1e-10, maxiter = 50)
p(z$coef, sqrt(diag(z$var)), z$loglik, z$loglik.null)
z0 <- crr(b$ftime, b$status, b$dis, failcode = 1, maxiter = 0)
p(z0$score %*% solve(z0$inf, z0$score))
b$fstat <- factor(b$status, 0:2, c("censor", "relapse", "trm"))
fg <- finegray(Surv(ftime, fstat) ~ ., data = b[, c("ftime", "fstat", "dis")], etype = "relapse")
fit <- coxph(Surv(fgstart, fgstop, fgstatus) ~ dis, weights = fgwt, data = fg, control = ctl)
p(fit$coef, sqrt(diag(fit$var)), sqrt(diag(fit$naive.var)), fit$loglik, fit$score)

# 4. Cause-specific Cox, KMsurv bmt relapse hazard.
fit <- coxph(Surv(t2, status == 1) ~ aml_low + aml_high + z1, data = k, control = ctl)
p(fit$coef, sqrt(diag(fit$var)), sqrt(diag(fit$naive.var)), fit$loglik, fit$score)
