"""What each data set is and where it lives on disk. Pure Python: used to validate grids cheaply."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA_ROOT_ENV = "GIA_DATA_ROOT"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    resolution: int  # native side length fed to the model
    unique_labels: bool  # the paper's 64-image subset has no repeated label
    ig_tv: float  # the paper's total-variation weight for Inverting Gradients
    folder: str | None  # relative to the data root; None for the embedded set
    staging: str  # what a user must put under the data root
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # normalisation the model sees
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    # True: the `trained` state is torchvision's ImageNet-pretrained weights, not the project's training
    pretrained: bool = False
    # False: the subset and its batches are plain seeded draws, so labels repeat as they happen to (the
    # paper's CIFAR-10); True: classes take turns (unique labels while classes last)
    dealt: bool = True
    # sides the images may be resized to (the `resolution` parameter); the first is the default
    resolutions: tuple[int, ...] = ()
    # IG as the authors ran it on ImageNet: top-10 gradient layers and a median filter (kernels/attacks/ig.py)
    ig_imagenet_settings: bool = False

    @property
    def sides(self) -> tuple[int, ...]:
        return self.resolutions or (self.resolution,)


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        DatasetInfo("embedded", 8, 32, False, 1e-2, None, "nothing: built from scikit-image's bundled photographs",
                    resolutions=(32, 64)),
        DatasetInfo("cifar10", 10, 32, False, 1e-2, "cifar-10-batches-py",
                    "the CIFAR-10 'python version' archive unpacked (data_batch_1..5, test_batch, batches.meta)",
                    (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), dealt=False),
        DatasetInfo("cifar100", 100, 32, True, 1e-2, "cifar-100-python",
                    "the CIFAR-100 'python version' archive unpacked (train, test, meta)",
                    (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
        DatasetInfo("imagenet", 1000, 224, True, 1e-6, "imagenet/val",
                    "the ILSVRC2012 validation images as a class-folder tree: val/<wnid>/*.JPEG",
                    pretrained=True, resolutions=(224, 128, 64), ig_imagenet_settings=True),
        DatasetInfo("celeba", 1000, 64, True, 1e-2, "celeba",
                    "torchvision's CelebA layout: celeba/img_align_celeba/*.jpg and celeba/identity_CelebA.txt"),
    ]
}


def data_root(configured: str | None) -> Path:
    """The grid's data_root, else $GIA_DATA_ROOT, else ./data."""
    return Path(configured or os.environ.get(DATA_ROOT_ENV) or "data").expanduser()


def missing_data(dataset: str, configured_root: str | None) -> str | None:
    """A message naming the path that should exist, or None if the data set is in place."""
    return _missing(dataset, configured_root, os.environ.get(DATA_ROOT_ENV))


@lru_cache(maxsize=256)  # a sweep of 100,000 jobs asks about a handful of folders
def _missing(dataset: str, configured_root: str | None, env_root: str | None) -> str | None:
    info = DATASETS[dataset]
    if info.folder is None:
        return None
    path = data_root(configured_root) / info.folder
    if path.exists():
        return None
    return (f"data set '{dataset}' not found at {path}: put {info.staging} there "
            f"(data_root comes from the grid's data_root, else ${DATA_ROOT_ENV}, else ./data)")
