"""Target models of the federated clients. Every architecture and activation is a table entry."""
from __future__ import annotations

import torch
import torchvision
from torch import nn

from kernels.models.catalog import ACTIVATION_NAMES, DEFAULT_ACTIVATION

ACTIVATIONS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "rrelu": nn.RReLU,  # random slope in training mode only; attacked models run in eval mode
    "gelu": nn.GELU,
}


class LeNet(nn.Module):
    """The LeNet of DLG (Zhu et al. 2019): three 5x5 convolutions (two of stride 2) and one linear
    layer, with DLG's uniform(-0.5, 0.5) initialisation, which its attack relies on."""

    def __init__(self, num_classes: int, resolution: int, activation: type[nn.Module] = nn.Sigmoid):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 12, kernel_size=5, padding=2, stride=2), activation(),
            nn.Conv2d(12, 12, kernel_size=5, padding=2, stride=2), activation(),
            nn.Conv2d(12, 12, kernel_size=5, padding=2, stride=1), activation(),
        )
        side = (resolution + 3) // 4
        self.fc = nn.Linear(12 * side * side, num_classes)
        for p in self.parameters():
            nn.init.uniform_(p, -0.5, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).flatten(1))


class MLP(nn.Module):
    """Two hidden layers on the flattened image: the smallest target in which every layer is linear."""

    def __init__(self, num_classes: int, resolution: int, activation: type[nn.Module] = nn.ReLU, width: int = 512):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(3 * resolution * resolution, width), activation(),
            nn.Linear(width, width), activation(), nn.Linear(width, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _resnet(factory):
    def build(num_classes: int, resolution: int, activation: type[nn.Module]) -> nn.Module:
        model = factory(num_classes=num_classes)
        if resolution <= 32:
            # CIFAR stem: a 7x7/2 convolution and max-pool would leave 8x8 maps of a 32x32 image.
            model.conv1 = nn.Conv2d(3, model.conv1.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
            model.maxpool = nn.Identity()
        return model
    return build


ARCHITECTURES = {
    "resnet18": _resnet(torchvision.models.resnet18),
    "resnet34": _resnet(torchvision.models.resnet34),
    "resnet50": _resnet(torchvision.models.resnet50),
    "resnet101": _resnet(torchvision.models.resnet101),
    "lenet": LeNet,
    "mlp": MLP,
}
assert set(ARCHITECTURES) == set(DEFAULT_ACTIVATION) and set(ACTIVATIONS) == set(ACTIVATION_NAMES)


def swap_activations(model: nn.Module, activation: str) -> nn.Module:
    """Replaces every activation module in place by a fresh one of the chosen kind. Torchvision's
    ResNets call one module twice per block, which stays correct since activations hold no state."""
    kinds = tuple(ACTIVATIONS.values())
    for name, child in model.named_children():
        if isinstance(child, kinds):
            setattr(model, name, ACTIVATIONS[activation]())
        else:
            swap_activations(child, activation)
    return model


def build_model(name: str, num_classes: int, resolution: int, seed: int, activation: str | None = None) -> nn.Module:
    """A freshly initialised model; the same seed gives the same weights on every machine."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown model {name!r} (valid: {', '.join(ARCHITECTURES)})")
    activation = activation or DEFAULT_ACTIVATION[name]
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r} (valid: {', '.join(ACTIVATIONS)})")
    torch.manual_seed(seed)
    model = ARCHITECTURES[name](num_classes, resolution, ACTIVATIONS[DEFAULT_ACTIVATION[name]])
    if activation != DEFAULT_ACTIVATION[name]:
        swap_activations(model, activation)
    return model
