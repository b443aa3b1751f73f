"""`orch report --html`: one self-contained page, opened in a real headless Chromium, renders with
every image decoded; and the figures the page embeds."""
import json
import re
import shutil
import subprocess

import numpy as np
import polars as pl
import pytest
from PIL import Image

from analysis.paper_figures import exact_recovery_curve, label_repetition_row, slice_grid
from analysis.shards import load_images, scan_shards
from tests.benchmarks.bench_analysis_data import write_sweep
from tests.conftest import orch

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def rendered_image_counts(page, profile) -> tuple[int, int]:
    """(images decoded, images on the page) as the page's own script counted them after `load`."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'id="images-loaded" data-loaded="(\d+)" data-total="(\d+)"', dom)
    assert found, f"the page's script did not run: {dom[:300]}"
    return int(found.group(1)), int(found.group(2))


def not_blank(path) -> bool:
    pixels = np.asarray(Image.open(path).convert("L"))
    return pixels.std() > 5


def test_html_report_opens_in_chromium_with_every_image(tmp_path):
    sweep = write_sweep(tmp_path / "sweep", {"dataset": ["cifar10", "imagenet"], "batch_size": [1, 4]}, seeds=1,
                        images_per_job=3, with_images=True)
    lost = sorted((sweep / "shards").glob("*.parquet"))[0]
    lost.unlink()  # this job failed twice: the page must say so
    for attempt in (1, 2):
        (sweep / "failures" / f"{lost.stem}.{attempt:03d}.json").write_text(json.dumps(
            {"job_id": lost.stem, "label": "", "attempt": attempt, "error": "RuntimeError: CUDA out of memory",
             "traceback": "Traceback ...\nRuntimeError: CUDA out of memory", "host": "n1", "pid": 1,
             "time": "2026-01-01T00:00:00+00:00"}))
    result = orch("report", str(sweep), "--html", "--pdf")
    assert result.returncode == 0, result.stderr
    page = sweep / "report" / "report.html"
    text = page.read_text()
    assert "RuntimeError: CUDA out of memory" in text and "failed" in text and "abc123" in text  # provenance
    assert "Table I from data" in text and "src=\"file:" not in text and "http" not in text.split("<body>")[1]
    # One grid per configuration with data: one seed, so the failed job's configuration has none.
    assert len(list((sweep / "report" / "grids").glob("*.png"))) == 3
    assert (sweep / "report" / "metrics.pdf").read_bytes()[:4] == b"%PDF"
    assert (sweep / "report" / "tables" / "table1_influence.tex").exists()
    loaded, total = rendered_image_counts(page, tmp_path / "profile")
    assert total == text.count("<img ") and total >= 3 + 3  # the grids, metrics (twice), reconstructions
    assert loaded == total


def test_the_browser_check_fails_on_a_broken_image(tmp_path):
    from analysis.html_report import COUNTER

    page = tmp_path / "broken.html"
    page.write_text('<html><body><p id="images-loaded"></p><img src="data:image/png;base64,iVBORw0KGgoAAAAN">'
                    f"<script>{COUNTER}</script></body></html>")
    assert rendered_image_counts(page, tmp_path / "profile") == (0, 1)


def test_figure_ten_label_repetition_row_and_slice_grid(tmp_path):
    def exact(point, rng, n):
        return {"exact": rng.random(n) < point["bins"] / (point["bins"] + 64),
                "added_parameters": [point["bins"] * 3 * 32 * 32] * n}

    robbing = write_sweep(tmp_path / "rtf", {"bins": [8, 64, 512, 4096], "batch_size": [64]}, seeds=1,
                          images_per_job=64, kernel="rtf", row_columns=exact)
    figure = exact_recovery_curve(scan_shards(robbing), tmp_path / "fig10.png")
    assert figure and not_blank(figure)
    assert exact_recovery_curve(scan_shards(write_sweep(tmp_path / "ig", {"batch_size": [1]})), tmp_path / "x.png") is None

    repeated = write_sweep(tmp_path / "labels", {"same_label": [0, 2, 3, 4], "batch_size": [4]}, seeds=1,
                           images_per_job=4, with_images=True)
    rows = scan_shards(repeated).select("job_id", "image_index", "same_label", "psnr", "ssim", "lpips").collect()
    images = load_images(repeated, rows["job_id"].unique().to_list())
    row = label_repetition_row(rows, images, tmp_path / "fig5.pdf")
    assert row.read_bytes()[:4] == b"%PDF"
    png = label_repetition_row(rows, images, tmp_path / "fig5.png")
    assert Image.open(png).width > Image.open(png).height * 3  # one row of 16 images, 4 batches

    grid = slice_grid(repeated, tmp_path / "slice.png", where={"same_label": [3, 4]}, by=["same_label"])
    assert grid and not_blank(grid)
    assert slice_grid(repeated, tmp_path / "none.png", where={"same_label": 7}) is None


def test_report_without_html_keeps_the_terminal_table_and_files(tmp_path):
    sweep = write_sweep(tmp_path, {"batch_size": [1, 2], "model_state": ["untrained", "trained"]}, with_images=True)
    result = orch("report", str(sweep))
    assert result.returncode == 0 and "metrics by factor" in result.stdout
    for name in ("summary.csv", "summary.md", "metrics.png", "reconstructions.png"):
        assert (sweep / "report" / name).stat().st_size > 0
    assert not (sweep / "report" / "report.html").exists() and not (sweep / "report" / "grids").exists()
    assert pl.read_csv(sweep / "report" / "summary.csv").height == 4


def test_one_image_per_setting_is_laid_out_side_by_side(tmp_path):
    # Fishing writes one row per job: five settings of one image each make one wide row, not a column.
    from analysis.figures import reconstruction_grid

    sweep = write_sweep(tmp_path, {"batch_size": [4, 8, 16, 32, 64]}, seeds=1, images_per_job=1, with_images=True)
    rows = scan_shards(sweep).select("job_id", "image_index", "batch_size", "psnr", "ssim", "lpips").collect()
    path = reconstruction_grid(rows, load_images(sweep, rows["job_id"].to_list()), ["batch_size"],
                               tmp_path / "grid.png")
    width, height = Image.open(path).size
    assert width > 2 * height and not_blank(path)


def test_a_report_of_a_path_that_is_no_sweep_folder_creates_nothing(tmp_path):
    from analysis.report import write_report

    grid = tmp_path / "grid.yaml"
    grid.write_text("name: x\n")
    without_manifest = write_sweep(tmp_path / "killed", {"batch_size": [1, 2]})
    (without_manifest / "manifest.parquet").unlink()  # a launch stopped before writing it
    for path, says in ((tmp_path / "missing" / "deeper", "no such sweep folder"), (grid, "is a file"),
                       (without_manifest, "manifest.parquet is missing")):
        before = sorted(tmp_path.rglob("*"))
        with pytest.raises(FileNotFoundError, match=says):
            write_report(path, replicates=10)
        assert sorted(tmp_path.rglob("*")) == before, f"{path}: something was created"


def test_a_sweep_whose_manifest_predates_the_descriptors_is_told_to_relaunch(tmp_path):
    import pyarrow.parquet as pq

    from analysis.report import write_report

    sweep = write_sweep(tmp_path, {"batch_size": [1, 4]}, seeds=2)
    manifest = pq.read_table(sweep / "manifest.parquet")
    metadata = {k: v for k, v in manifest.schema.metadata.items() if k != b"orch.descriptors"}
    old = manifest.drop_columns(["attack_family", "model_parameters"]).replace_schema_metadata(metadata)
    pq.write_table(old, sweep / "manifest.parquet")  # as a launch before kernels described their jobs wrote it
    report = write_report(sweep, replicates=20)
    assert any("relaunch to refresh the manifest" in note and "--sweep-dir" in note for note in report.notes)
    assert "table1_influence" not in [t.name for t in report.tables]  # no family: no Table I, not a guess
    assert (sweep / "report" / "summary.csv").exists() and report.figures  # the rest of the report stands
