"""Tables II-IV in the paper's shape from synthetic shards, and the three export formats."""
import numpy as np
import polars as pl
import pyarrow.dataset as ds

from analysis.export import to_latex, write_table
from analysis.paper_tables import fedavg_table, paper_tables, robbing_table, similarity_table
from analysis.shards import scan_shards
from tests.benchmarks.bench_analysis_data import write_sweep


def test_fedavg_table_has_the_papers_rows_and_column_groups(tmp_path):
    # `local_batch_size` is B, as the ig_fedavg kernel records it.
    sweep = write_sweep(tmp_path, {"local_epochs": [1, 2, 5], "local_batch_size": [1, 8, 16],
                                   "simulation": ["none", "strong", "weak"]}, extra={"dataset": "cifar100"})
    made = fedavg_table(scan_shards(sweep))
    table = made.table
    assert table.columns[:2] == ["E", "B"] and table.height == 9
    assert table.columns[2:5] == ["Strong Simulation PSNR ↑", "Strong Simulation SSIM ↑", "Strong Simulation LPIPS ↓"]
    assert table.columns[-1] == "No Simulation LPIPS ↓" and "dataset=cifar100" in made.caption
    rows = ds.dataset(str(sweep / "shards")).to_table().to_pandas()  # recomputed without the project's code
    expected = rows[(rows.local_epochs == 2) & (rows.local_batch_size == 8) & (rows.simulation == "weak")].psnr.mean()
    got = table.filter((pl.col("E") == 2) & (pl.col("B") == 8))["Weak Simulation PSNR ↑"][0]
    assert abs(got - expected) < 1e-12


def test_robbing_table_counts_exact_images_per_batch_size_and_dataset(tmp_path):
    def exact(point, rng, n):  # larger batches lose a few images, as in the paper
        return {"exact": rng.random(n) > point["batch_size"] / 200}

    sweep = write_sweep(tmp_path, {"dataset": ["cifar10", "imagenet"], "batch_size": [1, 8, 64]}, seeds=1,
                        images_per_job=64, kernel="rtf", extra={"bins": 1000}, row_columns=exact)
    table = robbing_table(scan_shards(sweep)).table
    assert table.columns == ["Batch Size", "cifar10", "imagenet"] and table["Batch Size"].to_list() == [1, 8, 64]
    rows = pl.read_parquet(sweep / "shards")
    k = rows.filter((pl.col("dataset") == "imagenet") & (pl.col("batch_size") == 64))["exact"].sum()
    assert table.filter(pl.col("Batch Size") == 64)["imagenet"][0] == f"{k}/64"
    assert k < 64  # the synthetic law drops some at B=64, so the cell is not trivially 64/64


def test_similarity_table_is_image_position_by_batch_with_unmeasured_cells_marked(tmp_path):
    # (shared labels i, position j, cosine): the paper's first row and last column, and one cell of I_2
    cells = [(1, 0, -0.03), (4, 0, 0.95), (4, 3, 0.94), (2, 0, 0.74)]

    def cosine(point, rng, n):
        shared, position, value = cells[point["cell"]]
        return {"shared_labels": [shared] * n, "position": [position] * n,
                "cosine": np.full(n, value) + rng.normal(0, 1e-3, n)}

    sweep = write_sweep(tmp_path, {"cell": list(range(len(cells)))}, seeds=2, images_per_job=1,
                        kernel="gradient_similarity", row_columns=cosine)
    made = similarity_table(scan_shards(sweep))
    table = made.table
    assert table.columns == ["", "I_1", "I_2", "I_4"] and table[""].to_list() == ["I^1", "I^4"]
    assert abs(table["I_4"][0] - 0.95) < 0.01 and table["I_1"][1] is None
    assert "mean over 2 anchor(s)" in made.caption
    assert "–" in to_latex(table) or "--" in to_latex(table)


def test_no_paper_table_without_the_columns_its_kernel_writes(tmp_path):
    sweep = write_sweep(tmp_path, {"batch_size": [1, 2]})
    assert paper_tables(scan_shards(sweep)) == []


def test_every_table_is_written_as_csv_markdown_and_booktabs_latex(tmp_path):
    table = pl.DataFrame({"batch_size": [1, 64], "psnr_mean": [21.5, 12.25], "mark": ["✓↓", "✗"]})
    csv, md, tex = write_table(table, tmp_path / "t", "PSNR & marks")
    assert pl.read_csv(csv).equals(table)
    assert md.read_text().count("\n| ") == 3 and "12.250" in md.read_text()
    latex = tex.read_text()
    assert all(rule in latex for rule in (r"\toprule", r"\midrule", r"\bottomrule")) and "|" not in latex
    assert r"batch\_size" in latex and r"PSNR \& marks" in latex and r"\checkmark{}$\downarrow$" in latex
    assert r"\begin{tabular}{rrl}" in latex


def test_figure_four_and_eight_from_their_kernels_rows(tmp_path):
    from PIL import Image

    from analysis.paper_figures import ACTIVATION_SHAPES, activation_inputs_figure, gradient_embedding_scatter

    rng = np.random.default_rng(0)
    embedding = pl.DataFrame({"job_id": ["a"] * 8 + ["b"] * 8, "model_state": ["untrained"] * 8 + ["trained"] * 8,
                              "label": list(range(8)) * 2, "embed_x": rng.normal(size=16),
                              "embed_y": rng.normal(size=16), "mean_cosine_to_others": [0.03] * 8 + [0.2] * 8})
    png = gradient_embedding_scatter(embedding.lazy(), tmp_path / "fig4.png")
    assert Image.open(png).size[0] > Image.open(png).size[1]  # two panels side by side
    edges = np.linspace(-6, 6, 121)
    histogram = pl.DataFrame({"activation": ["sigmoid"] * 120, "layer": ["relu"] * 120,
                              "bin_low": edges[:-1], "bin_high": edges[1:],
                              "count": np.exp(-((edges[:-1] + 0.05) ** 2)).round(3) * 1000})
    assert activation_inputs_figure(histogram.lazy(), tmp_path / "fig8.png").exists()
    assert gradient_embedding_scatter(histogram.lazy(), tmp_path / "none.png") is None
    assert activation_inputs_figure(embedding.lazy(), tmp_path / "none.png") is None
    # The shapes drawn in panel (b) are the activations of kernels/models.py, written without torch.
    import torch

    from kernels.models.architectures import ACTIVATIONS
    x = torch.linspace(-2, 2, 41, dtype=torch.float64)
    for name, function in ACTIVATION_SHAPES.items():
        module = ACTIVATIONS[name]().eval()
        assert np.allclose(function(x.numpy()), module(x).numpy(), atol=1e-6), name


def test_each_tables_declared_needs_decide_whether_it_applies(tmp_path):
    from analysis.paper_tables import PAPER_TABLES
    from analysis.tables import applies

    assert robbing_table.needs == ("bins", "batch_size", "dataset", "exact")
    sweep = write_sweep(tmp_path, {"dataset": ["cifar10"], "batch_size": [1, 8]}, seeds=1, kernel="rtf",
                        extra={"bins": 1000}, row_columns=lambda point, rng, n: {"exact": rng.random(n) > 0.5})
    rows = scan_shards(sweep)
    assert [t.__name__ for t in PAPER_TABLES if applies(t, rows)] == ["robbing_table"]
    assert [t.name for t in paper_tables(rows)] == ["table4_robbing"]
    # Without one of its columns, exactly that table is skipped; the others do not depend on it.
    assert paper_tables(rows.drop("bins")) == [] and robbing_table(rows.drop("exact")) is None
    assert robbing_table(rows.drop("psnr")) is not None  # a column it does not need
