import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Inverting Gradients on 4 embedded images: batch sizes 1 and 2, untrained and trained (one tiny
# training job): 12 attack jobs of seconds each.
TINY_GRID = """
name: tiny
kernel: ig
fixed: {{dataset: embedded, num_images: 4, iterations: {iterations}, train_epochs: 1, train_pool: 64}}
axes:
  batch_size: [1, 2]
  model_state: [untrained, trained]
resources: {{cpus: 1, mem_gb: 1, time_min: 10}}
"""


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


@pytest.fixture
def one_torch_thread():
    """Tiny models on a shared 2-core machine: more threads only add contention. A kernel's
    runtime.setup changes the count too, so it is put back afterwards."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def stage_lpips_backbone(home: Path, net: str):
    """Random backbone weights staged where LPIPS looks for the real ones (nothing can be downloaded):
    TORCH_HOME must point at `home`. Returns the loaded scorer."""
    import torch
    import torchvision

    from kernels.metrics import standard as metrics

    path = metrics.backbone_weights_path(net)
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    factory = {"alex": torchvision.models.alexnet, "squeeze": torchvision.models.squeezenet1_1,
               "vgg": torchvision.models.vgg16}[net]
    torch.save(factory().state_dict(), path)
    scorer = metrics.Lpips.load(net)
    assert scorer.unavailable is None
    return scorer
