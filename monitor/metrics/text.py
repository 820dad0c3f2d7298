"""Prometheus text format (0.0.4) for a handful of families built per request.

``/probe`` answers ~70 fresh series per request; ``prometheus_client``'s
``generate_latest`` wants a registry and a collector around them and validates and
re-sorts every label set on the way, which cost as much as the verdicts did.  This
writes the same bytes from the families directly (tests compare the two).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from functools import lru_cache

from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

_go_float: Callable[[float], str] = floatToGoString
"""prometheus_client's float formatting (Go's), so the bytes are the same."""
_ONE, _ZERO = _go_float(1.0), _go_float(0.0)


def _number(value: float) -> str:
    # Most /probe samples are 1 or 0 (states, flags); -0.0 keeps its sign.
    if value == 1.0:
        return _ONE
    if value == 0.0 and math.copysign(1.0, value) > 0:
        return _ZERO
    return _go_float(value)


@lru_cache(maxsize=256)
def _header(name: str, documentation: str, kind: str) -> str:
    doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"


@lru_cache(maxsize=4096)
def _label_text(key: str, value: str) -> str:
    escaped = value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return f'{key}="{escaped}"'


_LABEL_SETS = 4096
_label_sets: dict[tuple[tuple[str, str], ...], str] = {}
"""Rendered ``{...}`` per label set: /probe repeats the same few dozen."""


def _labels(labels: dict[str, str]) -> str:
    key = tuple(labels.items())
    text = _label_sets.get(key)
    if text is None:
        text = "{" + ",".join(_label_text(k, v) for k, v in sorted(labels.items())) + "}"
        if len(_label_sets) >= _LABEL_SETS:
            _label_sets.clear()
        _label_sets[key] = text
    return text


def render(families: Iterable[Metric]) -> bytes:
    """The gauge families in the text format, as ``generate_latest`` writes them (no
    timestamps, no exemplars); other types need its munging and are refused."""
    out: list[str] = []
    for family in families:
        if family.type != "gauge":
            raise ValueError(f"{family.name}: only gauges are rendered here, not {family.type}")
        out.append(_header(family.name, family.documentation, family.type))
        for sample in family.samples:
            if sample.labels:
                out.append(f"{sample.name}{_labels(sample.labels)} {_number(sample.value)}\n")
            else:
                out.append(f"{sample.name} {_number(sample.value)}\n")
    return "".join(out).encode("utf-8")
