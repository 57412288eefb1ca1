"""What ``immunomon info`` says about a file: a summary of HEADER and TEXT."""

from __future__ import annotations

import re

from .channel_kinds import is_scatter, is_time
from .datasets import dataset_to_gate, fill_descriptions
from .reader import read_fcs_metadata

_DATATYPES = {"I": "integer", "F": "float32", "D": "float64", "A": "ASCII"}


#: a mass cytometer's channel: a metal and its mass, then Di or Dd (``Yb176Di``,
#: ``176YbDi``, ``Ch1Di``, ``(Yb176)Dd``), after a marker's name in older software's
#: (``CD123(Eu151)Dd``, ``CD19(Nd142)Di``)
_METAL = re.compile(r"(?:^|[^A-Za-z])(?:[A-Z][a-z]?\d{2,3}|\d{2,3}[A-Z][a-z]?|Ch\d+)Di\b|"
                    r"(?:^|\()[A-Z][a-z]?\d{2,3}\)?D[id]$")
#: an analogue analyser's fluorescence channels (``FL1-H``, ``FL2-A``, ``FL3``)
_ANALOGUE = re.compile(r"^FL\d+(-[HAW])?$", re.I)


def kind_of_file(desc: dict) -> tuple[str, str] | None:
    """What the values of a described file look like, and the recipe of docs/recipes.md
    for that kind, from the channels' names and ranges alone; None where they do not say
    (a guess to start from: `template check` shows what the values are)."""
    channels = [c for c in desc["channels"]
                if not is_scatter(c["name"]) and not is_time(c["name"])]
    if not channels:
        return None
    names = [c["name"] for c in channels]
    top = max(float(c["range"] or 0) for c in channels)
    if sum(bool(_METAL.search(n)) for n in names) >= max(2, len(names) // 2):
        return "mass cytometry: ion counts", "recipe 5"
    if any(n.startswith(("Comp-", "FJComp-")) for n in names):
        return ("compensated linear values exported from FlowJo (compensation: none, "
                "logicle)", "recipes 1 and 2")
    if any(c["log_decades"] for c in channels):
        # the reader turns log-amplified channel numbers back into signal (to 10,000)
        return ("an older analyser's log-amplified signal (logicle, T: auto; compensation: "
                "none if made at acquisition)", "recipes 1 and 2")
    # a digital instrument's pulse measures: the area and the height (or width) of one
    # detector (a MACSQuant declares a range of 1,000 over its raw signal)
    pulses = {n.rsplit("-", 1)[0] for n in names if n.endswith(("-H", "-W"))}
    if top >= 65_536 or pulses & {n.rsplit("-", 1)[0] for n in names if n.endswith("-A")}:
        return "raw values of a digital cytometer", "recipes 1 and 2"
    if all(_ANALOGUE.match(n) for n in names) and top <= 1024:
        return "an older analyser's channel numbers (linear)", "recipe 4"
    if not desc["spillover"] and top <= 8192:
        return "values on a display scale (linear)", "recipe 3, or lysed whole blood"
    return None


def describe_file(path) -> dict:
    """A JSON-ready summary of one FCS file (HEADER and TEXT only): of the data set
    ``immunomon gate`` gates, the first unless a later one holds the same events in a
    later FCS version (``dataset_to_gate``)."""
    index, note = dataset_to_gate(path)
    meta = read_fcs_metadata(path, index)
    kw = dict(meta.keywords)
    fill_descriptions(path, index, kw)
    kinds = sorted({c.datatype for c in meta.channel_info})
    widths = sorted({c.bits for c in meta.channel_info})
    out = {
        "file": str(path),
        "fcs_version": meta.version,
        "datasets": meta.n_datasets,
        "dataset": index,
        "instrument": kw.get("$CYT"),
        # the acquisition trigger: events a gate exported start far above it
        "trigger": kw.get("$TR") or kw.get("THRESHOLD"),
        "date": kw.get("$DATE"),
        "start_time": kw.get("$BTIM"),
        "events": meta.n_events,
        "datatype": "/".join(_DATATYPES[k] for k in kinds),
        "bits": widths,
        "byte_order": kw.get("$BYTEORD"),
        "spillover": meta.spillover is not None,
        "spillover_channels": list(meta.spillover.detectors) if meta.spillover else [],
        # a matrix that compensates nothing: the compensation lives elsewhere (a workspace)
        "spillover_identity": bool(meta.spillover and len(meta.spillover.detectors) > 1
                                   and meta.spillover.is_identity),
        "channels": [{"name": c.name, "marker": c.marker, "range": c.range, "gain": c.gain,
                      "log_decades": c.amplification[0], "datatype": c.datatype}
                     for c in meta.channel_info],
        "warnings": list(meta.warnings) + ([note] if note else []),
    }
    kind = kind_of_file(out)
    out["looks_like"] = {"values": kind[0], "recipe": kind[1]} if kind else None
    return out


def format_description(desc: dict) -> str:
    """The human-readable form of ``describe_file``."""
    lines = [
        f"{desc['file']}",
        f"  FCS {desc['fcs_version']}"
        + (f", {desc['datasets']} data sets (showing data set {desc['dataset']}, the one gated)"
           if desc["datasets"] > 1 else ""),
        f"  instrument : {desc['instrument'] or '-'}",
        *([f"  trigger    : {desc['trigger']}"] if desc.get("trigger") else []),
        f"  acquired   : {desc['date'] or '-'} {desc['start_time'] or ''}".rstrip(),
        f"  events     : {desc['events']:,}",
        f"  data type  : {desc['datatype']} ({'/'.join(map(str, desc['bits']))} bit), "
        f"byte order {desc['byte_order'] or '-'}",
        "  spillover  : " + (f"yes, {len(desc['spillover_channels'])} channels"
                              + (", the identity: compensating with it changes nothing"
                                 if desc.get("spillover_identity") else "")
                              if desc["spillover"] else "no"),
        *([f"  looks like : {desc['looks_like']['values']} (docs/recipes.md, "
            f"{desc['looks_like']['recipe']})"] if desc.get("looks_like") else []),
        f"  channels   : {len(desc['channels'])}",
    ]
    width = max((len(c["name"]) for c in desc["channels"]), default=0)
    marker_width = max((len(c["marker"] or "") for c in desc["channels"]), default=0)
    for i, c in enumerate(desc["channels"], start=1):
        # the declared range, which T: auto reads (and the events may overrun)
        log = ""
        if c["log_decades"]:
            # on float values the events decide how they are read (read_fcs says which)
            log = f", log {c['log_decades']:g} decades" + (
                " declared on floats" if c.get("datatype", "I") != "I" else "")
        extra = f"  range {c['range']:,.0f}{log}"
        lines.append(f"    {i:>3}  {c['name']:<{width}}  {c['marker'] or '':<{marker_width}}"
                     f"{extra}".rstrip())
    for w in desc["warnings"]:
        lines.append(f"  warning: {w}")
    return "\n".join(lines)
