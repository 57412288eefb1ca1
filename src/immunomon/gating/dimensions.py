"""Gate axes (plain, compensated, transformed and ratio dimensions) and the
per-sample values that compute them.

A dimension names *what* to measure; ``EventValues`` computes it for one
sample: the sample's scale values (``read_fcs`` has already applied $PnE and
$PnG), then compensation, then the transform. Every compensated block is
computed once per sample however many gates use it; transforms are applied
to the events each gate asks for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from ..errors import GatingError, ImmunomonError
from ..fcs.sample import data_tops
from ..threads import single_threaded
from ..transforms import Arcsinh

UNCOMPENSATED = "uncompensated"
FCS = "FCS"            # the sample's own spillover matrix ($SPILLOVER and friends)


@dataclass(frozen=True)
class Dimension:
    """A channel (``$PnN`` name or ``$PnS`` marker, or a fluorochrome of a
    spectrum matrix), compensated by ``compensation`` ("uncompensated", "FCS"
    or the id of a strategy matrix) and optionally transformed (``transform``:
    a transform object such as ``Logicle(...)`` or the id of one)."""

    name: str
    compensation: str = UNCOMPENSATED
    transform: Any = None


@dataclass(frozen=True)
class FRatio:
    """Gating-ML ``fratio``: ``A * (x - B) / (y - C)`` of two channels."""

    numerator: str
    denominator: str
    A: float = 1.0
    B: float = 0.0
    C: float = 0.0


@dataclass(frozen=True)
class RatioDimension:
    """A new dimension computed as an ``FRatio`` (or the id of one) of two
    channels, each compensated by ``compensation``, then optionally transformed."""

    ratio: Any
    compensation: str = UNCOMPENSATED
    transform: Any = None


AnyDimension = Union[Dimension, RatioDimension]


@dataclass(frozen=True, eq=False)
class SpectrumMatrix:
    """A spillover (or spectrum) matrix: ``matrix[i, j]`` is the share of
    fluorochrome i read in detector j. Square matrices are inverted; wider
    ones (more detectors than dyes) are unmixed by least squares."""

    fluorochromes: tuple[str, ...]
    detectors: tuple[str, ...]
    matrix: np.ndarray

    def __post_init__(self):
        m = np.asarray(self.matrix, dtype=np.float64)
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "fluorochromes", tuple(self.fluorochromes))
        object.__setattr__(self, "detectors", tuple(self.detectors))
        if m.shape != (len(self.fluorochromes), len(self.detectors)):
            raise GatingError(
                f"spectrum matrix is {m.shape} but names {len(self.fluorochromes)} "
                f"fluorochromes and {len(self.detectors)} detectors")
        if len(self.fluorochromes) > len(self.detectors):
            raise GatingError("a spectrum matrix needs at least as many detectors as "
                              "fluorochromes")

    @property
    def is_identity(self) -> bool:
        """Whether compensating with it changes nothing (each dye read in its own
        detector alone)."""
        return (self.fluorochromes == self.detectors
                and bool(np.allclose(self.matrix, np.eye(len(self.detectors)))))

    def unmixing(self) -> np.ndarray:
        """detectors x fluorochromes: compensated = observed @ unmixing()."""
        if self.matrix.shape[0] == self.matrix.shape[1]:
            return np.linalg.inv(self.matrix)
        return np.linalg.pinv(self.matrix)


def _compensated_rows(events: np.ndarray, sample, m: SpectrumMatrix
                      ) -> tuple[np.ndarray, dict[str, int], dict[int, int]]:
    """The compensated channels as rows (channels x events, float32, so that
    each channel is contiguous), the row of each fluorochrome, and the row of
    each compensated column of the sample.

    The product is written straight into that layout, ``inv^T @ X^T``, with
    the checked inverse of ``immunomon.compensation`` and, like
    ``compensate_array``, in float32 (exact enough for spillover matrices
    whose condition number it accepts).
    """
    from ..compensation import match_detectors, spillover_inverse
    from ..errors import CompensationError
    try:
        idx = match_detectors(sample, m.detectors)
        if m.matrix.shape[0] == m.matrix.shape[1]:
            inverse_t = spillover_inverse(m.matrix).T.astype(np.float32)
            detectors = _columns(events, idx)
            rows = np.empty((len(idx), detectors.shape[0]), dtype=np.float32)
            # non-finite events (counted, flagged and left out by the gates) stay NaN
            with single_threaded(), np.errstate(invalid="ignore", over="ignore"):
                for start in range(0, detectors.shape[0], _BLOCK):
                    stop = start + _BLOCK
                    np.matmul(inverse_t, detectors[start:stop].T, out=rows[:, start:stop])
            return (rows, {name: j for j, name in enumerate(m.fluorochromes)},
                    {i: j for j, i in enumerate(idx)})
    except CompensationError as exc:
        raise GatingError(str(exc)) from None
    # unmixing (more detectors than dyes): one least-squares row per dye
    unmixed = (np.asarray(_columns(events, idx), dtype=np.float64) @ m.unmixing()).T
    return (np.ascontiguousarray(unmixed, dtype=np.float32),
            {name: j for j, name in enumerate(m.fluorochromes)}, {})


_BLOCK = 8192          # events per product: the block stays in cache


def _columns(events: np.ndarray, idx: list[int]) -> np.ndarray:
    """events[:, idx] as float32: a view when the columns are adjacent."""
    if idx and idx == list(range(idx[0], idx[0] + len(idx))):
        block = events[:, idx[0]:idx[0] + len(idx)]
    else:
        block = events[:, idx]
    return block if block.dtype == np.float32 else block.astype(np.float32)


class EventValues:
    """Computes (and caches) the values of dimensions for one sample."""

    def __init__(self, sample, transforms: dict | None = None,
                 compensations: dict | None = None):
        self.sample = sample
        self.transforms = transforms or {}
        self.compensations = compensations or {}
        self._blocks: dict[str, tuple] = {}
        self._cache: dict[tuple, np.ndarray] = {}

    @property
    def scaled(self) -> np.ndarray:
        return self.sample.events

    # -- lookups ------------------------------------------------------------
    def _channel(self, name: str) -> int:
        try:
            return self.sample.channel_index(name)
        except ImmunomonError as exc:
            raise GatingError(str(exc)) from None

    def resolve_transform(self, transform):
        if transform is None or not isinstance(transform, str):
            return transform
        try:
            return self.transforms[transform]
        except KeyError:
            raise GatingError(f"unknown transformation {transform!r}; known: "
                              f"{', '.join(self.transforms) or 'none'}") from None

    def matrix(self, ref: str) -> SpectrumMatrix | None:
        """The matrix a compensation reference names (None: no compensation)."""
        if ref == UNCOMPENSATED:
            return None
        if ref == FCS:
            spill = self.sample.spillover
            if spill is None:
                return None        # a file without spillover is its own compensation
            return SpectrumMatrix(spill.detectors, spill.detectors, spill.matrix)
        try:
            return self.compensations[ref]
        except KeyError:
            raise GatingError(f"unknown compensation {ref!r}; use 'uncompensated', 'FCS' "
                              f"or one of: {', '.join(self.compensations) or 'none'}") from None

    def _block(self, ref: str):
        if ref not in self._blocks:
            m = self.matrix(ref)
            self._blocks[ref] = (None, {}, {}) if m is None else _compensated_rows(
                self.scaled, self.sample, m)
        return self._blocks[ref]

    # -- values -------------------------------------------------------------
    def _locate(self, name: str, compensation: str):
        """(block, row) holding a compensated channel, or (None, column)."""
        block, dyes, columns = self._block(compensation)
        if name in dyes:                   # a fluorochrome of the matrix
            return block, dyes[name]
        i = self._channel(name)
        if i in columns:
            return block, columns[i]
        return None, i                     # a channel the matrix leaves alone

    def channel(self, name: str, compensation: str = UNCOMPENSATED) -> np.ndarray:
        """Scale values of one channel after compensation (full length,
        contiguous float32)."""
        key = ("channel", name, compensation)
        if key not in self._cache:
            block, at = self._locate(name, compensation)
            # compensated rows are contiguous already; a raw column is copied
            # once, to serve every transform and gather that follows
            self._cache[key] = (block[at] if block is not None
                                else np.ascontiguousarray(self.scaled[:, at]))
        return self._cache[key]

    def channels(self, names, compensation: str = UNCOMPENSATED) -> np.ndarray:
        """Several channels as rows (channels x events, float32): a view of
        the compensated block when they are consecutive rows of it; no rows for no
        names (a file with scatter channels alone has no fluorescence to stack)."""
        if not len(names):
            return np.empty((0, self.sample.n_events), dtype=np.float32)
        located = [self._locate(n, compensation) for n in names]
        blocks = {id(b) for b, _ in located}
        at = [a for _, a in located]
        if (located and located[0][0] is not None and len(blocks) == 1
                and at == list(range(at[0], at[0] + len(at)))):
            return located[0][0][at[0]:at[0] + len(at)]
        return np.stack([self.channel(n, compensation) for n in names])

    def signal_scale(self, dim: AnyDimension) -> tuple[float, float] | None:
        """Zero signal and top of scale of a channel dimension in its transformed
        units (``Transform.signal_scale``); None for ratios and untransformed or
        linear dimensions."""
        if isinstance(dim, RatioDimension):
            return None
        transform = self.resolve_transform(dim.transform)
        if isinstance(transform, Arcsinh):
            # a cofactor's arcsinh has no top of its own: the channel's top of scale
            # (as ``T: auto`` reads it) is where a display of it ends
            try:
                at = self.sample.channel_index(dim.name)
            except ImmunomonError:
                return None                 # a fluorochrome of an unmixing matrix
            return 0.0, float(transform.apply(data_tops(self.sample)[at]))
        return None if transform is None else transform.signal_scale()

    def values(self, dim: AnyDimension, rows: np.ndarray | None = None) -> np.ndarray:
        """The values of a dimension, for all events or for ``rows`` only (an
        index array or a slice).

        The untransformed values (a channel, a ratio) are kept; the transform is
        applied to the events asked for and its result is not kept. Transforms are
        element by element, so the values are the same either way, and gates are
        mostly found inside small parents: transforming their events costs less
        than transforming every event once, and one float64 copy per transformed
        dimension was most of a file's memory."""
        transform = self.resolve_transform(dim.transform)
        if isinstance(dim, RatioDimension):
            ratio = self.resolve_transform(dim.ratio)
            if not isinstance(ratio, FRatio):
                raise GatingError(f"{dim.ratio!r} is not a ratio transformation")
            key = ("ratio", ratio, dim.compensation)
            if key not in self._cache:
                from ..transforms import fratio
                x = self.channel(ratio.numerator, dim.compensation)
                y = self.channel(ratio.denominator, dim.compensation)
                self._cache[key] = fratio(np.asarray(x, dtype=np.float64),
                                          np.asarray(y, dtype=np.float64),
                                          ratio.A, ratio.B, ratio.C)
            base = self._cache[key]
        else:
            base = self.channel(dim.name, dim.compensation)
        picked = base if rows is None else base[rows]
        if isinstance(transform, Arcsinh) and self._spread_zero_counts(dim, base):
            picked = np.maximum(picked, 0.0)
        return picked if transform is None else transform.apply(picked)

    def _spread_zero_counts(self, dim, base: np.ndarray) -> bool:
        """Whether a channel's values below 0 all lie within one count of it: a mass
        cytometer's software spreads zero counts evenly over -1 to 0, which on an
        arcsinh axis makes a block whose upper edge a lone negative peak's end fell on
        (a CyTOF file's CD8 T cells 44% "CD4+"). They are zero counts, and are read as
        such; compensated fluorescence reaches far further below zero."""
        key = ("zero counts", dim.name, dim.compensation)
        if key not in self._cache:
            low = float(np.nanmin(base)) if base.size else 0.0
            self._cache[key] = -1.05 <= low < 0.0       # one count, give or take rounding
        return self._cache[key]
