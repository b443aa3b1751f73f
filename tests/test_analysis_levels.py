"""Levels of a factor in natural order everywhere: tables, legends, axes, panels, grids, Table I's rows."""
import matplotlib.pyplot as plt
import polars as pl

from analysis.figures import metric_curves_figure
from analysis.influence import influence_marks
from analysis.levels import natural_key, natural_levels, sort_naturally
from analysis.paper_tables import robbing_table
from analysis.report import write_report
from analysis.shards import scan_shards
from analysis.tables import summarize
from tests.benchmarks.bench_analysis_data import write_sweep

MODELS = ["resnet18", "resnet34", "resnet50", "resnet101"]
SHUFFLED_MODELS = ["resnet101", "resnet50", "resnet18", "resnet34"]  # as strings: 101 < 18 < 34 < 50


def test_natural_key_orders_digit_runs_and_numbers_by_value():
    assert sorted(SHUFFLED_MODELS, key=natural_key) == MODELS
    assert sorted(["10", "2", "1e-3", "0.5", "0.25"], key=natural_key) == ["1e-3", "0.25", "0.5", "2", "10"]
    assert sorted(["B10", "b2", None, "B1"], key=natural_key) == [None, "B1", "b2", "B10"]
    assert sorted([10, None, 2, float("inf")], key=natural_key) == [None, 2, 10, float("inf")]
    # The paper's order where it has one: untrained first (Figure 4's left panel, Table I's level 0).
    assert natural_levels(["trained", "untrained"], "model_state") == ["untrained", "trained"]
    frame = pl.DataFrame({"model": SHUFFLED_MODELS, "rank": [4, 3, 1, 2]})
    assert sort_naturally(frame, ["model"])["rank"].to_list() == [1, 2, 3, 4]


def test_factor_table_rows_are_in_natural_order(tmp_path):
    sweep = write_sweep(tmp_path, {"model": SHUFFLED_MODELS, "variant": ["v10", "v2"],
                                   "model_state": ["trained", "untrained"]}, seeds=1, images_per_job=2)
    table = summarize(scan_shards(sweep), ["model", "variant", "model_state"])
    assert table["model"].unique(maintain_order=True).to_list() == MODELS
    assert table.filter(pl.col("model") == "resnet18")["variant"].to_list() == ["v2", "v2", "v10", "v10"]
    assert table["model_state"].to_list()[:2] == ["untrained", "trained"]


def test_legend_entries_and_text_ticks_follow_the_levels(tmp_path):
    sweep = write_sweep(tmp_path, {"model": SHUFFLED_MODELS, "batch_size": [4, 1]}, seeds=1, images_per_job=2)
    table = summarize(scan_shards(sweep), ["model", "batch_size"])
    # Shuffle the rows: the figure must order them itself, not rely on the table's order.
    table = table.sample(fraction=1.0, shuffle=True, seed=3)

    fig = metric_curves_figure(table, ["model", "batch_size"])  # x: batch_size (numeric); lines: model
    _, labels = fig.axes[0].get_legend_handles_labels()
    assert labels == [f"architecture {m}" for m in MODELS]  # legend in words (analysis.figures.LABELS), in level order
    plt.close(fig)

    # Text on the x axis, and one line (client batch size 4) without resnet34: its points must sit above the
    # ticks of their own levels, not slide left onto resnet34's.
    table = table.filter(~((pl.col("model") == "resnet34") & (pl.col("batch_size") == 4)))
    fig = metric_curves_figure(table, ["model", "batch_size"], x="model")
    ax = fig.axes[0]
    ticks = {round(t): label.get_text() for t, label in zip(ax.get_xticks(), ax.get_xticklabels())}
    assert [ticks[i] for i in sorted(ticks)] == MODELS
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert [ticks[round(x)] for x in lines["client batch size 4"].get_xdata()] == ["resnet18", "resnet50", "resnet101"]
    assert [ticks[round(x)] for x in lines["client batch size 1"].get_xdata()] == MODELS
    plt.close(fig)


def test_paper_tables_and_configuration_grids_in_level_order(tmp_path):
    def exact(point, rng, n):
        return {"exact": rng.random(n) > 0.5}

    sweep = write_sweep(tmp_path / "rtf", {"model": ["resnet101", "resnet18"], "dataset": ["cifar100", "cifar10"],
                                           "batch_size": [64, 8]}, seeds=1, images_per_job=2, kernel="rtf",
                        extra={"bins": 1000}, row_columns=exact)
    table = robbing_table(scan_shards(sweep)).table
    assert table.columns == ["model", "Batch Size", "cifar10", "cifar100"]
    assert table["model"].to_list() == ["resnet18", "resnet18", "resnet101", "resnet101"]
    assert table["Batch Size"].to_list() == [8, 64, 8, 64]

    sweep = write_sweep(tmp_path / "ig", {"model": SHUFFLED_MODELS}, seeds=1, images_per_job=2, with_images=True)
    report = write_report(sweep, grids=True, replicates=20)
    assert [name for name, _ in report.grids] == [f"model={m}" for m in MODELS]


def test_table_one_rows_follow_the_papers_family_order():
    evidence = pl.DataFrame({"family": ["ANA-GIA / Manip. Mod. Para.", "OP-GIA"], "factor": ["Batch Size"] * 2,
                             "metric": ["ssim"] * 2, "rho": [0.0, -0.5], "ci_low": [-0.1, -0.7],
                             "ci_high": [0.1, -0.3], "rows": [12, 12], "mark": ["✗", "✓↓"]})
    assert influence_marks(evidence)["family"].to_list() == ["OP-GIA", "ANA-GIA / Manip. Mod. Para."]
