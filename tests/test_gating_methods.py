"""Data-driven gate methods on constructed data with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from immunomon.errors import GatingError
from immunomon.gating import methods
from immunomon.gating.datadriven import (ClusterGate, QuadrantThresholdGate, SingletGate,
                                         ThresholdGate)
from immunomon.gating.dimensions import Dimension

RNG = np.random.default_rng(11)
D = Dimension("x")


def bimodal(n_neg=20_000, n_pos=5_000, mu=(0.2, 0.7), sd=(0.05, 0.06)):
    return np.concatenate([RNG.normal(mu[0], sd[0], n_neg), RNG.normal(mu[1], sd[1], n_pos)])


def true_valley(mu, sd, w):
    """Where the two weighted normal densities cross: the optimal cut, by root finding."""
    from scipy.optimize import brentq
    f = lambda x: w[0] * stats.norm.pdf(x, mu[0], sd[0]) - w[1] * stats.norm.pdf(x, mu[1], sd[1])
    return brentq(f, mu[0], mu[1])


def test_density_threshold_finds_the_valley():
    x = bimodal()
    t = methods.density_threshold(x)
    assert not t.fell_back and len(t.peaks) == 2
    expected = true_valley((0.2, 0.7), (0.05, 0.06), (0.8, 0.2))
    assert abs(t.value - expected) < 0.03
    assert abs(t.peaks[0] - 0.2) < 0.02 and abs(t.peaks[1] - 0.7) < 0.02


def test_density_threshold_one_peak_cuts_where_its_flank_ends_and_says_so():
    x = RNG.normal(0.3, 0.05, 10_000)
    t = methods.density_threshold(x)
    assert t.fell_back and "one peak" in t.note
    assert f"cut at {t.value:.4g}, where the peak" in t.note
    # the slope of a normal density eases to a fifth of its steepest about 2.45 SD out
    assert 0.3 + 2.1 * 0.05 < t.value < 0.3 + 2.9 * 0.05
    below = methods.density_threshold(x, side="below")
    assert 0.3 - 2.9 * 0.05 < below.value < 0.3 - 2.1 * 0.05


@pytest.mark.parametrize("share", [0.005, 0.01, 0.05])
def test_a_minor_bright_population_is_a_peak(share):
    # 0.5-5% bright events on a broad negative: too low for 5% of the highest peak,
    # clear for the density's own sampling error
    n = 100_000
    k = int(share * n)
    x = np.concatenate([RNG.normal(0.25, 0.07, n - k), RNG.normal(0.75, 0.04, k)])
    t = methods.density_threshold(x)
    assert not t.fell_back and len(t.peaks) == 2
    truth = np.r_[np.zeros(n - k, bool), np.ones(k, bool)]
    got = x >= t.value
    assert 2 * np.sum(got & truth) / (got.sum() + truth.sum()) > 0.97


def test_noise_does_not_make_peaks_in_a_small_parent():
    for seed in range(20):
        x = np.random.default_rng(seed).normal(0.4, 0.05, 150)
        c, d, bw = methods.smoothed_density(x)
        assert len(methods.find_peaks(c, d, n_events=x.size, bandwidth=bw)) == 1


def test_a_handful_of_outliers_is_not_a_peak():
    # four events far above 8,000 stand out by more than two standard errors of the
    # density, but hold too few events to be a population; thirty do
    rng = np.random.default_rng(3)
    main = rng.normal(0.47, 0.02, 8000)
    for n, is_peak in ((4, False), (30, True)):
        x = np.concatenate([main, rng.normal(0.78, 0.01, n)])
        c, d, bw = methods.smoothed_density(x)
        assert len(methods.find_peaks(c, d, n_events=x.size, bandwidth=bw)) == 1 + is_peak
        t = methods.density_threshold(x)
        assert t.fell_back != is_peak          # the lone peak's end, not a valley to them
        assert np.all(x[-n:] > t.value)
        # the lone peak's end; or, for a population, the middle of the empty gap
        assert t.value < 0.6 if not is_peak else main.max() < t.value < x[-n:].min()


def test_a_lone_positive_peak_keeps_the_population_that_holds_most_of_its_parent():
    # 85% positive: the only peak is the positive one; negatives trail below it
    n = 20_000
    pos = RNG.normal(0.65, 0.05, int(0.85 * n))
    neg = 0.58 - 0.5 * RNG.beta(1, 3, n - pos.size)   # a smear merging into the peak
    x = np.concatenate([pos, neg])
    t = methods.density_threshold(x, side="above")
    assert t.fell_back and "below it" in t.note       # not mode + n SD above it: empty
    truth = np.r_[np.ones(pos.size, bool), np.zeros(neg.size, bool)]
    got = x >= t.value
    assert 2 * np.sum(got & truth) / (got.sum() + truth.sum()) > 0.93
    # the same peak with no tail and a hint from the template
    lone = RNG.normal(0.65, 0.05, 20_000)
    hinted = methods.density_threshold(lone, expect="mostly-positive")
    assert hinted.value < 0.65 - 2 * 0.05 and "expect" in hinted.note
    with pytest.raises(GatingError):
        methods.density_threshold(lone, expect="positive")


def test_a_gate_left_with_the_tail_of_a_lone_peak_says_how_to_keep_the_peak():
    # a viability dye's live cells: one peak with a longer dim tail below it; a 'Live'
    # gate (below) gets the tail, and its notes name the hint that would keep the peak
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(0.55, 0.03, 20_000), 0.5 - rng.exponential(0.04, 800)])
    live = ThresholdGate("Live", [D], side="below")
    found = live.resolve([x])
    assert found.bounds[0][1] < 0.5 and "'expect: mostly-negative' keeps it" in found.notes[-1]
    hinted = ThresholdGate("Live", [D], side="below", args={"expect": "mostly-negative"})
    kept = hinted.resolve([x])
    assert np.mean(x <= kept.bounds[0][1]) > 0.95
    assert not any("keeps it" in n for n in kept.notes)
    # a gate whose population is the peak (non-T cells below a tail of T cells) gets none
    y = np.concatenate([rng.normal(0.3, 0.03, 20_000), 0.35 + rng.exponential(0.04, 800)])
    non_t = ThresholdGate("CD3-", [D], side="below").resolve([y])
    assert np.mean(y[:20_000] <= non_t.bounds[0][1]) > 0.95
    assert not any("keeps it" in n for n in non_t.notes)


def test_a_lone_peak_the_tails_made_the_population_on_a_linear_axis_is_a_doubt():
    """An LST export's NK cells on Infinicyt's linear display: one CD56 peak with
    CD56-low cells trailing below it, so the tails made the peak the positives, and
    'CD56bright NK' took 93% of the NK cells with the sample 'ok'. With no place on the
    scale to check the tails, the gate now says so, naming both hints; `expect`, or a
    population that is the tail beyond the peak, raises none."""
    rng = np.random.default_rng(3)
    nk = np.concatenate([rng.normal(4600, 350, 3_000), 3900 - rng.exponential(700, 300)])
    found = ThresholdGate("CD56bright NK", [D], side="above").resolve([nk], [None])
    assert np.mean(nk > found.bounds[0][0]) > 0.8
    assert len(found.doubts) == 1 and "cannot say whether" in found.doubts[0]
    assert "'expect: mostly-negative' makes it so" in found.doubts[0]
    hinted = ThresholdGate("CD56bright NK", [D], side="above",
                           args={"expect": "mostly-negative"}).resolve([nk], [None])
    assert hinted.doubts == () and np.mean(nk > hinted.bounds[0][0]) < 0.05
    # on a scale with a place (logicle) the place checks the tails instead: no doubt here
    placed = ThresholdGate("CD56bright NK", [D], side="above").resolve(
        [nk / 8192], [(0.1, 1.0)])
    assert not any("cannot say whether" in d for d in placed.doubts)


def test_a_lone_peak_above_zero_that_its_place_alone_made_negative_is_a_doubt():
    """Stimulation dims CD4: all the T cells make one broad, symmetric peak 21% up a
    logicle scale (W 0.9: zero at 0.2), no tail on either side, so its place makes it the
    negatives and CD4+ keeps a fraction of a percent: a warning naming the hint. A peak
    at zero signal (a marker no cell carries), or `expect`, raises none."""
    rng = np.random.default_rng(8)
    scale = (0.2, 1.0)
    dim = rng.normal(0.37, 0.06, 11_000)
    found = ThresholdGate("CD4+", [D], side="above").resolve([dim], [scale])
    assert np.mean(dim > found.bounds[0][0]) < 0.01
    assert len(found.doubts) == 1 and "% up the scale, above zero signal" in found.doubts[0]
    assert "'expect: mostly-positive' keeps it" in found.doubts[0]
    unstained = rng.normal(0.21, 0.04, 11_000)
    assert ThresholdGate("CD69+", [D], side="above").resolve([unstained], [scale]).doubts == ()
    hinted = ThresholdGate("CD4+", [D], side="above", args={"expect": "mostly-positive"})
    assert hinted.resolve([dim], [scale]).doubts == ()
    # mid-scale (a spectral file's MHCII+ DCs, 45% up a scale whose top the cells never
    # reach): a peak taken for the negatives as lying a little below the middle, with as
    # many events spread above as below it, leaves a doubt on a population of up to 10%
    mid = 0.5 + 0.03 * rng.standard_t(3, 10_000)        # one peak, heavy tails both ways
    found = ThresholdGate("MHCII+", [D], side="above").resolve([mid], [(0.1, 1.0)])
    assert 0.01 < np.mean(mid > found.bounds[0][0]) < 0.1
    assert len(found.doubts) == 1 and "up the scale" in found.doubts[0]
    # the same peak on a quadrant's x axis (CD4 x CD8, the CD8 T cells a clear peak)
    cd8 = np.concatenate([rng.normal(0.25, 0.04, 9_500), rng.normal(0.6, 0.04, 1_500)])
    quad = QuadrantThresholdGate.build("T", [D, Dimension("CD8")],
                                       {"CD4": ("above", "below"), "CD8": ("below", "above")})
    doubts = quad.resolve([dim, cd8], [scale, scale]).doubts
    assert len(doubts) == 1 and doubts[0].startswith("x: the one peak sits")


def test_tail_with_fdr_keeps_rare_positives_apart_from_the_negative_tail():
    # cytokine+ cells at 0.15% of 60,000 CD4 T cells, 4-6 SD above a normal negative:
    # mode + 3 SD leaves about as many negatives beyond it as there are positives
    rng = np.random.default_rng(2)
    neg = rng.normal(0.25, 0.05, 60_000)
    pos = rng.normal(0.50, 0.03, 90)
    x = np.concatenate([neg, pos])
    truth = np.r_[np.zeros(neg.size, bool), np.ones(pos.size, bool)]
    f1 = lambda t: 2 * np.sum((x >= t.value) & truth) / (np.sum(x >= t.value) + truth.sum())
    plain = methods.tail_threshold(x)
    found = methods.tail_threshold(x, fdr=0.05)
    assert f1(plain) < 0.75 < 0.93 < f1(found)
    assert "at most 0.05" in found.note
    # nothing stands out of the tail: no cut, not one round a few outliers, and not the
    # n_sd cut either (that counts the peak's own tail, 0.13% here, as positives)
    alone = methods.tail_threshold(neg, fdr=0.05)
    assert alone.value == np.inf and "none stand out of the peak" in alone.note
    assert np.count_nonzero(neg >= methods.tail_threshold(neg).value) > 40
    assert methods.tail_threshold(-neg, side="below", fdr=0.05).value == -np.inf
    # a negative whose upper tail is heavier than its lower half says: fdr never moves the
    # cut nearer the peak than n_sd SDs (it would take the tail for a population)
    skewed = np.concatenate([neg, 0.25 + rng.exponential(0.1, 40_000)])
    assert methods.tail_threshold(skewed, fdr=0.05).value >= \
        methods.tail_threshold(skewed).value - 1e-12


def test_tail_with_fdr_measures_the_negatives_far_flank():
    # compensated negatives spread below zero (a narrow logicle W): the lower half of the
    # peak is twice as wide as the upper; a cut 3 lower-half SDs out loses the positives
    rng = np.random.default_rng(5)
    z = np.abs(rng.normal(0, 1, 60_000))            # a split normal, continuous at its mode
    lower = rng.random(z.size) < 0.09 / (0.09 + 0.04)
    neg = 0.25 + np.where(lower, -0.09, 0.04) * z
    pos = rng.normal(0.48, 0.03, 90)
    x = np.concatenate([neg, pos])
    truth = np.r_[np.zeros(neg.size, bool), np.ones(pos.size, bool)]
    f1 = lambda t: 2 * np.sum((x >= t.value) & truth) / (np.sum(x >= t.value) + truth.sum())
    found = methods.tail_threshold(x, fdr=0.05)
    assert f1(methods.tail_threshold(x)) < 0.5 and f1(found) > 0.95
    assert "far flank" in found.note
    centres, density, bandwidth = methods.smoothed_density(neg)
    top = int(np.argmax(density))
    assert methods.tail_spread(centres, density, top, 1, bandwidth) == pytest.approx(0.04, rel=0.15)
    assert methods.tail_spread(centres, density, top, -1, bandwidth) == pytest.approx(0.09, rel=0.15)
    # a population on the far flank: the width is read where the density turns up
    near = np.concatenate([rng.normal(0.25, 0.04, 60_000), rng.normal(0.45, 0.03, 3_000)])
    centres, density, bandwidth = methods.smoothed_density(near)
    top = int(np.argmax(density))
    assert methods.tail_spread(centres, density, top, 1, bandwidth) == pytest.approx(0.04, rel=0.25)


def test_tail_spread_ignores_a_distant_bump_of_artefacts():
    main = RNG.normal(0.45, 0.04, 20_000)
    bump = RNG.uniform(-0.25, 0.15, 4_000)          # compensation artefacts far below
    t = methods.tail_threshold(np.concatenate([main, bump]), n_sd=3)
    assert t.value == pytest.approx(0.45 + 3 * 0.04, abs=0.02)


def test_density_threshold_bounds_clip_the_fallback():
    x = RNG.normal(0.3, 0.05, 10_000)
    t = methods.density_threshold(x, bounds=(0.2, 0.35))        # the flank ends beyond 0.35
    assert t.fell_back and t.value == pytest.approx(0.35) and "clipped" in t.note
    # a lone peak below the window: nothing the bounds describe is in the file
    t = methods.density_threshold(x, bounds=(0.6, 0.9))
    assert t.fell_back and t.value == pytest.approx(0.9) and "absent" in t.note
    t = methods.density_threshold(x, bounds=(-0.4, 0.0), side="below")
    assert t.value == pytest.approx(-0.4) and "absent" in t.note


def test_bounds_that_keep_a_valley_cut_off_its_bottom_say_so():
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(0.2, 0.05, 5000), rng.normal(0.8, 0.05, 5000)])
    free = methods.density_threshold(x)
    assert 0.45 < free.value < 0.55 and free.note == ""
    held = methods.density_threshold(x, bounds=(0.6, None))
    assert held.value == pytest.approx(0.6, abs=0.01) and not held.fell_back
    assert "lies outside the bounds" in held.note and f"{free.value:.4g}" in held.note
    # bounds around the valley's bottom move nothing and say nothing
    assert methods.density_threshold(x, bounds=(0.3, 0.7)).note == ""


def test_valley_choice_with_dim_and_bright_positives():
    # negatives, dim positives (the biggest group) and a bright subset
    x = np.concatenate([RNG.normal(0.15, 0.04, 6000), RNG.normal(0.58, 0.04, 9000),
                        RNG.normal(0.75, 0.03, 3000)])
    first = methods.density_threshold(x, valley="first")
    last = methods.density_threshold(x, valley="last")
    assert 0.25 < first.value < 0.48      # negatives | all positives
    assert 0.62 < last.value < 0.72       # dim | bright
    with pytest.raises(GatingError):
        methods.density_threshold(x, valley="middle")


def test_tail_threshold_both_sides_and_quantile():
    neg = RNG.normal(0.3, 0.04, 50_000)
    x = np.concatenate([neg, RNG.normal(0.6, 0.03, 500)])
    up = methods.tail_threshold(x, n_sd=3)
    assert up.value == pytest.approx(0.3 + 3 * 0.04, abs=0.015)
    low = methods.tail_threshold(np.concatenate([neg, RNG.normal(0.1, 0.02, 500)]),
                                 n_sd=2, side="below")
    assert low.value == pytest.approx(0.3 - 2 * 0.04, abs=0.015)
    q = methods.tail_threshold(neg, quantile=0.9)
    assert q.value == pytest.approx(np.quantile(neg, 0.9))


def test_singlet_band_separates_doublets():
    height = RNG.uniform(20_000, 120_000, 20_000)
    area_single = height * RNG.normal(1.15, 0.02, height.size)
    d_height = RNG.uniform(30_000, 110_000, 1_000)
    area_double = d_height * RNG.normal(1.9, 0.1, d_height.size)
    area = np.concatenate([area_single, area_double])
    h = np.concatenate([height, d_height])
    truth = np.r_[np.ones(height.size, bool), np.zeros(d_height.size, bool)]
    found = SingletGate("S", [Dimension("FSC-A"), Dimension("FSC-H")]).resolve([area, h])
    got = found.contains([area, h])
    assert np.mean(got[truth]) > 0.99 and np.mean(got[~truth]) < 0.01
    assert found.method == "singlet band"


def test_singlet_band_follows_single_cells_where_doublets_outnumber_them():
    # a spleen: small cells, their doublets (twice the area, 1.7 times the ratio) and
    # fewer large single cells at the doublets' area; a band around each area bin's
    # median ratio followed the doublets there and left the large cells out
    small = RNG.normal(800_000, 150_000, 40_000)
    doublet = RNG.normal(1_700_000, 250_000, 4_000)
    large = RNG.normal(1_800_000, 250_000, 1_500)
    area = np.concatenate([small, doublet, large])
    ratio = np.concatenate([RNG.normal(1.10, 0.03, small.size),
                            RNG.normal(1.85, 0.08, doublet.size),
                            RNG.normal(1.18, 0.03, large.size)])
    height = area / ratio
    band = methods.singlet_band(area, height)
    q = ratio / band.trend_at(area)
    kept = (q >= band.lo) & (q <= band.hi)
    is_small = np.arange(area.size) < small.size
    is_large = np.arange(area.size) >= small.size + doublet.size
    assert kept[is_small].mean() > 0.98 and kept[is_large].mean() > 0.95
    assert kept[~is_small & ~is_large].mean() < 0.02


def test_singlet_band_follows_the_smallest_cells_whose_ratio_keeps_falling():
    # area/height climbing steeply with size over the smallest cells (a file exported
    # from a lymphocyte gate, cut off at its smallest lymphocytes): a trend held level
    # below the first area bin's middle put the smallest singlets under the band
    area = RNG.uniform(55_000, 145_000, 20_000)
    ratio = (0.84 + 1.1e-5 * (area - 55_000)) * RNG.normal(1.0, 0.012, area.size)
    doublet = RNG.uniform(60_000, 140_000, 400)
    area = np.concatenate([area, doublet * 1.8])
    ratio = np.concatenate([ratio, 1.8 * (0.84 + 1.1e-5 * (doublet - 55_000))])
    band = methods.singlet_band(area, area / ratio)
    q = ratio / band.trend_at(area)
    kept = (q >= band.lo) & (q <= band.hi)
    single = np.arange(area.size) < 20_000
    smallest = single & (area < np.quantile(area[single], 0.04))
    assert kept[smallest].mean() > 0.98 and kept[single].mean() > 0.99
    assert kept[~single].mean() < 0.01
    # the trend goes no further down than one ridge step below the first bin's value
    assert band.trend[0] >= band.trend[1] / methods.RIDGE_STEP - 1e-12


def test_singlet_band_keeps_large_single_cells_before_the_doublets_valley():
    # a culture: small cells with a sharp singlet peak, larger activated cells whose
    # pulses are about 8% longer (a shoulder, not a peak of their own) and a doublet
    # peak; the upper cut stopped at 4 SDs of the sharp peak, short of the valley before
    # the doublets, and left a quarter of the large cells out
    small = RNG.normal(50_000, 12_000, 20_000)
    large = RNG.normal(65_000, 12_000, 3_000)
    doublet = 2 * RNG.normal(50_000, 12_000, 1_600)
    area = np.concatenate([small, large, doublet])
    ratio = np.concatenate([RNG.normal(1.10, 0.022, small.size),
                            RNG.normal(1.10 * 1.08, 0.03, large.size),
                            RNG.normal(1.10 * 1.6, 0.1, doublet.size)])
    band = methods.singlet_band(area, area / ratio)
    q = ratio / band.trend_at(area)
    kept = (q >= band.lo) & (q <= band.hi)
    kind = np.repeat([0, 1, 2], [small.size, large.size, doublet.size])
    assert kept[kind == 0].mean() > 0.99 and kept[kind == 1].mean() > 0.95
    assert kept[kind == 2].mean() < 0.02


def test_cluster_gate_picks_the_requested_component():
    blobs = [RNG.multivariate_normal(m, np.diag([0.0016, 0.0016]), n)
             for m, n in (((0.2, 0.2), 3000), ((0.7, 0.3), 4000), ((0.5, 0.8), 2000))]
    X = np.vstack(blobs)
    truth = np.r_[np.zeros(3000, bool), np.zeros(4000, bool), np.ones(2000, bool)]
    gate = ClusterGate("top", [Dimension("a"), Dimension("b")], pick=[("max", 1)],
                       n_components=3, quantile=0.999)
    found = gate.resolve([X[:, 0], X[:, 1]])
    got = found.contains([X[:, 0], X[:, 1]])
    f1 = 2 * np.sum(got & truth) / (got.sum() + truth.sum())
    assert f1 > 0.99
    np.testing.assert_allclose(found.mean, (0.5, 0.8), atol=0.01)
    few = gate.resolve([X[:5, 0], X[:5, 1]])            # too few for three components
    assert few.fell_back and not few.contains([X[:, 0], X[:, 1]]).any()
    assert found.distance_square == pytest.approx(stats.chi2.ppf(0.999, 2))


def test_threshold_gate_resolves_to_a_range_and_records_fallback():
    gate = ThresholdGate("pos", [D], side="above")
    found = gate.resolve([bimodal()])
    assert found.bounds[0][1] is None and 0.3 < found.bounds[0][0] < 0.6
    assert not found.fell_back
    one = gate.resolve([RNG.normal(0.3, 0.05, 5000)])
    assert one.fell_back and one.notes
    below = ThresholdGate("neg", [D], side="below").resolve([bimodal()])
    assert below.bounds[0][0] is None
    few = gate.resolve([np.array([0.1, 0.2])])
    assert few.fell_back and "left empty" in few.notes[0]
    assert not few.contains([np.array([0.1, 0.2, 5.0])]).any()


def test_quadrant_divider_found_where_a_small_population_is_a_peak():
    # B cells (CD11c-, CD123-), mDC (CD11c+, CD123-) and a few pDC (CD11c-, CD123+):
    # pDC are a peak in CD123 only among CD11c- events
    b = RNG.normal((0.25, 0.30), (0.04, 0.08), (1600, 2))
    mdc = RNG.normal((0.60, 0.42), (0.05, 0.04), (1000, 2))
    pdc = RNG.normal((0.25, 0.62), (0.03, 0.03), (60, 2))
    X = np.vstack([b, mdc, pdc])
    gate = QuadrantThresholdGate.build("Q", [Dimension("CD11c"), Dimension("CD123")],
                                       {"mDC": ("above", "below"), "pDC": ("below", "above")})
    found = gate.resolve([X[:, 0], X[:, 1]])
    masks = found.quadrant_masks([X[:, 0], X[:, 1]])
    truth = np.r_[np.zeros(2600, bool), np.ones(60, bool)]
    got = masks["pDC"]
    assert 2 * np.sum(got & truth) / (got.sum() + truth.sum()) > 0.9
    assert 0.48 < found.dividers[1].values[0] < 0.58


def test_quadrant_divider_found_on_one_side_does_not_split_the_other_side():
    # mDC (CD11c+) spread over CD123 0.2-0.5, pDC (CD11c-, CD123 bright) and a few
    # CD11c- CD123- events: among CD11c- events the deepest CD123 valley lies between
    # the few negatives and pDC, inside the mDC; the cut must stay between mDC and pDC
    mdc = np.column_stack([RNG.normal(0.65, 0.04, 60), RNG.normal(0.36, 0.07, 60)])
    pdc = RNG.normal((0.22, 0.68), (0.05, 0.03), (40, 2))
    neg = RNG.normal((0.22, 0.15), (0.05, 0.04), (10, 2))
    X = np.vstack([mdc, pdc, neg])
    gate = QuadrantThresholdGate.build("Q", [Dimension("CD11c"), Dimension("CD123")],
                                       {"mDC": ("above", "below"), "pDC": ("below", "above")})
    found = gate.resolve([X[:, 0], X[:, 1]])
    masks = found.quadrant_masks([X[:, 0], X[:, 1]])
    assert masks["mDC"][:60].mean() > 0.95 and masks["pDC"][60:100].mean() > 0.95
    assert found.found_in[1] == "all"


def test_a_lone_peak_divider_ends_the_peak_on_both_sides_of_the_other_divider():
    # CD8 T cells: naive (CD45RA+ CCR7+) a tight CD45RA peak, effector (CD45RA+ CCR7-)
    # spread further below it on the same mode: among all events the flank that ends is the
    # naive cells', and a cut there would split the effector cells
    rng = np.random.default_rng(1)
    naive = np.column_stack([rng.normal(0.80, 0.025, 6000), rng.normal(0.75, 0.04, 6000)])
    effector = np.column_stack([rng.normal(0.80, 0.08, 4000), rng.normal(0.30, 0.06, 4000)])
    X = np.vstack([naive, effector])
    gate = QuadrantThresholdGate.build("Q", [Dimension("CD45RA"), Dimension("CCR7")], {
        "Naive": ("above", "above"), "Effector": ("above", "below"),
        "CM": ("below", "above"), "EM": ("below", "below")},
        x_args={"expect": "mostly-positive"})
    found = gate.resolve([X[:, 0], X[:, 1]])
    assert found.fell_back and found.found_in[0] == "below"
    got = found.quadrant_masks([X[:, 0], X[:, 1]])
    assert got["Effector"][6000:].mean() > 0.98        # 0.76 with the naive peak's end
    assert got["Naive"][:6000].mean() > 0.99


def test_a_divider_is_not_found_on_a_side_with_no_quadrant():
    # activated T cells, CD38+ HLA-DR+, the only quadrant asked for: among CD38- events a
    # handful of HLA-DR-bright events make the deepest HLA-DR valley, which would serve no
    # quadrant and cut above every activated cell
    rng = np.random.default_rng(4)
    rest = np.column_stack([rng.normal(0.30, 0.04, 6000), rng.normal(0.30, 0.04, 6000)])
    resting = np.column_stack([rng.normal(0.70, 0.04, 3000), rng.normal(0.30, 0.04, 3000)])
    active = np.column_stack([rng.normal(0.70, 0.04, 600), rng.normal(0.55, 0.04, 600)])
    bright = np.column_stack([rng.normal(0.30, 0.02, 40), rng.normal(0.95, 0.01, 40)])
    X = np.vstack([rest, resting, active, bright])
    gate = QuadrantThresholdGate.build("Q", [Dimension("CD38"), Dimension("HLA-DR")],
                                       {"Activated": ("above", "above")})
    found = gate.resolve([X[:, 0], X[:, 1]])
    got = found.quadrant_masks([X[:, 0], X[:, 1]])["Activated"]
    truth = np.r_[np.zeros(9000, bool), np.ones(600, bool), np.zeros(40, bool)]
    assert 2 * np.sum(got & truth) / (got.sum() + truth.sum()) > 0.95
    assert found.found_in[1] != "below"


def _memory_subsets(seed: int = 2):
    """CD45RA x CCR7 of T cells: among CD45RA- cells effector memory (CCR7-) and a
    smaller central memory population (CCR7 mid); among CD45RA+ cells effector (CCR7-)
    and naive (CCR7 bright). Over all events the deepest CCR7 valley lies between
    effector and naive cells, above the central memory ones."""
    rng = np.random.default_rng(seed)
    parts = {"EM": ((0.30, 0.30), 3000), "CM": ((0.30, 0.52), 1500),
             "Effector": ((0.80, 0.30), 6000), "Naive": ((0.80, 0.75), 6000)}
    X = np.vstack([rng.normal(mu, (0.045, 0.05), (n, 2)) for mu, n in parts.values()])
    labels = np.repeat(list(parts), [n for _, n in parts.values()])
    return X, labels


MEMORY = {"Naive": ("above", "above"), "Effector": ("above", "below"),
          "CM": ("below", "above"), "EM": ("below", "below")}


def test_a_side_whose_populations_one_y_cut_leaves_together_gets_its_own_cut():
    X, labels = _memory_subsets()
    scores = {}
    for by_side in (False, True):
        gate = QuadrantThresholdGate.build("M", [Dimension("CD45RA"), Dimension("CCR7")],
                                           MEMORY, y_by_side=by_side)
        found = gate.resolve([X[:, 0], X[:, 1]])
        columns = [X[:, 0]] + [X[:, 1]] * (len(found.dividers) - 1)
        masks = found.quadrant_masks(columns)
        scores[by_side] = {q: 2 * np.sum(masks[q] & (labels == q))
                           / (masks[q].sum() + np.sum(labels == q)) for q in MEMORY}
        if by_side:
            ids = [d.id for d in found.dividers]
            assert ids == ["M.x", "M.y.below", "M.y.above"]
            below, above = found.dividers[1].values[0], found.dividers[2].values[0]
            assert 0.38 < below < 0.46 and 0.55 < above < 0.68     # each side's valley
            assert found.found_in == ("all", "below", "all")
            assert found.found_at[1:] == (found.dividers[0].values[0],) * 2
            assert any("their own valley" in n for n in found.notes)
    # one line across puts the central memory cells with the effector memory ones
    assert scores[False]["CM"] < 0.2
    assert min(scores[True].values()) > 0.97


def _varied_memory_subsets(seed: int):
    """Memory subsets with the central memory share (20-50% of CD45RA- cells), their CCR7
    level and the naive cells' CCR7 level and counts drawn per sample."""
    rng = np.random.default_rng(seed)
    n_neg = int(rng.integers(3000, 6000))
    n_cm = int(rng.uniform(0.2, 0.5) * n_neg)
    parts = {"EM": ((0.30, 0.30), n_neg - n_cm, (0.05, 0.05)),
             "CM": ((0.30, rng.uniform(0.48, 0.56)), n_cm, (0.05, 0.05)),
             "Effector": ((0.80, 0.30), int(rng.integers(3000, 8000)), (0.04, 0.06)),
             "Naive": ((0.80, rng.uniform(0.72, 0.80)), int(rng.integers(3000, 8000)),
                       (0.04, 0.04))}
    X = np.vstack([rng.normal(mu, sd, (n, 2)) for mu, n, sd in parts.values()])
    return X, np.repeat(list(parts), [n for _, n, _ in parts.values()])


def test_per_side_y_cuts_hold_over_varied_samples():
    split = 0
    for seed in range(12):
        X, labels = _varied_memory_subsets(seed)
        gate = QuadrantThresholdGate.build("M", [Dimension("CD45RA"), Dimension("CCR7")], MEMORY)
        found = gate.resolve([X[:, 0], X[:, 1]])
        masks = found.quadrant_masks([X[:, 0]] + [X[:, 1]] * (len(found.dividers) - 1))
        f1 = {q: 2 * np.sum(masks[q] & (labels == q)) / (masks[q].sum() + np.sum(labels == q))
              for q in MEMORY}
        # the best any CCR7 cut among the CD45RA- cells can do for central memory
        memory = np.isin(labels, ["CM", "EM"])
        y, cm = X[memory, 1], labels[memory] == "CM"
        ceiling = max(2 * np.sum((y >= c) & cm) / (np.sum(y >= c) + cm.sum())
                      for c in np.linspace(0.3, 0.6, 301))
        assert min(f1.values()) > min(0.95, ceiling - 0.015), (seed, f1, ceiling)
        split += len(found.dividers) == 3
    # where one line across serves both sides (the central memory cells' CCR7 peak lies
    # below the naive-effector valley) the gate keeps it
    assert 6 <= split < 12


def _shoulder_memory_subsets(seed: int, cm_share: float):
    """CD45RA- cells with one tight CCR7 peak (effector memory) and central memory cells
    spread broadly above it, a shoulder with no valley (as in Yale's lyoplate files),
    beside naive and effector CD45RA+ cells whose valley lies inside that shoulder."""
    rng = np.random.default_rng(seed)
    n_neg = 5000
    n_cm = int(cm_share * n_neg)
    parts = {"EM": ((0.30, 0.30), n_neg - n_cm, (0.05, 0.04)),
             "CM": ((0.30, 0.48), n_cm, (0.05, 0.14)),
             "Effector": ((0.80, 0.25), 3000, (0.04, 0.05)),
             "Naive": ((0.80, 0.75), 6000, (0.04, 0.05))}
    X = np.vstack([rng.normal(mu, sd, (n, 2)) for mu, n, sd in parts.values()])
    return X, np.repeat(list(parts), [n for _, n, _ in parts.values()])


def test_a_shoulder_that_the_shared_cut_falls_in_gets_its_own_cut_where_the_peak_ends():
    shoulders = 0
    for seed in range(12):
        X, labels = _shoulder_memory_subsets(seed, cm_share=0.4)
        memory = np.isin(labels, ["CM", "EM"])
        if len(methods.density_threshold(X[memory, 1]).peaks) > 1:
            continue                      # a valley this time: not a shoulder
        shoulders += 1
        gate = QuadrantThresholdGate.build("M", [Dimension("CD45RA"), Dimension("CCR7")], MEMORY)
        found = gate.resolve([X[:, 0], X[:, 1]])
        assert [d.id for d in found.dividers] == ["M.x", "M.y.below", "M.y.above"], seed
        x_cut, below, above = (d.values[0] for d in found.dividers)
        assert below < above - 0.05
        assert any("where their peak ends" in n for n in found.notes)
        masks = found.quadrant_masks([X[:, 0]] + [X[:, 1]] * 2)
        cm = labels == "CM"
        # the shared cut (the naive-effector valley, inside the shoulder) left about half
        # the central memory cells with the effector memory ones (F1 0.37-0.61; 0.80-0.84
        # with their own cut)
        shared = (X[:, 1] >= above) & (X[:, 0] < x_cut)
        shared_f1 = 2 * np.sum(shared & cm) / (shared.sum() + cm.sum())
        own = 2 * np.sum(masks["CM"] & cm) / (masks["CM"].sum() + cm.sum())
        assert own > shared_f1 + 0.15 and own > 0.78, (seed, own, shared_f1)
    assert shoulders >= 9


def test_a_thin_tail_beside_a_lone_peak_keeps_the_shared_cut():
    # a tenth or a twentieth of the events beside the peak: a tail, as CD8-dim T cells
    # below the CD8 T peak are of the same population, which the end of that peak would
    # cut away
    for seed in range(12):
        for share in (0.05, 0.1):
            X, labels = _shoulder_memory_subsets(seed, cm_share=share)
            gate = QuadrantThresholdGate.build("M", [Dimension("CD45RA"), Dimension("CCR7")],
                                               MEMORY)
            found = gate.resolve([X[:, 0], X[:, 1]])
            assert not any("where their peak ends" in n for n in found.notes), (seed, share)


def test_a_shared_cut_inside_a_sides_population_gives_way_to_that_sides_valley():
    # CD45RA- cells: effector memory (CCR7 0.30) and central memory (0.55) with a shallow
    # valley between them. A shared cut on the central memory cells' slope lies between
    # the side's two peaks but inside one of its populations: the side takes its own
    # valley (UCLA's lyoplate CD8 T cells: central memory F1 0.705 -> 0.917). A shared cut
    # in the valley, or within a bandwidth of the side's own cut, stays.
    from immunomon.gating.datadriven import _own_cut_reason
    for seed in range(6):
        rng = np.random.default_rng(seed)
        side = np.concatenate([rng.normal(0.30, 0.07, 3000), rng.normal(0.55, 0.07, 2000)])
        own = methods.density_threshold(side)
        assert len(own.peaks) == 2 and 0.38 < own.value < 0.48, (seed, own)
        on_slope = 0.55 - 0.06
        assert "inside one of their populations" in _own_cut_reason(side, own, on_slope)
        assert _own_cut_reason(side, own, own.value + 0.01) == ""
        # a shared cut beyond the side's upper peak: the first rule, as before
        assert "does not lie between" in _own_cut_reason(side, own, 0.62)


DC_SUBSETS = {"mDC": ("above", "below"), "pDC": ("below", "above")}


def _dendritic_cells(seed: int):
    """HLA-DR+ lineage- cells in CD11c x CD123, as a display scale shows them (0-4,096):
    mDC CD11c+ with a broad CD123 spread, 45 pDC CD11c- CD123-bright in a tight
    cloud, and a few cells dim in both (as in two real HIPC lyoplate files)."""
    rng = np.random.default_rng(seed)
    parts = [((2800, 1750), (220, 560), 140, "mDC"), ((1500, 2900), (300, 110), 45, "pDC"),
             ((1200, 1400), (450, 300), 20, "other")]
    X = np.vstack([rng.normal(mu, sd, (n, 2)) for mu, sd, n, _ in parts])
    return X, np.repeat([p[3] for p in parts], [p[2] for p in parts])


def test_a_lone_peak_split_by_a_cut_found_on_the_other_side_gets_its_own_cut():
    # Where no valley shows, the CD123 cut that ends the mDC's broad peak (found among
    # the CD11c+ cells) can lie above the middle of the pDC's peak: the CD11c- side then
    # takes its own cut, where the pDC peak ends below (a real file's pDC F1 0.13 ->
    # 0.87). Before, 3 of these 30 samples lost their pDC (F1 0, 0 and 0.42); now one,
    # whose cut lies above the whole pDC peak, not in it.
    from immunomon.gating.datadriven import _own_cut_reason
    gate = QuadrantThresholdGate.build("DC", [Dimension("CD11c"), Dimension("CD123")],
                                       DC_SUBSETS)
    rescued, lost = 0, 0
    for seed in range(30):
        X, labels = _dendritic_cells(seed)
        found = gate.resolve([X[:, 0], X[:, 1]])
        masks = found.quadrant_masks([X[:, 0]] + [X[:, 1]] * (len(found.dividers) - 1))
        pdc = labels == "pDC"
        f1 = 2 * np.sum(masks["pDC"] & pdc) / (masks["pDC"].sum() + pdc.sum())
        lost += f1 < 0.5
        if any("splits that peak" in n for n in found.notes):
            rescued += 1
            assert f1 > 0.95, seed
            x_cut, below, above = (d.values[0] for d in found.dividers)
            side = X[X[:, 0] < x_cut, 1]
            own = methods.density_threshold(side)
            # the same cut found among all events may split two merged populations
            assert _own_cut_reason(side, own, above) == ""
            assert "splits that peak" in _own_cut_reason(side, own, above,
                                                         found_elsewhere=True)
    assert rescued >= 2 and lost <= 1


def test_x_by_side_gives_a_side_of_the_y_cut_its_own_x_cut():
    """The same dendritic cells with the axes swapped (CD123 x, CD11c y): with
    `x_by_side` the CD11c- side takes its own CD123 cut, as the y axis does above; without
    it (the default) the one CD123 cut stands."""
    swapped = {q: (y, x) for q, (x, y) in DC_SUBSETS.items()}
    dims = [Dimension("CD123"), Dimension("CD11c")]
    plain = QuadrantThresholdGate.build("DC", dims, swapped)
    by_side = QuadrantThresholdGate.build("DC", dims, swapped, x_by_side=True)
    assert not plain.x_by_side
    rescued = 0
    for seed in range(30):
        X, labels = _dendritic_cells(seed)
        columns = {"CD123": X[:, 1], "CD11c": X[:, 0]}
        pdc = labels == "pDC"
        assert "DC.x" in [d.id for d in plain.resolve([X[:, 1], X[:, 0]]).dividers]
        found = by_side.resolve([X[:, 1], X[:, 0]])
        ids = [d.id for d in found.dividers]
        if "DC.x" in ids:
            continue
        rescued += 1
        assert ids == ["DC.x.below", "DC.x.above", "DC.y"], ids
        assert any("the events below the y cut get an x cut of their own" in n
                   for n in found.notes)
        masks = found.quadrant_masks([columns[d.dimension.name] for d in found.dividers])
        f1 = 2 * np.sum(masks["pDC"] & pdc) / (masks["pDC"].sum() + pdc.sum())
        assert f1 > 0.95, seed
    assert rescued >= 2


def test_majority_keeps_a_populations_own_peaks_apart_from_debris():
    # Forward scatter of cells above an acquisition trigger at 40,000: lymphocytes and
    # monocytes, with or without a debris pile at the trigger. 'valley: first' cuts off
    # the debris; with no debris it cut between lymphocytes and monocytes (a real HIPC
    # B-cell file: every population F1 < 0.02). 'majority' says the cells are most of
    # the events: a valley that leaves less above it lies between two of their own peaks.
    rng = np.random.default_rng(3)
    lymph, mono = rng.normal(100_000, 9_000, 13_000), rng.normal(150_000, 12_000, 7_000)
    cells = np.concatenate([lymph, mono])
    debris = 40_000 + rng.exponential(7_000, 5_000)
    args = dict(side="above", valley="first")
    clean = methods.density_threshold(cells, **args)
    assert 110_000 < clean.value < 140_000                      # between the cells
    kept = methods.density_threshold(cells, majority=True, **args)
    assert kept.fell_back and "majority" in kept.note
    assert np.mean(lymph > kept.value) > 0.99 and kept.value > 60_000
    # with debris below, the valley above it leaves most events above: kept as it is
    x = np.concatenate([debris, cells])
    plain = methods.density_threshold(x, **args)
    assert plain.value == methods.density_threshold(x, majority=True, **args).value
    assert np.mean(debris > plain.value) < 0.1 and np.mean(lymph > plain.value) > 0.99
    # where the deepest valley is the lymphocytes' against the monocytes' (a smaller,
    # broader debris pile), it gives way to the one below the lymphocytes
    x = np.concatenate([40_000 + rng.exponential(12_000, 2_000), cells])
    assert methods.density_threshold(x, side="above").value > 110_000
    deepest = methods.density_threshold(x, side="above", majority=True)
    assert "leaves" in deepest.note and 50_000 < deepest.value < 80_000
    # and alike below: the population under the cut
    below = methods.density_threshold(-cells, side="below", valley="last", majority=True)
    assert np.mean(-lymph < below.value) > 0.99


def test_a_shoulder_beyond_the_outermost_peak_is_the_outermost_population():
    # A viability dye in a small tube: live lymphocytes and live monocytes (brighter:
    # autofluorescence) make two peaks, and 200 dead cells, too few beside them to make a
    # third, a shelf above. `valley: last` asks for the cut below the brightest
    # population; the valley between the two live peaks took the monocytes with the dead.
    notes = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        lymph, mono = rng.normal(1150, 160, 1200), rng.normal(1690, 140, 900)
        dead = rng.normal(2300, 230, 200)
        x = np.concatenate([lymph, mono, dead])
        cut = methods.density_threshold(x, side="below", valley="last", majority=True)
        assert np.mean(mono < cut.value) > 0.99 and np.mean(dead > cut.value) > 0.75, seed
        # and alike on the other side, with `valley: first`
        low = methods.density_threshold(-x, side="above", valley="first", majority=True)
        assert np.mean(-mono > low.value) > 0.99 and np.mean(-dead < low.value) > 0.75, seed
        # the note says on which side of the peak the shoulder lies (it said 'beyond')
        notes += [cut.note, low.note]
    assert sum("a shoulder of events above the last peak" in n for n in notes) >= 4
    assert sum("a shoulder of events below the first peak" in n for n in notes) >= 4
    assert not any("beyond the" in n for n in notes)


def test_the_brightest_population_beyond_a_dim_shoulder_is_the_last_one():
    """FoxP3 among CD4 T cells with a third of them activated (as on lenalidomide): their
    dim, skewed FoxP3 stands as a shelf beside the negative peak, and the FoxP3-bright
    Treg, 3% of CD4 T, make no peak of their own beyond it. The lone peak's end took the
    shelf for the brightest population (`valley: last`: 3-10 times the Treg in 9 of the
    demo trial's 77 samples); where a population lies beyond the shelf, the cut now goes
    where the shelf ends. Not every such sample is mended: in two of these six the
    shelf's end is not found and the cut stays at the peak's end."""
    from immunomon import simulate
    from immunomon.gating.run import gate_sample

    freqs = {**simulate.DEFAULT_FREQUENCIES, "Treg": 0.03, "Activated CD4 T": 0.33,
             "Resting CD4 T": 0.64}
    scores = []
    for seed in range(6):
        sim = simulate.pbmc_sample(100_000, seed=seed, frequencies=freqs)
        got = gate_sample(sim.sample, "post-transplant",
                          exclude_anomalies=False).result.mask("FoxP3+ Treg")
        want = sim.mask("Treg")
        scores.append(2 * np.sum(got & want) / (got.sum() + want.sum()))
    assert np.median(scores) > 0.8 and sum(f > 0.9 for f in scores) >= 3, scores


def test_a_viability_dye_of_one_peak_keeps_every_live_cell():
    """`valley: last, majority: true, side: below` asks for everything below the
    brightest population. Where the parent's one peak is the population itself (no dead
    cells: no peak, no shoulder above it), its flank's end fell inside live cells of a
    kind brighter in that channel (FlowSOM's 68983: 11% of the NK T cells); now nothing
    is left out. Dead cells above still get their cut, and so do bounds."""
    for seed in range(5):
        rng = np.random.default_rng(seed)
        live = rng.normal(0.24, 0.07, 16_000)
        brighter = rng.normal(0.36, 0.07, 1_200)        # a kind brighter in the dye
        x = np.concatenate([live, brighter])
        args = dict(side="below", valley="last", majority=True)
        kept = methods.density_threshold(x, **args)
        assert kept.value == np.inf and not kept.fell_back, seed
        assert "every event kept" in kept.note
        assert methods.density_threshold(x, side="below", valley="last").value < 0.6
        dead = rng.normal(0.75, 0.06, 600)              # 3.4% dead cells above: cut
        cut = methods.density_threshold(np.concatenate([x, dead]), **args)
        assert np.mean(brighter < cut.value) > 0.97 and np.mean(dead > cut.value) > 0.75
        bounded = methods.density_threshold(x, bounds=(0.3, 0.9), **args)
        assert np.isfinite(bounded.value)


def test_a_tail_that_keeps_falling_is_not_a_shoulder():
    # 3,000 events trailing exponentially above a peak of 20,000: past the peak's end the
    # density halves within one SD, as a tail does; a shelf stands. The valley stays.
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(-4, 0.6, 20_000), rng.normal(0, 1, 20_000),
                        rng.exponential(2.0, 3_000)])
    centres, density, _ = methods.smoothed_density(x)
    peak = int(np.argmin(np.abs(centres)))
    peak += int(np.argmax(density[peak - 20:peak + 20])) - 20
    assert methods.shoulder_beyond(centres, density, peak, 1, x.size) is None
    cut = methods.density_threshold(x, side="below", valley="last")
    assert -3 < cut.value < -1 and "shoulder" not in cut.note
    shelf = np.concatenate([rng.normal(-4, 0.6, 20_000), rng.normal(0, 1, 20_000),
                            rng.normal(3.2, 1.0, 3_000)])
    cut = methods.density_threshold(shelf, side="below", valley="last")
    assert 1.5 < cut.value < 2.8 and "shoulder" in cut.note and cut.fell_back


def test_a_sides_valley_passed_over_is_named_in_the_gates_note():
    """IgD x CD27 in B cells, one IgD cut across (`y_by_side: false`): the CD27+ cells'
    IgD valley lies inside the naive cells' broad IgD peak on the other side, so it is
    not taken; a new user could not tell why until the note said so."""
    rng = np.random.default_rng(2)
    naive = np.column_stack([rng.normal(0.3, 0.05, 6000), rng.normal(0.62, 0.08, 6000)])
    switched = np.column_stack([rng.normal(0.7, 0.05, 250), rng.normal(0.35, 0.05, 250)])
    unswitched = np.column_stack([rng.normal(0.7, 0.05, 500), rng.normal(0.78, 0.04, 500)])
    X = np.vstack([naive, switched, unswitched])
    gate = QuadrantThresholdGate.build("B", [Dimension("CD27"), Dimension("IgD")], MEMORY,
                                       y_by_side=False)
    found = gate.resolve([X[:, 0], X[:, 1]])
    y_cut = found.dividers[1].values[0]
    assert np.mean(naive[:, 1] > y_cut) > 0.95               # the naive cells stay whole
    assert any("was not taken: it falls inside a population on the other side" in n
               for n in found.notes)


def test_one_y_cut_stays_where_it_separates_both_sides():
    # the y cut lies between the two populations on each side: no second y divider,
    # even where each side's own valley lies a little apart from it
    rng = np.random.default_rng(5)
    centres = [(0.2, 0.25), (0.2, 0.70), (0.7, 0.35), (0.7, 0.80)]
    X = np.vstack([rng.normal(c, 0.04, (n, 2)) for c, n in zip(centres, (4000, 1000, 4000, 4000))])
    gate = QuadrantThresholdGate.build("Q", [Dimension("a"), Dimension("b")], MEMORY)
    found = gate.resolve([X[:, 0], X[:, 1]])
    assert [d.id for d in found.dividers] == ["Q.x", "Q.y"]
    # each side has a valley of its own, and the one cut lies between its two peaks
    x_cut, y_cut = (d.values[0] for d in found.dividers)
    for side in (X[:, 0] < x_cut, X[:, 0] >= x_cut):
        own = methods.density_threshold(X[side, 1])
        assert len(own.peaks) == 2 and own.peaks[0] < y_cut < own.peaks[1]
        assert abs(own.value - y_cut) > 0.02                   # not the same cut


def test_quadrant_thresholds_assign_every_event_to_its_quadrant():
    n = 4000
    centres = {"++": (0.7, 0.7), "+-": (0.7, 0.2), "-+": (0.2, 0.7), "--": (0.2, 0.2)}
    X = np.vstack([RNG.normal(c, 0.04, (n, 2)) for c in centres.values()])
    labels = np.repeat(list(centres), n)
    gate = QuadrantThresholdGate.build(
        "Q", [Dimension("a"), Dimension("b")],
        {"PP": ("above", "above"), "PN": ("above", "below"), "NP": ("below", "above"),
         "NN": ("below", "below")})
    found = gate.resolve([X[:, 0], X[:, 1]])
    assert len(found.dividers) == 2                   # one cut serves both sides
    masks = found.quadrant_masks([X[:, 0], X[:, 1]])
    for q, key in (("PP", "++"), ("PN", "+-"), ("NP", "-+"), ("NN", "--")):
        assert np.mean(masks[q][labels == key]) > 0.999
        assert masks[q][labels != key].sum() == 0
    few = gate.resolve([X[:3, 0], X[:3, 1]])
    assert few.fell_back and not any(m.any() for m in few.quadrant_masks([X[:, 0], X[:, 1]]).values())


def test_cluster_gate_does_not_split_one_cluster_between_components():
    # a lymphocyte-enriched sample: one skewed scatter cluster and a little debris;
    # a template asking for 3 components must still keep the whole cluster
    n = 8000
    fsc = RNG.gamma(9.0, 0.02, n) + 0.3
    ssc = 0.2 + 0.3 * (fsc - 0.3) + RNG.normal(0, 0.02, n)
    debris = RNG.normal((0.1, 0.05), 0.02, (300, 2))
    X = np.vstack([np.column_stack([fsc, ssc]), debris])
    truth = np.r_[np.ones(n, bool), np.zeros(300, bool)]
    gate = ClusterGate("Lymphocytes", [Dimension("FSC-A"), Dimension("SSC-A")],
                       pick=[("max", 0)], n_components=3, quantile=0.995)
    found = gate.resolve([X[:, 0], X[:, 1]])
    got = found.contains([X[:, 0], X[:, 1]])
    assert 2 * np.sum(got & truth) / (got.sum() + truth.sum()) > 0.97
    assert "no valley" in found.notes[0]
    unmerged = methods.cluster_gate([X[:, 0], X[:, 1]], n_components=3, pick=[("max", 0)],
                                    quantile=0.995, merge=False)
    assert unmerged.weight < 0.8          # without merging, one piece of the cluster only


def test_a_rare_cluster_is_looked_for_again_before_it_is_called_absent():
    """2% granulocytes beside a skewed lymphocyte cluster and monocytes (a Ficoll sample):
    with 4 components the lymphocytes take three and the highest-SSC pick is a fragment;
    the gate looks again with two more components, where the granulocytes have their own."""
    rng = np.random.default_rng(0)
    lymphocytes = np.column_stack([rng.normal(0.70, 0.03, 60_000),
                                   0.66 + rng.gamma(2.0, 0.025, 60_000)])
    monocytes = rng.normal((0.65, 0.82), (0.028, 0.023), (12_000, 2))
    granulocytes = rng.normal((0.58, 0.92), (0.029, 0.022), (1_500, 2))
    X = np.vstack([lymphocytes, monocytes, granulocytes])
    cols = [X[:, 0], X[:, 1]]
    truth = np.r_[np.zeros(72_000, bool), np.ones(1_500, bool)]
    assert not methods.cluster_gate(cols, n_components=4, pick=[("max", 1)],
                                    quantile=0.995).distinct
    found = ClusterGate("Granulocytes", [Dimension("CD45"), Dimension("SSC-A")],
                        pick=[("max", 1)], n_components=4, quantile=0.995).resolve(cols)
    got = found.contains(cols)
    assert 2 * np.sum(got & truth) / (got.sum() + truth.sum()) > 0.95
    assert "among 6" in found.notes[0]


def test_a_cluster_of_half_a_percent_is_found_in_an_evened_subsample():
    """0.5% granulocytes in a lymphocyte-enriched sample: 25 of a plain 5,000-event
    subsample, too few for a component even among six; a subsample evened out over the
    density gives them one, and the gate says so."""
    rng = np.random.default_rng(1)
    lymphocytes = np.column_stack([rng.normal(0.70, 0.03, 90_000),
                                   0.66 + rng.gamma(2.0, 0.025, 90_000)])
    monocytes = rng.normal((0.65, 0.82), (0.028, 0.023), (3_500, 2))
    granulocytes = rng.normal((0.58, 0.92), (0.029, 0.022), (500, 2))
    X = np.vstack([lymphocytes, monocytes, granulocytes])
    cols = [X[:, 0], X[:, 1]]
    truth = np.r_[np.zeros(93_500, bool), np.ones(500, bool)]
    assert not methods.cluster_gate(cols, n_components=6, pick=[("max", 1)],
                                    quantile=0.995).distinct
    found = ClusterGate("Granulocytes", [Dimension("CD45"), Dimension("SSC-A")],
                        pick=[("max", 1)], n_components=4, quantile=0.995).resolve(cols)
    got = found.contains(cols)
    assert 2 * np.sum(got & truth) / (got.sum() + truth.sum()) > 0.9
    assert "evened out over the density" in found.notes[0]
    weights = methods._evened(X[::10])
    assert weights[-50:].mean() > 5 * weights[:9000].mean()    # sparse events weigh more


def test_a_minor_cluster_beside_a_heavy_one_stops_where_the_neighbours_tail_begins():
    """CD56bright NK (4% of NK cells) beside CD56dim: the 99.9% ellipse of the bright
    component reaches into the dim cluster's tail and takes twice the bright cells;
    the gate stops where the mixture expects the best classification and says so.
    The heavy cluster, with no heavier neighbour, keeps its whole ellipse."""
    from scipy.stats import chi2
    rng = np.random.default_rng(0)
    dim = rng.normal((0.65, 0.57), (0.06, 0.05), (4000, 2))
    bright = rng.normal((0.37, 0.73), (0.08, 0.035), (160, 2))
    X = np.vstack([dim, bright])
    cols = [X[:, 0], X[:, 1]]
    truth = np.r_[np.zeros(4000, bool), np.ones(160, bool)]
    f1 = lambda got: 2 * np.sum(got & truth) / (got.sum() + truth.sum())
    for k in (2, 3):
        gate = ClusterGate("CD56bright NK", [Dimension("CD16"), Dimension("CD56")],
                           pick=[("max", 1), ("min", 0)], n_components=k, quantile=0.999)
        found = gate.resolve(cols)
        got = found.contains(cols)
        assert f1(got) > 0.93 and abs(got.sum() - 160) < 24
        assert "heavier cluster" in found.notes[-1] and found.distance_square < chi2.ppf(0.999, 2)
        d = X - found.mean
        whole = np.einsum("ij,jk,ik->i", d, np.linalg.inv(found.covariance), d)
        assert np.sum(whole <= chi2.ppf(0.999, 2)) > 1.8 * 160       # what 99.9% would take
    big = ClusterGate("CD56dim", [Dimension("CD16"), Dimension("CD56")], pick=[("max", 0)],
                      n_components=2, quantile=0.995).resolve(cols)
    assert big.distance_square == pytest.approx(chi2.ppf(0.995, 2)) and len(big.notes) == 1


def test_equal_ranks_pick_the_heavier_component():
    # a broad component of scattered events (weight 0.015) ranks with CD56bright NK on
    # max CD56 + min CD16: the population is the heavier one
    means = np.array([[0.29, 0.62], [0.67, 0.60], [0.39, 0.76]])
    weights = np.array([0.015, 0.73, 0.255])
    assert methods._picked(means, weights, [("max", 1), ("min", 0)]) == 2
    assert methods._picked(means, weights[[2, 1, 0]], [("max", 1), ("min", 0)]) == 0
    assert methods._picked(means, weights, [("max", 1)]) == 2
    assert methods._picked(means, weights, [("max", 1), ("min", 0)], min_weight=0.3) == 1


def test_a_ranked_pick_on_a_fragment_of_another_cluster_is_taken_as_absent():
    """Granulocytes asked for (the highest-SSC cluster) in a sample without them, whose
    lymphocytes trail upwards in SSC: the mixture's top component is a fragment of the
    lymphocytes, and the gate is left empty with the reason rather than handing part of
    the lymphocytes to the granulocytes. With granulocytes present it takes them."""
    gate = ClusterGate("Granulocytes", [Dimension("CD45"), Dimension("SSC-A")],
                       pick=[("max", 1)], n_components=4, quantile=0.995)
    rng = np.random.default_rng(3)
    lymphocytes = np.column_stack([rng.normal(0.70, 0.025, 9000),
                                   0.66 + rng.gamma(2.0, 0.03, 9000)])
    scattered = np.column_stack([rng.uniform(0.3, 0.85, 300), rng.uniform(0.55, 0.95, 300)])
    X = np.vstack([lymphocytes, scattered])
    found = gate.resolve([X[:, 0], X[:, 1]])
    assert not found.contains([X[:, 0], X[:, 1]]).any() and not found.fell_back
    assert "part of another population" in found.notes[0] and "absent" in found.notes[0]
    granulocytes = rng.normal((0.57, 0.95), (0.03, 0.02), (12_000, 2))
    X = np.vstack([X, granulocytes])
    found = gate.resolve([X[:, 0], X[:, 1]])
    got = found.contains([X[:, 0], X[:, 1]])
    truth = np.r_[np.zeros(9300, bool), np.ones(12_000, bool)]
    assert 2 * np.sum(got & truth) / (got.sum() + truth.sum()) > 0.97


def test_a_further_look_must_find_a_cluster_not_a_cover_of_scattered_events():
    """No granulocytes, 3% scattered events: with six components one broad component
    lies over the scatter, apart from the lymphocytes; it is no denser at its centre than
    at its edge, so the population stays absent. A real cluster is 16 times denser."""
    rng = np.random.default_rng(8)
    lymphocytes = np.column_stack([rng.normal(0.70, 0.025, 60_000),
                                   0.66 + rng.gamma(2.0, 0.03, 60_000)])
    scattered = np.column_stack([rng.uniform(0.3, 0.85, 2_000), rng.uniform(0.55, 0.95, 2_000)])
    X = np.vstack([lymphocytes, scattered])
    cols = [X[:, 0], X[:, 1]]
    wide = methods.cluster_gate(cols, n_components=6, pick=[("max", 1)], quantile=0.995)
    assert wide.distinct and wide.peaked < 1.0
    found = ClusterGate("Granulocytes", [Dimension("CD45"), Dimension("SSC-A")],
                        pick=[("max", 1)], n_components=4, quantile=0.995).resolve(cols)
    assert not found.contains(cols).any() and "absent" in found.notes[0]
    normal = rng.normal(0, 1, (50_000, 2))
    assert methods._peakedness(normal, np.zeros(2), np.eye(2)) == pytest.approx(15.8, rel=0.1)


def test_a_further_look_finding_the_cluster_the_first_pick_was_part_of_finds_nothing():
    # no granulocytes: the first look's max-SSC pick is a fragment of the lymphocytes
    # (it holds their centre); a look that merges the lymphocytes' pieces and picks them
    # whole has found that same cluster, peaked and distinct as it is
    from immunomon.gating.datadriven import _apart, _found
    rng = np.random.default_rng(5)
    cols = [rng.normal(0.70, 0.025, 20_000), 0.66 + rng.gamma(2.0, 0.03, 20_000)]
    first = methods.cluster_gate(cols, n_components=4, pick=[("max", 1)], quantile=0.995)
    assert not first.distinct and first.engulfed_centres.shape == (len(first.engulfed), 2)
    whole = methods.cluster_gate(cols, n_components=1, pick=[("max", 1)], quantile=0.995)
    assert whole.distinct and whole.peaked > 2 and _found(whole)
    assert whole.holds(first.engulfed_centres) and not _found(whole, beside=first)
    apart = methods.cluster_gate([np.r_[cols[0], rng.normal(0.57, 0.03, 400)],
                                  np.r_[cols[1], rng.normal(0.95, 0.02, 400)]],
                                 n_components=6, pick=[("max", 1)], quantile=0.995)
    assert _found(apart, beside=first)
    assert _apart(0.99452, 0.995) == ("99.45%", "99.50%")
    assert _apart(0.95, 0.995) == ("95.0%", "99.5%")


def test_a_population_absent_from_the_bounds_window_is_taken_as_absent():
    # counting beads (bright, 0.6-0.95 by the template) in a tube run without them
    x = np.concatenate([RNG.normal(0.25, 0.05, 20_000), RNG.normal(0.5, 0.04, 3_000)])
    t = methods.density_threshold(x, bounds=(0.6, 0.95))
    assert t.value == pytest.approx(0.95) and "absent" in t.note
    assert np.count_nonzero(x >= t.value) == 0
    # the flank of another population's lone peak ends inside the bounds: still absent
    # (it once took 190 events of that flank for beads)
    flank = np.random.default_rng(11).normal(0.52, 0.04, 20_000)
    t = methods.density_threshold(flank, bounds=(0.6, 0.95))
    assert t.value == pytest.approx(0.95) and "absent" in t.note
    assert np.count_nonzero(flank >= t.value) == 0
    with_beads = np.concatenate([x, RNG.normal(0.8, 0.02, 2_000)])
    t = methods.density_threshold(with_beads, bounds=(0.6, 0.95))
    assert 0.6 <= t.value < 0.75 and not t.fell_back


def test_a_lone_peak_is_placed_by_where_it_sits_on_the_scale():
    # No tail on either side: a peak low on a logicle scale is the unstained population
    # (a viability dye in an unstained control: every cell live), a peak high on it the
    # stained one; in the middle, with no tail at all, the nearer end of the scale; without a
    # scale, the population asked for is the minority.
    from immunomon.transforms import Logicle
    scale = Logicle().signal_scale()
    assert scale[0] == pytest.approx(0.5 / 4.5) and scale[1] == 1.0
    low = RNG.normal(0.25, 0.05, 20_000)
    live = methods.density_threshold(low, side="below", scale=scale)
    assert np.mean(low < live.value) > 0.98 and "unstained" in live.note
    assert np.mean(low < methods.density_threshold(low, side="below").value) < 0.02
    high = RNG.normal(0.75, 0.04, 20_000)
    stained = methods.density_threshold(high, side="above", scale=scale)
    assert np.mean(high >= stained.value) > 0.98 and "stained cells" in stained.note
    lower_middle = RNG.normal(0.50, 0.04, 20_000)         # 44% of the way up the scale
    t = methods.density_threshold(lower_middle, scale=scale)
    assert np.mean(lower_middle >= t.value) < 0.02 and "lower half" in t.note
    upper_middle = RNG.normal(0.58, 0.04, 20_000)         # 53%
    t = methods.density_threshold(upper_middle, scale=scale)
    assert np.mean(upper_middle >= t.value) > 0.98 and "upper half" in t.note
    t = methods.density_threshold(upper_middle)
    assert np.mean(upper_middle >= t.value) < 0.02 and "minority" in t.note
    # a tail still decides before the place does
    tailed = np.concatenate([high, 0.68 - 0.5 * RNG.beta(1, 3, 3_000)])
    assert "tail" in methods.density_threshold(tailed, side="below", scale=scale).note


def test_a_tail_chance_could_make_does_not_outweigh_the_place_of_a_lone_peak():
    """A2004's APC gate thinned to 114 events: nine events spread below the lone
    CD123 peak of the B cells and one above it (one time in a hundred by chance) made
    the whole peak 'pDC'. Such a tail no longer outweighs the peak's low place on the
    scale; it still decides where the place does not, and a tail chance would not
    make (15 below, none above: TCRb among 480 T cells) decides before the place."""
    from immunomon.transforms import Logicle
    scale = Logicle().signal_scale()
    assert methods._binomial_tail(9, 10) == pytest.approx(11 / 1024)
    assert methods._binomial_tail(15, 15) == pytest.approx(2.0 ** -15)
    rng = np.random.default_rng(5)
    peak = rng.normal(0.30, 0.04, 105)
    few_below = np.concatenate([peak, 0.20 - rng.gamma(2, 0.04, 9)])
    t = methods.density_threshold(few_below, side="above", scale=scale)
    assert np.mean(few_below >= t.value) < 0.05 and "unstained" in t.note
    assert "chance" in methods.density_threshold(few_below, side="above").note
    middle = np.concatenate([rng.normal(0.5, 0.03, 440), 0.42 - rng.gamma(2, 0.04, 9)])
    t = methods.density_threshold(middle, side="above", scale=scale)
    assert np.mean(middle >= t.value) > 0.9 and "tail lies" in t.note
    clear = np.concatenate([rng.normal(0.30, 0.04, 460), 0.20 - rng.gamma(2, 0.04, 20)])
    t = methods.density_threshold(clear, side="above", scale=scale)
    assert np.mean(clear >= t.value) > 0.9 and "chance" not in t.note and "tail lies" in t.note


def test_a_lone_peak_leaning_to_one_side_without_a_scale_is_cut_on_that_side():
    """The HIPC B-cell tube (display values, `fluorescence: linear`, so no scale) thinned
    to 332 B cells: IgD- memory cells, a fifth of them, widened the lower flank of the
    naive cells' IgD peak with no tail beyond its end, and the quadrant's `side` rule
    cut above the peak, emptying naive B cells (tests/test_real_gating.py has the file).
    The events' lean names the side, and the cut mirrors the end of the peak's clean
    flank; a symmetric peak does not lean."""
    leaning = []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        naive, memory = rng.normal(2350, 250, 270), rng.normal(1800, 250, 66)
        x = np.concatenate([naive, memory])
        t = methods.density_threshold(x, side="above")
        if len(t.peaks) > 1 or "lean" not in t.note:
            continue                    # a valley or a clear tail: other rules decide
        assert "other flank ends" in t.note
        def naive_f1(cut):
            kept = x >= cut
            return 2 * np.sum(kept[:270]) / (kept.sum() + 270)
        # the two overlap: the best cut there is, known from the labels, is the measure
        best = max(naive_f1(c) for c in np.sort(x))
        leaning.append((seed, naive_f1(t.value), best))
    assert len(leaning) >= 3, leaning
    assert all(f1 > 0.9 and f1 > best - 0.05 for _, f1, best in leaning), leaning
    rng = np.random.default_rng(0)
    leans = [methods.lean(rng.normal(0, 1, 400)) for _ in range(200)]
    assert sum(v is not None for v in leans) <= 6              # about 1% by chance
    assert methods.lean(rng.normal(0, 1, 30)) is None           # too few to say
    shouldered = np.concatenate([rng.normal(0, 1, 3000), rng.normal(-2.2, 0.8, 1000)])
    assert methods.lean(shouldered) == -1 and methods.lean(-shouldered) == 1
    symmetric = rng.normal(2350, 180, 336)
    assert "lean" not in methods.density_threshold(symmetric, side="above").note


def test_a_quadrant_dividers_lone_peak_follows_a_weaker_lean_than_a_thresholds():
    """A quadrant's divider has populations on both sides, so no side is the one asked
    for: a lean that chance makes one time in ten decides there, before a tail of a few
    events that chance makes more often (the HIPC B tube thinned to 177 B cells, 16%
    IgD- along the IgD+ peak's lower flank, which then never ends). A threshold asked for
    one side keeps its rules; about one symmetric peak in ten leans that much."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(2330, 260, 148), rng.uniform(1300, 1950, 29)])
    assert methods.lean(x, methods.LEAN_WEAK_Z) == -1
    both = methods.density_threshold(x, both_sides=True)
    assert both.value < 1700 and "populations lie on both sides" in both.note
    assert both.guessed                 # a weak sign: the quadrant says so (test_real_gating)
    assert not methods.density_threshold(x, both_sides=True, expect="mostly-positive").guessed
    kept = x >= both.value
    assert 2 * np.sum(kept[:148]) / (kept.sum() + 148) > 0.9
    assert methods.density_threshold(x).value > 2900            # the chance tail above
    leans = [methods.lean(rng.normal(0, 1, 400), methods.LEAN_WEAK_Z) for _ in range(400)]
    assert sum(v is not None for v in leans) <= 60              # about 10%


def test_a_peak_of_overcompensated_events_below_zero_is_not_a_population():
    """A spillover value too high pushes another dye's bright cells below zero signal,
    as a peak beside the unstained one; the deepest valley lay between the two and made
    most cells 'positive'. The peak below zero is left out of the density; the cut goes
    between the unstained cells and the positives. Without a scale, nothing changes."""
    from immunomon.transforms import Logicle
    logicle = Logicle(262144, 1.0, 4.5, 0)
    scale = logicle.signal_scale()
    rng = np.random.default_rng(4)
    unstained = rng.normal(0, 60, 12_000)
    over = rng.normal(-700, 150, 5_000)                 # bright in another dye
    positive = rng.lognormal(np.log(20_000), 0.3, 600)
    x = logicle.apply(np.concatenate([unstained, over, positive]))
    t = methods.density_threshold(x, side="above", scale=scale)
    assert "over-compensated" in t.note
    got = x >= t.value
    assert got[-600:].mean() > 0.97 and got[:17_000].mean() < 0.01
    plain = methods.density_threshold(x, side="above")
    assert (x >= plain.value)[:17_000].mean() > 0.5      # the valley to the artefact


def test_a_negative_population_a_little_below_zero_is_still_the_negatives():
    """A file compensated a little too hard as a whole puts its negative population's
    mode just below zero signal, with no unstained peak above it (a FACSymphony export's
    CD3- cells beside the CD3+ peak): that peak is the negatives, not over-compensated
    events, and the cut goes in the valley between the two."""
    from immunomon.transforms import Logicle
    logicle = Logicle(262144, 1.0, 4.5, 0)
    rng = np.random.default_rng(6)
    negative = rng.normal(-120, 150, 3_000)
    positive = rng.lognormal(np.log(8_000), 0.35, 6_000)
    x = logicle.apply(np.concatenate([negative, positive]))
    t = methods.density_threshold(x, side="above", scale=logicle.signal_scale())
    assert "over-compensated" not in t.note and len(t.peaks) == 2
    got = x >= t.value
    assert got[3_000:].mean() > 0.98 and got[:3_000].mean() < 0.02


def test_overcompensated_events_far_below_zero_on_a_display_scale_are_no_population():
    """Display values gated with `linear` have no transform to say where zero signal
    lies, but it is still 0: events pushed far below it by over-
    compensation (a lyoplate centre's CD8 down to -19,000 on a 0-4,096 display) made a
    peak whose valley beside the CD8- cells took them all for CD8+ (a thinned file's CD4
    T cells 31 of 1,994). They are left out of the density now, as on a logicle."""
    rng = np.random.default_rng(7)
    negative = rng.normal(900, 180, 1_100)
    positive = rng.normal(2_700, 200, 1_200)
    over = rng.normal(-11_000, 400, 25)
    x = np.concatenate([negative, positive, over])
    t = methods.density_threshold(x, side="above", valley="first")
    assert "over-compensated" in t.note and 1_300 < t.value < 2_300
    assert methods.density_threshold(np.concatenate([negative, positive]),
                                     side="above", valley="first").note == ""


def test_a_cut_across_an_empty_gap_lies_in_its_middle():
    """Two populations with no event between them leave the smoothed density at zero
    across the gap; the cut goes to the middle of the gap, not to the first zero at
    the lower population's edge (a thinned HIPC file's CD4 cut took CD4- events)."""
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(700, 80, 1_200), rng.normal(2_700, 120, 450)])
    t = methods.density_threshold(x)
    gap = (x[x < 1_500].max(), x[x > 1_500].min())
    assert abs(t.value - 0.5 * sum(gap)) < 0.1 * (gap[1] - gap[0])
    d = np.array([3.0, 1.0, 0.0, 0.0, 0.0, 0.0, 2.0])
    assert methods.valley_bottom(d, np.arange(7)) == 3
    assert methods.valley_bottom(d, np.arange(4)) == 2


def test_a_pile_of_saturated_or_floored_events_is_not_a_peak_or_a_tail():
    """Four FSC-A events at the top of the scale (262,143) in an activation file thinned
    to 744 events made a second peak, and a `valley: first` cut kept 5 cells of 513;
    events floored at the bottom of the scale made a lower tail that turned a lone
    negative peak into the positive population."""
    rng = np.random.default_rng(5)
    cells = rng.normal(60_000, 15_000, 700)
    x = np.concatenate([cells, rng.uniform(1_000, 20_000, 40), np.full(4, 262_143.0)])
    t = methods.density_threshold(x, valley="first")
    assert np.mean(cells >= t.value) > 0.9
    assert methods.on_scale(x).size == x.size - 4
    assert methods.on_scale(cells).size == cells.size       # no ties: nothing left out
    # values floored at the bottom (an Accuri stores negatives as 0): no lower tail
    rng = np.random.default_rng(6)
    negatives = rng.normal(0.25, 0.04, 1_000)
    floored = np.concatenate([negatives, np.full(60, 0.05)])
    assert methods.on_scale(floored).size == negatives.size
    t = methods.density_threshold(floored, side="above")
    assert np.mean(negatives >= t.value) < 0.05 and "tail lies" not in t.note


def test_a_tenth_of_the_events_at_the_floor_are_the_negative_population():
    """A mass cytometer records no ions as exactly 0. In a CyTOF file thinned to 102
    CD3- CD14- cells, 35 had a CD19 count of 0: left out of the density as a pile, they
    left the B cells one peak, which `expect: mostly-negative` took for the negatives, and
    the B-cell gate was empty. Kept in, they are the negative peak. Gates on arcsinh
    axes know their zero signal and top (``EventValues.signal_scale``)."""
    CYTOF = (0.0, float(np.arcsinh(4096 / 5)))          # arcsinh(count / 5): zero, top
    for seed in range(5):
        rng = np.random.default_rng(seed)
        zeros = np.zeros(35)
        dim = np.arcsinh(rng.exponential(3.0, 15) / 5)         # negatives' counts above 0
        b_cells = rng.normal(3.3, 0.8, 52)
        x = np.concatenate([zeros, dim, b_cells])
        assert methods.piles(x)[1]["bottom"][0] == 35           # a pile: left out of on_scale
        assert methods.density_on_scale(x, scale=CYTOF)[0].size == x.size
        t = methods.density_threshold(x, side="above", expect="mostly-negative", scale=CYTOF)
        assert np.mean(b_cells >= t.value) > 0.9 and np.mean(dim >= t.value) < 0.2
        assert "kept in the density" in t.note
    # a few events at the floor are still left out (see the test above), and so is a
    # pile below two peaks (FlowCAP-I's channel 0): it would take their valley
    few = np.concatenate([np.zeros(5), dim, b_cells])
    assert methods.density_on_scale(few, scale=CYTOF)[0].size == few.size - 5
    negatives = rng.normal(1.0, 0.3, 400)
    two = np.concatenate([np.zeros(200), negatives, b_cells])
    assert methods.density_on_scale(two, scale=CYTOF)[0].size == two.size - 200
    t = methods.density_threshold(two, side="above", scale=CYTOF)
    assert np.mean(b_cells >= t.value) > 0.9 and np.mean(negatives >= t.value) < 0.05
    # the same pile at the bottom of channel numbers (no scale: no zero signal) stays out
    assert methods.density_on_scale(x)[0].size == x.size - 35


def test_gates_learn_the_scale_of_their_axes():
    from immunomon import Sample
    from immunomon.fcs import Channel
    from immunomon.gating import GatingStrategy
    from immunomon.transforms import Logicle
    n = 20_000
    raw = Logicle().inverse(RNG.normal(0.25, 0.05, n))            # one unstained peak
    sample = Sample(raw[:, None].astype(np.float32), [Channel("V450-A", "Viability")], {})
    live = ThresholdGate("Live", [Dimension("V450-A", transform=Logicle())], side="below")
    res = GatingStrategy([live]).apply(sample)
    assert res.mask("Live").mean() > 0.98
    assert "unstained" in res.gates["Live"].notes[0]



def test_a_peak_flank_ends_before_a_bump_beyond_it():
    # a negative peak and, past a dip, a bump of positives more than a fifth of its height
    # (too few events to count as a peak of their own): the peak's flank is the near side
    # of the dip; the bump's steeper far flank once made the "end" lie beyond the bump,
    # and a lone-peak cut kept 3 of 667 activated CD8 T cells
    c = np.linspace(-0.2, 1.1, 512)
    bump = lambda m, s, h: h * np.exp(-0.5 * ((c - m) / s) ** 2)
    d = bump(0.25, 0.09, 1.0) + bump(0.50, 0.045, 0.55)
    peak = int(np.argmax(d))
    dip = peak + int(np.argmin(d[peak:np.searchsorted(c, 0.5)]))
    end = methods.peak_end(c, d, peak, 1)
    assert c[peak] + 0.1 < c[end] <= c[dip]


def test_a_cut_on_a_broad_populations_plateau_is_inside_it():
    """A cut from the other side of a quadrant must not split these events: not on a
    peak, and not on the plateau of a broad population that rises into a tall one
    (memory T cells' CD45RA below the CD45RA+ peak: no peak of its own to climb to);
    a valley between two peaks, shallow or deep, and the tail of a peak are no
    population. Events at evenly spaced quantiles: no sampling noise."""
    from immunomon.gating.datadriven import _inside_population

    def even(dist, n):
        return dist.ppf((np.arange(n) + 0.5) / n)

    tall = even(stats.norm(3300.0, 120.0), 1_000)
    rising = np.concatenate([tall, even(stats.triang(1.0, loc=400.0, scale=2_900.0), 1_500)])
    for cut in (1500.0, 2000.0, 2500.0, 3300.0):
        assert _inside_population(rising, cut), cut
    assert not _inside_population(tall, 2800.0)            # its tail, 4 SD out
    two = np.concatenate([even(stats.norm(1000.0, 250.0), 2_000),
                          even(stats.norm(2200.0, 250.0), 5_000)])
    assert not _inside_population(two, 1450.0)           # the shallow valley between them
    apart = np.concatenate([even(stats.norm(500.0, 100.0), 2_000),
                            even(stats.norm(2500.0, 100.0), 2_000)])
    assert not _inside_population(apart, 1500.0)


def test_a_lone_peak_the_tails_decide_against_its_place_says_so():
    """One peak low on the scale (zero signal at 0.2) with more events spread below it
    than above: the tails take it for the positives and cut below it, and the
    threshold records that its place says the opposite (the gate turns that into a QC
    warning); a peak high on the scale with the same tails agrees with its place."""
    rng = np.random.default_rng(7)
    low = np.concatenate([rng.normal(0.41, 0.04, 1900), rng.normal(0.28, 0.06, 400),
                          rng.normal(0.62, 0.02, 5)])
    t = methods.density_threshold(low, side="above", scale=(0.2, 1.0))
    assert t.value < 0.41 and t.place == 1
    high = np.concatenate([rng.normal(0.85, 0.03, 1900), rng.normal(0.5, 0.08, 400)])
    t = methods.density_threshold(high, side="above", scale=(0.2, 1.0))
    assert t.value < 0.85 and t.place == 0
    hinted = methods.density_threshold(low, side="above", scale=(0.2, 1.0), expect="mostly-negative")
    assert hinted.value > 0.41 and hinted.place == 0


def test_a_boundary_gate_leaves_out_the_piles_at_either_end_of_the_scale():
    """Saturated scatter (stored at the top of the range) and events without a signal
    (at 0) have no measured value: a `boundary` gate leaves out each pile, as openCyto's
    boundary gate does, and keeps everything else, including the largest cells on the
    scale; with no pile it keeps every event."""
    from immunomon.gating.datadriven import BoundaryGate

    rng = np.random.default_rng(4)
    fsc = np.concatenate([rng.normal(90_000, 20_000, 5_000), np.full(300, 262_143.0),
                          np.zeros(40)])
    ssc = np.concatenate([rng.normal(40_000, 9_000, 5_000), rng.normal(120_000, 20_000, 300),
                          rng.normal(20_000, 3_000, 40)])
    gate = BoundaryGate("On scale", [Dimension("FSC-A"), Dimension("SSC-A")])
    found = gate.resolve([fsc, ssc])
    kept = found.contains([fsc, ssc])
    assert kept.sum() == 5_000 and not kept[5_000:].any()
    assert found.notes == ("300 events piled at the top of FSC-A (at or above 262143) left out",
                           "40 events piled at the bottom of FSC-A (0) left out")
    clean = gate.resolve([fsc[:5_000], ssc[:5_000]])
    assert clean.contains([fsc[:5_000], ssc[:5_000]]).all()
    assert clean.notes == ("no events piled at either end of the scale",)
    # on a transformed axis the pile's place is in the transform's units, and says so
    from immunomon.transforms import Logicle
    logicle = BoundaryGate("On scale", [Dimension("FSC-A", transform=Logicle())])
    top = logicle.resolve([Logicle().apply(fsc)])
    assert top.notes[0].startswith("300 events piled at the top of FSC-A (at or above 1 "
                                   "transformed)")
    # saturated pulses whose area the instrument still computes are not tied: a
    # FACSAria's lay between 262,125 and 262,143 (its range 262,207); a bright tail that
    # merely reaches the top is no pile
    spread = np.concatenate([fsc[:5_000], rng.uniform(262_120, 262_143.5, 49)])
    found = gate.resolve([spread, np.r_[ssc[:5_000], ssc[:49]]])
    assert found.contains([spread, np.r_[ssc[:5_000], ssc[:49]]]).sum() == 5_000
    assert found.notes[0].startswith("49 events piled at the top of FSC-A (at or above 26212")
    tail = rng.lognormal(10, 1.0, 20_000)
    assert gate.resolve([tail, tail]).notes == ("no events piled at either end of the scale",)


def test_a_valley_before_a_broad_populations_brightest_few_gives_way_to_the_peaks_end():
    """CD14 monocytes in a COVID-19 ICS file fall slowly from where the CD14- peak ends
    to a bump of their brightest few at the top; the deepest valley lay before that bump
    and kept 15% of the expert's monocytes. Where a shoulder holds three times what lies
    beyond the valley, the cut goes where the large peak ends; without the shoulder, or
    with one too small to outweigh the bump, the valley stays."""
    shoulders = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        negative = rng.normal(0.22, 0.035, 15_000)
        broad = 0.31 + np.abs(rng.normal(0.0, 0.13, 1_500))    # no peak of its own
        brightest = rng.normal(0.64, 0.012, 80)
        positive = np.concatenate([broad, brightest])
        cut = methods.density_threshold(np.concatenate([negative, positive]), side="above")
        # where the broad population's start makes a small peak, its valley is the cut
        shoulders += "shoulder" in cut.note
        assert 0.28 < cut.value < 0.34, seed
        assert np.mean(positive > cut.value) > 0.95 and np.mean(negative > cut.value) < 0.02
        alone = methods.density_threshold(np.concatenate([negative, brightest]), side="above")
        assert alone.value > 0.45 and "shoulder" not in alone.note
        small = np.concatenate([negative, broad[:150], brightest])
        assert "shoulder" not in methods.density_threshold(small, side="above").note
        # a peak of its own beyond the shoulder, a third of its events, is a population
        # (a whole-blood LST file's B cells beyond CD19-dim myeloid cells), not its
        # brightest few: the valley stays the cut
        own = rng.normal(0.64, 0.03, 500)
        apart = methods.density_threshold(np.concatenate([negative, broad, own]), side="above")
        assert "shoulder" not in apart.note and np.mean(own > apart.value) > 0.95, seed
    assert shoulders >= 8


def test_a_dominant_peak_is_parted_from_all_the_others_not_among_them():
    """CD14 of a COVID-19 ICS file: the CD14- cells' peak stands far above a CD14-dim and
    a CD14-bright monocyte peak, and the lowest point between the two most prominent
    peaks lay between the two kinds of monocyte, giving the dim ones to the negatives.
    Where one of the two most prominent peaks is four times the other's height and
    smaller peaks lie between them, the cut is the dominant peak's own valley; where
    the two are alike (debris and cells in forward scatter, a small bump between), the
    lowest point between them stays the cut."""
    for seed in range(6):
        rng = np.random.default_rng(seed)
        negative = rng.normal(0.20, 0.035, 20_000)
        dim = rng.normal(0.40, 0.04, 700)
        bright = rng.normal(0.66, 0.025, 500)
        x = np.concatenate([negative, dim, bright])
        cut = methods.density_threshold(x)
        assert len(cut.peaks) == 3, seed
        positive = np.concatenate([dim, bright])
        assert np.mean(positive > cut.value) > 0.95 and np.mean(negative > cut.value) < 0.01
        # as `valley: first` says it, here
        assert cut.value == methods.density_threshold(x, valley="first").value
        # alike heights: the deepest point between the two most prominent peaks
        debris = rng.normal(0.20, 0.035, 9_000)
        small = rng.normal(0.42, 0.03, 500)
        cells = rng.normal(0.70, 0.04, 12_000)
        both = np.concatenate([debris, small, cells])
        kept = methods.density_threshold(both)
        assert len(kept.peaks) == 3 and 0.45 < kept.value < 0.6, seed


def test_majority_needs_the_valley_to_leave_a_clear_minority():
    # a thinned viability channel: live cells 49% of 800 events below the valley before
    # the dead cells. `majority` took the valley for one inside the population and cut
    # where the dead cells' peak ends, keeping every event (live F1 0.91 -> 0.68); at
    # 40% of the events the valley still gives way
    rng = np.random.default_rng(5)
    for live_share, kept_all in ((0.49, False), (0.40, True)):
        n_live = int(800 * live_share)
        x = np.concatenate([rng.normal(0.2, 0.05, n_live), rng.normal(0.7, 0.05, 800 - n_live)])
        found = methods.density_threshold(x, side="below", valley="last", majority=True)
        below = np.mean(x < found.value)
        assert below == pytest.approx(1.0 if kept_all else live_share, abs=0.02)


def test_a_quadrant_divider_with_nothing_beyond_its_tail_empties_its_side():
    # an unstimulated ICS tube, IFNg x TNFa of CD4 T cells with `tail` and `fdr`: no
    # cytokine+ cells stand out of the negatives' tail, so no cut exists on either axis;
    # the quadrants beyond are empty, the negatives keep every event, the sample is gated
    rng = np.random.default_rng(7)
    neg = rng.normal((0.25, 0.25), (0.05, 0.05), (30_000, 2))
    gate = QuadrantThresholdGate.build(
        "Cytokines", [Dimension("IFNg"), Dimension("TNFa")],
        {"IFNg+ TNFa+": ("above", "above"), "IFNg+": ("above", "below"),
         "TNFa+": ("below", "above"), "Cytokine-": ("below", "below")},
        x_method="tail", y_method="tail", x_args={"fdr": 0.05}, y_args={"fdr": 0.05})
    found = gate.resolve([neg[:, 0], neg[:, 1]])
    assert all(np.isfinite(d.values).all() for d in found.dividers)
    got = found.quadrant_masks([neg[:, 0], neg[:, 1]])
    assert got["Cytokine-"].all()
    assert not (got["IFNg+"] | got["TNFa+"] | got["IFNg+ TNFa+"]).any()
    assert any("none stand out of the peak" in n for n in found.notes)
    # with IFNg+ cells among them the x cut is found and the y axis still keeps them all
    pos = np.column_stack([rng.normal(0.55, 0.03, 120), rng.normal(0.25, 0.05, 120)])
    X = np.vstack([neg, pos])
    got = gate.resolve([X[:, 0], X[:, 1]]).quadrant_masks([X[:, 0], X[:, 1]])
    assert got["IFNg+"][neg.shape[0]:].mean() > 0.9 and not got["IFNg+ TNFa+"].any()


def test_too_few_events_on_the_scale_leave_the_population_empty_not_the_sample_failed():
    # a parent of 13 events, 4 of them saturated (tied at the top of the channel, which the
    # density and tail rules leave out): 9 measured values are too few for a tail cut
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(0.3, 0.05, 9), np.full(4, 1.0)]
    found = ThresholdGate("CD25high", [Dimension("CD25")], method="tail").resolve([x])
    assert found.contains([x]).sum() == 0 and found.fell_back
    assert "too few events on the scale (9)" in found.notes[0]
    # a quadrant cut by tail on the same events: every quadrant empty, and why
    quad = QuadrantThresholdGate.build("Q", [Dimension("CD25"), Dimension("CD127")],
                                       {"Treg": ("above", "below")},
                                       x_method="tail", y_method="tail")
    got = quad.resolve([x, rng.normal(0.5, 0.05, 13)])
    assert got.empty and "too few events on the scale" in got.notes[0]
    assert not got.quadrant_masks([x, x])["Treg"].any()
    # a singlet gate where 5 of 14 events have no height (stored as 0)
    area = rng.normal(50_000, 5_000, 14)
    height = np.r_[np.zeros(5), area[5:] / 1.2]
    singlets = SingletGate("S", [Dimension("FSC-A"), Dimension("FSC-H")]).resolve([area, height])
    assert singlets.contains([area, height]).sum() == 0
    assert "too few events with positive area and height (9)" in singlets.notes[0]


def test_a_cluster_gate_with_too_few_finite_events_leaves_its_population_empty():
    # 40 events in the parent, 15 of them without a finite value (a ratio divided by
    # zero): too few for three components, which once failed the sample
    rng = np.random.default_rng(4)
    X = rng.normal(0.5, 0.1, (40, 2))
    X[:15, 1] = np.inf
    gate = ClusterGate("Lymphocytes", [Dimension("FSC-A"), Dimension("SSC-A")],
                       n_components=3, pick=[("min", 1)])
    found = gate.resolve([X[:, 0], X[:, 1]])
    assert found.contains([X[:, 0], X[:, 1]]).sum() == 0
    assert "too few events (25) to fit 3 clusters" in found.notes[0]


def test_bounds_that_take_a_population_as_absent_yet_keep_many_events_say_so():
    """With both bounds and no peak beyond the near one the population is absent and
    the cut goes to the far bound: beads in a bead-free tube keep nothing there. A
    basophil gate's CD38 bounds on a whole-blood LST file kept 560 events of a debris
    cloud's top that way, 'ok'; that many events beyond the far bound is a warning."""
    rng = np.random.default_rng(4)
    cloud = 1000.0 + rng.gamma(2.0, 700.0, 6000)      # one peak, a long upper tail
    gate = ThresholdGate("Basophils", [D], side="above", args={"bounds": (3800, 4800)})
    found = gate.resolve([cloud])
    assert found.bounds[0][0] == 4800
    assert any("taken as absent" in d and "lie beyond the far bound" in d
               for d in found.doubts), found.doubts
    beadless = rng.normal(2000.0, 300.0, 5000)               # nothing near the far bound
    assert not any("taken as absent" in d for d in gate.resolve([beadless]).doubts)


def test_bounds_that_take_a_population_the_template_calls_most_of_its_parent_as_absent():
    """`expect` naming the side kept, or `majority`, says the population is most of its
    parent; bounds with no peak between them then do not fit the file (an LST file at
    half its voltage: its CD4 T cells lay below their bounds), and the gate is not
    taken as absent. `expect` naming the other side says nothing of the kind."""
    cells = np.random.default_rng(8).normal(2000.0, 300.0, 5000)
    for side, args in (("above", {"expect": "mostly-positive"}), ("above", {"majority": True}),
                       ("below", {"expect": "mostly-negative"})):
        bounds = (3000, 4200) if side == "above" else (500, 1000)
        found = ThresholdGate("CD4 T", [D], side=side, args={**args, "bounds": bounds}
                              ).resolve([cells])
        assert not found.absent and "do not fit this file" in found.notes[-1], (side, args)
    found = ThresholdGate("CD4 T", [D], side="above",
                          args={"expect": "mostly-negative", "bounds": (3000, 4200)}
                          ).resolve([cells])
    assert found.absent and not any("do not fit" in n for n in found.notes)


def test_a_foot_gives_a_floor_to_the_other_peaks_population():
    """A narrow peak (CD8 T cells' naive CD45RA) beside a broad population whose events
    spread as a floor right up to it (memory cells): the valley's lowest point lies
    anywhere on the floor; ``foot: upper`` cuts where the narrow peak ends, and the
    floor goes with the population below."""
    rng = np.random.default_rng(5)
    naive = rng.normal(3_300, 110, 8_000)
    memory = np.concatenate([rng.normal(700, 300, 2_000), rng.uniform(900, 3_000, 2_000)])
    x = np.concatenate([naive, memory])
    truth = np.arange(x.size) < naive.size

    def f1_above(cut):
        got = x > cut
        return 2 * np.count_nonzero(got & truth) / (got.sum() + truth.sum())

    valley = methods.density_threshold(x, side="above")
    foot = methods.density_threshold(x, side="above", foot="upper")
    assert 3_300 - 6 * 110 < foot.value < 3_300 - 2.5 * 110
    assert f1_above(foot.value) > max(0.98, f1_above(valley.value) + 0.02)
    assert foot.note.startswith("foot: upper: cut at") and foot.depth == valley.depth
    assert any(how == "foot: upper" and abs(v - foot.value) < 1e-9
               for v, how in methods.other_cuts(*methods.density_on_scale(x)[2:4],
                                                methods.density_on_scale(x)[5]))
    # across a clean gap the foot is where the upper peak ends: no event changes side
    clean = bimodal()
    above = clean > methods.density_threshold(clean, foot="upper").value
    assert np.count_nonzero(above != (clean > methods.density_threshold(clean).value)) < 10
    with pytest.raises(GatingError, match="foot must be one of upper, lower"):
        methods.density_threshold(x, foot="middle")


def test_a_debris_gate_on_a_clean_file_with_saturated_and_large_events_keeps_all_quietly():
    """A FACSAria tube triggered above its debris: one peak of cells in FSC-A, a bump of
    large cells at 0.5% and 49 saturated events spread just below the ADC's top (262,125
    to 262,143; its range 262,207). The saturated events had made a second peak, and the
    debris gate (`valley: first`, `majority`) warned that it kept every event and told
    the scientist to leave majority out, which emptied the file. Now the saturated events
    are a pile, majority passes over the large cells' valley, and nothing is left out:
    said in a note, no warning."""
    rng = np.random.default_rng(6)
    cells = rng.normal(45_000, 6_000, 70_000)
    fsc = np.concatenate([cells[cells > 33_000][:60_000],          # the trigger
                          rng.normal(116_000, 4_000, 300), rng.uniform(262_125, 262_143.5, 49)])
    kept, piled = methods.piles(fsc)
    assert piled["top"][0] == 49 and kept.size == fsc.size - 49
    found = ThresholdGate("Live", [Dimension("FSC-A")], side="above",
                          args={"valley": "first", "majority": True}).resolve([fsc])
    assert found.contains([fsc]).all()
    assert not found.fell_back and not found.doubts
    assert "every event kept" in found.notes[-1]


def test_a_quadrant_dividers_bounds_only_clip_the_cut():
    """Both sides of a quadrant's divider hold populations: its bounds clip the cut and
    never take a side for absent (a memory-rich donor's CD45RA, one peak below the lower
    bound, had its cut sent to the upper bound 'keeping only what lies beyond it'); equal
    bounds pin it."""
    rng = np.random.default_rng(7)
    ra = rng.normal(0.3, 0.04, 3_000)
    ccr7 = np.concatenate([rng.normal(0.25, 0.05, 1_000), rng.normal(0.65, 0.05, 2_000)])
    for bounds, at in (([0.45, 0.55], 0.45), ([0.5, 0.5], 0.5)):
        gate = QuadrantThresholdGate.build(
            "M", [Dimension("CD45RA"), Dimension("CCR7")],
            {"Naive": ("above", "above"), "CM": ("below", "above")},
            x_args={"bounds": bounds})
        found = gate.resolve([ra, ccr7])
        x_cut = next(d.values[0] for d in found.dividers if d.id.startswith("M.x"))
        assert x_cut == pytest.approx(at)
        assert not any("no population of its own" in n for n in found.notes), found.notes
