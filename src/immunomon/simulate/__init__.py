"""Simulated blood samples with a known label for every event.

``pbmc_sample`` produces what a 3-laser digital cytometer (violet 405 nm, blue
488 nm, red 640 nm; 18-bit linear scale) records from a lysed, stained
post-transplant blood sample with counting beads: scatter, a Time channel and
14 fluorescence detectors.  Each event belongs to one leaf of ``HIERARCHY``;
``SimulatedSample.mask(name)`` gives the truth for any population.

The model, step by step (all vectorised; one loop over populations, none over
events):

1. leaf labels are drawn from the population frequencies (fraction of parent);
2. per event, scatter (log-normal, FSC/SSC correlated) and a "true signal" per
   detector: the stain (log-normal around the population's median, with a
   shared per-cell factor) plus autofluorescence (cell-type scaled);
3. doublets are the sum of two leukocytes, with FSC-H below 2x a singlet's;
4. arrival times follow a Poisson process; a clog lowers the rate and the
   intensities inside its window; a batch shift scales marker intensities;
5. observed = true @ spillover + noise (electronic, and photon noise growing
   with the detected signal), clipped at the top of the scale.  Compensating
   with the inverse of the matrix written to the sample recovers the true
   signal up to that noise, negatives included.

``generate(design, ...)`` runs the same model for any ``Design`` (panel,
instrument, populations); ``simulate.stress`` builds labelled scenarios on it
(mostly-positive parents, minor populations, spillover spreading, doublets,
enriched samples, dim shoulders, a mouse splenocyte and an ICS panel).
"""

from . import blood as _blood
from . import stress
from . import trial as _trial
from .blood import *  # noqa: F401,F403 - the public names of both modules
from .trial import *  # noqa: F401,F403

__all__ = [*_blood.__all__, *_trial.__all__, "stress"]
