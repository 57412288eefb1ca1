"""Which data set of a multi-data-set FCS file to gate.

Beckman Coulter analysers (FC500, Gallios, Navios) write each tube twice in one ".LMD"
file: an FCS 2.0 data set at the instrument's old resolution (10-bit on an FC500: 1,024
levels, four of its channels) and an FCS 3.0 data set of the same events at full
resolution (20-bit, every channel). Gating the first would cut 1,024 steps where the
instrument measured a million, so the same events' latest version is gated. Data sets
of other events (several tubes in one file) are not gated; a note says so.
"""

from __future__ import annotations

from .reader import read_fcs, read_fcs_metadata


def dataset_to_gate(path) -> tuple[int, str | None]:
    """The data set of ``path`` to gate and, when the file holds several, a note on the
    choice: among the data sets of the first one's events ($TOT), the latest FCS version,
    then the one with more channels; the first when the others hold other events."""
    first = read_fcs_metadata(path, 0)
    if first.n_datasets == 1:
        return 0, None
    candidates = [(first.version, len(first.channel_info), 0)]
    others = 0
    for index in range(1, first.n_datasets):
        meta = read_fcs_metadata(path, index)
        if meta.n_events == first.n_events:
            candidates.append((meta.version, len(meta.channel_info), index))
        else:
            others += 1
    version, channels, chosen = max(candidates, key=lambda c: (c[0], c[1], -c[2]))
    notes = []
    if chosen:
        notes.append(f"data set {chosen} (FCS {version}, {channels} channels) gated: the "
                     f"same {first.n_events:,} events as data set 0 (FCS {first.version}, "
                     f"{len(first.channel_info)} channels) in the latest version")
    if others:
        notes.append(f"the file holds {first.n_datasets} data sets; {others} of other "
                     "events are not gated (read them with read_fcs(path, dataset=N))")
    return chosen, "; ".join(notes) or None


def read_fcs_to_gate(path):
    """``read_fcs`` of the data set ``dataset_to_gate`` picks, its note among the
    sample's warnings."""
    index, note = dataset_to_gate(path)
    sample = read_fcs(path, index)
    if note:
        sample.warnings.append(note)
    return sample
