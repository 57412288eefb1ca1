"""Electropherograms of a raw-trace sample, one panel per locus, for the page.

Each panel shows the sample's baseline-corrected signal in the locus's dye over the
locus's size range, with the donor alleles marked in blue and the recipient's in red
(an allele both carry in purple), and the locus's % donor in the title.
"""

from __future__ import annotations

import math

import numpy as np

_PEOPLE_COLOURS = ("#1f5fbf", "#2a9d8f", "#e9c46a")
_RECIPIENT = "#c0392b"
_SHARED = "#7b3fa0"
_DYE_COLOURS = {"B": "#1f3fbf", "G": "#2e8b57", "Y": "#111111", "R": "#c0392b",
                "P": "#7b3fa0", "O": "#e67e22"}


def locus_figures(entry: dict, result, sample) -> list:
    """``[(title, figure)]``: one figure for the sample, a panel per informative locus."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    people = [g.person for g in result.references]
    recipient = people[-1]
    alleles = {g.person: g.loci for g in result.references}
    loci = [r for r in sample.loci if r.locus in entry["ranges"]]
    if not loci:
        return []
    cols = 4
    rows = math.ceil(len(loci) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.1 * rows), squeeze=False)
    bp = entry["bp"]
    for ax, r in zip(axes.ravel(), loci):
        dye, low, high = entry["ranges"][r.locus]
        channel = entry["dyes"].index(dye)
        inside = (bp >= low) & (bp <= high)
        y = entry["signal"][channel][inside]
        ax.plot(bp[inside], y, color=_DYE_COLOURS.get(dye, "#333333"), lw=0.8)
        top = float(np.max(y)) if len(y) else 1.0
        ax.set_xlim(low, high)
        ax.set_ylim(min(0.0, float(np.min(y)) if len(y) else 0.0), max(top * 1.25, 50.0))
        owners: dict = {}
        sizes: dict = {}
        for p in people:
            for a in alleles[p].get(r.locus, ()):
                owners.setdefault(a.name, []).append(p)
                sizes.setdefault(a.name, []).append(a.size)
        for name, who in owners.items():
            size = float(np.nanmean(sizes[name])) if np.isfinite(sizes[name]).any() \
                else math.nan
            if not math.isfinite(size):
                continue
            if len(who) > 1:
                colour = _SHARED
            elif who[0] == recipient:
                colour = _RECIPIENT
            else:
                colour = _PEOPLE_COLOURS[people.index(who[0]) % len(_PEOPLE_COLOURS)]
            ax.axvline(size, color=colour, lw=0.8, ls="--", alpha=0.8)
            ax.text(size, max(top * 1.12, 45.0), name, color=colour, fontsize=7,
                    ha="center", va="bottom")
        value = "" if math.isnan(r.percent_donor) else f"{r.percent_donor:.1f} % donor"
        state = "" if r.used or not r.informative else " (left out)"
        ax.set_title(f"{r.locus}  {value}{state}" if r.informative else
                     f"{r.locus}  ({r.pattern.replace('_', ' ')})", fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[len(loci):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=_PEOPLE_COLOURS[i % 3], ls="--", label=p)
               for i, p in enumerate(people[:-1])]
    handles += [plt.Line2D([], [], color=_RECIPIENT, ls="--", label=recipient),
                plt.Line2D([], [], color=_SHARED, ls="--", label="shared")]
    fig.legend(handles=handles, loc="upper right", fontsize=7, ncol=len(handles))
    fig.suptitle(f"{sample.sample}: signal (RFU) against size (bp)", fontsize=9, x=0.01,
                 ha="left")
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.05, top=1 - 0.35 / rows,
                        wspace=0.22, hspace=0.55)
    return [(f"{sample.sample}: every locus", fig)]
