# Reference values for tests/test_analysis_survival.py.
# Run from tests/reference: Rscript survival.R   (R 4.x, survival 3.5-3)
library(survival)
options(digits = 12)
p <- function(...) cat(sprintf("%.10f", c(...)), "\n")

# 1. Waltons fruit flies (lifelines.datasets.load_waltons), KM by strain, log-log CI.
w <- read.csv("data/waltons.csv")
fit <- survfit(Surv(T, E) ~ group, data = w, conf.type = "log-log")
s <- summary(fit, times = c(10, 30, 50, 60, 70))
print(data.frame(strata = s$strata, time = s$time, n.risk = s$n.risk, surv = s$surv,
                 std.err = s$std.err, lower = s$lower, upper = s$upper))
print(summary(fit)$table[, c("records", "events", "median", "0.95LCL", "0.95UCL")])
# first rows of the miR-137 curve, every time point
s2 <- summary(fit, censored = TRUE)
print(head(data.frame(strata = s2$strata, time = s2$time, n.risk = s2$n.risk, n.event = s2$n.event,
                 surv = s2$surv, std.err = s2$std.err, lower = s2$lower, upper = s2$upper), 8))
print(survdiff(Surv(T, E) ~ group, data = w))
p(survdiff(Surv(T, E) ~ group, data = w)$chisq)

# 2. KMsurv bmt: disease-free survival by disease group (3 groups), log-log CI.
b <- read.csv("data/kmsurv_bmt.csv")
fit <- survfit(Surv(t2, d3) ~ group, data = b, conf.type = "log-log")
s <- summary(fit, times = c(100, 365, 730))
print(data.frame(strata = s$strata, time = s$time, n.risk = s$n.risk, surv = s$surv,
                 std.err = s$std.err, lower = s$lower, upper = s$upper))
print(summary(fit)$table[, c("records", "events", "median", "0.95LCL", "0.95UCL")])
sd <- survdiff(Surv(t2, d3) ~ group, data = b)
print(sd); p(sd$chisq, sd$obs, sd$exp, 1 - pchisq(sd$chisq, 2))

# 3. Median follow-up by reverse KM: KMsurv bmt overall survival.
rk <- survfit(Surv(t1, 1 - d1) ~ 1, data = b, conf.type = "log-log")
print(summary(rk)$table[c("median", "0.95LCL", "0.95UCL")])

# 4. Six patients with a plateau at exactly S = 0.5 (median is the midpoint, 4).
tiny <- data.frame(time = c(1, 2, 3, 4, 5, 6), event = c(1, 1, 1, 0, 1, 0))
fit <- survfit(Surv(time, event) ~ 1, data = tiny, conf.type = "log-log")
print(summary(fit)$table[c("median", "0.95LCL", "0.95UCL")])
s <- summary(fit, times = c(0, 2.5, 5))
print(data.frame(time = s$time, n.risk = s$n.risk, surv = s$surv, std.err = s$std.err,
                 lower = s$lower, upper = s$upper))
