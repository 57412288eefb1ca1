"""Which data set of a multi-data-set FCS file to gate.

Beckman Coulter analysers (FC500, Gallios, Navios) write each tube twice in one ".LMD"
file: an FCS 2.0 data set at the instrument's old resolution (10-bit: 1,024 levels,
compensated as it was acquired when its $DFCiTOj keywords say so) and an FCS 3.0 data
set of the same events at full resolution (20-bit), uncompensated, with the spillover
matrix to compensate it (Navios, Gallios) or without one (FC500). The same events'
latest version is gated, unless only the first can be compensated. Data sets of other
events (several tubes in one file) are not gated; a note says so.
"""

from __future__ import annotations

import re

from .reader import read_fcs, read_fcs_metadata

_DFC = re.compile(r"^\$DFC\d+TO\d+$", re.IGNORECASE)
#: what the acquisition was, not how its values are stored: a later data set of the same
#: events that leaves these out (a Gallios's FCS 3.0 copy has no $CYT or $DATE) takes
#: them from the first
DESCRIPTIVE = ("$CYT", "$CYTSN", "$DATE", "$BTIM", "$ETIM", "$FIL", "$OP", "$INST", "$SRC",
               "$SYS", "$PROJ", "$EXP", "$SMNO", "$CELLS", "$COM", "$LAST_MODIFIED",
               "$LAST_MODIFIER", "$ORIGINALITY", "$PLATEID", "$PLATENAME", "$WELLID")


def compensated_when_acquired(keywords: dict[str, str]) -> bool:
    """Whether FCS 2.0 $DFCiTOj keywords (the share of FLi subtracted from FLj while
    acquiring) say the stored values are compensated: one of them is not zero."""
    for key, value in keywords.items():
        if _DFC.match(key):
            try:
                if float(value) != 0.0:
                    return True
            except ValueError:
                continue
    return False


def dataset_to_gate(path) -> tuple[int, str | None]:
    """The data set of ``path`` to gate and, when the file holds several, a note on the
    choice: among the data sets of the first one's events ($TOT), the latest FCS version,
    then the one with more channels; but the first where it was compensated when
    acquired and the later one has no spillover matrix to compensate it; the first
    when the others hold other events."""
    first = read_fcs_metadata(path, 0)
    if first.n_datasets == 1:
        return 0, None
    same = {0: first}
    others = 0
    for index in range(1, first.n_datasets):
        meta = read_fcs_metadata(path, index)
        if meta.n_events == first.n_events:
            same[index] = meta
        else:
            others += 1
    best = max(same, key=lambda i: (same[i].version, len(same[i].channel_info), -i))
    notes = []
    if best and same[best].spillover is None and compensated_when_acquired(first.keywords):
        notes.append(f"data set 0 (FCS {first.version}) gated, as compensated when acquired "
                     f"($DFCiTOj): data set {best} holds the same events uncompensated, with "
                     "no spillover matrix")
        best = 0
    elif best:
        chosen = same[best]
        notes.append(f"data set {best} (FCS {chosen.version}, {len(chosen.channel_info)} "
                     f"channels) gated: the same {first.n_events:,} events as data set 0 "
                     f"(FCS {first.version}, {len(first.channel_info)} channels) in the "
                     "latest version")
    if others:
        notes.append(f"the file holds {first.n_datasets} data sets; {others} of other "
                     "events are not gated (read them with read_fcs(path, dataset=N))")
    return best, "; ".join(notes) or None


def fill_descriptions(path, index: int, keywords: dict[str, str]) -> None:
    """Give data set ``index``'s ``keywords`` the first data set's ``DESCRIPTIVE`` ones
    it lacks (a later data set of the same events)."""
    if not index:
        return
    first = read_fcs_metadata(path, 0).keywords
    for key in DESCRIPTIVE:
        if key in first and not keywords.get(key, "").strip():
            keywords[key] = first[key]


def read_fcs_to_gate(path):
    """``read_fcs`` of the data set ``dataset_to_gate`` picks, its note among the
    sample's warnings, and the first data set's ``DESCRIPTIVE`` keywords where it
    lacks them."""
    index, note = dataset_to_gate(path)
    sample = read_fcs(path, index)
    fill_descriptions(path, index, sample.keywords)
    if note:
        sample.warnings.append(note)
    return sample
