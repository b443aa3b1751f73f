"""Class fishing (Wen et al., ICML 2022): a malicious server rewrites the classifier of the model it
sends so that, in the gradient of a whole batch, only the images of one class are left (the paper's
Eqs. 5-6); the server then inverts that isolated gradient like a batch of one.

The manipulation (breaching's `cls_attack`, with the target row kept instead of reset). In the last
Linear layer (the classifier, logits z = W f(x) + b on the body's features f):

- every non-target row j: W_j = 0 and b_j = NON_TARGET_BIAS (1000). Their logits are then the same
  constant for every image, and they carry no gradient back into the body (W_j = 0).
- the target row t: left as the honest model has it. Its logit stays on the scale of an honest logit
  (|z| < 3 on the untrained ResNet-18 at 32x32, < 90 on the project's trained one), far below 1000.

So every image, whatever its class, gives the target class the probability p_t = softmax(z)_t ~
exp(z_t - 1000) / (K - 1), which underflows float32 to exactly 0 once 1000 - z_t > ~104 (the smallest
float32 is exp(-103.3)). The gradient a body parameter theta receives from image k is

    dL_k/dtheta = sum_j (p_j - [y_k = j]) W_j df/dtheta = (p_t - [y_k = t]) W_t df/dtheta

(the non-target rows vanish with W_j = 0). It is 0 for an image of another class and -W_t df/dtheta for
an image of class t: the target class's confidence is pushed to zero, so its images get the largest
gradient cross-entropy can give (dL/dz_t = -1) and every other image none. With one image of class t
in the batch, the body gradient the client sends is exactly 1/B times that image's own (Eq. 6).

Why the target row is kept rather than set to breaching's constant 0.5: 0.5 * sum(f) grows with the
feature width and the features' scale (ReLU features are non-negative, and an untrained network in eval
mode has large activations): on the embedded photographs it reaches 460 on the untrained ResNet-18 and
29,500 on the untrained ResNet-50 at 32x32, and once z_t nears 1000 the other images leak back in. The
honest row keeps z_t at the scale the model was built for, and on a trained model it is the class's own
learnt direction.

What the server matches: the body, i.e. every parameter except the classifier's (`body_parameters`).
The classifier's non-target rows receive (p_j - [y_k = j]) f(x_k) from every image of the batch, so
their gradient mixes all images. (Its target row is isolated too, but dropping the whole layer keeps the
matched set a set of whole tensors and loses ~K * width numbers of the body's millions.)

Limits, reported rather than hidden: when other images of the batch share the target's class (repeated
labels, as in CIFAR-10 batches), class fishing isolates the class, not the image; the body gradient is
then the sum of those images' gradients and `isolation_cosine` falls below 1. Wen et al. resolve that
case with feature fishing (splitting the class along one feature's value), which is out of scope here.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from kernels.federated.fedsgd import client_gradient
from kernels.metrics.cosine import ZeroGradient, cosine, direction

# Large enough that exp(z_t - NON_TARGET_BIAS) underflows float32 for any honest logit z_t (margin > 104),
# small enough that the cross-entropy of ~1000 still has float32 resolution ~1e-4. Breaching's value.
NON_TARGET_BIAS = 1000.0


def classifier(model: nn.Module) -> nn.Linear:
    """The model's last Linear layer, which every architecture of the project uses as its output layer."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears or linears[-1].bias is None:
        raise ValueError(f"{type(model).__name__} has no final Linear layer with a bias: class fishing needs one")
    return linears[-1]


def fish(model: nn.Module, target_class: int) -> nn.Module:
    """A manipulated copy of `model` (see the module docstring); `model` itself is left as it was."""
    manipulated = copy.deepcopy(model)
    layer = classifier(manipulated)
    if not 0 <= target_class < layer.out_features:
        raise ValueError(f"target class {target_class} is not one of the classifier's {layer.out_features} outputs")
    with torch.no_grad():
        keep = layer.weight[target_class].clone(), layer.bias[target_class].clone()
        layer.weight.zero_()
        layer.bias.fill_(NON_TARGET_BIAS)
        layer.weight[target_class], layer.bias[target_class] = keep
    return manipulated


def body_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters whose gradient class fishing isolates: all but the classifier's."""
    head = {id(p) for p in classifier(model).parameters()}
    return [p for p in model.parameters() if id(p) not in head]


def body_gradient(model: nn.Module, gradient: list[torch.Tensor]) -> list[torch.Tensor]:
    """The body's entries of a gradient over all of `model`'s parameters (in parameters() order)."""
    head = {id(p) for p in classifier(model).parameters()}
    return [g for p, g in zip(model.parameters(), gradient, strict=True) if id(p) not in head]


def isolation_cosine(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                     target_position: int) -> float | None:
    """Cosine between the body gradient the client sends for its batch and the target image's own body
    gradient on the same model: 1 when the batch gradient is the target's alone (Eq. 6). On the honest
    model it shows how much the other images drown the target. None (undefined) when either gradient is
    exactly zero, as for an image a trained model fits perfectly."""
    sent = body_gradient(model, client_gradient(model, images, labels))
    own = body_gradient(model, client_gradient(model, images[target_position:target_position + 1],
                                               labels[target_position:target_position + 1]))
    try:
        units = [direction(torch.cat([g.flatten() for g in grads]), what)[0]
                 for grads, what in ((sent, "the batch"), (own, "the target"))]
    except ZeroGradient:
        return None
    return cosine(*units)


def target_class_count(labels: torch.Tensor, target_position: int) -> int:
    """How many images of the batch (the target included) share the target's class."""
    return int((labels == labels[target_position]).sum())
