"""Names of the target architectures and activations, without torch: grids are validated against
these before anything runs. kernels/models/architectures.py holds the matching builders."""
from __future__ import annotations

import os
from pathlib import Path

# architecture -> the activation it has when the grid does not choose one (DLG's LeNet is a Sigmoid net)
DEFAULT_ACTIVATION = {
    "resnet18": "relu",
    "resnet34": "relu",
    "resnet50": "relu",
    "resnet101": "relu",
    "lenet": "sigmoid",
    "mlp": "relu",
}
ACTIVATION_NAMES = ("relu", "sigmoid", "tanh", "leaky_relu", "rrelu", "gelu")
# torchvision ImageNet weights exist for these (model_state=trained on ImageNet)
IMAGENET_WEIGHTS = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
    "resnet101": "ResNet101_Weights",
}
# torchvision's file names for those weights in <torch hub dir>/checkpoints (a test checks them
# against torchvision, so that staging can be checked before a job imports torch)
IMAGENET_WEIGHT_FILES = {
    "resnet18": "resnet18-f37072fd.pth",
    "resnet34": "resnet34-b627a593.pth",
    "resnet50": "resnet50-0676ba61.pth",
    "resnet101": "resnet101-63fe2227.pth",
}


def torch_hub_dir() -> str:
    """torch.hub.get_dir() without importing torch: $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return os.path.join(os.path.expanduser(home), "hub")


def pretrained_weights_path(model: str) -> Path:
    """Where torchvision keeps its staged ImageNet weights for `model` (never downloaded here)."""
    return Path(torch_hub_dir()) / "checkpoints" / IMAGENET_WEIGHT_FILES[model]
