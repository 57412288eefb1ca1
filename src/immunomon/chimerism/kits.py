"""STR kit definitions: loci, dye and repeat unit length.

Built-in kits live as small YAML files in ``kitdata/``; a lab's own kit is a YAML
file of the same shape::

    name: My panel
    size_standard_dye: O          # optional
    loci:
      - {name: D8S1179, dye: B, repeat: 4}
      - {name: D22S1045, dye: Y, repeat: 3, stutter: 0.12}   # stutter: optional ratio
      - {name: AMEL, dye: R}                                  # no repeat: not an STR

Dyes are the one-letter colours GeneMapper writes in ``Dye/Sample Peak``
(B blue, G green, Y yellow, R red, P purple, O orange).

For raw traces (``.fsa``) a kit also says which dye each ABIF channel carries
(``channels``, in the order DATA1-4, DATA105, DATA106), its usual size standard, and
the fragments of its allelic ladder (``ladder``: locus -> allele -> approximate bp),
with which a ladder run in the batch is recognised::

    channels: [B, G, Y, R, O]
    size_standard: GS500 LIZ
    ladder:
      D8S1179: {'8': 127, '9': 131, '10': 135}
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import resources

import yaml

from ..errors import ChimerismError

DYES = ("B", "G", "Y", "R", "P", "O")

# Spellings seen in exports for the same locus.
_LOCUS_ALIASES = {
    "AMELOGENIN": "AMEL", "AM": "AMEL", "AMELO": "AMEL",
    "THO1": "TH01", "HUMTH01": "TH01",
    "ACTBP2": "SE33",
    "YINDEL": "YINDEL", "YIND": "YINDEL",
    "PENTAE": "PENTAE", "PENTAD": "PENTAD", "PE": "PENTAE", "PD": "PENTAD",
    "D21S11": "D21S11",
    "VWA": "VWA", "HUMVWA": "VWA", "VWA31": "VWA",
    "FIBRA": "FGA", "HUMFIBRA": "FGA",
}

# Loci that are not autosomal STRs; kept out of % donor unless asked for.
NON_AUTOSOMAL = ("AMEL", "YINDEL", "DYS391")


def normalize_locus(name: str) -> str:
    """A canonical locus key: upper case without spaces, dashes or underscores."""
    key = re.sub(r"[\s_\-/.]+", "", str(name)).upper()
    return _LOCUS_ALIASES.get(key, key)


@dataclass(frozen=True)
class Locus:
    name: str                      # as the kit spells it, e.g. "Penta E"
    dye: str | None                # one-letter dye code or None when unknown
    repeat: int | None             # repeat unit length in bp; None for non-STR markers
    stutter: float | None = None   # back-stutter ratio, if the kit file gives one

    @property
    def key(self) -> str:
        return normalize_locus(self.name)


@dataclass(frozen=True)
class Kit:
    name: str
    loci: dict = field(default_factory=dict)   # normalized key -> Locus
    size_standard_dye: str | None = None
    aliases: tuple = ()
    channels: tuple = ()                       # dye of ABIF channel 1, 2, 3, 4, 105, 106
    size_standard: str | None = None           # usual size standard, e.g. "GS500 LIZ"
    ladder: dict = field(default_factory=dict)  # locus key -> {allele: approximate bp}
    bins: dict = field(default_factory=dict)    # locus key -> {allele: measured bp}
    bins_source: str | None = None              # the ladder run the bins were measured on

    def locus(self, name: str) -> Locus | None:
        return self.loci.get(normalize_locus(name))

    @property
    def dyes(self) -> set:
        return {lo.dye for lo in self.loci.values() if lo.dye}

    def loci_in_dye(self, dye: str) -> list:
        return [lo for lo in self.loci.values() if lo.dye == dye]


def _kit_from_mapping(data, source: str) -> Kit:
    """Validate a parsed YAML kit and build a Kit; errors name the source and field."""
    if not isinstance(data, dict):
        raise ChimerismError(f"{source}: a kit file must be a mapping with 'name' and 'loci'")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ChimerismError(f"{source}: field 'name' is missing or not text")
    loci_data = data.get("loci")
    if not isinstance(loci_data, list) or not loci_data:
        raise ChimerismError(f"{source}: field 'loci' must be a non-empty list")
    ssd = data.get("size_standard_dye")
    if ssd is not None and (not isinstance(ssd, str) or ssd.upper() not in DYES):
        raise ChimerismError(f"{source}: 'size_standard_dye' must be one of {', '.join(DYES)}")
    loci = {}
    for i, entry in enumerate(loci_data, start=1):
        where = f"{source}: loci entry {i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), (str, int)):
            raise ChimerismError(f"{where}: needs a 'name'")
        dye = entry.get("dye")
        if dye is not None:
            if not isinstance(dye, str) or dye.upper() not in DYES:
                raise ChimerismError(f"{where} ({entry['name']}): 'dye' must be one of "
                                     f"{', '.join(DYES)}, not {dye!r}")
            dye = dye.upper()
        repeat = entry.get("repeat")
        if repeat is not None and (isinstance(repeat, bool) or not isinstance(repeat, int)
                                   or not 1 <= repeat <= 7):
            raise ChimerismError(f"{where} ({entry['name']}): 'repeat' must be a whole "
                                 f"number of bp from 1 to 7, not {repeat!r}")
        stutter = entry.get("stutter")
        if stutter is not None and (isinstance(stutter, bool)
                                    or not isinstance(stutter, (int, float))
                                    or not 0 <= stutter < 1):
            raise ChimerismError(f"{where} ({entry['name']}): 'stutter' must be a ratio "
                                 f"from 0 to 1, not {stutter!r}")
        locus = Locus(str(entry["name"]), dye, repeat,
                      float(stutter) if stutter is not None else None)
        if locus.key in loci:
            raise ChimerismError(f"{where}: locus {locus.name} is listed twice")
        loci[locus.key] = locus
    aliases = data.get("aliases") or ()
    if not isinstance(aliases, (list, tuple)):
        raise ChimerismError(f"{source}: 'aliases' must be a list")
    channels = data.get("channels") or ()
    if not isinstance(channels, (list, tuple)) or any(
            not isinstance(c, str) or c.upper() not in DYES for c in channels):
        raise ChimerismError(f"{source}: 'channels' must be a list of dye letters "
                             f"({', '.join(DYES)}) in ABIF channel order")
    standard = data.get("size_standard")
    if standard is not None and not isinstance(standard, str):
        raise ChimerismError(f"{source}: 'size_standard' must be a size standard name")
    bins_source = data.get("bins_source")
    if bins_source is not None and not isinstance(bins_source, str):
        raise ChimerismError(f"{source}: 'bins_source' must be text")
    return Kit(name.strip(), loci, ssd.upper() if ssd else None,
               tuple(str(a) for a in aliases), tuple(c.upper() for c in channels),
               standard, _ladder(data.get("ladder"), loci, source, "ladder"),
               _ladder(data.get("bins"), loci, source, "bins"), bins_source)


def _ladder(data, loci: dict, source: str, field_name: str = "ladder") -> dict:
    """Validate a kit's ``ladder`` or ``bins`` mapping: locus -> {allele: bp}."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ChimerismError(f"{source}: '{field_name}' must map each locus to its alleles")
    out = {}
    for name, alleles in data.items():
        key = normalize_locus(name)
        if key not in loci:
            raise ChimerismError(f"{source}: {field_name} locus {name!r} is not in 'loci'")
        if not isinstance(alleles, dict) or not alleles:
            raise ChimerismError(f"{source}: {field_name} of {name} must map alleles to "
                                 f"sizes")
        sizes = {}
        for allele, bp in alleles.items():
            if isinstance(bp, bool) or not isinstance(bp, (int, float)) or not 0 < bp < 2000:
                raise ChimerismError(f"{source}: {field_name} of {name}, allele {allele}: "
                                     f"the size must be a number of bp, not {bp!r}")
            sizes[str(allele)] = float(bp)
        out[key] = dict(sorted(sizes.items(), key=lambda kv: kv[1]))
    return out


def _kit_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def builtin_kits() -> dict:
    """All shipped kits, by name."""
    kits = {}
    for entry in sorted(resources.files(__package__).joinpath("kitdata").iterdir(),
                        key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            kit = _kit_from_mapping(yaml.safe_load(entry.read_text(encoding="utf-8")),
                                    entry.name)
            kits[kit.name] = kit
    return kits


def load_kit(name_or_path) -> Kit:
    """A built-in kit by name (any spelling or alias) or a custom kit from a YAML file."""
    text = os.fspath(name_or_path)
    if text.lower().endswith((".yaml", ".yml")) or os.path.sep in text:
        try:
            with open(text, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except OSError as exc:
            raise ChimerismError(f"{text}: cannot read kit file ({exc.strerror})") from None
        except UnicodeDecodeError as exc:
            raise ChimerismError(f"{text}: not a kit file: byte {exc.start} is not UTF-8 "
                                 "text") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ChimerismError(f"{text}{where}: not valid YAML "
                                 f"({getattr(exc, 'problem', None) or exc})") from None
        return _kit_from_mapping(data, text)
    wanted = _kit_key(text)
    kits = builtin_kits()
    for kit in kits.values():
        if wanted in {_kit_key(kit.name), *(_kit_key(a) for a in kit.aliases)}:
            return kit
    raise ChimerismError(f"unknown kit {text!r}: use one of {', '.join(kits)} "
                         f"or the path of a kit YAML file")
