"""Target models of the federated clients."""
from __future__ import annotations

import torch
import torchvision
from torch import nn

ARCHITECTURES = {
    "resnet18": torchvision.models.resnet18,
}


def build_model(name: str, num_classes: int, resolution: int, seed: int) -> nn.Module:
    """A freshly initialised model; the same seed gives the same weights on every machine."""
    torch.manual_seed(seed)
    model = ARCHITECTURES[name](num_classes=num_classes)
    if resolution <= 32 and hasattr(model, "maxpool"):
        # CIFAR stem: a 7x7/2 convolution and max-pool would leave 8x8 maps of a 32x32 image.
        model.conv1 = nn.Conv2d(3, model.conv1.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model
