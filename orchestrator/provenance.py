"""Where and with what a result was produced."""
from __future__ import annotations

import platform
import socket
import subprocess
import sys
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ("gia-orch", "torch", "torchvision", "numpy", "scikit-image", "lpips", "pyarrow", "polars", "submitit")


@cache
def git_sha() -> str | None:
    """The commit of the checkout this code runs from, '+dirty' if it has uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
        if not sha:
            return None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


@cache
def packages() -> dict[str, str | None]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def describe_launch(command: list[str]) -> dict:
    return {"git_sha": git_sha(), "packages": packages(), "host": socket.gethostname(),
            "python": sys.version.split()[0], "platform": platform.platform(), "command": command}
