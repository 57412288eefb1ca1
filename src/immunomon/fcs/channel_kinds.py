"""What a channel measures, from its name ($PnN) as instruments write it.

Scatter is FSC/SSC on BD, Cytek, Attune, MACSQuant and most others ("FSC-A", "SSC LinH",
"FSC PMT-A", "FSCA", "SSC1-Area"), FS/SS on Beckman Coulter and iCyt analysers ("FS INT
LIN", "SS Log", "FS-Peak-Lin", "FS"), and violet side scatter beside a fluorescence
name ("405nm 405SSC (405/10) LogH", "Violet SSC-A", "VSSC-A").
"""

from __future__ import annotations

import re

_SCATTER = re.compile(
    r"^(?:[FS]SC|[FS]S(?![A-Z]))"      # FSC..., SSC..., or FS / SS as a word of their own
    r"|(?<![A-Z])[VB]?[FS]SC(?![A-Z])"  # ...405SSC, Violet SSC-A, VSSC-A, (FSC-HLin)
    r"|SCATTER",                        # "Forward Scatter", "Side Scatter"
    re.IGNORECASE)
_WIDTH = re.compile(r"(?:\bW|WIDTH|TOF|[FS]SCW)$", re.IGNORECASE)
# time, event counters, pulse shape, detectors left unused (iCyt "Unused6"), a doublet
# discriminator's flag (CyFlow "DOUBLET"), each event's number in the file it was cut from
# (flowCore's "Original_ID")
_NOT_MEASURED = ("TIME", "EVENT", "WIDTH", "PULSE", "HDR", "UNUSED", "DOUBLET", "ORIGINAL_ID")
_COUNTERS = ("EV",)                                          # an iCyt's event counter


def is_scatter(name: str) -> bool:
    """A forward- or side-scatter channel."""
    return bool(_SCATTER.search(name.strip()))


def is_time(name: str) -> bool:
    """The acquisition clock ("Time", "TIME", "Time MSW", a MACSQuant's "HDR-T")."""
    label = name.strip().upper()
    return label.startswith("TIME") or label == "HDR-T"


def is_width(name: str) -> bool:
    """A pulse-width channel ("FSC-W", "FSC-Width", "FS TOF", "FSCW"): doublets are
    wider, not lower."""
    return bool(_WIDTH.search(name.strip()))


def is_fluorescence(name: str) -> bool:
    """Neither scatter nor the clock, an event counter, a pulse width ("BL1-W") or an
    unused detector."""
    label = name.strip().upper()
    return not (is_scatter(name) or is_width(name) or label.startswith(_NOT_MEASURED)
                or label in _COUNTERS)
