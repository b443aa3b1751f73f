"""The `paper` metric mode: the authors' PSNR, CW-SSIM, LPIPS and matching, on normalised tensors."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from kernels.metrics import paper as metrics_paper
from kernels.metrics import standard as metrics
from kernels.registry import KERNELS
from orchestrator.runner import shard_table
from tests.test_kernels_run import context, resolved
from tests.conftest import stage_lpips_backbone


def image(seed=0, shape=(3, 32, 32)):
    return np.random.default_rng(seed).uniform(0.2, 0.8, shape).astype(np.float32)


def cw(a, b):
    return float(metrics_paper.cw_ssim(a[None], b[None])[0])


NOT_STAGED = metrics.Lpips("alex", None, "not staged")


@pytest.fixture
def staged_lpips(tmp_path, monkeypatch):
    """LPIPS on SqueezeNet with random backbone weights staged the way a user stages real ones (a
    small checkpoint, so the test stays fast); its linear layers ship with the lpips package."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return stage_lpips_backbone(tmp_path / "torch", "squeeze")


def test_cw_ssim_is_one_for_the_same_image_and_falls_with_noise():
    x = image()
    assert cw(x, x) == pytest.approx(1.0, abs=1e-12)
    values = [cw(x, x + np.random.default_rng(3).normal(0, s, x.shape).astype(np.float32))
              for s in (0.01, 0.03, 0.1, 0.3)]
    assert values[0] > 0.95 and all(a > b for a, b in zip(values, values[1:])) and values[-1] < 0.6


def test_cw_ssim_sees_no_lowpass_and_no_sign():
    """The authors' variant keeps only the bandpass levels and takes |sum x conj(y)|: a constant
    offset and a negative image both score 1 (worth knowing when reading their SSIM column)."""
    x = image()
    assert cw(x, x + 0.3) == pytest.approx(1.0, abs=1e-9)
    assert cw(x, 1 - x) == pytest.approx(1.0, abs=1e-8)


def test_cw_ssim_of_a_scaled_image():
    """The transform is linear: y = a x scales every coefficient by a, so each term is
    2a|x|^2 / ((1 + a^2)|x|^2) = 2a / (1 + a^2), up to the fudge K = 1e-6 on small coefficients."""
    x = image() - 0.5
    for a in (0.5, 0.8, 2.0):
        assert cw(x, a * x) == pytest.approx(2 * a / (1 + a * a), abs=2e-4)


def test_cw_ssim_matches_pytorch_wavelets():
    """Pinned to the authors' own implementation: inversefed.metrics.cw_ssim (pytorch_wavelets 1.3.0
    DTCWTForward(J=5, biort="near_sym_b", qshift="qshift_b"), float64), run on these images outside
    this project, which does not depend on pytorch_wavelets."""
    x = image(0)
    noisy = x + np.random.default_rng(5).normal(0, 0.1, x.shape).astype(np.float32)
    assert cw(x, image(1)) == pytest.approx(0.41178656188179846, abs=1e-9)
    assert cw(x, noisy) == pytest.approx(0.8439359400845785, abs=1e-9)


@pytest.mark.parametrize("shape", [(3, 224, 224), (1, 33, 47), (3, 30, 30)])
def test_dtcwt_pyramid_shapes(shape):
    """pytorch_wavelets' extensions (checked against it): an odd side gains a copy of its last row or
    column, a lowpass side that is not a multiple of 4 one copied row or column at each end."""
    levels = metrics_paper.dtcwt_highpasses(np.zeros(shape), 5)
    sides = {(3, 224, 224): [112, 56, 28, 14, 7], (1, 33, 47): [(17, 24), (9, 12), (5, 6), (3, 3), (2, 2)],
             (3, 30, 30): [15, 8, 4, 2, 1]}[shape]
    for level, side in zip(levels, sides):
        h, w = side if isinstance(side, tuple) else (side, side)
        assert level.shape == (shape[0], 6, h, w)


def test_cw_ssim_is_less_sensitive_to_a_translation_than_ssim():
    """The property CW-SSIM was made for: a one-pixel shift of a smooth image scores higher than noise
    of the same MSE, while SSIM ranks the shift below that noise."""
    rng = np.random.default_rng(0)
    x = gaussian_filter(rng.normal(size=(3, 32, 32)), (0, 1, 1), mode="wrap")
    x = (0.5 + 0.2 * x / x.std()).astype(np.float32)
    shifted = np.roll(x, 1, axis=-1)
    mse = np.mean((shifted - x) ** 2)
    noisy = x + np.random.default_rng(1).normal(0, np.sqrt(mse), x.shape).astype(np.float32)
    assert cw(x, shifted) > cw(x, noisy) + 0.05
    assert metrics.ssim(x, shifted) < metrics.ssim(x, noisy)
    assert 1 - cw(x, shifted) < 0.5 * (1 - metrics.ssim(x, shifted))


def test_psnr_on_normalised_tensors():
    # MSE 0.01 against peaks 1/std_c: 10 log10(1 / (std_c^2 * 0.01)) = 20 - 20 log10(std_c), averaged.
    std = np.array([0.5, 0.25, 0.2])
    x = np.zeros((3, 4, 4), np.float32)
    expected = 20 - 20 * np.mean(np.log10(std))  # 20 + 20/3 log10(40) = 30.6804 dB
    assert metrics_paper.psnr(x, x + 0.1, std) == pytest.approx(expected, abs=1e-4)
    assert expected == pytest.approx(30.6804, abs=1e-4)
    assert metrics_paper.psnr(x, x, std) == float("inf")


def scoring(candidates, recovered, mean, std):
    normalised = ((recovered - mean[:, None, None]) / std[:, None, None]).astype(np.float32)
    return metrics.Images(candidates=candidates, recovered=np.clip(recovered, 0, 1), normalised=normalised,
                          mean=mean, std=std)


def test_paper_mode_matches_across_the_subset_one_to_one():
    mean, std = np.array([0.5, 0.4, 0.3]), np.array([0.25, 0.2, 0.3])
    subset = np.stack([image(i) for i in range(6)])
    noise = np.random.default_rng(7).normal(0, 0.01, (3, 3, 32, 32)).astype(np.float32)
    # The job's three reconstructions: of originals 4 and 1, and a second one of original 4, which
    # the one-to-one assignment must give to some other original.
    recovered = np.stack([subset[4], subset[1], subset[4] + 0.05]) + noise
    rows = metrics.MODES["paper"].score(scoring(subset, recovered, mean, std), NOT_STAGED)
    assert [r["matched_position"] for r in rows] == [0, 1, 2]
    assigned = [r["original"] for r in rows]
    assert assigned[1] == 1 and 4 in (assigned[0], assigned[2]) and len(set(assigned)) == 3
    assert {r["metric_mode"] for r in rows} == {"paper"} and {r["ssim_kind"] for r in rows} == {"cw-ssim"}
    assert {r["matched_by"] for r in rows} == {"mse"} and rows[0]["lpips"] is None
    truth = (subset[1] - mean[:, None, None]) / std[:, None, None]
    normalised = (recovered[1] - mean[:, None, None]) / std[:, None, None]
    assert rows[1]["psnr"] == pytest.approx(metrics_paper.psnr(truth, normalised, std), abs=1e-4)
    assert rows[1]["ssim"] == pytest.approx(cw(truth, normalised), abs=1e-6)


def test_standard_mode_is_the_batch_hungarian_on_unit_images():
    originals = np.stack([image(i) for i in range(3)])
    recovered = originals[[2, 0, 1]]
    rows = metrics.MODES["standard"].score(scoring(originals, recovered, np.full(3, 0.5), np.full(3, 0.25)),
                                           NOT_STAGED)
    assert rows == [{"original": i, **r} for i, r in enumerate(metrics.score(originals, recovered, NOT_STAGED))]
    assert [r["matched_position"] for r in rows] == [1, 2, 0] and {r["ssim_kind"] for r in rows} == {"ssim"}


def test_lpips_distance_matrix_is_lpips_of_every_pair(staged_lpips):
    a, b = np.stack([image(0), image(1), image(2)]), np.stack([image(3), image(0)])
    for normalize in (False, True):
        d = staged_lpips.distances(a, b, normalize=normalize)
        with torch.no_grad():
            pairs = [[float(staged_lpips.model(torch.as_tensor(a[i:i + 1]), torch.as_tensor(b[j:j + 1]),
                                               normalize=normalize)) for j in range(2)] for i in range(3)]
        np.testing.assert_allclose(d, pairs, rtol=1e-5, atol=1e-7)
    assert d[0, 1] == pytest.approx(0.0, abs=1e-6) and d.min(axis=0)[0] > 0


def test_paper_mode_matches_on_lpips_when_staged(staged_lpips):
    mean, std = np.array([0.5, 0.4, 0.3]), np.array([0.25, 0.2, 0.3])
    subset = np.stack([image(i) for i in range(4)])
    recovered = subset[[3, 0]] + np.random.default_rng(2).normal(0, 0.01, (2, 3, 32, 32)).astype(np.float32)
    rows = metrics.MODES["paper"].score(scoring(subset, recovered, mean, std), staged_lpips)
    assert [r["original"] for r in rows] == [3, 0] and {r["matched_by"] for r in rows} == {"lpips"}
    assert all(r["lpips"] is not None and r["lpips"] >= 0 for r in rows)


def test_kernel_shards_record_their_metric_mode(tmp_path, staged_lpips):
    """Both modes write rows of one schema, and the shard's metric_mode column says which scored them."""
    schemas = {}
    for mode in ("standard", "paper"):
        params = resolved("ig", model="mlp", num_images=8, batch_size=4, batch_index=1, iterations=3,
                          lpips_net="squeeze", metric_mode=mode)
        result = KERNELS["ig"].load()(params, context(tmp_path / mode))
        table = shard_table(KERNELS["ig"], SimpleNamespace(params=params), result.rows, result.column_types, {}, {})
        assert table.column("metric_mode").to_pylist() == [mode] * 4
        assert table.column("ssim_kind").to_pylist() == [{"standard": "ssim", "paper": "cw-ssim"}[mode]] * 4
        assert table.column("matched_by").to_pylist() == [{"standard": "mse", "paper": "lpips"}[mode]] * 4
        assert all(np.isfinite(v) for v in table.column("ssim").to_pylist())
        indices = table.column("image_index").to_pylist()
        assert len(set(indices)) == 4 and len(result.images) == 4
        schemas[mode] = table.schema
    assert schemas["standard"] == schemas["paper"]
