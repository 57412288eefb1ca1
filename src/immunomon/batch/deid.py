"""Pseudonyms and date shifts for de-identified batches, and the key that links them back.

A pseudonym is an HMAC-SHA256 of (study, kind, original id) under a secret,
so it is stable (the same patient in the same study always gets the same
pseudonym, in every run), differs between studies (studies cannot link their
patients) and cannot be reversed without the secret. A patient's date shift
is drawn the same way, uniformly from +-``max_days`` (never 0), and applies to
every date of every file of that patient.

The key file holds the secret and every pseudonym with its original; it is
written with mode 0600 (in a 0700 folder) and never into the outputs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from pathlib import Path

from ..errors import ImmunomonError

KEY_VERSION = 1


class DeidentificationKeyError(ImmunomonError):
    """The de-identification key is missing, unreadable or does not match the results."""


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` so that only its owner can read it (0600 in a 0700 folder)."""
    from ..atomic import write_text

    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    write_text(path, text, private=True)


class Pseudonymizer:
    """Stable per-study pseudonyms and per-patient date shifts, kept in a key file."""

    def __init__(self, path, *, max_shift_days: int | None = None):
        self.path = Path(path)
        self.max_shift_days = max_shift_days
        self._dirty = False
        if self.path.exists():
            try:
                doc = json.loads(self.path.read_text(encoding="utf-8"))
                self._secret = bytes.fromhex(doc["secret"])
                self._studies = doc.get("studies", {})
                if doc.get("version") != KEY_VERSION:
                    raise ValueError(f"version {doc.get('version')!r}")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise DeidentificationKeyError(f"{self.path}: not a readable de-identification key "
                                f"({exc}); restore it from a backup") from None
        else:
            self._secret = secrets.token_bytes(32)
            self._studies = {}
            self._dirty = True

    @property
    def fingerprint(self) -> str:
        """Identifies the secret (so a results folder can check it has its own key)."""
        return hashlib.sha256(b"immunomon-key:" + self._secret).hexdigest()[:16]

    def _code(self, *parts: str, length: int = 8) -> str:
        digest = hmac.new(self._secret, "\x1f".join(parts).encode(), hashlib.sha256).digest()
        return base64.b32encode(digest).decode("ascii")[:length]

    def _entry(self, study: str, kind: str, original: str, prefix: str) -> str:
        table = self._studies.setdefault(study, {}).setdefault(kind, {})
        if original in table:
            return table[original]["pseudonym"]
        taken = {e["pseudonym"] for e in table.values()}
        length = 8
        while (alias := prefix + self._code(study, kind, original, length=length)) in taken:
            length += 2                                  # a collision: take more characters
        table[original] = {"pseudonym": alias}
        self._dirty = True
        return alias

    def patient(self, study: str, patient: str) -> str:
        """'P' and 8 characters; "" for a sample with no patient (a control)."""
        return self._entry(study, "patients", patient, "P") if patient else ""

    def sample(self, study: str, sample: str) -> str:
        """'S' and 8 characters, for a sample id or file name."""
        return self._entry(study, "samples", sample, "S")

    def date_shift(self, study: str, patient: str) -> int | None:
        """Days to add to every date of this patient (None when not shifting).
        Samples without a patient (controls) share one shift per study, so the
        order and spacing of a study's control runs is kept."""
        if not self.max_shift_days:
            return None
        n = int(self.max_shift_days)
        code = hmac.new(self._secret, f"shift\x1f{study}\x1f{patient}".encode(),
                        hashlib.sha256).digest()
        value = int.from_bytes(code[:8], "big") % (2 * n) - n      # -n .. n-1
        shift = value if value < 0 else value + 1                  # never 0
        if patient:
            self._studies.setdefault(study, {}).setdefault("patients", {}).setdefault(
                patient, {"pseudonym": self.patient(study, patient)})["date_shift_days"] = shift
            self._dirty = True
        return shift

    def save(self) -> None:
        if not self._dirty and self.path.exists():
            return
        doc = {"version": KEY_VERSION,
               "about": "immunomon de-identification key: links pseudonyms to the original "
                        "identifiers. Keep it private; never share it with the results.",
               "secret": self._secret.hex(), "fingerprint": self.fingerprint,
               "max_shift_days": self.max_shift_days, "studies": self._studies}
        _write_private(self.path, json.dumps(doc, indent=2, sort_keys=True))
        self._dirty = False
