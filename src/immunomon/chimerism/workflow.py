"""From exports on disk to a :class:`ChimerismResult`: what the command line runs."""

from __future__ import annotations

import os

from ..errors import ChimerismError
from .calculate import ChimerismResult, ChimerismSettings, compute_chimerism
from .genotype import genotype_from_peaks
from .kits import Kit, load_kit
from .parsers import read_export, read_exports
from .series import parse_sample_name, read_manifest


def _reference(path, person: str, kit, settings: ChimerismSettings):
    peaks = read_export(path, kit=kit)
    samples = list(dict.fromkeys(peaks["sample"]))
    if len(samples) > 1:
        raise ChimerismError(
            f"{os.fspath(path)}: the {person} export holds {len(samples)} samples "
            f"({', '.join(samples[:4])}{', ...' if len(samples) > 4 else ''}); export the "
            f"{person}'s pre-transplant sample alone")
    return genotype_from_peaks(peaks, person, relative_threshold=settings.relative_threshold,
                               min_height=settings.reference_min_height)


def chimerism_from_exports(donors, recipient, samples, *, kit: Kit | str | None = None,
                           settings: ChimerismSettings | None = None,
                           lineage: str | None = None, manifest=None) -> ChimerismResult:
    """Genotype the references, read the sample exports and compute % donor.

    ``donors`` is one path or a list of paths (double donor). Patient, lineage and
    date come from ``manifest`` when given, else from the sample names;
    ``lineage`` overrides both.
    """
    settings = settings or ChimerismSettings()
    if isinstance(kit, (str, os.PathLike)):
        kit = load_kit(kit)
    donor_paths = [donors] if isinstance(donors, (str, os.PathLike)) else list(donors)
    names = ["donor"] if len(donor_paths) == 1 else [f"donor{i + 1}"
                                                     for i in range(len(donor_paths))]
    donor_genos = [_reference(p, n, kit, settings) for p, n in zip(donor_paths, names)]
    recipient_geno = _reference(recipient, "recipient", kit, settings)
    peaks = read_exports(samples, kit=kit)
    manifest_map = read_manifest(manifest) if manifest is not None else {}
    metadata = {}
    for name in dict.fromkeys(peaks["sample"]):
        meta = manifest_map.get(name) or parse_sample_name(name)
        meta = dict(meta)
        if lineage:
            meta["lineage"] = lineage
        metadata[name] = meta
    result = compute_chimerism(peaks, donor_genos, recipient_geno, settings=settings,
                               kit=kit, metadata=metadata)
    if not result.samples:
        files = ", ".join(os.fspath(p) for p in samples)
        raise ChimerismError(f"{files}: no post-transplant sample (every sample is a donor "
                             f"or recipient reference); give the exports of the samples to "
                             f"analyse")
    return result
