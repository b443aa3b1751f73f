"""The gradient analyses (Table II, Figures 4 and 8) on tiny settings: their batches, their numbers
checked against direct computations, and their rows as the orchestrator receives them."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kernels.analyses import activation_inputs, gradient_embedding
from kernels.metrics.cosine import cosine, direction
from kernels.analyses.gradient_embedding import CountSketch
from kernels.analyses.gradient_similarity import batch_positions, draw_images
from kernels.data.embedded import evaluation_split
from kernels.models.architectures import build_model
from kernels.registry import KERNELS
from tests.test_kernels_run import context, resolved


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(kernel, tmp_path, **given):
    return KERNELS[kernel].load()(resolved(kernel, **given), context(tmp_path))


def flat_gradient(model, image, label):
    """Written out again here, so the kernels' arithmetic is checked against something independent."""
    loss = F.cross_entropy(model(image), label)
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.parameters()))]).double()


def test_directions_of_long_and_tiny_gradients():
    """ResNet-18 sized (11M entries) and at a trained model's scale (~1e-23): the unit vector must still
    have norm 1 to 1e-6, or cosines of nearly parallel gradients leave [-1, 1]."""
    v = torch.randn(11_000_000, generator=torch.Generator().manual_seed(0))
    for scale in (1.0, 1e-25):
        unit, norm = direction(v * scale, "a test vector")
        assert cosine(unit, unit) == pytest.approx(1.0, abs=1e-6)
        assert norm == pytest.approx(float(v.double().norm()) * scale, rel=1e-6)
    with pytest.raises(ValueError, match="gradient of image 7 is exactly zero"):
        direction(torch.zeros(10), "image 7")


# --- Table II -------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 3])
def test_table_ii_batches_change_only_label_repetition(seed):
    labels = evaluation_split()[1]
    b = 4
    drawn = draw_images(labels, b, seed)
    assert len(set(drawn.tolist())) == 2 * b - 1
    batches = [drawn[p] for p in batch_positions(b)]
    for i, batch in enumerate(batches, start=1):
        assert len(batch) == b and batch[0] == drawn[0]
        assert (labels[batch] == labels[drawn[0]]).sum() == i
        others = labels[batch][labels[batch] != labels[drawn[0]]]
        assert len(set(others.tolist())) == len(others)  # the other classes appear once each
    for smaller, larger in zip(batches, batches[1:]):  # one other-class image swapped for a same-class one
        assert len(set(smaller) - set(larger)) == 1 and len(set(larger) - set(smaller)) == 1


def test_table_ii_refuses_data_sets_too_small():
    with pytest.raises(ValueError, match="needs 4 distinct labels .* only 3 classes"):
        draw_images(np.repeat(np.arange(3), 10), 4, 0)
    with pytest.raises(ValueError, match="needs 4 images of one class .* more than 3"):
        draw_images(np.repeat(np.arange(8), 3), 4, 0)
    # A class too small for the batch is never chosen as the anchor's.
    labels = np.array([0] * 4 + [1, 2, 3, 4])
    assert all(labels[draw_images(labels, 4, seed)[0]] == 0 for seed in range(10))


@pytest.mark.parametrize("seed", [0, 1])
def test_similarity_rises_with_shared_labels(tmp_path, seed):
    """The paper's first row on the embedded set, untrained Sigmoid LeNet: the anchor's gradient is
    much closer to I_4's than to I_1's (0.72 -> 0.98 and 0.67 -> 0.98 for these seeds). The row is
    not monotone for every seed (one of ten seeds dips at I_4), so only the ends are compared."""
    rows = run("gradient_similarity", tmp_path, model="lenet", data_seed=seed).rows
    anchor = {r["shared_labels"]: r["anchor_cosine"] for r in rows if r["position"] == 0}
    assert anchor[4] > anchor[1] + 0.1
    last_column = [r["cosine"] for r in rows if r["shared_labels"] == 4]
    assert min(last_column) > 0.9  # the paper's last column: every image of I_4 is close to I_4


def test_similarity_rows_match_a_direct_computation(tmp_path):
    params = resolved("gradient_similarity", model="lenet", batch_size=3, data_seed=2)
    rows = KERNELS["gradient_similarity"].load()(params, context(tmp_path)).rows
    assert len(rows) == 9 and {r["shared_labels"] for r in rows} == {1, 2, 3}
    assert set(rows[0]) == {"shared_labels", "position", "image_index", "label", "same_class_as_anchor", "cosine",
                            "anchor_cosine", "kernel_seconds", "device"}
    for i in (1, 2, 3):
        batch = [r for r in rows if r["shared_labels"] == i]
        assert [r["position"] for r in batch] == [0, 1, 2] and sum(r["same_class_as_anchor"] for r in batch) == i
    images, labels = evaluation_split()
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    model = build_model("lenet", 8, 32, params["model_seed"], "sigmoid").eval()
    for row in rows[3:6]:  # I_2
        batch = [r["image_index"] for r in rows if r["shared_labels"] == 2]
        x = (torch.as_tensor(images[batch]) - mean) / std
        batch_gradient = flat_gradient(model, x, torch.as_tensor(labels[batch]))
        k = batch.index(row["image_index"])
        single = flat_gradient(model, x[k:k + 1], torch.as_tensor(labels[batch][k:k + 1]))
        assert row["cosine"] == pytest.approx(float(F.cosine_similarity(single, batch_gradient, dim=0)), abs=1e-5)


# --- Figure 4 -------------------------------------------------------------------------------------

def test_count_sketch_keeps_cosines_and_is_fixed():
    generator = torch.Generator().manual_seed(1)
    a, noise = torch.randn(200_000, generator=generator), torch.randn(200_000, generator=generator)
    b = 0.6 * a + 0.8 * noise  # cosine 0.6 in expectation
    sketch = CountSketch(len(a), 1 << 14, 0, torch.device("cpu"))
    truth = float(F.cosine_similarity(a, b, dim=0))
    sa, sb = sketch(a), sketch(b)
    # The estimate's standard deviation is at most sqrt((1 + 0.36) / 2^14) ~ 0.009.
    assert float(F.cosine_similarity(sa, sb, dim=0)) == pytest.approx(truth, abs=0.04)
    assert torch.equal(CountSketch(len(a), 1 << 14, 0, torch.device("cpu"))(a), sa)


def test_embedding_rows_exact_and_sketched(tmp_path, monkeypatch):
    n = 12  # the embedded set's 8 classes dealt: classes 1..4 of the subset hold two images, the others one
    result = run("gradient_embedding", tmp_path, model="lenet", num_images=n, perplexity=3.0)
    rows = result.rows
    assert len(rows) == n and result.images == []
    assert set(rows[0]) == {"image_index", "label", "embed_x", "embed_y", "gradient_norm", "mean_cosine_to_others",
                            "mean_cosine_same_class", "mean_cosine_other_class", "exact_cosines", "kernel_seconds",
                            "device"}
    assert all(r["exact_cosines"] for r in rows)  # LeNet has fewer parameters than the sketch has buckets
    for r in rows:
        assert np.isfinite([r["embed_x"], r["embed_y"]]).all() and -1 <= r["mean_cosine_to_others"] <= 1
        assert r["gradient_norm"] > 0

    # The same images directly: their mean cosines and norms.
    images, labels = evaluation_split()
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    model = build_model("lenet", 8, 32, 0, "sigmoid").eval()
    index = [r["image_index"] for r in rows]
    x, y = (torch.as_tensor(images[index]) - mean) / std, torch.as_tensor(labels[index])
    grads = torch.stack([flat_gradient(model, x[k:k + 1], y[k:k + 1]) for k in range(n)])
    cos = F.cosine_similarity(grads[:, None], grads[None], dim=2)
    expected = (cos.sum(1) - 1) / (n - 1)
    assert [r["mean_cosine_to_others"] for r in rows] == pytest.approx(expected.tolist(), abs=1e-5)
    assert [r["gradient_norm"] for r in rows] == pytest.approx(grads.norm(dim=1).tolist(), rel=1e-4)
    for k, r in enumerate(rows):
        twin = [j for j in range(n) if j != k and y[j] == y[k]]
        if twin:
            assert r["mean_cosine_same_class"] == pytest.approx(float(cos[k, twin].mean()), abs=1e-5)
        else:
            assert r["mean_cosine_same_class"] is None
        other = [j for j in range(n) if y[j] != y[k]]
        assert r["mean_cosine_other_class"] == pytest.approx(float(cos[k, other].mean()), abs=1e-5)
    assert sum(r["mean_cosine_same_class"] is not None for r in rows) == 8

    # Forced through the sketch (as ResNets are), the cosines stay close to the exact ones.
    monkeypatch.setattr(gradient_embedding, "SKETCH_DIM", 1 << 13)
    sketched = run("gradient_embedding", tmp_path, model="lenet", num_images=n, perplexity=3.0).rows
    assert not sketched[0]["exact_cosines"]
    assert [r["mean_cosine_to_others"] for r in sketched] == pytest.approx(expected.tolist(), abs=0.05)


# --- Figure 8 -------------------------------------------------------------------------------------

def test_activation_histograms_count_every_input(tmp_path):
    result = run("activation_inputs", tmp_path, model="mlp", num_images=5)
    rows = result.rows
    assert set(rows[0]) == {"layer", "layer_index", "calls_per_forward", "bin_low", "bin_high", "count",
                            "fraction_in_unit_range", "input_mean", "input_std", "kernel_seconds", "device"}
    assert [r["layer"] for r in rows[::122]] == ["layers.2", "layers.4"] and len(rows) == 2 * 122
    first = [r for r in rows if r["layer"] == "layers.2"]
    assert sum(r["count"] for r in first) == 5 * 512  # 5 images, 512 inputs each
    assert first[0]["bin_low"] == -np.inf and first[-1]["bin_high"] == np.inf and first[1]["bin_low"] == -6.0

    # The first layer's inputs directly: the same histogram, fraction and moments.
    params = resolved("activation_inputs", model="mlp", num_images=5)
    from kernels.federated.client import client_indices
    images, labels = evaluation_split()
    x = torch.as_tensor(images[client_indices(params, labels)])
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    model = build_model("mlp", 8, 32, 0, "relu").eval()
    with torch.no_grad():
        hidden = model.layers[1](x.flatten(1))
        second = model.layers[3](torch.relu(hidden))
    inputs = torch.cat([hidden.flatten(), second.flatten()]).double().numpy()
    counts, _ = np.histogram(hidden.numpy(), bins=activation_inputs.EDGES)
    assert [r["count"] for r in first[1:-1]] == counts.tolist()
    assert first[0]["count"] == int((hidden < -6).sum()) and first[-1]["count"] == int((hidden >= 6).sum())
    assert rows[0]["fraction_in_unit_range"] == pytest.approx(float(np.mean(np.abs(inputs) <= 2)))
    assert 0 <= rows[0]["fraction_in_unit_range"] <= 1
    assert rows[0]["input_mean"] == pytest.approx(inputs.mean(), rel=1e-4)
    assert rows[0]["input_std"] == pytest.approx(inputs.std(), rel=1e-4)


def test_activation_modules_called_twice_are_counted_twice(tmp_path):
    rows = run("activation_inputs", tmp_path, model="resnet18", activation="sigmoid", num_images=2).rows
    layers = {r["layer"]: r["calls_per_forward"] for r in rows}
    assert len(layers) == 9 and layers["relu"] == 1 and layers["layer1.0.relu"] == 2
    block = sum(r["count"] for r in rows if r["layer"] == "layer1.0.relu")
    assert block == 2 * 2 * 64 * 32 * 32  # 2 images, 2 calls, 64 channels of 32 x 32
    # Fixed edges: histograms of different jobs line up bin by bin.
    mlp = run("activation_inputs", tmp_path, model="mlp", num_images=1).rows
    assert [(r["bin_low"], r["bin_high"]) for r in mlp[:122]] == [(r["bin_low"], r["bin_high"]) for r in rows[:122]]
