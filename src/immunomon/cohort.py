"""The longitudinal cohort: manifest, xarray dataset, NetCDF/Zarr storage.

THE API BELOW IS A CONTRACT: two other modules (the demo-trial simulator with the
`immunomon run` pipeline, and the analysis report) are being written against it
right now. Implement it exactly; replace this notice by a normal docstring.

## The shared contract (three engineers build against it at the same time)

`immunomon.cohort` (owned by the cohort engineer) provides:

```python
@dataclass
class Cohort:
    dataset: xarray.Dataset      # see below
    endpoints: pd.DataFrame      # one row per patient: immunomon.clinical endpoints(...) output
    intervals: pd.DataFrame      # (patient_id, start, stop, covariate, value), (start, stop] days
    events: pd.DataFrame         # long: patient_id, day, event, value (agvhd_onset with grade,
                                 #   cgvhd_onset, response (IMWG category), relapse, death (cause),
                                 #   drug_start/drug_stop with drug name, last_followup)
    adverse_events: pd.DataFrame # the clinical adverse_events table with day columns
    def save(self, path) -> Path     # .nc (NetCDF) or .zarr by suffix; tables stored inside
                                     # the same file/store (e.g. as extra groups or variables),
                                     # written atomically
def load(path) -> Cohort
def read_manifest(path, *, base_dir=None) -> pd.DataFrame
def build(*, manifest, populations=None, chimerism=None, clinical=None,
          provenance=None) -> Cohort
```
- `manifest`: DataFrame or CSV path with columns `file` (path of an FCS file or STR export,
  relative to the manifest), `kind` (`fcs` or `str`), `patient_id`, `collection_date`
  (ISO), `visit` (nominal visit label, e.g. `pre`, `M1`, `M2`, ..., `M12`; order = first
  appearance or an optional `visit_order` column), `material` (`blood`|`marrow`), `lineage`
  (`WB` for whole blood/unsorted, else `CD3`, `CD33`, `CD15`, `CD56`, `CD19`, `CD34`), and
  optional `sample` (the sample name; default: the file name without extension).
- `populations`: the combined table written by `immunomon gate` (`<out>/populations.csv`):
  columns `sample`, `population`, `parent`, `count`, `percent_of_parent`,
  `percent_of_Lymphocytes`, `percent_of_Leukocytes`, `cells_per_ul`, and `median <marker>`,
  `mean <marker>`, `geometric_mean <marker>` per marker. `sample` matches the manifest's
  `sample` (file stem).
- `chimerism`: the per-sample summary DataFrame from `immunomon.chimerism` (read
  `src/immunomon/chimerism/__init__.py` and `workflow.py` / `report.py` for the exact columns:
  sample, lineage, percent donor mean, classification, flags ...).
- `clinical`: an `immunomon.clinical.ClinicalData` (`read_clinical(folder)`; `.endpoints()`,
  `.intervals()`, tables patients/treatments/agvhd/cgvhd/responses/adverse_events/deaths/
  followup; see `docs/clinical.md`).

The dataset: dims `patient`, `timepoint`, `population`, `marker`, `lineage`; coords `patient`
(str), `timepoint` (str, nominal visit, in visit order), `population`, `marker`, `lineage`,
and `day` (patient, timepoint): days after transplant of the actual collection (NaN where no
sample). Variables: `count`, `percent_of_parent`, `cells_per_ul` (patient, timepoint,
population); `mfi` (patient, timepoint, population, marker; the median intensity);
`donor_chimerism_percent` (patient, timepoint, lineage); `qc_flags` (patient, timepoint: number
of QC flags); patient-level clinical variables on `patient` (sex, age, diagnosis, donor_type,
hla_match, conditioning, transplant_date as ISO string, and the endpoints columns). Missing
visits are NaN, never zero. Units in each variable's `attrs["units"]` ("cells/uL", "%",
"events", "days"); provenance in dataset attrs (`input_hashes` as a JSON string of file ->
sha256, `template`, `template_version`, `software_version`, `created`).

`immunomon.simulate` (owned by the demo-trial engineer) gains:
```python
def trial(seed=0, *, n_patients=13, null=False, effects=None) -> Trial
def write_trial(trial, folder, *, events_per_sample=2500) -> Path
```
`Trial` holds in memory: `clinical` (an `immunomon.clinical.ClinicalData` built with
`build_clinical`, or the raw tables), `manifest` (DataFrame as above), `immune` (long DataFrame:
patient_id, visit, day, population, cells_per_ul — the true values the FCS files are drawn
from), `chimerism` (long DataFrame: patient_id, visit, day, lineage, percent_donor), `effects`
(dict of the planted effect sizes), and the STR genotypes. `write_trial` writes FCS files,
STR exports (GeneMapper layout, readable by `immunomon.chimerism`), clinical CSVs (the
`docs/clinical.md` layout) and the manifest CSV into `folder`. The population names are those
of the shipped `post-transplant` template (`gating/post-transplant.yaml`): "T cells", "CD4 T",
"CD8 T", "Treg", "FoxP3+ Treg", "Activated T", "B cells", "NK cells", "CD56bright NK",
"CD56dim NK", "Dendritic cells", "mDC", "pDC", "Lymphocytes", ...

"""

from __future__ import annotations
