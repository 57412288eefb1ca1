"""STR donor chimerism: from GeneMapper exports or raw traces to % donor per sample.

Read exports (:func:`read_export`), genotype the donor(s) and the recipient
(:func:`genotype_from_peaks`), then compute % donor per locus and per sample
(:func:`compute_chimerism`), or do all three with :func:`chimerism_from_exports`.
From raw ABIF traces (``.fsa``): :func:`chimerism_from_traces` sizes each run on its
size standard, calls alleles against the batch's allelic ladder and does the same.
Digital and quantitative PCR chimerism are in :mod:`.pcr`; following a patient's
series in :mod:`.series`.
"""

from .abif import list_fsa_runs, read_fsa_metadata
from .calculate import (FULL_DONOR, FULL_RECIPIENT, MIXED, NOT_DETERMINED,
                        ChimerismResult, ChimerismSettings, LocusResult, SampleResult,
                        classify_sample, combine_loci, compute_chimerism,
                        dose_model_shares, locus_chimerism,
                        lod_status, match_alleles, percent_dhet_rhom, percent_dhom_rhet,
                        percent_no_shared, reported_value, sample_chimerism,
                        stutter_corrected)
from .genotype import (Allele, Genotype, GenotypingRules, LocusClass, classify_locus,
                       genotype_from_peaks)
from .kits import Kit, Locus, builtin_kits, load_kit, normalize_locus
from .parsers import PEAK_COLUMNS, detect_layout, read_export, read_exports
from .pcr import (PCRChimerism, ddpcr_chimerism, ddpcr_percent_recipient, poisson_lambda,
                  qpcr_chimerism, qpcr_percent_recipient)
from .series import classify_series, flag_rising_recipient, parse_sample_name, read_manifest
from .sizing import SIZE_STANDARDS, load_size_standard
from .trace import Trace, dna_amount, mix_traces, read_trace
from .workflow import chimerism_from_exports, chimerism_from_traces

__all__ = [
    "Allele", "ChimerismResult", "ChimerismSettings", "FULL_DONOR", "FULL_RECIPIENT",
    "Genotype", "GenotypingRules", "Kit", "SIZE_STANDARDS", "Trace", "chimerism_from_traces",
    "dna_amount", "load_size_standard", "mix_traces", "read_trace",
    "Locus", "LocusClass", "LocusResult", "MIXED", "NOT_DETERMINED", "PCRChimerism",
    "PEAK_COLUMNS", "SampleResult", "builtin_kits", "chimerism_from_exports",
    "classify_locus", "classify_sample", "classify_series", "combine_loci",
    "compute_chimerism", "ddpcr_chimerism", "ddpcr_percent_recipient", "detect_layout",
    "dose_model_shares", "flag_rising_recipient", "genotype_from_peaks", "list_fsa_runs",
    "load_kit",
    "locus_chimerism", "lod_status", "match_alleles", "normalize_locus",
    "parse_sample_name", "percent_dhet_rhom", "percent_dhom_rhet", "percent_no_shared",
    "poisson_lambda", "qpcr_chimerism", "qpcr_percent_recipient", "read_export",
    "read_exports", "read_fsa_metadata", "read_manifest", "reported_value", "sample_chimerism",
    "stutter_corrected",
]
