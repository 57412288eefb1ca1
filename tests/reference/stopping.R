# Reference numbers for tests/test_analysis_stopping.py: the Bayesian stopping
# boundary P(p > p0 | x of n) > threshold under a Beta(a, b) prior, and its exact
# operating characteristics (probability of stopping, expected sample size) by
# enumerating every sequence of outcomes for small n, written independently of
# immunomon. Run: Rscript stopping.R
options(digits = 10)

boundary <- function(p0, thr, a, b, N) {
  sapply(1:N, function(n) {
    x <- 0:n
    post <- 1 - pbeta(p0, a + x, b + n - x)
    k <- which(post > thr)
    if (length(k) == 0) NA else x[min(k)]
  })
}

# exact operating characteristics by enumerating all 2^N outcome sequences
oc_enum <- function(bnd, N, rate) {
  seqs <- as.matrix(expand.grid(rep(list(0:1), N)))
  prob <- apply(seqs, 1, function(s) prod(ifelse(s == 1, rate, 1 - rate)))
  stopn <- apply(seqs, 1, function(s) {
    cx <- cumsum(s)
    hit <- which(!is.na(bnd) & cx >= bnd)
    if (length(hit) == 0) NA else min(hit)
  })
  p_stop <- sum(prob[!is.na(stopn)])
  p_early <- sum(prob[!is.na(stopn) & stopn < N])
  en <- sum(prob * ifelse(is.na(stopn), N, stopn))
  c(rate = rate, p_stop = p_stop, p_stop_early = p_early, expected_n = en)
}

cat("demo rule: p0 = 0.3, threshold 0.9, Beta(0.6, 1.4), N = 13\n")
b1 <- boundary(0.3, 0.9, 0.6, 1.4, 13)
print(b1)
for (n in 1:13) {
  k <- b1[n]
  if (!is.na(k)) cat(n, k, 1 - pbeta(0.3, 0.6 + k, 1.4 + n - k),
                     if (k > 0) 1 - pbeta(0.3, 0.6 + k - 1, 1.4 + n - k + 1) else NA, "\n")
}
for (r in c(0.1, 0.2, 0.3, 0.4, 0.5)) print(oc_enum(b1, 13, r))

cat("second rule: p0 = 0.2, threshold 0.8, Beta(1, 1), N = 10\n")
b2 <- boundary(0.2, 0.8, 1, 1, 10)
print(b2)
for (r in c(0.1, 0.3)) print(oc_enum(b2, 10, r))
