"""The config reference, generated from the model so it cannot drift from it.

``python -m monitor.config.keys > docs/config.md`` rewrites the reference;
tests/test_config_docs.py fails when the committed file differs from the model.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from monitor.config import Config


def key_paths(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    """Yield ``(path, type, default, description)`` for every field; lists show as ``[]``."""
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        default = "required" if field.is_required() else _default_text(field.default)
        if field.default_factory is not None:
            default = _default_text(field.default_factory())  # type: ignore[call-arg]
        yield path, _type_text(field.annotation), default, field.description or ""
        for nested, suffix in _nested_models(field.annotation):
            yield from key_paths(nested, path + suffix)


def _default_text(value: Any) -> str:
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        return "(section)"
    if value is None:
        return "`null`"
    return f"`{value}`"


def _type_text(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_text(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_text(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {_type_text(args[0])}"
    if origin is dict:
        return f"map of {_type_text(args[0])} to {_type_text(args[1])}"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if isinstance(annotation, type):
        return {"str": "string", "float": "number", "int": "integer", "bool": "boolean"}.get(
            annotation.__name__, annotation.__name__.lower()
        )
    return str(annotation)


def _nested_models(annotation: Any) -> Iterator[tuple[type[BaseModel], str]]:
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, ""
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _nested_models(arg)
    elif origin is list:
        for model, suffix in _nested_models(typing.get_args(annotation)[0]):
            yield model, "[]" + suffix
    elif origin is dict:
        for model, suffix in _nested_models(typing.get_args(annotation)[1]):
            yield model, ".<name>" + suffix


def render_reference() -> str:
    lines = [
        "# Config reference",
        "",
        "Generated from the config model by `python -m monitor.config.keys > docs/config.md`;",
        "a test fails when this file and the model differ. See `examples/mailprobe.yml` for a",
        "commented example. Unknown keys are errors. Relative paths are taken from the config",
        "file's folder. Secrets are `<name>_file` or `<name>_env`, never inline.",
        "",
        "| key | type | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for path, kind, default, description in key_paths(Config):
        cells = [f"`{path}`", kind, default, " ".join(description.split())]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
