"""Strict date parsing for clinical tables.

Accepted spellings (all day-precise; times after ``T`` or a space are dropped):

=====================  ==================  ===================================
form                   example             note
=====================  ==================  ===================================
ISO 8601               ``2021-03-04``      also ``2021-03-04T10:30`` (SDTM)
ISO basic              ``20210304``
year first, slashes    ``2021/03/04``
day first, dots        ``04.03.2021``      the dotted form is day-first by
                                           convention (DIN 5008, EU labs)
day, month name, year  ``04-Mar-2021``     also ``04 Mar 2021``, ``04MAR2021``
                                           (SAS ``DATE9``)
day/month or           ``04/03/2021``      **ambiguous**: only with an explicit
month/day with slashes                     ``date_order="DMY"`` or ``"MDY"``
=====================  ==================  ===================================

Anything else, partial dates (``2021-03``), two-digit years and impossible
dates (``2021-02-30``) raise ``ValueError``; the table readers turn that into a
:class:`~immunomon.ClinicalDataError` naming file, row and column. We never
infer the order of ``NN/NN/YYYY`` from the values themselves: ``04/03/2021``
and ``13/03/2021`` in one file would silently be read under two conventions.
"""

from __future__ import annotations

import datetime as _dt
import re

__all__ = ["parse_date", "DATE_ORDERS"]

DATE_ORDERS = ("DMY", "MDY")

_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}

_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_ISO_BASIC = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_YMD_SLASH = re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$")
_DMY_DOT = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")
_MONTH_NAME = re.compile(r"^(\d{1,2})[- ]?([A-Za-z]{3})[- ]?(\d{4})$")
_SLASH = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
# A time of day after "T" or a space (SDTM --DTC values carry one); dropped.
_TIME_TAIL = re.compile(
    r"^(\S+?)(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)$")


def _make(y: str, m: str, d: str, text: str) -> _dt.date:
    try:
        return _dt.date(int(y), int(m), int(d))
    except ValueError:
        raise ValueError(f"{text!r} is not a real calendar date") from None


def parse_date(text: str, *, date_order: str | None = None) -> _dt.date:
    """Parse one date string strictly; see the module docstring for the forms.

    ``date_order`` ("DMY" or "MDY") is required only for ``NN/NN/YYYY``.
    """
    if date_order is not None and date_order not in DATE_ORDERS:
        raise ValueError(f"date_order must be one of {DATE_ORDERS}, not {date_order!r}")
    s = str(text).strip()
    tail = _TIME_TAIL.match(s)
    if tail:
        s = tail.group(1)
    if m := _ISO.match(s):
        return _make(m[1], m[2], m[3], text)
    if m := _ISO_BASIC.match(s):
        return _make(m[1], m[2], m[3], text)
    if m := _YMD_SLASH.match(s):
        return _make(m[1], m[2], m[3], text)
    if m := _DMY_DOT.match(s):
        return _make(m[3], m[2], m[1], text)
    if m := _MONTH_NAME.match(s):
        month = _MONTHS.get(m[2].lower())
        if month is None:
            raise ValueError(f"{text!r}: unknown month name {m[2]!r}")
        return _make(m[3], str(month), m[1], text)
    if m := _SLASH.match(s):
        if date_order is None:
            raise ValueError(
                f"{text!r} is ambiguous (day/month or month/day); write ISO dates "
                "(YYYY-MM-DD) or pass date_order='DMY' or 'MDY'")
        a, b = m[1], m[2]
        day, month = (a, b) if date_order == "DMY" else (b, a)
        return _make(m[3], month, day, text)
    if re.match(r"^\d{4}(-\d{2})?$", s):
        raise ValueError(f"{text!r} is a partial date; a full day is needed (YYYY-MM-DD)")
    raise ValueError(
        f"{text!r} is not a recognised date; use YYYY-MM-DD (other accepted forms: "
        "YYYYMMDD, YYYY/MM/DD, DD.MM.YYYY, DD-Mon-YYYY, DDMONYYYY)")
