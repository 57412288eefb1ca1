"""From exports on disk to a :class:`ChimerismResult`: what the command line runs.

Who is who comes from the role each file was given (``--donor``, ``--recipient``, the
sample files; or the study pipeline), never from sample names: laboratories anonymise
exports, and a donor, a recipient and a post-transplant sample may all carry the same
``Sample File Name``. A name only picks one sample out of a file that holds several
(``plate.txt::D01_pre``).
"""

from __future__ import annotations

import os

from ..errors import ChimerismError
from .calculate import (ChimerismResult, ChimerismSettings, compute_chimerism,
                        repeat_lengths, run_labels)
from .genotype import genotype_from_peaks
from .kits import Kit, load_kit
from .parsers import read_export, read_exports
from .series import parse_sample_name, read_manifest


def split_source(source) -> tuple[str, str | None]:
    """``"plate.txt::D01_pre"`` -> ``("plate.txt", "D01_pre")``; a plain path -> (path, None)."""
    text = os.fspath(source)
    if "::" in text:
        path, _, name = text.rpartition("::")
        if path and name:
            return path, name
    return text, None


def reference_genotype(source, person: str, kit: Kit | None, settings: ChimerismSettings):
    """Read one reference export (``FILE`` or ``FILE::SAMPLE``) and call its genotype.

    Returns ``(genotype, warnings)``.
    """
    path, name = split_source(source)
    peaks = read_export(path, kit=kit)
    samples = list(dict.fromkeys(peaks["sample"]))
    if name is not None:
        if name not in samples:
            raise ChimerismError(
                f"{path}: no sample {name!r} for the {person}; the file holds "
                f"{', '.join(samples[:6])}{', ...' if len(samples) > 6 else ''}")
        peaks = peaks[peaks["sample"] == name]
    elif len(samples) > 1:
        counts = peaks["sample"].value_counts()
        listed = ", ".join(f"{s!r} ({counts[s]} peak{'s' if counts[s] != 1 else ''})"
                           for s in samples[:4])
        raise ChimerismError(
            f"{path}: the {person} export holds {len(samples)} samples ({listed}"
            f"{', ...' if len(samples) > 4 else ''}); name the {person}'s sample as "
            f"{path}::<sample name>, or export it alone")
    if not peaks.attrs.get("has_marker", True):
        raise ChimerismError(f"{path}: no Marker column; a reference genotype needs the "
                             f"locus of every allele: export the Marker and Allele columns")
    warnings = list(peaks.attrs.get("warnings", ()))
    if peaks["height"].isna().all() and peaks["area"].isna().all():
        # A typed reference profile (EuroForMix, strvalidator, LIMS genotype tables):
        # alleles listed without peaks, so nothing was chosen between peaks.
        warnings.append(f"{path}: a genotype table without heights or areas: the "
                        f"{person}'s alleles are the ones it lists (no balance, stutter "
                        f"or RFU checks)")
    elif peaks["height"].isna().all():
        warnings.append(f"{path}: no Height column: the {person}'s alleles were chosen by "
                        f"peak area (balance and stutter on areas); the RFU threshold, "
                        f"pull-up and spike checks were not applied")
    loci = [x for x in dict.fromkeys(peaks["locus"]) if x]
    geno = genotype_from_peaks(peaks, person, rules=settings.genotyping_rules(),
                               repeats=repeat_lengths(loci, kit), source=path)
    return geno, warnings


def chimerism_from_exports(donors, recipient, samples, *, kit: Kit | str | None = None,
                           settings: ChimerismSettings | None = None,
                           lineage: str | None = None, manifest=None) -> ChimerismResult:
    """Genotype the references, read the sample exports and compute % donor.

    ``donors`` is one path or a list of paths (double donor); each reference may be
    ``FILE::SAMPLE``. Every sample in the sample exports is analysed, whatever its name,
    except the reference runs themselves when a plate export is given for both. Patient,
    lineage and date come from ``manifest`` when given, else from the sample names;
    ``lineage`` overrides both.
    """
    settings = settings or ChimerismSettings()
    if isinstance(kit, (str, os.PathLike)):
        kit = load_kit(kit)
    donor_paths = [donors] if isinstance(donors, (str, os.PathLike)) else list(donors)
    names = ["donor"] if len(donor_paths) == 1 else [f"donor{i + 1}"
                                                     for i in range(len(donor_paths))]
    warnings: list = []
    donor_genos = []
    for p, n in zip(donor_paths, names):
        geno, w = reference_genotype(p, n, kit, settings)
        donor_genos.append(geno)
        warnings += w
    recipient_geno, w = reference_genotype(recipient, "recipient", kit, settings)
    warnings += w
    # one export given alone, not in a list, is one file, not its characters
    peaks = read_exports([samples] if isinstance(samples, (str, os.PathLike)) else samples,
                         kit=kit)
    metadata, w = _sample_metadata(peaks, manifest, lineage)
    warnings += w
    result = compute_chimerism(peaks, donor_genos, recipient_geno, settings=settings,
                               kit=kit, metadata=metadata)
    if not result.samples:
        files = ", ".join(os.fspath(p) for p in samples)
        raise ChimerismError(f"{files}: no post-transplant sample: every run in these "
                             f"files is one of the donor or recipient references; give "
                             f"the exports of the samples to analyse")
    result.warnings = list(dict.fromkeys(warnings + [w for s in result.samples
                                                     for w in s.warnings]))
    return result


# --------------------------------------------------------------------------- raw traces
_TRACE_SUFFIXES = (".fsa", ".hid", ".ab1")


def is_trace(path) -> bool:
    """True for an ABIF run file (by its extension)."""
    return split_source(path)[0].lower().endswith(_TRACE_SUFFIXES)


def chimerism_from_traces(donors, recipient, samples, *, kit: Kit | str,
                          ladders=(), size_standard=None,
                          settings: ChimerismSettings | None = None,
                          lineage: str | None = None, manifest=None) -> ChimerismResult:
    """% donor from raw ABIF traces (``.fsa``): size, call and compute, without GeneMapper.

    Every run is calibrated on its size standard (``size_standard``: a name, a ladder
    file, or None for the kit's usual one); peaks are called against the allelic
    ``ladders`` of the batch (paths; averaged), or the kit's own bins when none is
    given. Then the references are genotyped and the samples computed exactly as for
    exports. The result carries each run's sizing summary (``result.runs``) and the
    traces for the page (``result.traces``).
    """
    from .calling import bins_misfit, call_alleles, kit_bins, ladder_bins, read_and_size

    settings = settings or ChimerismSettings()
    if kit is None:
        raise ChimerismError("raw traces need --kit: it says which dye carries which "
                             "locus and which channel the size standard")
    kit = load_kit(kit) if isinstance(kit, (str, os.PathLike)) else kit
    ladder_runs = [read_and_size(p, kit, size_standard) for p in ladders]
    bins = ladder_bins(ladder_runs, kit) if ladder_runs else kit_bins(kit)
    warnings = list(bins.warnings) + [w for r in ladder_runs for w in r.warnings]
    runs = [_run_summary(r, "ladder", bins.source) for r in ladder_runs]

    def called(path, role):
        run = read_and_size(path, kit, size_standard)
        warnings.extend(run.warnings)
        runs.append(_run_summary(run, role, bins.source))
        calls = call_alleles(run, bins, kit)
        misfit = bins_misfit(calls, bins, run.trace.path)
        if misfit:
            warnings.append(misfit)
        return run, calls

    from .trace import Trace

    donor_paths = [donors] if isinstance(donors, (str, os.PathLike, Trace)) else list(donors)
    names = ["donor"] if len(donor_paths) == 1 else [f"donor{i + 1}"
                                                     for i in range(len(donor_paths))]
    references = []
    for path, person in list(zip(donor_paths, names)) + [(recipient, "recipient")]:
        _, peaks = called(path, person)
        loci = [x for x in dict.fromkeys(peaks["locus"]) if x]
        references.append(genotype_from_peaks(peaks, person,
                                              rules=settings.genotyping_rules(),
                                              repeats=repeat_lengths(loci, kit), source=path))
    import pandas as pd

    frames, traces = [], {}
    for path in samples:
        run, peaks = called(path, "sample")
        frames.append(peaks)
        traces[run.trace.name] = {"bp": run.bp, "signal": run.signal.astype("float32"),
                                  "dyes": run.dyes, "ranges": bins.ranges,
                                  "bins": bins.centres, "file": run.trace.path}
    peaks = pd.concat(frames, ignore_index=True)
    metadata, w = _sample_metadata(peaks, manifest, lineage)
    warnings += w
    result = compute_chimerism(peaks, references[:-1], references[-1], settings=settings,
                               kit=kit, metadata=metadata)
    if not result.samples:
        raise ChimerismError(f"{', '.join(str(p) for p in samples)}: no post-transplant "
                             f"sample: every run given is a donor or recipient reference")
    result.traces = {s.sample: traces[s.sample] for s in result.samples
                     if s.sample in traces}
    result.runs = runs
    result.warnings = list(dict.fromkeys(warnings + [w for s in result.samples
                                                     for w in s.warnings]))
    return result


def _run_summary(run, role: str, bins_source: str) -> dict:
    return {"file": run.trace.path, "role": role, "sample_name": run.trace.sample,
            **run.calibration.summary(), "alleles_called_against": bins_source}


def _sample_metadata(peaks, manifest, lineage) -> tuple[dict, list[str]]:
    """Each run's patient, visit and lineage, keyed ``(file, sample)``: from the manifest,
    else parsed from its name; ``lineage`` given on the command line applies to all. A
    manifest row names a run by its sample name, by the label a run of a name shared
    between files is shown with (``xxxx [cd3_SELECT/sdata.txt]``), or by its ``file`` and
    name; a row whose file holds one run of another name (an anonymised export) names that
    run, which is then reported under the row's name. Rows that name no run, and a name
    that several files share given without its file, are said in the warnings."""
    rows = read_manifest(manifest) if manifest is not None else {}
    files = peaks["file"] if "file" in peaks else [""] * len(peaks)
    runs = list(dict.fromkeys(zip(map(str, files), map(str, peaks["sample"]))))
    labels = run_labels(runs)
    in_file: dict = {}
    for file, name in runs:
        in_file.setdefault(os.path.abspath(file) if file else "", []).append(name)
    used, warned, metadata, warnings = set(), set(), {}, []
    for file, name in runs:
        path = os.path.abspath(file) if file else ""
        key = next((k for k in ((path, name), labels[(file, name)], name) if k in rows), None)
        renamed = None
        if key is None and in_file[path] == [name]:
            # an anonymised export: its one run is the sample its file's row names
            named = [k for k in rows if isinstance(k, tuple) and k[0] == path]
            if len(named) == 1:
                key, renamed = named[0], named[0][1]
        meta = dict(rows[key]) if key is not None else parse_sample_name(name)
        if key == name and labels[(file, name)] != name and name not in warned:
            warned.add(name)
            warnings.append(f"{manifest}: sample {name!r} is in several files and its row "
                            "applies to each; tell them apart by their labels (such as "
                            f"{labels[(file, name)]!r}) or a file column")
        used.add(key)
        if renamed:
            meta["sample"] = renamed
        if lineage:
            meta["lineage"] = lineage
        metadata[(file, name)] = meta
    unused = [k[1] if isinstance(k, tuple) else k for k in rows if k not in used]
    if unused:
        warnings.append(f"{manifest}: {len(unused)} row(s) name no run in these exports, "
                        f"and were not used: {', '.join(map(repr, unused[:10]))}"
                        f"{' ...' if len(unused) > 10 else ''}")
    return metadata, list(dict.fromkeys(warnings))
