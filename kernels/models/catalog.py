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


# --- parameter counts, without torch ------------------------------------------------------------------
# What analysis reads as a model's size (Table I's Network Architecture level): the exact number of
# trainable parameters that kernels/models/architectures.py builds, counted from the architecture's
# shape. A test builds every combination the shipped grids use and compares the counts with torch's.
# Activations hold no parameters, so the count does not depend on them.

# torchvision's ResNets: (block kind, blocks per stage); stages have 64, 128, 256, 512 planes.
RESNET_STAGES = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}
MLP_WIDTH = 512  # architectures.MLP's hidden width


def _batch_norm(channels: int) -> int:
    return 2 * channels  # weight and bias (running statistics are buffers, not parameters)


def _resnet_parameters(model: str, num_classes: int, resolution: int) -> int:
    kind, blocks = RESNET_STAGES[model]
    expansion = 4 if kind == "bottleneck" else 1
    stem_kernel = 3 if resolution <= 32 else 7  # the CIFAR stem at 32x32 (architectures._resnet)
    count = 3 * 64 * stem_kernel ** 2 + _batch_norm(64)
    inplanes = 64
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks)):
        for block in range(n):
            if kind == "basic":
                count += 9 * inplanes * planes + _batch_norm(planes) + 9 * planes * planes + _batch_norm(planes)
            else:  # 1x1 down to `planes`, 3x3, 1x1 up to 4 x planes
                count += (inplanes * planes + _batch_norm(planes) + 9 * planes * planes + _batch_norm(planes)
                          + planes * planes * expansion + _batch_norm(planes * expansion))
            # The first block of a stage projects its shortcut (1x1) where it strides or widens.
            if block == 0 and (stage > 0 or inplanes != planes * expansion):
                count += inplanes * planes * expansion + _batch_norm(planes * expansion)
            inplanes = planes * expansion
    return count + inplanes * num_classes + num_classes


def parameter_count(model: str, num_classes: int, resolution: int) -> int:
    """Trainable parameters of `model` built for `num_classes` classes on images of side `resolution`."""
    if model in RESNET_STAGES:
        return _resnet_parameters(model, num_classes, resolution)
    if model == "lenet":  # three 5x5 convolutions of 12 channels, then one linear layer
        side = (resolution + 3) // 4  # after the two stride-2 convolutions
        return (3 * 12 + 12 * 12 + 12 * 12) * 25 + 3 * 12 + 12 * side * side * num_classes + num_classes
    if model == "mlp":  # two hidden layers on the flattened image
        inputs = 3 * resolution * resolution
        return (inputs + 1) * MLP_WIDTH + (MLP_WIDTH + 1) * MLP_WIDTH + (MLP_WIDTH + 1) * num_classes
    raise ValueError(f"no parameter count for model {model!r} (known: {', '.join(DEFAULT_ACTIVATION)})")
