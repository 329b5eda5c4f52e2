"""Finding the real services and tools tests need.

With ``CI=true`` a missing service or package fails the test; elsewhere it skips, with
the reason, so a developer without mosquitto still runs the rest.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(reason: str) -> None:
    """Fail under CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"required for CI: {reason}")
    pytest.skip(reason)


def require_executable(name: str, *candidates: str) -> str:
    """Path of an executable, looked up on PATH and at the given candidate paths."""
    for c in (name, *candidates):
        found = shutil.which(c)
        if found:
            return found
    missing(f"executable {name!r} not found (install the Debian package)")
    raise AssertionError("unreachable")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
