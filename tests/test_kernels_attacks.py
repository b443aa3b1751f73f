"""Attacks on tiny models: IG and DLG recover an image, labels are restored, FedAvg simulation matters.

Images are the embedded photographs (real content, not noise). A reconstruction that has learnt nothing
about the image scores about 6.6 dB against it (uniform noise) and 8.6 dB (flat mid-grey); so a bound
of 20 dB means an error ~10x smaller in RMSE than the best uninformed guess.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kernels.attacks import dlg, labels as restoration
from kernels.attacks.fedavg import observer
from kernels.federated.local_training import LocalTraining, local_update
from kernels.attacks.ig import IGConfig, invert
from kernels.federated.fedsgd import client_gradient
from kernels.data import embedded
from kernels.metrics.standard import Lpips, psnr, score
from kernels.models.architectures import build_model

NO_LPIPS = Lpips("alex", None, "not needed here")
UNINFORMED_PSNR = 8.6  # flat grey against the photograph below; noise does worse (see module docstring)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def photographs(indices, side=32):
    images, labels = embedded.evaluation_split()
    x = torch.as_tensor(images[indices])
    return (F.avg_pool2d(x, 32 // side) if side < 32 else x), torch.as_tensor(labels[indices])


def test_uninformed_guesses_score_low():
    x, _ = photographs([3])
    assert psnr(x[0].numpy(), np.full((3, 32, 32), 0.5, np.float32)) < UNINFORMED_PSNR + 0.5
    noise = np.random.default_rng(0).uniform(0, 1, (3, 32, 32)).astype(np.float32)
    assert psnr(x[0].numpy(), noise) < UNINFORMED_PSNR


def test_ig_recovers_one_image_from_an_mlp():
    """IG's settings (cosine distance, signed Adam, boxed) on an MLP at 32x32: 100 iterations reach
    about 22.6 dB; 20 dB is far above any uninformed guess (< 9 dB)."""
    x, y = photographs([3])
    mean = torch.tensor(embedded_mean()).view(1, 3, 1, 1)
    std = torch.tensor(embedded_std()).view(1, 3, 1, 1)
    model = build_model("mlp", 8, 32, 0).eval()
    gradient = client_gradient(model, (x - mean) / std, y)
    reconstruction, loss, run = invert(model, gradient, y, (3, 32, 32), mean, std,
                                       IGConfig(iterations=100, tv=1e-4), torch.Generator().manual_seed(0))
    recovered = (reconstruction * std + mean).clamp(0, 1)
    assert psnr(x[0].numpy(), recovered[0].numpy()) > 20.0
    assert np.isfinite(loss) and run["interruptions"] == 0


def test_dlg_recovers_one_image_and_its_label_jointly():
    """DLG (L2 distance, L-BFGS, label optimised jointly) on its own Sigmoid LeNet, 16x16 images in [0, 1]
    as in DLG: 100 steps reach ~78 dB; 40 steps clear 25 dB, which no uninformed guess approaches."""
    x, y = photographs([3], side=16)
    model = build_model("lenet", 8, 16, 0).eval()
    gradient = client_gradient(model, x, y)
    reconstruction, labels, loss, run = dlg.invert(model, gradient, None, (3, 16, 16), 1, 8, dlg.DLGConfig(40),
                                                   torch.Generator().manual_seed(0))
    assert psnr(x[0].numpy(), reconstruction.clamp(0, 1)[0].numpy()) > 25.0
    assert labels.tolist() == y.tolist() and run["diverged_at"] is None and loss < 1e-3


def test_dlg_stops_on_divergence_and_keeps_a_finite_iterate():
    """L-BFGS with a huge step diverges on DLG's objective; the attack says where, never returns NaN."""
    x, y = photographs([3], side=16)
    model = build_model("lenet", 8, 16, 0, "relu").eval()
    gradient = client_gradient(model, x, y)
    reconstruction, _, loss, run = dlg.invert(model, gradient, y, (3, 16, 16), 1, 8, dlg.DLGConfig(30, lr=1e4),
                                              torch.Generator().manual_seed(0))
    assert run["diverged_at"] is not None and run["diverged_at"] <= 30
    assert torch.isfinite(reconstruction).all() and np.isfinite(loss)


@pytest.mark.parametrize("name, activation", [("lenet", "sigmoid"), ("mlp", "relu"), ("resnet18", "relu")])
def test_idlg_restores_every_single_label(name, activation):
    x, y = photographs(list(range(0, 64, 8)))  # one image of each of the 8 classes
    model = build_model(name, 8, 32, 0, activation).eval()
    for i in range(8):
        gradient = client_gradient(model, x[i:i + 1], y[i:i + 1])
        assert restoration.idlg(model, gradient).tolist() == [int(y[i])]


@pytest.mark.parametrize("name, draws", [("mlp", 10), ("resnet18", 3)])
def test_analytic_restoration_of_unique_label_batches(name, draws):
    """Unique-label batches of 2, 4, 6 and 8 of the 8 classes (seeded draws of each size), as the
    normalised images a kernel feeds the model. (DLG's Sigmoid LeNet with its uniform(-0.5, 0.5)
    initialisation predicts too unevenly across inputs for the mean-softmax estimate: ~60% there.)"""
    model = build_model(name, 8, 32, 0).eval()
    rng = np.random.default_rng(0)
    for batch_size in (2, 4, 6, 8):
        for _ in range(draws):
            indices = [8 * c + int(rng.integers(8)) for c in rng.permutation(8)[:batch_size]]
            x, y = photographs(indices)
            gradient = client_gradient(model, normalise(x), y)
            assert restoration.analytic(model, gradient, batch_size, (3, 32, 32)).tolist() == sorted(y.tolist())


def test_analytic_restoration_counts_repeated_labels():
    x, y = photographs([0, 1, 2, 8, 16, 17])  # classes 0, 0, 0, 1, 2, 2
    model = build_model("resnet18", 8, 32, 0).eval()
    gradient = client_gradient(model, normalise(x), y)
    assert restoration.analytic(model, gradient, 6, (3, 32, 32)).tolist() == [0, 0, 0, 1, 2, 2]


def test_known_labels_are_the_true_ones():
    x, y = photographs([3, 9])
    model = build_model("mlp", 8, 32, 0).eval()
    assert restoration.restore("known", model, client_gradient(model, x, y), y, (3, 32, 32)) is y


def test_fedavg_update_is_the_unrolled_sgd_steps():
    """Two epochs of batch 2 over 4 images = 4 SGD steps in fixed batch order; checked by hand."""
    x, y = photographs([3, 11, 20, 40], side=16)
    model = build_model("mlp", 8, 16, 0).eval()
    update = local_update(model, x, y, LocalTraining(epochs=2, batch_size=2, lr=0.01))
    manual = build_model("mlp", 8, 16, 0).eval()
    optimiser = torch.optim.SGD(manual.parameters(), lr=0.01)
    for step in range(4):
        j = step % 2
        optimiser.zero_grad()
        F.cross_entropy(manual(x[2 * j:2 * j + 2]), y[2 * j:2 * j + 2]).backward()
        optimiser.step()
    for u, new, old in zip(update, manual.parameters(), model.parameters()):
        torch.testing.assert_close(u, (new - old).detach(), rtol=1e-4, atol=1e-6)
    differentiable = local_update(model, x.clone().requires_grad_(True), y, LocalTraining(2, 2, 0.01), True)
    assert differentiable[0].requires_grad


def test_strong_simulation_beats_no_simulation():
    """Table III's direction on a tiny client (4 images, E=2, B=2, lr 0.01, MLP, 16x16): unrolling the
    true local training recovers the images (~24 dB after 100 iterations), taking the update for a
    gradient does not (~7 dB)."""
    x, y = photographs([3, 11, 20, 40], side=16)
    zero, one = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    model = build_model("mlp", 8, 16, 0).eval()
    true, weak = LocalTraining(2, 2, 0.01), LocalTraining(2, 4, 1e-3)
    update = local_update(model, x, y, true)
    results = {}
    for simulation in ("strong", "none"):
        reconstruction, _, _ = invert(model, update, y, (3, 16, 16), zero, one, IGConfig(iterations=100, tv=1e-4),
                                      torch.Generator().manual_seed(0),
                                      observe=observer(model, y, simulation, true, weak))
        results[simulation] = np.mean([r["psnr"] for r in score(x.numpy(), reconstruction.clamp(0, 1).numpy(),
                                                                 NO_LPIPS)])
    assert results["strong"] > 20.0 and results["strong"] > results["none"] + 10.0


def normalise(x):
    return (x - torch.tensor(embedded_mean()).view(1, 3, 1, 1)) / torch.tensor(embedded_std()).view(1, 3, 1, 1)


def embedded_mean():
    from kernels.data.catalog import DATASETS
    return DATASETS["embedded"].mean


def embedded_std():
    from kernels.data.catalog import DATASETS
    return DATASETS["embedded"].std


def test_dlg_resumes_from_its_checkpoint(tmp_path):
    """Three L-BFGS steps, a checkpoint, then a new run to six from it: the same result as six in a row."""
    from kernels.attacks.checkpoint import AttackCheckpoint

    x, y = photographs([3], side=16)
    model = build_model("lenet", 8, 16, 0).eval()
    gradient = client_gradient(model, x, y)

    def attack(steps, checkpoint=None):
        return dlg.invert(model, gradient, None, (3, 16, 16), 1, 8, dlg.DLGConfig(steps),
                          torch.Generator().manual_seed(0), checkpoint)

    straight, _, straight_loss, _ = attack(6)
    attack(3, AttackCheckpoint(tmp_path, every_s=0.0))
    resumed, _, resumed_loss, run = attack(6, AttackCheckpoint(tmp_path, every_s=0.0))
    assert run["interruptions"] == 1 and run["resumed_from_iteration"] == 3
    torch.testing.assert_close(resumed, straight)
    assert resumed_loss == pytest.approx(straight_loss, rel=1e-5)


def test_restoration_from_weight_gradient_without_bias():
    """No bias on the last layer: row sums of its weight gradient (ReLU features are non-negative)."""
    torch.manual_seed(0)
    model = build_model("mlp", 8, 32, 0).eval()
    model.layers[-1] = torch.nn.Linear(512, 8, bias=False)
    x, y = photographs([3, 20, 33, 60])
    for i in range(4):
        assert restoration.idlg(model, client_gradient(model, normalise(x[i:i + 1]), y[i:i + 1])).tolist() == [int(y[i])]
    gradient = client_gradient(model, normalise(x), y)
    assert restoration.analytic(model, gradient, 4, (3, 32, 32)).tolist() == sorted(y.tolist())
