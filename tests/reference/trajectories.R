# Reference values for tests/test_analysis_trajectories.py.
# Run from tests/reference: Rscript trajectories.R   (R 4.2, lme4 1.1-31)
# Writes data/sleepstudy.csv (lme4's sleepstudy, Belenky et al. 2003) and
# data/immune_counts.csv (13 patients, seeded, with zero counts).
library(lme4)
options(digits = 12)
p <- function(...) cat(sprintf("%.10f", c(...)), "\n")
show <- function(fit) {
  p(fixef(fit)); p(sqrt(diag(as.matrix(vcov(fit)))))
  vc <- as.data.frame(VarCorr(fit)); p(vc$vcov); p(REMLcrit(fit), logLik(fit))
}
data(sleepstudy)
write.csv(sleepstudy, "data/sleepstudy.csv", row.names = FALSE)
cat("--- sleepstudy: Reaction ~ Days + (1 | Subject), REML\n")
show(lmer(Reaction ~ Days + (1 | Subject), data = sleepstudy))

set.seed(7)
visits <- c(0, 30, 90, 180, 365)
d <- expand.grid(visit = visits, patient = sprintf("P%02d", 1:13))
gv <- setNames(rep(c(0, 1), length.out = 13), sprintf("P%02d", 1:13))
d$gvhd <- gv[d$patient]
u <- setNames(rnorm(13, 0, 0.4), sprintf("P%02d", 1:13))
mu <- 1.5 + 0.002 * d$visit + 0.3 * d$gvhd + u[d$patient]
d$count <- round(10^(mu + rnorm(nrow(d), 0, 0.3)))
d$count[c(3, 17, 40)] <- 0
d <- d[-c(9, 33, 60), ]  # missed visits
write.csv(d[, c("patient", "visit", "gvhd", "count")], "data/immune_counts.csv", row.names = FALSE)
floor_ <- min(d$count[d$count > 0]) / 2
d$y <- log10(pmax(d$count, floor_))
cat("floor", floor_, "\n")
cat("--- immune: y ~ factor(visit) * gvhd + (1 | patient), REML\n")
show(lmer(y ~ factor(visit) * gvhd + (1 | patient), data = d))
cat("--- immune: y ~ visit + gvhd + (1 | patient), ML\n")
show(lmer(y ~ visit + gvhd + (1 | patient), data = d, REML = FALSE))
cat("--- per-visit median and quartiles (type 7) of counts\n")
for (v in visits) p(v, quantile(d$count[d$visit == v], c(0.25, 0.5, 0.75)))
cat("--- exact Wilcoxon signed rank, visit 90 vs 0 and 365 vs 0 (log10 counts)\n")
w <- reshape(d[, c("patient", "visit", "y")], idvar = "patient", timevar = "visit",
             direction = "wide")
for (v in c(90, 365)) {
  ok <- !is.na(w[[paste0("y.", v)]]) & !is.na(w$y.0)
  t <- wilcox.test(w[[paste0("y.", v)]][ok], w$y.0[ok], paired = TRUE, exact = TRUE)
  p(v, sum(ok), t$statistic, t$p.value, median(w[[paste0("y.", v)]][ok] - w$y.0[ok]))
}
