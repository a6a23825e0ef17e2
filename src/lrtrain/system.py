"""What this machine offers lrtrain: versions, the BLAS, torch's devices (`lrtrain info`, bug reports)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from typing import Any

from lrtrain import __version__


def describe(torch: dict[str, Any]) -> dict[str, Any]:
    """Everything `lrtrain info` shows, as plain data, with `torch` what the torch engine says of itself
    (lrtrain.engine_torch.describe, asked first: torch may load a BLAS of its own)."""
    from threadpoolctl import threadpool_info

    blas = [
        {
            "library": pool.get("internal_api"),
            "version": pool.get("version"),
            "threads": pool.get("num_threads"),
            "architecture": pool.get("architecture"),
            "path": pool.get("filepath"),
        }
        for pool in threadpool_info()
        if pool.get("user_api") == "blas"
    ]
    return {
        "lrtrain": __version__,
        "python": f"{platform.python_version()} ({platform.python_implementation()}, {sys.executable})",
        "platform": platform.platform(),
        "cpu": {"model": _cpu_model(), "cores": os.cpu_count(), "usable": usable_cores()},
        "packages": {name: _version(name) for name in ("numpy", "torch", "typer", "rich", "pydantic", "matplotlib")},
        "blas": blas,
        "torch": torch,
    }


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None  # an optional extra that is not installed


def usable_cores() -> int:
    """Cores this process may run on (a container or taskset may allow fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


THREADS_PER_CORE = 4  # beyond this many threads a core, BLAS and torch only slow down; far beyond, torch's pool crashes


def check_threads(threads: int | None) -> None:
    """train.threads far beyond the machine, refused before it is used (torch's thread pool crashes: a segfault)."""
    cores = usable_cores()
    if threads is not None and threads > THREADS_PER_CORE * cores:
        from lrtrain.errors import ConfigError

        raise ConfigError(
            f"train.threads = {threads} is far more than this machine's {cores} usable CPU core(s): lrtrain allows "
            f"up to {THREADS_PER_CORE} threads a core ({THREADS_PER_CORE * cores} here). Use --set "
            f"train.threads={cores}, or null for the libraries' default (every core)."
        )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
