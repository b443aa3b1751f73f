"""Metrics pinned to values that can be derived by hand."""
import numpy as np
import pytest

from kernels.metrics import standard as metrics
from tests.conftest import stage_lpips_backbone


def image(seed=0, shape=(3, 32, 32)):
    return np.random.default_rng(seed).uniform(0.2, 0.8, shape).astype(np.float32)


def test_psnr_of_a_constant_offset():
    x = image()
    # MSE = 0.1^2 = 0.01 -> PSNR = 10 log10(1 / 0.01) = 20 dB exactly.
    assert metrics.psnr(x, x + 0.1) == pytest.approx(20.0, abs=1e-4)
    assert metrics.psnr(x, x + 0.01) == pytest.approx(40.0, abs=1e-3)


def test_ssim_known_values():
    x = image()
    assert metrics.ssim(x, x) == pytest.approx(1.0)
    # A constant offset keeps variances and covariance, only the luminance term moves:
    # l = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) with C1 = (0.01 * 1)^2, per 7x7 window.
    flat = np.full((3, 32, 32), 0.5, np.float32)
    expected = (2 * 0.5 * 0.6 + 1e-4) / (0.5**2 + 0.6**2 + 1e-4)
    assert metrics.ssim(flat, flat + 0.1) == pytest.approx(expected, rel=1e-4)
    assert metrics.ssim(x, image(1)) < 0.2


def test_hungarian_matching_recovers_a_permutation():
    originals = np.stack([image(i) for i in range(5)])
    perm = np.array([3, 0, 4, 1, 2])
    noisy = originals[perm] + np.random.default_rng(9).normal(0, 0.02, originals.shape).astype(np.float32)
    order = metrics.match(originals, noisy)
    np.testing.assert_array_equal(perm[order], np.arange(5))
    rows = metrics.score(originals, noisy, metrics.Lpips("alex", None, "not staged"))
    assert all(r["psnr"] > 30 for r in rows)
    assert [r["matched_position"] for r in rows] == list(order)


def test_lpips_is_null_with_a_reason_when_weights_are_not_staged(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    scorer = metrics.Lpips.load("alex")
    assert scorer.model is None
    assert str(tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth") in scorer.unavailable
    x = np.stack([image()])
    row = metrics.score(x, x, scorer)[0]
    assert row["lpips"] is None and "not staged" in row["lpips_note"]


def test_lpips_reads_staged_backbone_without_network(tmp_path, monkeypatch):
    """Stage a backbone checkpoint the way a user would (here random weights, since none can be
    downloaded) and check LPIPS runs from it: zero for identical images, positive otherwise."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    scorer = stage_lpips_backbone(tmp_path, "alex")
    a, b = np.stack([image(0), image(1)]), np.stack([image(2), image(3)])
    same, different = scorer(a, a), scorer(a, b)
    assert same == pytest.approx([0.0, 0.0], abs=1e-6)
    assert all(d > 0 for d in different)
