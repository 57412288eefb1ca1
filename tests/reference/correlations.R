# Reference values for tests/test_analysis_correlations.py.
# Run from tests/reference: Rscript correlations.R   (R 4.2, stats)
options(digits = 12)
p <- function(...) cat(sprintf("%.10f", c(...)), "\n")
# Spearman with the exact permutation p-value (n = 8, no ties: R enumerates all 8!).
x <- c(12.1, 3.4, 8.8, 15.0, 6.2, 9.9, 1.7, 4.4)
y <- c(80.5, 20.2, 70.1, 60.3, 40.9, 95.0, 10.4, 35.5)
t <- cor.test(x, y, method = "spearman", exact = TRUE); p(t$estimate, t$statistic, t$p.value)
y2 <- c(30.5, 20.2, 70.1, 10.3, 40.9, 95.0, 60.4, 35.5)
t <- cor.test(x, y2, method = "spearman", exact = TRUE); p(t$estimate, t$statistic, t$p.value)
# Benjamini-Hochberg.
pv <- c(0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216)
p(p.adjust(pv, "BH"))
p(p.adjust(pv[1:4], "BH"), p.adjust(pv[5:10], "BH"))
# Fisher exact, conditional MLE odds ratio and its exact CI.
for (m in list(matrix(c(3, 1, 1, 3), 2), matrix(c(1, 6, 5, 1), 2), matrix(c(0, 5, 6, 2), 2),
               matrix(c(10, 3, 2, 15), 2))) {
  f <- fisher.test(m); p(f$estimate, f$conf.int, f$p.value)
}
# Exact Wilcoxon rank-sum (Mann-Whitney), no ties.
a <- c(1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30)
b <- c(0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29)
b[c(6, 9)] <- c(1.27, 1.31); b[5] <- 1.07
w <- wilcox.test(a, b, exact = TRUE); p(w$statistic, w$p.value)
# Clopper-Pearson.
for (k in list(c(0, 13), c(3, 13), c(13, 13), c(7, 20))) {
  bt <- binom.test(k[1], k[2]); p(bt$conf.int)
}
# fisher.test finds the interval with uniroot at its default tolerance (~1e-4 on the
# log odds ratio scale, so ~1e-2 on large odds ratios). The same exact interval
# solved to full precision: P(X >= x | psi) = alpha/2 and P(X <= x | psi) = alpha/2
# under the noncentral hypergeometric distribution of the (1,1) cell.
exact_ci <- function(tab, level = 0.95) {
  x <- tab[1, 1]; m <- sum(tab[, 1]); n <- sum(tab[, 2]); k <- sum(tab[1, ])
  support <- max(0, k - n):min(k, m)
  logdc <- dhyper(support, m, n, k, log = TRUE)
  dn <- function(ncp) { d <- logdc + log(ncp) * support; d <- exp(d - max(d)); d / sum(d) }
  pn <- function(q, ncp, upper) { d <- dn(ncp); if (upper) sum(d[support >= q]) else sum(d[support <= q]) }
  a <- (1 - level) / 2
  lo <- if (x == min(support)) 0 else exp(uniroot(function(t) pn(x, exp(t), TRUE) - a,
                                            c(-30, 30), tol = 1e-14)$root)
  hi <- if (x == max(support)) Inf else exp(uniroot(function(t) pn(x, exp(t), FALSE) - a,
                                              c(-30, 30), tol = 1e-14)$root)
  c(lo, hi)
}
for (m in list(matrix(c(3, 1, 1, 3), 2), matrix(c(1, 6, 5, 1), 2), matrix(c(0, 5, 6, 2), 2),
               matrix(c(10, 3, 2, 15), 2))) p(exact_ci(m))
