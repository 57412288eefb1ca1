"""Raw capillary electrophoresis traces: ABIF ``.fsa`` / ``.hid`` files as data.

:func:`read_trace` returns the run's dye channels (the data collection's multicomponented
signal, ``DATA1``-``4``, ``DATA105``, ``DATA106``, before any baseline correction), the
dye names, the size standard named in the file and the scans the instrument marked
off-scale. Biopython reads the ABIF directory.

3500 series ``.hid`` files list their data elements, in the directory the header points
to, under non-standard, encrypted element types (28-34). The ones published with NCBI
OSIRIS (3500 Data Collection 1.0) also hold, earlier in the file, unencrypted copies of
the whole ABIF directory, whose entries point to the unencrypted dye data, peak tables
and size calibration; OSIRIS reads .hid files from such a copy, and so does
:func:`read_trace` (:func:`abif_directory`). A ``.hid`` file without one cannot be read
without the vendor's software and fails with a one-line message that says so.

:func:`mix_traces` builds an in-silico chimera from two single-source runs aligned on
their size standards, for validation, in the proportions of their amounts of DNA
(:func:`dna_amount`).
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field

import numpy as np

from ..errors import ChimerismError

DATA_TAGS = ("DATA1", "DATA2", "DATA3", "DATA4", "DATA105", "DATA106")
_STANDARD_TYPES = {1, 2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 18, 19, 1024}


@dataclass
class Trace:
    """One capillary run: ``data`` is channels x scans (float64, RFU, baseline included)."""

    path: str
    sample: str                      # the file's own sample name (SpNm1, else SMPL1)
    data: np.ndarray
    dye_names: tuple = ()
    size_standard: str | None = None  # as the file names it (StdF1), e.g. GS500LIZ
    instrument: str | None = None
    offscale: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    @property
    def name(self) -> str:
        """The run's label: the file name without its extension."""
        return os.path.splitext(os.path.basename(self.path))[0]

    @property
    def n_scans(self) -> int:
        return self.data.shape[1]


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").rstrip("\x00").strip() or None
    return str(value).strip() or None


def _header_directory(raw: bytes) -> tuple:
    """(offset, number of entries) of the directory the ABIF header points to."""
    try:
        count, _, offset = struct.unpack(">III", raw[18:30])
    except struct.error:
        return 0, 0
    return offset, count


def _element_types(raw: bytes) -> dict:
    """The directory the ABIF header points to: tag name + number -> element type code."""
    offset, count = _header_directory(raw)
    out = {}
    for i in range(min(count, 10000)):
        entry = raw[offset + 28 * i: offset + 28 * i + 28]
        if len(entry) < 28:
            break
        name, number, etype = struct.unpack(">4sIH", entry[:10])
        out[f"{name.decode('latin-1')}{number}"] = etype
    return out


def _plain_entry(raw: bytes, at: int) -> bool:
    """Whether the 28 bytes at ``at`` are a well-formed directory entry of a standard
    element type: a printable name, the data size equal to count x element size, the
    data inside the file."""
    entry = raw[at:at + 28]
    if at < 0 or len(entry) < 28:
        return False
    name, _, etype, esize, count, size, offset, _ = struct.unpack(">4sIHHIIII", entry)
    if not all(32 <= c < 127 for c in name) or etype not in _STANDARD_TYPES:
        return False
    if esize == 0 or size != esize * count:
        return False
    return size <= 4 or offset + size <= len(raw)


def _plain_directories(raw: bytes) -> list:
    """Unencrypted copies of the ABIF directory elsewhere in the file: (offset, entries)
    of each run of well-formed entries holding DATA1-4 of one length, in file order."""
    head, count = _header_directory(raw)
    found, after = [], 0
    for hit in re.finditer(re.escape(b"DATA\x00\x00\x00\x01"), raw):
        at = hit.start()
        if at < after or head <= at < head + 28 * count or not _plain_entry(raw, at):
            continue
        first = at
        while _plain_entry(raw, first - 28):
            first -= 28
        last = at
        while _plain_entry(raw, last + 28):
            last += 28
        n = (last - first) // 28 + 1
        after = last + 28
        lengths = {}                                  # element count of each entry
        for i in range(n):
            name, number, _, _, cnt = struct.unpack(">4sIHHI", raw[first + 28 * i:
                                                                    first + 28 * i + 16])
            lengths[f"{name.decode('latin-1')}{number}"] = cnt
        dyes = [lengths.get(f"DATA{k}") for k in (1, 2, 3, 4)]
        if None not in dyes and len(set(dyes)) == 1:
            found.append((first, n))
    return found


def abif_directory(raw: bytes) -> tuple:
    """The file's bytes to parse and where its dye data were found: ``(raw, None)`` when
    the header's directory lists them under standard element types, else (for an
    encrypted 3500 ``.hid``) the bytes with the header pointed at the last, fullest
    unencrypted copy of the directory and that copy's byte offset; ``(raw, None)`` if
    there is none."""
    types = _element_types(raw)
    present = [t for t in DATA_TAGS if t in types]
    if present and all(types[t] in _STANDARD_TYPES for t in present):
        return raw, None
    copies = _plain_directories(raw)
    if not copies:
        return raw, None
    most = max(n for _, n in copies)
    offset, n = [c for c in copies if c[1] == most][-1]
    patched = bytearray(raw)
    struct.pack_into(">III", patched, 18, n, 28 * n, offset)
    return bytes(patched), offset


def read_trace(path) -> Trace:
    """Read the dye channels of an ABIF run file; errors name the file and the fault."""
    path = os.fspath(path)
    try:
        from Bio import SeqIO
    except ImportError:
        raise ChimerismError("reading .fsa files needs Biopython: pip install "
                             "'immunomon[abif]' (or pip install biopython)") from None
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ChimerismError(f"{path}: cannot read ({exc.strerror})") from None
    if raw[:4] != b"ABIF":
        raise ChimerismError(f"{path}: not an ABIF run file (no 'ABIF' signature at byte 0); "
                             f"give the .fsa or .hid files the instrument wrote")
    import io

    raw, copy = abif_directory(raw)
    try:
        record = SeqIO.read(io.BytesIO(raw), "abi")
    except (ValueError, struct.error, AssertionError, UnicodeDecodeError, EOFError,
            IndexError, KeyError) as exc:
        raise ChimerismError(f"{path}: truncated or malformed ABIF file ({exc})") from None
    tags = record.annotations.get("abif_raw", {})
    if tags.get("PBAS1") is not None or tags.get("PBAS2") is not None:
        # A Sanger sequencing trace (.ab1) is the same container, with base calls; its
        # four channels are bases, not the dyes of an STR kit.
        raise ChimerismError(f"{path}: a sequencing trace (it holds base calls), not a "
                             f"fragment-analysis run; give the .fsa or .hid runs of the "
                             f"STR kit")
    types = _element_types(raw)
    present = [t for t in DATA_TAGS if t in types]
    if not present:
        raise ChimerismError(f"{path}: the ABIF file holds no dye data (DATA1-4); is it a "
                             f"sequencing or a run-log file?")
    odd = sorted({types[t] for t in present if types[t] not in _STANDARD_TYPES})
    if not odd and any(tags.get(t) is None for t in present):
        # the dye data under ordinary types, unread: the header's own directory entry is
        # broken (a script's file: type 0, size 0 where an instrument writes 'tdir', 1023)
        kind, size = struct.unpack(">hh", raw[14:18]) if len(raw) >= 18 else (None, None)
        raise ChimerismError(
            f"{path}: malformed ABIF header (its directory entry has element type {kind} "
            f"and size {size}, where an instrument writes 1023 and 28), so the dye data "
            f"cannot be found; not a file a sequencer wrote: run it again, or export it "
            f"again from the instrument's software")
    if odd or any(tags.get(t) is None for t in present):
        kinds = ", ".join(str(t) for t in odd) or "unknown"
        raise ChimerismError(
            f"{path}: the dye data are stored under non-standard ABIF element type "
            f"{kinds}, as 3500-series .hid files encrypt them, and the file holds no "
            f"unencrypted copy of its ABIF directory; they cannot be read without the "
            f"vendor's software. Export the run as .fsa (3500 Data Collection or "
            f"GeneMapper ID-X can), or give the GeneMapper export of its peaks instead")
    channels = [np.asarray(tags[t], dtype=np.float64) for t in present]
    n = min(len(c) for c in channels)
    if n < 100 or any(len(c) != n for c in channels):
        raise ChimerismError(f"{path}: the dye channels have {sorted({len(c) for c in channels})} "
                             f"scans; the file is truncated or malformed")
    data = np.vstack([c[:n] for c in channels])
    dye_names = tuple(_text(tags.get(f"DyeN{i}")) or "" for i in range(1, len(present) + 1))
    offscale = np.asarray(tags.get("OfSc1") or (), dtype=int).ravel()
    # 3500 runs keep the name in SpNm1 and the sample type ("Sample") in SMPL1
    name = _text(tags.get("SpNm1")) or _text(tags.get("SMPL1")) or ""
    return Trace(path=path, sample=name, data=data,
                 dye_names=dye_names, size_standard=_text(tags.get("StdF1")),
                 instrument=_text(tags.get("MODL1")) or _text(tags.get("MCHN1")),
                 offscale=offscale[(offscale >= 0) & (offscale < n)])


def mix_traces(major: Trace, minor: Trace, fraction: float, *, major_calibration,
               minor_calibration, standard_channel: int, major_weight: float = 1.0,
               minor_weight: float = 1.0, name: str | None = None) -> Trace:
    """An in-silico chimera: ``fraction`` of ``minor``'s DNA in ``major``'s.

    ``minor`` is resampled onto ``major``'s scans through the two size calibrations
    (:class:`~immunomon.chimerism.sizing.Calibration`), so fragments of one length fall
    on one scan and keep their shape in bp. ``*_weight`` is each run's amount of DNA,
    in a unit that does not depend on the run's scans per bp: :func:`dna_amount`. The
    minor run is rescaled to the major's amount, then the two are mixed as
    ``(1 - fraction) x major + fraction x minor``. The size-standard channel is the
    major's, unmixed; baselines and noise mix like the signals, so the rescaled run's
    noise is rescaled too.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ChimerismError(f"fraction must be from 0 to 1, not {fraction!r}")
    scans = np.arange(major.n_scans, dtype=float)
    bp = major_calibration.size(scans)
    inside = (scans >= major_calibration.scans[0]) & (scans <= major_calibration.scans[-1])
    at = minor_calibration.scan(bp)
    n = min(major.data.shape[0], minor.data.shape[0])
    out = major.data[:n].copy()
    grid = np.arange(minor.n_scans, dtype=float)
    scale = major_weight / minor_weight
    for c in range(n):
        if c == standard_channel:
            continue
        moved = np.interp(at, grid, minor.data[c])
        moved = np.where(inside, moved, np.median(minor.data[c]))
        out[c] = (1.0 - fraction) * major.data[c] + fraction * scale * moved
    label = name or f"{major.name}+{fraction:.0%}{minor.name}"
    return Trace(path=label, sample=label, data=out, dye_names=major.dye_names[:n],
                 size_standard=major.size_standard, instrument=major.instrument,
                 offscale=major.offscale)


def dna_amount(run, bins, kit, settings=None) -> float:
    """A single-source run's amount of DNA, the weight :func:`mix_traces` wants: the
    areas of its autosomal alleles, each divided by the run's scans per bp at the
    allele (RFU x bp).

    ``run`` is a :class:`~immunomon.chimerism.calling.SizedRun`, genotyped against
    ``bins`` as a reference (``settings``' genotyping rules). Areas are sums over
    scans, and runs differ in scans per bp (5 % between two PowerPlex 16 runs of one
    ABI 3100 plate); :func:`mix_traces` moves the minor run onto the major's scans,
    where its peaks keep their width in bp, not in scans. Weights in scans would give
    the run with more scans per bp that much less DNA in the mix than asked for.
    """
    from .calculate import ChimerismSettings, repeat_lengths
    from .calling import call_alleles
    from .genotype import genotype_from_peaks

    settings = settings or ChimerismSettings()
    peaks = call_alleles(run, bins, kit)
    loci = [x for x in dict.fromkeys(peaks["locus"]) if x]
    alleles = []
    if loci:
        geno = genotype_from_peaks(peaks, "reference", rules=settings.genotyping_rules(),
                                   repeats=repeat_lengths(loci, kit))
        alleles = [a for locus, found in geno.loci.items()
                   if locus not in settings.exclude_loci for a in found]
    if not alleles:
        raise ChimerismError(f"{run.trace.path}: no autosomal allele called; the run has "
                             f"no amount of DNA to weigh")
    sizes = np.array([a.size for a in alleles])
    areas = np.array([a.area for a in alleles])
    scans_per_bp = run.calibration.scan(sizes + 0.5) - run.calibration.scan(sizes - 0.5)
    return float(np.sum(areas / scans_per_bp))
