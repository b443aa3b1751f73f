import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def orch(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None):
    """Runs the installed `orch` command the way a user does."""
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=cwd or ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
def write_grid(tmp_path):
    def write(text: str, name: str = "grid.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write
