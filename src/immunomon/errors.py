"""The errors a user can cause. Every one names the input and what would fix it."""

from __future__ import annotations

import os


class ImmunomonError(Exception):
    """Base class for every failure caused by input the user gave us."""


class FCSFormatError(ImmunomonError):
    """An FCS file is malformed or uses a feature we cannot read.

    ``path`` is the file, ``offset`` the byte offset concerned (or None) and
    ``keyword`` the TEXT keyword concerned (or None).
    """

    def __init__(self, path, problem: str, *, offset: int | None = None,
                 keyword: str | None = None):
        self.path = os.fspath(path) if path is not None else None
        self.problem = problem
        self.offset = offset
        self.keyword = keyword
        where = []
        if keyword is not None:
            where.append(f"keyword {keyword}")
        if offset is not None:
            where.append(f"byte {offset}")
        location = f" ({', '.join(where)})" if where else ""
        name = self.path if self.path is not None else "<FCS data>"
        super().__init__(f"{name}{location}: {problem}")


class CompensationError(ImmunomonError):
    """A spillover matrix cannot be applied (missing channel, singular, malformed)."""


class TransformError(ImmunomonError, ValueError):
    """Transform parameters outside the range the definition allows."""


class GatingError(ImmunomonError):
    """A gate or gating strategy cannot be built or applied."""


class GatingMLError(GatingError):
    """A Gating-ML document is malformed, hostile or uses an unsupported feature."""


class TemplateError(GatingError):
    """A gating template is invalid; the message names the line and field."""


class ChimerismError(ImmunomonError):
    """An STR export, kit definition or chimerism input is malformed."""


class ClinicalDataError(ImmunomonError):
    """A clinical table or sample manifest is malformed; names file, row and column."""


class AnalysisError(ImmunomonError):
    """An analysis cannot be run on the data given."""


class FlowJoError(GatingError):
    """A FlowJo workspace is malformed, uses an unsupported feature, or does not
    fit the FCS files it is applied to; names the workspace, sample and gate."""
