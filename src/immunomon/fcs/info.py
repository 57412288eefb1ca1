"""What ``immunomon info`` says about a file: a summary of HEADER and TEXT."""

from __future__ import annotations

from .datasets import dataset_to_gate, fill_descriptions
from .reader import read_fcs_metadata

_DATATYPES = {"I": "integer", "F": "float32", "D": "float64", "A": "ASCII"}


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
    return {
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
                      "log_decades": c.amplification[0]} for c in meta.channel_info],
        "warnings": list(meta.warnings) + ([note] if note else []),
    }


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
        f"  channels   : {len(desc['channels'])}",
    ]
    width = max((len(c["name"]) for c in desc["channels"]), default=0)
    marker_width = max((len(c["marker"] or "") for c in desc["channels"]), default=0)
    for i, c in enumerate(desc["channels"], start=1):
        # the declared range, which T: auto reads (and the events may overrun)
        extra = f"  range {c['range']:,.0f}" + (f", log {c['log_decades']:g} decades"
                                                if c["log_decades"] else "")
        lines.append(f"    {i:>3}  {c['name']:<{width}}  {c['marker'] or '':<{marker_width}}"
                     f"{extra}".rstrip())
    for w in desc["warnings"]:
        lines.append(f"  warning: {w}")
    return "\n".join(lines)
