"""Paths of the test data committed under tests/data (nothing outside the repository)."""

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
COMPLIANCE = DATA / "gatingml2-compliance"      # ISAC Gating-ML 2.0 suite (FlowKit copy)
REAL_FCS = DATA / "fcs"                          # small real files from other instruments
