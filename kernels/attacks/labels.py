"""Label restoration from a shared gradient (step 1 of the paper's Algorithm 1).

Both methods read the gradient of the last linear layer. With cross-entropy, the gradient of that
layer's bias is mean_b(softmax_b - onehot_b): negative exactly for the classes present in the batch as
long as the model is not yet confident, positive for the others. Its weight gradient is the same
quantity times the layer's input, which is non-negative after ReLU, Sigmoid or pooling, so row sums
carry the same sign when the layer has no bias.
"""
from __future__ import annotations

import torch
from torch import nn


def last_layer_signal(model: nn.Module, gradient: list[torch.Tensor],
                      batch_size: int) -> tuple[torch.Tensor, float, bool]:
    """Per-class value whose sign and size say how present a class is, how much one image of a class
    lowers it, and whether it is the bias gradient. From the bias gradient of the last nn.Linear,
    mean_b(p_b) - count/B, one image weighs exactly 1/B. From the weight gradient's row sums (no bias)
    the weight of one image is not known and is estimated as in LLG: the negative mass spread over the
    batch."""
    names = [name for name, _ in model.named_parameters()]
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError(f"label restoration needs a final nn.Linear layer; {type(model).__name__} has none")
    last = linears[-1]
    by_name = dict(zip(names, gradient))
    if f"{last}.bias" in by_name:
        return by_name[f"{last}.bias"].detach().flatten().double().cpu(), 1.0 / batch_size, True
    rows = by_name[f"{last}.weight"].detach().double().sum(dim=1).cpu()
    return rows, float(-rows[rows < 0].sum()) / batch_size, False


def idlg(model: nn.Module, gradient: list[torch.Tensor]) -> torch.Tensor:
    """iDLG (Zhao et al. 2020), one image: the only class whose last-layer gradient is negative."""
    signal, _, _ = last_layer_signal(model, gradient, 1)
    return signal.argmin().reshape(1)


def mean_softmax(model: nn.Module, shape: tuple[int, ...], samples: int = 64, seed: int = 0) -> torch.Tensor:
    """The attacker's estimate of the batch's mean softmax: the model's mean prediction on seeded
    Gaussian inputs of the images' shape (normalised space), as dummy-data variants of LLG do."""
    device = next(model.parameters()).device
    noise = torch.randn((samples, *shape), generator=torch.Generator().manual_seed(seed)).to(device)
    with torch.no_grad():
        return torch.softmax(model(noise), dim=-1).mean(0).double().cpu()


def analytic(model: nn.Module, gradient: list[torch.Tensor], batch_size: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Batch label restoration in the manner of LLG (Wainakh et al. 2022). Every class with a negative
    signal is present (its count outweighs its mean probability). The other places go one at a time to
    the class with the lowest signal after adding back one image's weight for each image already given
    to it. With a bias, the signal is mean softmax - count/B: the estimated mean softmax is subtracted
    first, so that classes the model favours are not counted twice. Returns sorted labels (a batch's
    order is not recoverable)."""
    signal, weight, from_bias = last_layer_signal(model, gradient, batch_size)
    if weight <= 0:
        raise ValueError("no class has a negative last-layer gradient: labels cannot be restored from it")
    labels = torch.argsort(signal)[: min(int((signal < 0).sum()), batch_size)].tolist()
    if from_bias:
        signal = signal - mean_softmax(model, shape)
    signal[labels] += weight
    while len(labels) < batch_size:
        pick = int(signal.argmin())
        labels.append(pick)
        signal[pick] += weight
    return torch.tensor(sorted(labels), dtype=torch.long)


def restore(method: str, model: nn.Module, gradient: list[torch.Tensor], true_labels: torch.Tensor,
            shape: tuple[int, ...]) -> torch.Tensor:
    """The labels the attacker uses: `known` hands over the true ones (the paper's assumption). The
    true labels give the batch size to the other methods, nothing more."""
    return RESTORERS[method](model, gradient, true_labels, shape)


RESTORERS = {
    "known": lambda model, gradient, truth, shape: truth,
    "idlg": lambda model, gradient, truth, shape: idlg(model, gradient).to(truth.device),
    "analytic": lambda model, gradient, truth, shape: analytic(model, gradient, len(truth), shape).to(truth.device),
}
