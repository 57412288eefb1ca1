"""Write the public datasets that ship with Python packages to data/*.csv.

The R scripts in this folder read these files, so R and the tests see the
same numbers. Run from this folder: ``python export_datasets.py``.
"""

from pathlib import Path

import lifelines.datasets as ld

here = Path(__file__).parent / "data"
here.mkdir(exist_ok=True)
# Stanford heart transplant programme (Crowley and Hu 1977), counting-process form;
# identical to R's survival::heart.
ld.load_stanford_heart_transplants().to_csv(here / "stanford.csv", index=False)
# Waltons: lifespans of two strains of fruit flies (lifelines' KM example).
ld.load_waltons().to_csv(here / "waltons.csv", index=False)
# Rossi recidivism data (Rossi, Berk and Lenihan 1980).
ld.load_rossi().to_csv(here / "rossi.csv", index=False)
