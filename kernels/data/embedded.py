"""The embedded default data set, cut from photographs that scikit-image ships in its wheel.

Eight colour photographs are the eight classes. The evaluation split holds 8 fixed crops of each
(64 images, as in the paper's subsets); the training split holds seeded random crops of the same
photographs, used only to produce the `trained` model state.
"""
from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import skimage
from skimage import io, transform

PHOTOGRAPHS = (  # file in skimage.data.data_dir, one class each
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
    "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "motorcycle_left.png",
)
SIDE = 32
# Crop windows as (row, col) of the window's top-left corner in units of the free margin, and the
# window side as a fraction of the photograph's short side: 8 views per photograph.
_VIEWS = [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0), (0.5, 0.5), (0.25, 0.75), (0.75, 0.25), (0.5, 0.0)]
_VIEW_FRACTION = 0.55
_WORKING_SHORT_SIDE = 128


@cache
def _photograph(name: str) -> np.ndarray:
    path = Path(skimage.data.data_dir) / name
    if not path.exists():
        raise FileNotFoundError(f"scikit-image's bundled photograph is missing: {path}")
    img = io.imread(path)[..., :3].astype(np.float32) / 255.0
    # Crops are at least a third of the short side and end at 32 px: 128 px keeps every detail they
    # can show and makes the random training crops cheap.
    scale = _WORKING_SHORT_SIDE / min(img.shape[:2])
    return transform.resize(img, (round(img.shape[0] * scale), round(img.shape[1] * scale)), anti_aliasing=True)


def _crop(img: np.ndarray, top: float, left: float, fraction: float, flip: bool = False, side: int = SIDE) -> np.ndarray:
    h, w, _ = img.shape
    crop = int(min(h, w) * fraction)
    r, c = int(round(top * (h - crop))), int(round(left * (w - crop)))
    patch = transform.resize(img[r:r + crop, c:c + crop], (side, side), anti_aliasing=True)
    if flip:
        patch = patch[:, ::-1]
    return np.clip(patch, 0.0, 1.0).transpose(2, 0, 1)


@cache
def evaluation_split(side: int = SIDE) -> tuple[np.ndarray, np.ndarray]:
    """The same 64 views at any side (32 by default; 64 for resolution sweeps: the views are ~70 px
    of the working photograph, so larger sides would only upsample)."""
    images, labels = [], []
    for label, name in enumerate(PHOTOGRAPHS):
        img = _photograph(name)
        for top, left in _VIEWS:
            images.append(_crop(img, top, left, _VIEW_FRACTION, side=side))
            labels.append(label)
    return np.stack(images).astype(np.float32), np.asarray(labels, dtype=np.int64)


def training_split(count: int, seed: int = 1234, side: int = SIDE) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(count):
        label = i % len(PHOTOGRAPHS)
        images.append(_crop(_photograph(PHOTOGRAPHS[label]), rng.uniform(), rng.uniform(),
                            rng.uniform(0.35, 0.75), flip=bool(rng.integers(2)), side=side))
        labels.append(label)
    return np.stack(images).astype(np.float32), np.asarray(labels, dtype=np.int64)
