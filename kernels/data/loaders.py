"""Read a data set split from disk (or build the embedded one). Nothing is ever downloaded.

CIFAR batches are small enough to hold whole. The folder data sets (ImageNet validation, CelebA) are
listed first, labels only, and decoded image by image when a job asks for its few images, so that an
attack on 4 ImageNet images reads 4 JPEGs, not 50,000.
"""
from __future__ import annotations

import importlib
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from kernels.data import embedded
from kernels.data.catalog import DATASETS, data_root, missing_data


class DataError(RuntimeError):
    """A data set is missing or malformed; the message names the path and what belongs there."""


@dataclass(frozen=True)
class Source:
    """A split: every label at once, images decoded on demand as float32 [n, 3, H, W] in [0, 1]."""

    labels: np.ndarray
    read: Callable[[np.ndarray], np.ndarray]

    def images(self, indices) -> np.ndarray:
        return self.read(np.asarray(indices, dtype=np.int64))


def _in_memory(images: np.ndarray, labels: np.ndarray) -> Source:
    return Source(labels, lambda idx: images[idx])


# --- CIFAR-10/100: the "python version" pickles ----------------------------------------------------

def _numpy_function(module: str, name: str):
    """numpy 2 moved numpy.core to numpy._core; a pickle may name either (the real archives, written
    by numpy 1 under Python 2, name numpy.core)."""
    try:
        return getattr(importlib.import_module(module.replace("numpy.core.", "numpy._core.")), name)
    except ImportError:  # numpy 1.x has no numpy._core
        return getattr(importlib.import_module(module.replace("numpy._core.", "numpy.core.")), name)


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """How a Python 3 pickle of protocol 2 spells a bytes object: _codecs.encode(text, 'latin1').
    Only that encoding is admitted, so the name cannot reach any other codec."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding[:40]!r}")
    return text.encode("latin1")


# Everything a CIFAR batch pickle may name. The real archives hold dicts, lists, strings, bytes, ints
# and numpy arrays, which need only numpy's array reconstruction; the last two entries let a batch
# re-saved by Python 3 (protocol 2 bytes, protocol 5 arrays) be read as well. Nothing here can run
# anything: a planted pickle naming os.system, builtins.eval or subprocess.Popen is refused unread.
_CIFAR_GLOBALS: dict[tuple[str, str], Callable] = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_function("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_function("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"): lambda: _numpy_function("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): lambda: _numpy_function("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"): lambda: _latin1_bytes,
}


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a Python object that a CIFAR batch never holds."""


class _CifarUnpickler(pickle.Unpickler):
    """pickle.Unpickler admits any importable callable, so a crafted file runs code while it loads.
    This one resolves only the names in _CIFAR_GLOBALS (find_class also serves the EXT opcodes, and
    persistent ids are refused by the base class)."""

    def find_class(self, module: str, name: str):
        admitted = _CIFAR_GLOBALS.get((module, name))
        if admitted is None:
            # Bounded: a hostile name could be megabytes long.
            raise RefusedGlobal(f"it names {module[:60]}.{name[:60]}, which a CIFAR batch never holds")
        return admitted()


def read_cifar_batch(path: Path) -> dict:
    """One batch file as the dict the archive holds, read without running anything it names."""
    with open(path, "rb") as f:
        batch = _CifarUnpickler(f, encoding="latin1").load()
    if not isinstance(batch, dict):
        raise TypeError(f"it holds a {type(batch).__name__}, not a dict of data and labels")
    return batch


def _cifar(folder: Path, files: list[str], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in files:
        path = folder / name
        try:
            batch = read_cifar_batch(path)
            data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            targets = np.asarray(batch[label_key], dtype=np.int64)
            if len(targets) != len(data):
                raise ValueError(f"{len(data)} images but {len(targets)} labels")
            images.append(data.astype(np.float32) / 255.0)
            labels.append(targets)
        except FileNotFoundError:
            raise DataError(f"{path} is missing: the folder must hold the unpacked 'python version' archive") from None
        except RefusedGlobal as e:
            raise DataError(f"{path} is not a CIFAR python batch: {e}; refused without running it. "
                            "Put the unpacked 'python version' archive there") from None
        except MemoryError:  # a shortage of memory, not a fault of the file: the job may be retried
            raise
        except Exception as e:  # noqa: BLE001 - junk bytes raise many kinds (pickle, EOF, Index, Key, ...)
            message = str(e)[:200]
            raise DataError(f"{path} is not a readable CIFAR python batch ({type(e).__name__}: {message}); "
                            "put the unpacked 'python version' archive there") from None
    return np.concatenate(images), np.concatenate(labels)


# --- image files --------------------------------------------------------------------------------

def read_image(path: Path, resolution: int, short_side: int) -> np.ndarray:
    """Resize the short side to `short_side`, centre-crop `resolution` (torchvision's
    Resize + CenterCrop evaluation transform). A truncated or unreadable file is a DataError."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            scale = short_side / min(w, h)
            img = img.resize((max(resolution, round(w * scale)), max(resolution, round(h * scale))),
                             Image.Resampling.BILINEAR)
            w, h = img.size
            left, top = (w - resolution) // 2, (h - resolution) // 2
            array = np.asarray(img.crop((left, top, left + resolution, top + resolution)), dtype=np.float32)
    except FileNotFoundError:
        raise DataError(f"{path} is missing") from None
    except OSError as e:  # PIL: truncated file, not an image
        raise DataError(f"{path} is not a readable image ({e}); re-copy it from the original archive") from None
    return array.transpose(2, 0, 1) / 255.0


def _reader(paths: list[Path], resolution: int, short_side: int) -> Callable[[np.ndarray], np.ndarray]:
    def read(idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), 3, resolution, resolution), dtype=np.float32)
        for k, i in enumerate(idx):
            out[k] = read_image(paths[i], resolution, short_side)
        return out
    return read


# --- ImageNet validation as a class-folder tree ----------------------------------------------------

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


@cache
def _class_folders(folder: Path) -> tuple[tuple[Path, ...], np.ndarray]:
    """torchvision ImageFolder's order: classes are the sorted folder names (for ILSVRC the sorted
    wnids, which is the class index of the pretrained weights), files sorted within a class."""
    classes = sorted(e.name for e in os.scandir(folder) if e.is_dir())
    if not classes:
        raise DataError(f"{folder} holds no class folders: put the ILSVRC2012 validation images there "
                        "as <wnid>/<image>.JPEG (1000 folders)")
    if len(classes) > DATASETS["imagenet"].num_classes:
        raise DataError(f"{folder} holds {len(classes)} class folders; ImageNet has 1000")
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(e.name for e in os.scandir(folder / name)
                       if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES))
        paths += [folder / name / f for f in files]
        labels += [label] * len(files)
    if not paths:
        raise DataError(f"{folder}: the class folders hold no .JPEG/.jpg/.png images")
    return tuple(paths), np.asarray(labels, dtype=np.int64)


def _imagenet(folder: Path, resolution: int) -> Source:
    paths, labels = _class_folders(folder)
    # The ImageNet evaluation transform keeps the 224/256 crop ratio at every resolution.
    return Source(labels, _reader(list(paths), resolution, round(resolution * 256 / 224)))


# --- CelebA in torchvision's layout ----------------------------------------------------------------

CELEBA_IDENTITIES = 1000  # the paper: images of the first 1,000 celebrities, identity number as label


@cache
def _celeba_index(folder: Path) -> tuple[tuple[Path, ...], np.ndarray]:
    identity_file = folder / "identity_CelebA.txt"
    images = folder / "img_align_celeba"
    for path, what in [(identity_file, "CelebA's identity_CelebA.txt ('<image>.jpg <identity>' per line)"),
                       (images, "the unpacked img_align_celeba.zip (000001.jpg, ...)")]:
        if not path.exists():
            raise DataError(f"{path} is missing: put {what} there")
    paths, labels = [], []
    with open(identity_file) as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or not fields[1].isdigit():
                raise DataError(f"{identity_file}:{number}: expected '<image>.jpg <identity>', got {line.strip()!r}")
            identity = int(fields[1])
            if 1 <= identity <= CELEBA_IDENTITIES:
                paths.append(images / fields[0])
                labels.append(identity - 1)
    if not paths:
        raise DataError(f"{identity_file} lists no image of identities 1..{CELEBA_IDENTITIES}")
    return tuple(paths), np.asarray(labels, dtype=np.int64)


def _celeba(folder: Path, resolution: int) -> Source:
    paths, labels = _celeba_index(folder)
    # The aligned 178x218 faces: square centre crop of the face, then the model's resolution.
    return Source(labels, _reader(list(paths), resolution, resolution))


# --- entry points ---------------------------------------------------------------------------------

def _folder(dataset: str, configured_root: str | None) -> Path:
    problem = missing_data(dataset, configured_root)
    if problem:
        raise DataError(problem)
    return data_root(configured_root) / DATASETS[dataset].folder


def attack_source(dataset: str, configured_root: str | None, resolution: int | None = None) -> Source:
    """The images a client holds (the evaluation split), labels first, images on demand."""
    resolution = resolution or DATASETS[dataset].resolution
    return _SOURCES[dataset](configured_root, "attack", resolution, 0)


def load_split(dataset: str, configured_root: str | None, split: str, train_pool: int = 2048,
               resolution: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """split is 'attack' (the images a client holds: the evaluation split) or 'train' (for the
    project's own trained model); both whole, as arrays."""
    resolution = resolution or DATASETS[dataset].resolution
    source = _SOURCES[dataset](configured_root, split, resolution, train_pool)
    return source.images(np.arange(len(source.labels))), source.labels


def _embedded_source(root, split, resolution, train_pool) -> Source:
    return _in_memory(*(embedded.evaluation_split(resolution) if split == "attack"
                        else embedded.training_split(train_pool, side=resolution)))


def _cifar10_source(root, split, resolution, train_pool) -> Source:
    files = ["test_batch"] if split == "attack" else [f"data_batch_{i}" for i in range(1, 6)]
    return _in_memory(*_cifar(_folder("cifar10", root), files, "labels"))


def _cifar100_source(root, split, resolution, train_pool) -> Source:
    return _in_memory(*_cifar(_folder("cifar100", root), ["test" if split == "attack" else "train"], "fine_labels"))


def _imagenet_source(root, split, resolution, train_pool) -> Source:
    if split != "attack":
        raise DataError("ImageNet has no training split here: its `trained` state is torchvision's "
                        "ImageNet-pretrained weights")
    return _imagenet(_folder("imagenet", root), resolution)


def _celeba_source(root, split, resolution, train_pool) -> Source:
    # CelebA's own partition splits identities apart, which would leave a classifier of the attacked
    # identities nothing to learn from: both splits are the images of the 1,000 identities.
    return _celeba(_folder("celeba", root), resolution)


_SOURCES = {
    "embedded": _embedded_source,
    "cifar10": _cifar10_source,
    "cifar100": _cifar100_source,
    "imagenet": _imagenet_source,
    "celeba": _celeba_source,
}
assert set(_SOURCES) == set(DATASETS)
