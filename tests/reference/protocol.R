# Reference numbers for tests/test_analysis_protocol.py: one-year Kaplan-Meier
# survival (log-log interval) and cumulative incidence (cmprsk::cuminc, log-log
# interval as cmprsk's documentation gives it) for the small hand-built cohort
# of that test. Run: Rscript protocol.R
suppressMessages({library(survival); library(cmprsk)})
options(digits = 10)
# times from the origin (first dose): patient P1..P8
os_t  <- c(100, 200, 300, 400, 500, 250, 600, 365)
os_e  <- c(1,   0,   1,   0,   0,   1,   0,   0)
f <- survfit(Surv(os_t, os_e) ~ 1, conf.type = "log-log")
s <- summary(f, times = 365)
cat("OS at 365:", s$surv, s$lower, s$upper, "\n")
# relapse (1) with non-relapse death (2)
rel_t <- c(100, 150, 300, 400, 500, 250, 90, 365)
rel_s <- c(2,   1,   2,   0,   1,   2,   1,  0)
ci <- cuminc(rel_t, rel_s)
est <- timepoints(ci, 365)
v <- est$var["1 1", 1]; p <- est$est["1 1", 1]
z <- qnorm(0.975)
# log-log interval on the cumulative incidence: exp(-exp(log(-log F) +- z sqrt(v)/(F log F)))
se <- sqrt(v) / (p * abs(log(p)))
loglog <- function(p, se) c(exp(-exp(log(-log(p)) + z * se)), exp(-exp(log(-log(p)) - z * se)))
cat("relapse CI at 365:", p, loglog(p, se), "\n")
# acute GVHD II-IV with relapse or death competing (recoded in the test by hand)
g_t <- c(100, 50, 200, 120, 300, 60, 90, 365)
g_s <- c(2,   1,  2,   2,   0,   1,  1,  0)
cg <- cuminc(g_t, g_s)
eg <- timepoints(cg, 365)
v <- eg$var["1 1", 1]; p <- eg$est["1 1", 1]
se <- sqrt(v) / (p * abs(log(p)))
cat("aGVHD CI at 365:", p, loglog(p, se), "\n")
