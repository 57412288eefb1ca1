"""Figures of the graft-versus-myeloma report (matplotlib, PNG and SVG).

Each function draws one figure from plain tables and writes ``<stem>.png`` and
``<stem>.svg`` (under a temporary name, then renamed), returning both paths.
matplotlib is imported inside the functions with the Agg backend, so importing
this module is light and no display is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_path

__all__ = ["trajectories_figure", "chimerism_figure", "swimmer_figure", "incidence_figure",
           "survival_figure", "forest_figure", "heatmap_figure", "gvm_figures",
           "at_risk", "text_colour", "relative_luminance"]

GVHD_COLOUR, NO_GVHD_COLOUR = "#c0392b", "#2c7fb8"
RATIO_MEASURES = ("fold change", "geometric mean ratio", "hazard ratio",
                  "subdistribution hazard ratio")


def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def _save(fig, stem: Path) -> tuple[Path, Path]:
    plt = _pyplot()
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        for ext in ("png", "svg"):
            path = stem.with_suffix(f".{ext}")
            with atomic_path(path, suffix=f".{ext}") as tmp:
                fig.savefig(tmp, dpi=110 if ext == "png" else None, bbox_inches="tight")
            paths.append(path)
    finally:
        plt.close(fig)
    return paths[0], paths[1]


def _empty(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#777")
    ax.set_xticks([])
    ax.set_yticks([])


def _gvhd_patients(endpoints: pd.DataFrame) -> set:
    return set(endpoints.loc[endpoints["agvhd_2_4_event"] == 1, "patient_id"].astype(str))


def at_risk(times, ticks) -> list[int]:
    """Numbers still at risk (time >= tick) at each tick."""
    t = np.asarray(times, dtype=float)
    return [int((t >= x).sum()) for x in ticks]


def _risk_table(ax, rows: dict[str, np.ndarray], ticks) -> None:
    """Numbers at risk written under the x axis, one line per group."""
    for k, (label, times) in enumerate(rows.items()):
        y = -0.22 - 0.08 * k
        ax.text(-0.02, y, label, transform=ax.transAxes, ha="right", va="center",
                fontsize=7)
        for x, n in zip(ticks, at_risk(times, ticks)):
            ax.text(x, y, str(n), transform=ax.get_xaxis_transform(), ha="center",
                    va="center", fontsize=7)
    ax.text(0.0, -0.14, "at risk", transform=ax.transAxes, fontsize=7, color="#555")


def _ticks(max_day: float) -> np.ndarray:
    step = 90 if max_day > 360 else 60 if max_day > 180 else 30
    return np.arange(0, max_day + 1, step)


# ---------------------------------------------------------------------------


def trajectories_figure(immune, endpoints, populations, stem) -> tuple[Path, Path]:
    """log10 cells/uL per population over days after transplant, one line per
    patient, coloured by acute GVHD II-IV at any time."""
    plt = _pyplot()
    pops = list(populations)
    fig, axes = plt.subplots(1, max(len(pops), 1), figsize=(3.6 * max(len(pops), 1), 3.4),
                             squeeze=False)
    gvhd = _gvhd_patients(endpoints)
    for ax, pop in zip(axes[0], pops):
        sub = immune[immune["population"] == pop].sort_values("day")
        if sub.empty:
            _empty(ax)
        for pid, g in sub.groupby("patient_id"):
            colour = GVHD_COLOUR if str(pid) in gvhd else NO_GVHD_COLOUR
            ax.plot(g["day"], np.maximum(g["cells_per_ul"], 1e-2), marker="o", ms=3,
                    lw=1, color=colour, alpha=0.8)
        ax.set_yscale("log")
        ax.set_title(pop, fontsize=10)
        ax.set_xlabel("day after transplant")
    axes[0][0].set_ylabel("cells/uL")
    handles = [plt.Line2D([], [], color=GVHD_COLOUR, label="acute GVHD II-IV (any time)"),
               plt.Line2D([], [], color=NO_GVHD_COLOUR, label="no acute GVHD II-IV")]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8,
               bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    return _save(fig, stem)


def chimerism_figure(chimerism, stem) -> tuple[Path, Path]:
    """% donor per lineage over days after transplant, one line per patient."""
    plt = _pyplot()
    lineages = sorted(chimerism["lineage"].unique()) if len(chimerism) else []
    fig, axes = plt.subplots(1, max(len(lineages), 1),
                             figsize=(3.6 * max(len(lineages), 1), 3.2), squeeze=False)
    if not lineages:
        _empty(axes[0][0], "no chimerism data")
    for ax, lin in zip(axes[0], lineages):
        sub = chimerism[chimerism["lineage"] == lin].sort_values("day")
        for _, g in sub.groupby("patient_id"):
            ax.plot(g["day"], g["percent_donor"], marker="o", ms=3, lw=1, alpha=0.8)
        ax.set_ylim(min(0, sub["percent_donor"].min() - 2) if len(sub) else 0, 102)
        ax.axhline(95, color="#999", lw=0.8, ls="--")
        ax.set_title(f"{lin} donor chimerism", fontsize=10)
        ax.set_xlabel("day after transplant")
    axes[0][0].set_ylabel("% donor")
    fig.tight_layout()
    return _save(fig, stem)


def swimmer_figure(endpoints, intervals, events, stem) -> tuple[Path, Path]:
    """One bar per patient: follow-up, lenalidomide exposure, GVHD onsets,
    responses, relapse/progression and death."""
    plt = _pyplot()
    ep = endpoints.sort_values("end_day" if "end_day" in endpoints else "os_days")
    n = len(ep)
    fig, ax = plt.subplots(figsize=(9, 0.35 * n + 1.8))
    drug = intervals[intervals["covariate"].astype(str).str.startswith("on_")] \
        if len(intervals) else intervals
    ev = events if events is not None else pd.DataFrame(columns=["patient_id", "day",
                                                                   "event", "value"])
    for y, r in enumerate(ep.itertuples()):
        pid = str(r.patient_id)
        end = float(r.os_days)
        ax.barh(y, end, color="#ddd", height=0.6)
        for d in (drug[drug["patient_id"].astype(str) == pid].itertuples()
                  if len(drug) else []):
            ax.barh(y, d.stop - d.start, left=d.start, color="#7fbf7b", height=0.6)
        if r.agvhd_2_4_event == 1:
            ax.plot(r.agvhd_2_4_days, y, marker="v", color=GVHD_COLOUR, ms=7)
        mine = ev[ev["patient_id"].astype(str) == pid] if len(ev) else ev
        for e in mine[mine["event"] == "response"].itertuples() if len(mine) else []:
            ax.text(e.day, y + 0.33, str(e.value), fontsize=6, ha="center")
        for e in mine[mine["event"] == "agvhd_onset"].itertuples() if len(mine) else []:
            ax.plot(e.day, y, marker="|", color=GVHD_COLOUR, ms=9)
        prog = getattr(r, "progression_day", np.nan)
        if prog == prog and prog is not None:
            ax.plot(prog, y, marker="D", color="#6a3d9a", ms=6)
        if r.os_event == 1:
            ax.plot(end, y, marker="X", color="black", ms=8)
        else:
            ax.annotate("", xy=(end + 12, y), xytext=(end, y),
                        arrowprops=dict(arrowstyle="->", color="#555"))
    ax.set_yticks(range(n))
    ax.set_yticklabels([str(p) for p in ep["patient_id"]], fontsize=8)
    ax.set_xlabel("day after transplant")
    handles = [plt.Rectangle((0, 0), 1, 1, color="#ddd", label="follow-up"),
               plt.Rectangle((0, 0), 1, 1, color="#7fbf7b", label="on drug"),
               plt.Line2D([], [], marker="v", color=GVHD_COLOUR, ls="",
                          label="acute GVHD II-IV onset"),
               plt.Line2D([], [], marker="D", color="#6a3d9a", ls="",
                          label="relapse/progression"),
               plt.Line2D([], [], marker="X", color="black", ls="", label="death")]
    ax.legend(handles=handles, fontsize=7, loc="upper center", ncol=5,
              bbox_to_anchor=(0.5, -0.12))
    fig.tight_layout()
    return _save(fig, stem)


def _step(ax, t, y, **kw) -> None:
    """A cumulative incidence curve: 0 at day 0, steps at each event time."""
    ax.step(np.r_[0, t], np.r_[0.0, y], where="post", **kw)


def incidence_figure(endpoints, plan, stem) -> tuple[Path, Path]:
    """Cumulative incidence of relapse and NRM (Aalen-Johansen), overall and by
    acute GVHD II-IV at the landmark, with numbers at risk."""
    from ..analysis import cumulative_incidence
    from ..analysis.questions import landmark_competing

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    data = pd.DataFrame({"time": endpoints["relapse_days"].to_numpy(float),
                         "status": endpoints["relapse_event"].to_numpy(int)})
    ax = axes[0]
    if (data["status"] > 0).any():
        ci = cumulative_incidence(data, "time", "status")
        for cause, label, colour in ((1, "relapse/progression", "#6a3d9a"),
                                     (2, "non-relapse mortality", "#555")):
            cur = ci.table[ci.table["cause"] == cause]
            if len(cur):
                _step(ax, cur["time"].to_numpy(), cur["incidence"].to_numpy(), color=colour,
                      label=label)
        ax.legend(fontsize=8, loc="upper left")
    else:
        _empty(ax, "no relapse or NRM")
    ticks = _ticks(float(data["time"].max()))
    ax.set_xticks(ticks)
    ax.set_ylim(0, 1)
    ax.set_title("Cumulative incidence (all patients)", fontsize=10)
    ax.set_xlabel("day after transplant")
    _risk_table(ax, {"all": data["time"].to_numpy()}, ticks)
    ax = axes[1]
    lm = landmark_competing(endpoints, plan.landmark_day)
    groups = {}
    if len(lm) and (lm["status"] == 1).any():
        ci = cumulative_incidence(lm, "time", "status", group="gvhd", causes=[1])
        for g, colour in (("GVHD by landmark", GVHD_COLOUR), ("no GVHD", NO_GVHD_COLOUR)):
            cur = ci.table[ci.table["group"] == g]
            groups[g] = lm.loc[lm["gvhd"] == g, "time"].to_numpy()
            if len(cur):
                _step(ax, cur["time"].to_numpy() + plan.landmark_day,
                      cur["incidence"].to_numpy(), color=colour, label=g)
            elif len(groups[g]):
                ax.plot([plan.landmark_day, plan.landmark_day + groups[g].max()], [0, 0],
                        color=colour, label=f"{g} (no relapse)")
        ax.legend(fontsize=8, loc="upper left")
    else:
        _empty(ax, "no relapse after the landmark")
    ax.set_ylim(0, 1)
    ax.set_xticks(ticks)
    ax.set_title(f"Relapse by acute GVHD II-IV at day {plan.landmark_day:g} (landmark)",
                 fontsize=10)
    ax.set_xlabel("day after transplant")
    if groups:
        _risk_table(ax, {g: t + plan.landmark_day for g, t in groups.items()}, ticks)
    fig.tight_layout()
    return _save(fig, stem)


def survival_figure(endpoints, stem) -> tuple[Path, Path]:
    """Kaplan-Meier progression-free and overall survival, log-log 95% bands,
    numbers at risk."""
    from ..analysis import kaplan_meier

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (days, event, title) in zip(axes, (("pfs_days", "pfs_event", "PFS"),
                                               ("os_days", "os_event", "Overall survival"))):
        data = pd.DataFrame({"t": endpoints[days].to_numpy(float),
                             "e": (endpoints[event].to_numpy() == 1).astype(int)})
        km = kaplan_meier(data, "t", "e").table
        t = km["time"].to_numpy()
        ax.step(np.r_[0, t], np.r_[1.0, km["survival"]], where="post", color="#333")
        ax.fill_between(np.r_[0, t], np.r_[1.0, km["lower"].fillna(0)],
                        np.r_[1.0, km["upper"].fillna(1)], step="post", alpha=0.15,
                        color="#333")
        cens = km[km["n_censor"] > 0]
        ax.plot(cens["time"], cens["survival"], "|", color="#333", ms=8)
        ax.set_ylim(0, 1.02)
        ticks = _ticks(float(data["t"].max()))
        ax.set_xticks(ticks)
        ax.set_title(f"{title} (Kaplan-Meier, 95% log-log band)", fontsize=10)
        ax.set_xlabel("day after transplant")
        _risk_table(ax, {"all": data["t"].to_numpy()}, ticks)
    fig.tight_layout()
    return _save(fig, stem)


def forest_figure(answers: pd.DataFrame, stem) -> tuple[Path, Path]:
    """Ratio effect sizes (fold changes, hazard ratios) with intervals, log scale.
    Firth-penalised estimates (separated models) are open diamonds; estimates or
    limits at 0 or infinity are drawn as arrows at the edge."""
    plt = _pyplot()
    keep = answers[answers["effect_measure"].astype(str).str.startswith(RATIO_MEASURES)
                   & answers["estimate"].notna()]
    keep = keep[~keep["question"].astype(str).str.endswith(".mixed")]
    n = len(keep)
    fig, ax = plt.subplots(figsize=(8, 0.24 * n + 1.4))
    if n == 0:
        _empty(ax)
        return _save(fig, stem)
    finite = keep[np.isfinite(keep["estimate"]) & (keep["estimate"] > 0)]
    vals = np.r_[finite["estimate"], finite["lower"].dropna(), finite["upper"].dropna()]
    vals = vals[np.isfinite(vals) & (vals > 0)]
    lo, hi = (min(vals.min(), 0.1), max(vals.max(), 10)) if len(vals) else (0.1, 10)
    lo, hi = max(lo, 1e-3), min(hi, 1e3)
    for y, r in enumerate(keep.itertuples()):
        colour = "#b2182b" if r.label == "primary" else "#444"
        est = r.estimate
        if not np.isfinite(est) or est <= 0:
            x = lo if est <= 0 else hi
            ax.annotate("", xy=(x, y), xytext=(1, y),
                        arrowprops=dict(arrowstyle="->", color=colour))
            continue
        if pd.notna(r.lower) and pd.notna(r.upper):
            left, right = max(r.lower, lo), min(r.upper, hi)
            ax.plot([left, right], [y, y], color=colour, lw=1.2)
            for edge, limit in ((lo, r.lower), (hi, r.upper)):
                if not lo <= limit <= hi:   # an interval running off the scale
                    ax.annotate("", xy=(edge, y), xytext=(est, y),
                                arrowprops=dict(arrowstyle="->", color=colour, lw=0.8))
        firth = getattr(r, "estimator", "") == "Firth"
        ax.plot(min(max(est, lo), hi), y, "D" if firth else "s", color=colour, ms=4.5,
                mfc="white" if firth else colour)
    ax.axvline(1, color="#999", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlim(lo / 1.2, hi * 1.2)
    ax.set_yticks(range(n))
    ax.set_yticklabels([str(q) for q in keep["question"]], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ratio (fold change or hazard ratio), log scale; red: primary; "
                  "open diamond: Firth-penalised")
    fig.tight_layout()
    return _save(fig, stem)


def relative_luminance(rgb) -> float:
    """WCAG relative luminance of an sRGB colour (components 0-1)."""
    c = np.asarray(rgb, float)[:3]
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(linear @ [0.2126, 0.7152, 0.0722])


def text_colour(background) -> str:
    """Black or white, whichever contrasts more with ``background`` (WCAG ratio)."""
    lum = relative_luminance(background)
    return "black" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "white"


def heatmap_figure(matrix: pd.DataFrame, stem) -> tuple[Path, Path]:
    """Spearman rho between immune counts and chimerism at the primary visit."""
    plt = _pyplot()
    k = len(matrix)
    fig, ax = plt.subplots(figsize=(0.7 * k + 3, 0.6 * k + 2.2))
    if k == 0:
        _empty(ax)
        return _save(fig, stem)
    im = ax.imshow(matrix.to_numpy(float), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(k))
    ax.set_xticklabels(matrix.columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k))
    ax.set_yticklabels(matrix.index, fontsize=8)
    for i in range(k):
        for j in range(k):
            v = matrix.iat[i, j]
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color=text_colour(im.cmap(im.norm(v))))
    fig.colorbar(im, ax=ax, label="Spearman rho")
    fig.tight_layout()
    return _save(fig, stem)


def gvm_figures(tables: dict, answers: pd.DataFrame, matrix: pd.DataFrame, plan,
                folder) -> dict[str, tuple[Path, Path]]:
    """Every figure of the report, keyed by name."""
    folder = Path(folder)
    ep = tables["endpoints"]
    return {
        "trajectories": trajectories_figure(tables["immune"], ep, plan.populations,
                                            folder / "trajectories"),
        "chimerism": chimerism_figure(tables["chimerism"], folder / "chimerism"),
        "swimmer": swimmer_figure(ep, tables["intervals"], tables["events"],
                                  folder / "swimmer"),
        "incidence": incidence_figure(ep, plan, folder / "cumulative_incidence"),
        "survival": survival_figure(ep, folder / "kaplan_meier"),
        "forest": forest_figure(answers, folder / "forest"),
        "correlations": heatmap_figure(matrix, folder / "correlations"),
    }
