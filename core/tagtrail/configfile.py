"""Loading a service's YAML configuration, with environment overrides.

Every service has one pydantic model (``extra="forbid"``, a description on every field,
``SecretStr`` for secrets). :func:`load_config` reads the YAML file, applies environment
overrides and validates. Any failure raises :class:`~tagtrail.errors.ConfigError` naming
each failing field by its dotted path.

Environment overrides use ``<PREFIX>__<path>``, with ``__`` between levels and list
indexes as numbers, e.g. ``TAGTRAIL_EDGE__MQTT__PASSWORD=s3cret`` or
``TAGTRAIL_EDGE__READERS__0__PORT=/dev/ttyUSB1``. Values are parsed as YAML scalars, so
``true`` and ``1883`` keep their types.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from tagtrail.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def _set_path(data: dict[str, Any], path: list[str], value: Any, env_name: str) -> None:
    node: Any = data
    for i, key in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(env_name, [(".".join(path[: i + 1]), "no such list item")])
            if last:
                node[int(key)] = value
            else:
                node = node[int(key)]
        elif isinstance(node, dict):
            if last:
                node[key] = value
            else:
                node = node.setdefault(key, {})
        else:
            raise ConfigError(env_name, [(".".join(path[:i]), "is not a mapping or list")])


def apply_env_overrides(
    data: dict[str, Any], prefix: str, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Apply ``<prefix>__a__b=value`` variables to ``data`` (in place) and return it."""
    env = os.environ if environ is None else environ
    marker = prefix + "__"
    for name in sorted(env):
        if not name.startswith(marker):
            continue
        path = [p.lower() for p in name[len(marker) :].split("__") if p]
        if not path:
            continue
        try:
            value = yaml.safe_load(env[name])
        except yaml.YAMLError:
            value = env[name]
        if value is None:
            value = env[name]
        _set_path(data, path, value, name)
    return data


def validation_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """One ``(dotted.path, reason)`` per pydantic error."""
    problems = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        msg = err["msg"].removeprefix("Value error, ")
        problems.append((path or "<root>", msg))
    return problems


def load_config(
    path: Path | str,
    model: type[M],
    env_prefix: str,
    environ: Mapping[str, str] | None = None,
) -> M:
    """Read, override and validate a YAML config file. Raises :class:`ConfigError`."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [("<file>", exc.strerror or str(exc))]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [("<yaml>", str(exc).replace("\n", " "))]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [("<root>", "must be a mapping")])
    apply_env_overrides(data, env_prefix, environ)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, validation_problems(exc)) from exc
