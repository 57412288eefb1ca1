"""YAML that remembers line numbers, for messages that point at the line to fix.

Safe loading only (no arbitrary tags). Every mapping is a ``LineDict`` that
knows its own line and the line of each of its keys.
"""

from __future__ import annotations

import re

import yaml


class LineDict(dict):
    """A mapping that remembers the line of itself and of each key (1-based)."""

    line: int = 0
    lines: dict


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):   # libyaml's parser: 10x faster
    def construct_mapping(self, node, deep=False):
        mapping = LineDict(super().construct_mapping(node, deep=True))
        mapping.line = node.start_mark.line + 1
        mapping.lines = {self.construct_object(k, deep=True): k.start_mark.line + 1
                         for k, _ in node.value}
        return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                        _Loader.construct_mapping)

# YAML 1.1 reads a number in exponent form only with a dot and a signed exponent
# (1.0e+5), so `bounds: [[1e5, null]]` held the string '1e5'; it is a number, as YAML 1.2
# and every user read it. The loader gets its own copy of the resolvers, so PyYAML's stay.
_Loader.yaml_implicit_resolvers = {first: list(resolvers) for first, resolvers
                                   in _Loader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def load(text: str):
    """Parse YAML text safely; mappings come back as ``LineDict``."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def line_of(mapping, key=None) -> int:
    """The line of ``key`` in ``mapping`` (or of the mapping itself); 0 if unknown."""
    if isinstance(mapping, LineDict):
        return mapping.lines.get(key, mapping.line) if key is not None else mapping.line
    return 0
