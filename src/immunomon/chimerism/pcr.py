"""Chimerism from recipient-specific PCR markers: digital PCR and quantitative PCR.

Both measure the recipient's share directly with a marker (an indel or SNP) that the
recipient carries and the donor does not, against a reference gene both carry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ChimerismError
from .calculate import classify_sample, lod_status, reported_value


def poisson_lambda(positive: int, total: int) -> float:
    """Mean copies per partition from the fraction of positive partitions.

    Partitions hold a Poisson number of copies, so the negative fraction is
    exp(-lambda) and lambda = -ln(1 - positive/total).
    """
    if not (isinstance(total, (int, float)) and total > 0):
        raise ChimerismError(f"total partitions must be positive, not {total!r}")
    if not 0 <= positive <= total:
        raise ChimerismError(f"positive partitions ({positive}) must be between 0 and "
                             f"the total ({total})")
    if positive == total:
        raise ChimerismError(f"all {total} partitions are positive: the well is saturated "
                             f"and cannot be quantified; dilute the DNA and rerun")
    return -math.log1p(-positive / total)


def ddpcr_percent_recipient(marker_positive: int, marker_total: int,
                            reference_positive: int, reference_total: int, *,
                            marker_copies: float = 1.0,
                            reference_copies: float = 2.0) -> float:
    """%R = (lambda_marker / marker copies per genome) / (lambda_reference / 2) x 100.

    ``marker_copies`` is how many copies of the marker a recipient genome carries
    (1 heterozygous, 2 homozygous); the reference gene has ``reference_copies`` (2).
    """
    if not (marker_copies > 0 and reference_copies > 0):
        raise ChimerismError("copies per genome must be positive")
    lam_m = poisson_lambda(marker_positive, marker_total)
    lam_r = poisson_lambda(reference_positive, reference_total)
    if lam_r == 0:
        raise ChimerismError("the reference assay has no positive partition; no DNA "
                             "was measured")
    return 100.0 * (lam_m / marker_copies) / (lam_r / reference_copies)


def qpcr_percent_recipient(ct_marker: float, ct_reference: float,
                           ct_marker_pre: float, ct_reference_pre: float, *,
                           efficiency: float = 1.0) -> float:
    """%R = 100 x (1 + E)^-(dCt_sample - dCt_pre), dCt = Ct(marker) - Ct(reference).

    The pre-transplant recipient sample is the 100% calibrator; ``efficiency`` E is 1
    for perfect doubling (2^-ddCt).
    """
    for name, v in (("ct_marker", ct_marker), ("ct_reference", ct_reference),
                    ("ct_marker_pre", ct_marker_pre), ("ct_reference_pre", ct_reference_pre)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ChimerismError(f"{name} must be a positive Ct value, not {v!r} "
                                 f"(an undetermined Ct means no amplification)")
    if not 0 < efficiency <= 1.2:
        raise ChimerismError(f"efficiency must be in (0, 1.2], not {efficiency!r}")
    ddct = (ct_marker - ct_reference) - (ct_marker_pre - ct_reference_pre)
    return 100.0 * (1.0 + efficiency) ** (-ddct)


@dataclass
class PCRChimerism:
    """A PCR chimerism result, with the same classification and flags as STR results."""

    method: str
    percent_recipient: float
    percent_donor: float
    reported: str
    classification: str
    flags: list = field(default_factory=list)


def _result(method: str, pct_r: float, lod: float, full_donor: float,
            full_recipient: float) -> PCRChimerism:
    flags = []
    if pct_r > 100.0:
        flags.append("out_of_range")        # above the calibrator: assay noise or a mix-up
    pct_d = min(100.0, max(0.0, 100.0 - pct_r))
    below = lod_status(pct_d, lod)
    if below:
        flags.append(f"{below}_below_lod")
    return PCRChimerism(method, pct_r, pct_d, reported_value(pct_d, lod),
                        classify_sample(pct_d, full_donor, full_recipient), flags)


def ddpcr_chimerism(marker_positive, marker_total, reference_positive, reference_total, *,
                    marker_copies=1.0, reference_copies=2.0, lod=0.1,
                    full_donor=95.0, full_recipient=5.0) -> PCRChimerism:
    """ddPCR result with LOD and classification (default LOD 0.1%, typical of ddPCR)."""
    pct = ddpcr_percent_recipient(marker_positive, marker_total, reference_positive,
                                  reference_total, marker_copies=marker_copies,
                                  reference_copies=reference_copies)
    return _result("ddPCR", pct, lod, full_donor, full_recipient)


def qpcr_chimerism(ct_marker, ct_reference, ct_marker_pre, ct_reference_pre, *,
                   efficiency=1.0, lod=0.1, full_donor=95.0,
                   full_recipient=5.0) -> PCRChimerism:
    """qPCR (delta-delta-Ct) result with LOD and classification."""
    pct = qpcr_percent_recipient(ct_marker, ct_reference, ct_marker_pre, ct_reference_pre,
                                 efficiency=efficiency)
    return _result("qPCR", pct, lod, full_donor, full_recipient)
