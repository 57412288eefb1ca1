# Reference values for tests/test_analysis_timevarying.py.
# Run from tests/reference: Rscript timevarying.R   (R 4.2, survival 3.5-3)
# Writes data/bmt_visits.csv, data/bmt_drug.csv (seeded inputs) and
# data/bmt_tmerge.csv (tmerge's counting-process rows) and prints coxph results.
library(survival)
options(digits = 12)
p <- function(...) cat(sprintf("%.10f", c(...)), "\n")
ctl <- coxph.control(eps = 1e-12, toler.inf = 1e-12, iter.max = 100)
show <- function(fit) {
  s <- summary(fit)
  print(s$coefficients)
  print(s$conf.int)
  p(fit$loglik, s$logtest, s$sctest, fit$wald.test)
}

b <- read.csv("data/kmsurv_bmt.csv")
b$id <- seq_len(nrow(b))
# Seeded immune measurements: visits at days -7, 30, 90, 180, 365 while followed.
set.seed(20240607)
v <- expand.grid(id = b$id, time = c(-7, 30, 90, 180, 365))
v <- v[v$time < b$t2[v$id], ]
v$value <- round(rnorm(nrow(v), mean = 5 + 0.002 * v$time, sd = 1), 3)
v <- v[order(v$id, v$time), ]
write.csv(v, "data/bmt_visits.csv", row.names = FALSE)
# Seeded drug exposure: one or two on-treatment intervals for a third of patients.
d <- data.frame(id = sample(b$id, 45))
d$start <- round(runif(45, 20, 200))
d$stop <- d$start + round(runif(45, 30, 400))
d2 <- d[1:10, ]; d2$start <- d2$stop + 50; d2$stop <- d2$start + 100
d <- rbind(d, d2)
write.csv(d, "data/bmt_drug.csv", row.names = FALSE)

base <- b[, c("id", "group", "z1")]
tm <- tmerge(base, b, id = id, event = event(t2, d3))
tm <- tmerge(tm, b, id = id, agvhd = tdc(ifelse(da == 1, ta, NA)),
             platelet = tdc(ifelse(dp == 1, tp, NA)))
changes <- rbind(data.frame(id = d$id, time = d$start, value = 1),
                 data.frame(id = d$id, time = d$stop, value = 0))
tm <- tmerge(tm, changes, id = id, drug = tdc(time, value, 0))
tm <- tmerge(tm, v, id = id, logcount = tdc(time, value))
write.csv(tm[, c("id", "tstart", "tstop", "event", "group", "z1", "agvhd", "platelet",
                 "drug", "logcount")], "data/bmt_tmerge.csv", row.names = FALSE)
cat("rows", nrow(tm), "events", sum(tm$event), "\n")

cat("--- bmt: agvhd time-varying, DFS\n")
show(coxph(Surv(tstart, tstop, event) ~ agvhd, data = tm, control = ctl))
cat("--- bmt: agvhd + platelet + drug\n")
show(coxph(Surv(tstart, tstop, event) ~ agvhd + platelet + drug, data = tm, control = ctl))
cat("--- bmt: logcount (rows with a measurement)\n")
show(coxph(Surv(tstart, tstop, event) ~ logcount, data = tm, control = ctl))

cat("--- stanford heart: age + year + surgery + transplant\n")
h <- read.csv("data/stanford.csv")
show(coxph(Surv(start, stop, event) ~ age + year + surgery + transplant, data = h, control = ctl))

cat("--- separation: 13 patients, no patient relapses after GVHD onset\n")
sep <- data.frame(
  id = 1:13,
  time = c(40, 75, 120, 200, 365, 365, 90, 150, 365, 300, 365, 60, 250),
  relapse = c(1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0, 1, 0),
  gvhd_day = c(NA, NA, NA, NA, 30, 45, 100, NA, 60, NA, 25, NA, 200))
st <- tmerge(sep[, c("id", "gvhd_day")], sep, id = id, relapse = event(time, relapse))
st <- tmerge(st, sep, id = id, gvhd = tdc(gvhd_day))
fit <- coxph(Surv(tstart, tstop, relapse) ~ gvhd, data = st, control = ctl)
show(fit)

cat("--- landmark day 100, bmt DFS, acute GVHD by day 100\n")
lm <- b[b$t2 > 100, ]
lm$agvhd100 <- as.integer(lm$da == 1 & lm$ta <= 100)
lm$t <- lm$t2 - 100
show(coxph(Surv(t, d3) ~ agvhd100, data = lm, control = ctl))
sd <- survdiff(Surv(t, d3) ~ agvhd100, data = lm)
p(nrow(lm), sd$chisq, sd$obs, sd$exp)
