"""Every figure a report draws speaks words: its titles and axis labels name no raw column (`batch_size`,
`psnr_mean`, `model_state=trained`), and each figure has a title. Read back from the matplotlib figures
themselves, for reports of the kinds of sweep the figures exist for."""
import re

import matplotlib.pyplot as plt
import numpy as np
import pytest

from analysis.figures import LABELS, label, setting_name
from analysis.report import write_report
from kernels.registry import KERNELS
from tests.benchmarks.bench_analysis_data import write_sweep

# Every column a shard can carry, and the summary table's derived ones (psnr_mean, psnr_std, ...).
COLUMNS = {name for kernel in KERNELS.values() for name in (*kernel.params, *kernel.columns)}
COLUMNS |= {f"{m}_{s}" for m in ("psnr", "ssim", "lpips") for s in ("mean", "std")}


def raw_columns_in(text: str) -> list[str]:
    """The column names `text` shows as code: alone, with `=`, or with an underscore, which no word has."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))
    return sorted(w for w in words & COLUMNS
                  if "_" in w or text.strip() == w or re.search(rf"\b{w}\s*=", text))


def texts_of(fig) -> tuple[list[str], list[str]]:
    """(titles, axis labels) of a figure: its suptitle and every axes' titles, x and y labels."""
    titles = [fig._suptitle.get_text()] if fig._suptitle else []
    labels = []
    for ax in fig.axes:
        titles += [ax.get_title(loc) for loc in ("left", "center", "right")]
        labels += [ax.get_xlabel(), ax.get_ylabel()]
    return [t for t in titles if t], [t for t in labels if t]


@pytest.fixture
def drawn_figures(monkeypatch):
    """The figures drawn while the test runs, kept open (the figure functions close what they save)."""
    close = plt.close
    before = set(plt.get_fignums())
    monkeypatch.setattr(plt, "close", lambda *args, **kwargs: None)
    yield lambda: [plt.figure(n) for n in plt.get_fignums() if n not in before]
    for n in set(plt.get_fignums()) - before:
        close(n)


def test_the_words_for_a_column():
    assert label("batch_size") == "client batch size" and label("psnr") == "PSNR (dB) ↑"
    assert label("train_pool") == "train pool"  # not in LABELS: its name with spaces
    assert setting_name({"batch_size": 4, "model_state": "trained"}, ["batch_size", "model_state"]) == \
        "client batch size 4, model state trained"
    assert raw_columns_in("batch_size") == ["batch_size"] and raw_columns_in("model_state=trained") == ["model_state"]
    assert raw_columns_in("psnr_mean") == ["psnr_mean"] and raw_columns_in("bins") == ["bins"]
    assert raw_columns_in("PSNR (dB) against client batch size") == raw_columns_in("imprint bins k") == []
    assert all(not raw_columns_in(words) for words in LABELS.values())


def embedding_columns(point, rng, n):
    return {"embed_x": rng.normal(size=n), "embed_y": rng.normal(size=n), "mean_cosine_to_others": [0.2] * n}


def exact_columns(point, rng, n):
    return {"exact": rng.random(n) < 0.5, "added_parameters": [point["bins"] * 6144] * n,
            "expected_exact_uniform": [n * 0.9] * n}


def histogram_columns(point, rng, n):
    edges = np.linspace(-3, 3, n + 1)
    return {"bin_low": edges[:-1], "bin_high": edges[1:], "count": rng.integers(1, 50, n)}


SWEEPS = {  # name: (axes, write_sweep's other arguments)
    "ig": ({"batch_size": [1, 4], "dataset": ["cifar10", "imagenet"]}, {"with_images": True}),  # + Figure 3(a)
    "rtf": ({"bins": [8, 64, 512], "batch_size": [8]}, {"kernel": "rtf", "row_columns": exact_columns,
                                                         "with_images": True, "images_per_job": 8}),
    "same_label": ({"same_label": [0, 2, 4], "batch_size": [4]}, {"with_images": True}),
    "fishing": ({"batch_size": [4, 8, 16]}, {"images_per_job": 1, "with_images": True}),
    "gradient_embedding": ({"model_state": ["untrained", "trained"]},
                           {"kernel": "gradient_embedding", "row_columns": embedding_columns}),
    "activation_inputs": ({"activation": ["relu", "sigmoid"]},
                          {"kernel": "activation_inputs", "row_columns": histogram_columns, "images_per_job": 12}),
}


@pytest.mark.parametrize("kind", list(SWEEPS))
def test_every_report_figure_has_a_title_and_no_raw_column_name(tmp_path, drawn_figures, kind):
    axes, options = SWEEPS[kind]
    sweep = write_sweep(tmp_path / kind, axes, seeds=1, **options)
    report = write_report(sweep, replicates=10)
    figures = drawn_figures()
    assert figures and len(figures) >= len(report.figures)
    for fig in figures:
        titles, labels = texts_of(fig)
        assert titles, f"{kind}: a figure without a title (axis labels {labels})"
        for text in titles + labels:
            assert not raw_columns_in(text), f"{kind}: {text!r} shows a column name, not words"
