"""What a channel measures, from the names real instruments give their channels."""

from __future__ import annotations

import pytest

from immunomon.fcs.channel_kinds import is_fluorescence, is_scatter, is_time, is_width

# (name, scatter, width, fluorescence): $PnN values read from real files of each instrument
NAMES = [
    ("FSC-A", True, False, False),                       # BD FACSDiva, Attune, MACSQuant
    ("SSC-W", True, True, False),
    ("FSC PMT-A", True, False, False),                   # BD FACSAria II
    ("FSC LinH", True, False, False),                    # Stratedigm
    ("405nm 405SSC (405/10) LogH", True, False, False),  # Stratedigm violet side scatter
    ("FSCA", True, False, False),                        # Cytek xP3
    ("FSCW", True, True, False),
    ("SSC1-Area", True, False, False),                   # MoFlo Astrios
    ("FSC-Width", True, True, False),                    # MoFlo XDP
    ("FS INT LIN", True, False, False),                  # Beckman Coulter Gallios
    ("SS Log", True, False, False),                      # Beckman Coulter CyAn
    ("FS-Peak-Lin", True, False, False),                 # iCyt Eclipse
    ("FS", True, False, False),                          # Beckman Coulter XL
    ("FS TOF", True, True, False),                       # Navios time of flight
    ("Violet SSC-A", True, False, False),
    ("Forward Scatter (FSC-HLin)", True, False, False),  # Guava
    ("FITC-A", False, False, True),
    ("FL1 INT LOG", False, False, True),
    ("SSEA4", False, False, True),                       # a marker, not side scatter
    ("L3 450-50W", False, False, True),
    ("Ir191Di", False, False, True),                     # mass cytometry
    ("Time", False, False, False),
    ("Pulse Width", False, True, False),                 # CyAn
    ("Width", False, True, False),                       # Accuri C6
    ("HDR-T", False, False, False),                      # MACSQuant
    ("Event_length", False, False, False),
    ("BL1-W", False, True, False),                       # Attune: a pulse width, no marker
    ("EV", False, False, False),                         # iCyt's event counter
    ("Unused6", False, False, False),                    # iCyt: a detector left unused
    ("DOUBLET", False, False, False),                    # CyFlow's doublet flag
    ("Original_ID", False, False, False),                # flowCore: the event's number
]


@pytest.mark.parametrize("name, scatter, width, fluorescence", NAMES)
def test_channel_kind_from_instrument_names(name, scatter, width, fluorescence):
    assert (is_scatter(name), is_width(name), is_fluorescence(name)) == \
        (scatter, width, fluorescence)


def test_the_clock():
    assert is_time("Time") and is_time("TIME") and is_time("Time MSW") and is_time("HDR-T")
    assert not is_time("FSC-A")
