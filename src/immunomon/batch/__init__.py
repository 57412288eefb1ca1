"""Core-facility batches: many FCS files through the per-sample gate job, resumable.

A SQLite registry (``RESULTS/registry.sqlite``) holds one row per file and is
the single source of truth; local worker processes or a Dask cluster run the
same job as ``immunomon gate``; failed files are quarantined; outputs can be
de-identified; ``batch report`` writes the batch QC page. See docs/batch.md.
"""
