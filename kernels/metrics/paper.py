"""The `paper` metric mode: reconstruction quality scored the way the authors' code scored it.

What their code does (repository 1wrx1/GIA; OP-GIA/IG/inverting.py, the script behind the
optimisation-attack tables, with the metrics of ANA-GIA/RoF/inversefed/metrics.py and
GEN-GIA/GGL/inversefed/metrics.py, which are identical):

- Every metric is computed on the *normalised* tensors, (x - mean) / std, as fed to the model: the
  reconstruction as the attack returns it (IG's `boxed` projection keeps it inside the normalised
  image box, nothing else clamps it) and the originals from the data set's Normalize transform.
- PSNR: `inversefed.metrics.psnr(output, ground_truth, factor=1 / ds)`. Per image, MSE over all
  channels and pixels of the normalised tensors, then 10 log10(factor^2 / MSE) with the per-channel
  factor 1/std_c: three values per image, averaged together with those of the other images.
- SSIM: `inversefed.metrics.cw_ssim(output, ground_truth, scales=5)`, their own CW-SSIM: the dual-tree
  complex wavelet transform of pytorch_wavelets (`DTCWTForward(J=5, biort="near_sym_b",
  qshift="qshift_b")`, symmetric extension, 6 orientations), then per level and coefficient
  |sum_o x conj(y)| against sum_o |x|^2 + sum_o |y|^2 with K = 1e-6, no local windows (their
  docstring says so), averaged over channels and positions, then over the 5 levels.
- LPIPS: `lpips.LPIPS(net="alex")(output, ground_truth, normalize=True)`: the flag maps [0, 1] to
  [-1, 1] by 2x - 1, but the inputs are the normalised tensors, so the network sees 2 (x - m) / s - 1.
- Matching: `compute_batch_order` builds the LPIPS distance matrix between all 64 originals of the
  data set and all 64 reconstructions (every batch's outputs concatenated), fed the normalised
  tensors *without* that flag, and reorders the reconstructions by a one-to-one Hungarian assignment
  (`scipy.optimize.linear_sum_assignment`, minimised). The tables report the means over those 64 pairs.

What differs here, where it must:

- A job of this project holds one batch. Its B reconstructions are matched one-to-one against all
  num_images originals of the data set's subset (a B x n Hungarian assignment), not jointly with the
  other batches' reconstructions. With B = num_images (and FedAvg, which attacks the whole client set
  in one job) this is the authors' assignment exactly; with B < num_images two jobs may each claim
  the same original, which the authors' single assignment would not allow. A row is one scored pair:
  its image_index is the original the reconstruction was matched to, batch_position is null where
  that original belongs to another batch.
- Without staged LPIPS weights nothing can compute their LPIPS distance: the assignment then
  minimises MSE on the normalised tensors, and the `matched_by` column says so ("mse", not "lpips").
- CW-SSIM is reimplemented below in numpy (float64) from pytorch_wavelets 1.3.0's algorithm and
  Kingsbury's filters rather than depending on that package: its coefficients agree with
  pytorch_wavelets' in float64 to 1e-15 (checked at 32, 64 and 224 px and odd sizes); the authors
  ran it in float32, which moves CW-SSIM by about 1e-6.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

MODE = "paper"
SSIM_KIND = "cw-ssim"

# Kingsbury's near_sym_b level-1 analysis filters (13 and 19 taps, both symmetric) and the qshift_b
# tree-a lowpass (14 taps), as published with the DTCWT toolbox; the other three q-shift filters
# follow from it (_QSHIFT_B).
_NEAR_SYM_B_H0 = np.array([-9, 0, 114, -240, -247, 1520, 2844, 1520, -247, -240, 114, 0, -9]) / 5120
_NEAR_SYM_B_H1 = np.array([
    -7.062639508928571e-05, 0.0, 0.0013419015066964285, -0.0018833705357142855, -0.007156808035714285,
    0.023856026785714284, 0.05564313616071428, -0.05168805803571428, -0.29975760323660716,
    0.5594308035714286, -0.29975760323660716, -0.05168805803571428, 0.05564313616071428,
    0.023856026785714284, -0.007156808035714285, -0.0018833705357142855, 0.0013419015066964285, 0.0,
    -7.062639508928571e-05])
_QSHIFT_B_H0A = np.array([
    0.003253142763653182, -0.00388321199915849, 0.03466034684485349, -0.03887280126882779,
    -0.11720388769911527, 0.27529538466888204, 0.7561456438925225, 0.5688104207121227, 0.011866092033797,
    -0.1067118046866654, 0.023825384794920298, 0.01702522388155399, -0.005439475937274115,
    -0.004556895628475491])


def _qshift(h0a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tree b is tree a time-reversed (the quarter-sample shift); each highpass is its tree's
    lowpass of the other tree, modulated by (-1)^n."""
    h0b = h0a[::-1]
    h1a = h0b * (-1.0) ** np.arange(len(h0a))
    return h0a, h0b, h1a, h1a[::-1]


_QSHIFT_B = _qshift(_QSHIFT_B_H0A)


def _symmetric(n: int, m: int) -> np.ndarray:
    """Indices of a length-n axis extended by m on each side, mirrored about the half sample
    (... b a | a b ... y z | z y ...)."""
    x = np.mod(np.arange(-m, n + m), 2 * n)
    return np.where(x >= n, 2 * n - 1 - x, x)


def _filter(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Convolution along the last axis with an odd-length filter, same length out."""
    m = len(h) // 2
    windows = np.lib.stride_tricks.sliding_window_view(x[..., _symmetric(x.shape[-1], m)], len(h), axis=-1)
    return windows @ h[::-1]


def _decimate(x: np.ndarray, ha: np.ndarray, hb: np.ndarray, highpass: bool) -> np.ndarray:
    """The q-shift filter-and-downsample by 2 along the last axis (length a multiple of 4): the two
    trees filter the odd and even samples and their outputs interleave, tree b first for a highpass."""
    m = len(ha)
    xe = x[..., _symmetric(x.shape[-1], m)]
    ya = np.lib.stride_tricks.sliding_window_view(xe[..., 2::2], m, axis=-1)[..., ::2, :] @ ha[::-1]
    yb = np.lib.stride_tricks.sliding_window_view(xe[..., 3::2], m, axis=-1)[..., ::2, :] @ hb[::-1]
    pair = (yb, ya) if highpass else (ya, yb)
    return np.stack(pair, axis=-1).reshape(*x.shape[:-1], -1)


def _rows(f, x: np.ndarray, *args) -> np.ndarray:
    """Apply a last-axis filter down the columns (along the image height)."""
    return np.swapaxes(f(np.swapaxes(x, -1, -2), *args), -1, -2)


def _orientations(lh: np.ndarray, hl: np.ndarray, hh: np.ndarray) -> np.ndarray:
    """Each subband's quads of pixels as two complex subimages; order 15, 45, 75, 105, 135, 165 deg."""
    def complex_pair(y):
        y = y / np.sqrt(2)
        a, b, c, d = y[..., 0::2, 0::2], y[..., 0::2, 1::2], y[..., 1::2, 0::2], y[..., 1::2, 1::2]
        return (a - d) + 1j * (b + c), (a + d) + 1j * (b - c)

    (o15, o165), (o45, o135), (o75, o105) = complex_pair(lh), complex_pair(hh), complex_pair(hl)
    return np.stack([o15, o45, o75, o105, o135, o165], axis=-3)


def dtcwt_highpasses(images: np.ndarray, levels: int = 5) -> list[np.ndarray]:
    """The complex bandpass coefficients of the 2-D dual-tree complex wavelet transform (near_sym_b at
    level 1, qshift_b above), level 1 first: [..., 6, H / 2^j, W / 2^j] per level j, as
    pytorch_wavelets.DTCWTForward(biort="near_sym_b", qshift="qshift_b", mode="symmetric") computes
    them, with its extensions of odd and non-multiple-of-4 sizes."""
    x = np.asarray(images, dtype=np.float64)
    if x.shape[-2] % 2:
        x = np.concatenate([x, x[..., -1:, :]], axis=-2)
    if x.shape[-1] % 2:
        x = np.concatenate([x, x[..., -1:]], axis=-1)
    h0, h1 = _NEAR_SYM_B_H0, _NEAR_SYM_B_H1
    lo, hi = _filter(x, h0), _filter(x, h1)
    low = _rows(_filter, lo, h0)
    highs = [_orientations(_rows(_filter, lo, h1), _rows(_filter, hi, h0), _rows(_filter, hi, h1))]
    h0a, h0b, h1a, h1b = _QSHIFT_B
    for _ in range(1, levels):
        if low.shape[-2] % 4:
            low = np.concatenate([low[..., :1, :], low, low[..., -1:, :]], axis=-2)
        if low.shape[-1] % 4:
            low = np.concatenate([low[..., :1], low, low[..., -1:]], axis=-1)
        lo, hi = _decimate(low, h0b, h0a, False), _decimate(low, h1b, h1a, True)
        low = _rows(_decimate, lo, h0b, h0a, False)
        highs.append(_orientations(_rows(_decimate, lo, h1b, h1a, True), _rows(_decimate, hi, h0b, h0a, False),
                                   _rows(_decimate, hi, h1b, h1a, True)))
    return highs


def cw_ssim(originals: np.ndarray, reconstructions: np.ndarray, levels: int = 5, k: float = 1e-6) -> np.ndarray:
    """The authors' CW-SSIM of each pair of [n, C, H, W] images, one value per pair: 1 for identical
    images, insensitive to a constant offset (no lowpass) and to the sign of the image."""
    # A few pairs at a time: 64 pairs of 224 px images at once would hold about 1.5 GB of coefficients.
    chunk = 8
    return np.concatenate([_cw_ssim(originals[i:i + chunk], reconstructions[i:i + chunk], levels, k)
                           for i in range(0, len(originals), chunk)])


def _cw_ssim(originals: np.ndarray, reconstructions: np.ndarray, levels: int, k: float) -> np.ndarray:
    total = 0.0
    for x, y in zip(dtcwt_highpasses(originals, levels), dtcwt_highpasses(reconstructions, levels)):
        cross = np.abs((x * y.conj()).sum(axis=-3))
        power = (np.abs(x) ** 2).sum(axis=-3) + (np.abs(y) ** 2).sum(axis=-3)
        total = total + ((2 * cross + k) / (power + k)).mean(axis=(-3, -2, -1))
    return total / levels


def psnr(original: np.ndarray, reconstruction: np.ndarray, std: np.ndarray) -> float:
    """The authors' PSNR of one pair of normalised [C, H, W] images: the MSE over every channel against
    each channel's peak 1/std_c (the span of [0, 1] after normalisation), the three values averaged."""
    mse = float(np.mean((np.asarray(reconstruction, np.float64) - original) ** 2))
    if mse == 0:
        return float("inf")
    return float(np.mean(10 * np.log10(1.0 / (np.asarray(std, np.float64) ** 2 * mse))))


def match(originals: np.ndarray, reconstructions: np.ndarray, lpips) -> tuple[np.ndarray, str]:
    """original[p]: the original assigned to reconstruction p, one-to-one, minimising the total LPIPS
    distance on the normalised tensors as given (the authors' compute_batch_order), or the total MSE
    where LPIPS is unavailable. Returns it with the distance used."""
    cost = lpips.distances(originals, reconstructions, normalize=False)
    matched_by = "lpips"
    if cost is None:
        diff = originals[:, None] - reconstructions[None, :]
        cost = (diff.reshape(len(originals), len(reconstructions), -1).astype(np.float64) ** 2).mean(-1)
        matched_by = "mse"
    rows, cols = linear_sum_assignment(cost)  # rows: originals, cols: reconstructions (n >= B)
    return rows[np.argsort(cols)], matched_by


def score(originals: np.ndarray, reconstructions: np.ndarray, mean: np.ndarray, std: np.ndarray,
          lpips) -> list[dict]:
    """One dict per reconstruction of [B, C, H, W] (normalised, as the attack returned it), scored
    against its matched original among [n, C, H, W] (in [0, 1]; n >= B, all of the data set's
    subset): `original` is that original's position among them."""
    if not np.isfinite(reconstructions).all():
        raise FloatingPointError("the reconstruction holds NaN or infinite values")
    shape = (1, -1, 1, 1)
    truth = ((originals - np.reshape(mean, shape)) / np.reshape(std, shape)).astype(np.float32)
    assigned, matched_by = match(truth, reconstructions, lpips)
    matched = truth[assigned]
    lp = lpips(matched, reconstructions)  # normalize=True on normalised tensors, as the authors did
    ssims = cw_ssim(matched, reconstructions)
    return [
        {"original": int(assigned[p]), "matched_position": p, "psnr": psnr(matched[p], r, std),
         "ssim": float(ssims[p]), "lpips": lp[p], "lpips_note": lpips.unavailable, "metric_mode": MODE,
         "ssim_kind": SSIM_KIND, "matched_by": matched_by}
        for p, r in enumerate(reconstructions)
    ]
