"""Building blocks shared by every config section."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

PositiveSeconds = Annotated[float, Field(gt=0, le=86400)]
Port = Annotated[int, Field(ge=1, le=65535)]


def _relative_to_config(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        return Path(base) / value
    return value


ConfigPath = Annotated[Path, AfterValidator(_relative_to_config)]
"""A path in the config; relative paths are taken from the config file's folder."""


class Strict(BaseModel):
    """Every config model forbids unknown keys so a misspelt key is an error, not a no-op."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Schedule(Strict):
    """Per-check overrides of ``defaults``; unset fields fall back to the defaults."""

    interval: PositiveSeconds | None = None
    """Seconds between runs; unset uses `defaults.interval`."""
    timeout: PositiveSeconds | None = None
    """Seconds before the run is cut; unset uses `defaults.timeout`."""


def check_secret(owner: BaseModel, name: str, *, required: bool) -> None:
    """Validate the ``<name>_file`` / ``<name>_env`` pair of ``owner``.

    Secrets are given by reference only (a file holding it, or an environment variable):
    configs end up in repositories and in ``ps`` output, secrets must not.
    """
    file: Path | None = getattr(owner, f"{name}_file")
    env: str | None = getattr(owner, f"{name}_env")
    if file is not None and env is not None:
        raise ValueError(f"give only one of '{name}_file' or '{name}_env'")
    if file is None and env is None:
        if required:
            raise ValueError(f"'{name}_file' or '{name}_env' is required")
        return
    if file is not None and not file.is_file():
        raise ValueError(f"{name}_file: {file} does not exist or is not a file")
    if env is not None and env not in os.environ:
        raise ValueError(f"{name}_env: environment variable {env} is not set")


def reveal_secret(file: Path | None, env: str | None) -> str | None:
    """Read a secret at the moment it is needed; never log or export the value."""
    if file is not None:
        return file.read_text(encoding="utf-8").rstrip("\r\n")
    if env is not None:
        return os.environ[env]
    return None
