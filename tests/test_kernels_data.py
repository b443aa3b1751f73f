"""The real data formats, built here in small, read through the same loaders a sweep uses."""
import pickle

import numpy as np
import pytest
from PIL import Image

from kernels.data import embedded
from kernels.data.loaders import DataError, attack_source, load_split
from kernels.data.protocol import attack_subset, label_controlled_batches, split_batches


def photographs():
    images, labels = embedded.evaluation_split()
    return images, labels


def to_uint8(images):
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8)


def write_cifar(folder, name, images, labels, label_key):
    folder.mkdir(parents=True, exist_ok=True)
    batch = {"data": to_uint8(images).reshape(len(images), -1), label_key: [int(v) for v in labels],
             "batch_label": "testing"}
    with open(folder / name, "wb") as f:
        pickle.dump(batch, f, protocol=2)
    return folder / name


def test_cifar10_pickle_round_trip(tmp_path):
    images, labels = photographs()
    write_cifar(tmp_path / "cifar-10-batches-py", "test_batch", images, labels, "labels")
    x, y = load_split("cifar10", str(tmp_path), "attack")
    assert x.shape == (64, 3, 32, 32) and x.dtype == np.float32
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_allclose(x, to_uint8(images) / 255.0, atol=1e-6)


def python2_cifar_pickle(data: np.ndarray, labels: list[int], label_key: str) -> bytes:
    """A batch as the real archive spells it: cPickle protocol 2 from Python 2 with numpy 1, so strings
    are byte strings (SHORT_BINSTRING/BINSTRING) and the array names numpy.core.multiarray._reconstruct.
    Python 3 cannot write this, so it is written opcode by opcode."""
    def string(b: bytes) -> bytes:
        return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + len(b).to_bytes(4, "little")) + b

    def integer(v: int) -> bytes:
        return b"J" + v.to_bytes(4, "little", signed=True)

    rows, columns = data.shape
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + integer(0) + b"\x85" + string(b"b")
             + b"\x87R(" + integer(1) + integer(rows) + integer(columns) + b"\x86"  # version, shape
             + b"cnumpy\ndtype\n" + string(b"u1") + integer(0) + integer(1) + b"\x87R"  # dtype('u1')
             + b"(" + integer(3) + string(b"|") + b"NNN" + integer(-1) + integer(-1) + integer(0) + b"tb"
             + b"\x89" + string(data.tobytes()) + b"tb")  # not Fortran order, the raw bytes
    items = (string(b"batch_label") + string(b"testing batch 1 of 1")
             + string(label_key.encode()) + b"](" + b"".join(integer(v) for v in labels) + b"e"
             + string(b"data") + array
             + string(b"filenames") + b"](" + b"".join(string(f"{i}.png".encode()) for i in range(rows)) + b"e")
    return b"\x80\x02}(" + items + b"u."


def test_cifar10_read_as_the_real_archive_spells_it(tmp_path):
    """The restricted unpickler admits what a real Python 2 batch names (numpy.core, byte strings)."""
    images, labels = photographs()
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    raw = python2_cifar_pickle(to_uint8(images).reshape(len(images), -1), [int(v) for v in labels], "labels")
    (folder / "test_batch").write_bytes(raw)
    x, y = load_split("cifar10", str(tmp_path), "attack")
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_allclose(x, to_uint8(images) / 255.0, atol=1e-6)


def test_cifar100_uses_fine_labels_and_rejects_a_truncated_pickle(tmp_path):
    images, labels = photographs()
    path = write_cifar(tmp_path / "cifar-100-python", "test", images, labels * 10, "fine_labels")
    np.testing.assert_array_equal(attack_source("cifar100", str(tmp_path)).labels, labels * 10)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match=f"{path} is not a readable CIFAR python batch"):
        load_split("cifar100", str(tmp_path), "attack")


def test_missing_cifar_file_names_the_path(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(DataError, match="test_batch is missing"):
        load_split("cifar10", str(tmp_path), "attack")


def write_jpeg(path, image, size):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(image).transpose(1, 2, 0)).resize(size, Image.Resampling.BICUBIC).save(path, quality=95)


def imagenet_tree(root):
    images, labels = photographs()
    wnids = [f"n0{1440000 + 7 * k}" for k in range(8)]
    for i in range(0, 64, 3):  # 22 images over the 8 classes
        label = int(labels[i])
        write_jpeg(root / "imagenet" / "val" / wnids[label] / f"ILSVRC2012_val_{i:08d}.JPEG", images[i], (300, 250))
    return wnids


@pytest.mark.parametrize("resolution", [64, 128, 224])
def test_imagenet_class_folders_resized(tmp_path, resolution):
    wnids = imagenet_tree(tmp_path)
    source = attack_source("imagenet", str(tmp_path), resolution)
    # torchvision ImageFolder order: label = rank of the wnid folder
    assert sorted(set(source.labels.tolist())) == list(range(len(wnids)))
    x = source.images([0, len(source.labels) - 1])
    assert x.shape == (2, 3, resolution, resolution) and 0 <= x.min() and x.max() <= 1
    # The centre crop of the resized photograph keeps its content: close to the source crop's colours.
    first = photographs()[0][0]
    assert abs(float(x[0].mean()) - float(first.mean())) < 0.05


def test_imagenet_truncated_jpeg_is_named(tmp_path):
    imagenet_tree(tmp_path)
    folder = tmp_path / "imagenet" / "val"
    victim = sorted(folder.rglob("*.JPEG"))[0]
    victim.write_bytes(victim.read_bytes()[:400])
    source = attack_source("imagenet", str(tmp_path), 64)
    with pytest.raises(DataError, match=f"{victim} is not a readable image"):
        source.images([0])


def test_imagenet_without_class_folders_says_what_belongs_there(tmp_path):
    (tmp_path / "imagenet" / "val").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no class folders.*<wnid>/<image>.JPEG"):
        attack_source("imagenet", str(tmp_path), 64)


def celeba(root, identities):
    images, _ = photographs()
    folder = root / "celeba"
    lines = []
    for k, identity in enumerate(identities):
        name = f"{k + 1:06d}.jpg"
        write_jpeg(folder / "img_align_celeba" / name, images[k], (178, 218))
        lines.append(f"{name} {identity}")
    (folder / "identity_CelebA.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_celeba_first_thousand_identities_as_labels(tmp_path):
    celeba(tmp_path, [5, 1000, 1001, 2, 5, 4000])
    source = attack_source("celeba", str(tmp_path))
    # identities above 1,000 are dropped; label = identity number - 1
    np.testing.assert_array_equal(source.labels, [4, 999, 1, 4])
    x = source.images([0, 3])
    assert x.shape == (2, 3, 64, 64)
    # images 1 and 5 (both identity 5) are different photographs
    assert np.abs(x[0] - x[1]).mean() > 0.01


def test_celeba_malformed_identity_line_and_missing_image(tmp_path):
    folder = celeba(tmp_path, [1, 2])
    (folder / "identity_CelebA.txt").write_text("000001.jpg 1\n000002.jpg two\n")
    with pytest.raises(DataError, match=r"identity_CelebA.txt:2: expected '<image>.jpg <identity>'"):
        attack_source("celeba", str(tmp_path))
    other = tmp_path / "other"
    folder = celeba(other, [1, 2])
    (folder / "img_align_celeba" / "000002.jpg").unlink()
    with pytest.raises(DataError, match="000002.jpg is missing"):
        attack_source("celeba", str(other)).images([1])


def test_missing_data_set_names_where_to_stage_it(tmp_path):
    with pytest.raises(DataError, match=f"not found at {tmp_path / 'celeba'}: put torchvision's CelebA layout"):
        attack_source("celeba", str(tmp_path))


@pytest.mark.parametrize("shared", [0, 2, 3, 4])
def test_label_controlled_batches(shared):
    """Figure 5: in every batch of 4, `shared` images share one label and the rest are distinct."""
    _, labels = photographs()
    batches = label_controlled_batches(labels, 16, 4, shared, seed=3)
    assert len(batches) == 4 and len(np.unique(np.concatenate(batches))) == 16
    for batch in batches:
        counts = sorted(np.bincount(labels[batch]).tolist(), reverse=True)
        assert counts[0] == max(shared, 1) and all(c == 1 for c in counts[1:] if c)
    again = label_controlled_batches(labels, 16, 4, shared, seed=3)
    assert all((a == b).all() for a, b in zip(batches, again))


def test_unique_label_subset_protocol():
    labels = np.repeat(np.arange(100), 10)
    subset = attack_subset(labels, 64, unique_labels=True, seed=0)
    assert len(np.unique(labels[subset])) == 64
    for batch in split_batches(subset, labels, 16, seed=0):
        assert len(np.unique(labels[batch])) == 16
    with pytest.raises(ValueError, match="unique labels"):
        attack_subset(labels, 101, unique_labels=True, seed=0)


def test_cifar10_protocol_lets_labels_repeat():
    """The paper's CIFAR-10 subset is a plain draw: with 10 classes, a batch of 8 repeats some label
    with probability 1 - 10!/(2! 10^8) ~ 98%; classes taking turns (dealt) repeat far less."""
    labels = np.repeat(np.arange(10), 100)

    def repeats(dealt):
        subset = attack_subset(labels, 64, unique_labels=False, seed=0, dealt=dealt)
        return sum(8 - len(np.unique(labels[b])) for b in split_batches(subset, labels, 8, seed=0, dealt=dealt))

    assert repeats(dealt=False) >= 8 and repeats(dealt=True) < repeats(dealt=False) / 2
