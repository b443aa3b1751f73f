"""Every table `orch report` exports is well formed in each format: each Markdown row has one cell per
header, and each LaTeX table has one cell per column, balanced braces and no character LaTeX would read
as markup. With pdflatex installed (texlive-latex-base, texlive-latex-recommended), the LaTeX is also
compiled; without it that one test skips and the structural checks still run."""
import re
import shutil
import subprocess

import numpy as np
import polars as pl
import pytest

from analysis.export import to_latex
from analysis.report import write_report
from analysis.tables import to_markdown
from tests.benchmarks.bench_analysis_data import write_sweep

HOSTILE = "a|b \\ & % $ # _ {x} ~ ^ < > ≠ ρ ☃ é\nsecond line"


def markdown_cells(line: str) -> list[str]:
    """The cells of one Markdown table row, as GitHub splits it: on every `|` not escaped by `\\`."""
    cells, current, i = [], "", 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            current += line[i:i + 2]
            i += 2
            continue
        if line[i] == "|":
            cells.append(current)
            current = ""
        else:
            current += line[i]
        i += 1
    cells.append(current)
    return cells[1:-1]  # a row starts and ends with `|`


def check_markdown(text: str) -> None:
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert len(rows) >= 2, text
    width = len(markdown_cells(rows[0]))
    for row in rows:
        assert len(markdown_cells(row)) == width, f"{len(markdown_cells(row))} cells under {width} headers: {row}"


def check_latex(tex: str) -> None:
    """One cell per column on every row, balanced braces, no unescaped special character outside math,
    nothing but ASCII and accented letters."""
    spec = re.search(r"\\begin\{tabular\}\{([lrc]+)\}", tex).group(1)
    without_escapes = re.sub(r"\\[A-Za-z]+|\\.", "", tex)  # commands and escaped characters
    depth = 0
    for character in without_escapes:
        depth += {"{": 1, "}": -1}.get(character, 0)
        assert depth >= 0, tex
    assert depth == 0, tex
    text = re.sub(r"\$[^$]*\$", "", without_escapes)  # math, where ^ and _ belong
    assert text.count("$") == 0, tex
    for special in "|_^#%~<>":
        assert special not in text, f"bare {special!r} in {tex}"
    assert all(c.isascii() or c.isalpha() for c in text), tex
    body = tex.split("\\toprule")[1].split("\\bottomrule")[0]
    rows = [re.sub(r"\\[A-Za-z]+|\\.", "", line) for line in body.splitlines() if line.endswith("\\\\")]
    assert rows, tex
    for row in rows:
        assert row.count("&") + 1 == len(spec), f"{row.count('&') + 1} cells for {len(spec)} columns: {row}"


def compile_latex(tables: list, folder) -> None:
    """pdflatex on one document holding every table; fails on any error or missing glyph."""
    document = folder / "tables.tex"
    document.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{amssymb}\n"
                        "\\begin{document}\n" + "\n\\clearpage\n".join(tables) + "\n\\end{document}\n",
                        encoding="utf-8")
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
                             document.name], cwd=folder, capture_output=True, text=True, timeout=120)
    log = (folder / "tables.log").read_text(errors="replace")
    assert result.returncode == 0, log[-3000:]
    assert "Missing character" not in log, [line for line in log.splitlines() if "Missing character" in line]
    assert (folder / "tables.pdf").stat().st_size > 0


def exact(point, rng, n):
    return {"exact": rng.random(n) > point["batch_size"] / 100}


def cosine(point, rng, n):
    return {"shared_labels": [point["cell"] % 2 + 1] * n, "position": [0] * n, "cosine": rng.random(n)}


# Three sweeps whose reports hold every table: the factor table, Table I (its cells read
# "data | paper" with ≠, ρ and arrows) and its evidence, and Tables II, III and IV.
SWEEPS = {
    "ig": dict(axes={"batch_size": [1, 4, 16], "model": ["resnet18", "resnet50"]}),
    "fedavg": dict(axes={"local_epochs": [1, 2], "local_batch_size": [1, 8], "simulation": ["none", "strong"]},
                   kernel="ig_fedavg", extra={"dataset": "cifar100"}),
    "rtf": dict(axes={"dataset": ["cifar10", "imagenet"], "batch_size": [1, 64]}, kernel="rtf",
                extra={"bins": 1000}, row_columns=exact),
    "similarity": dict(axes={"cell": [0, 1]}, kernel="gradient_similarity", row_columns=cosine),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{sweep: (Markdown texts, LaTeX texts)} of every table its report wrote."""
    made = {}
    for name, spec in SWEEPS.items():
        sweep = write_sweep(tmp_path_factory.mktemp(name), seeds=2, images_per_job=4, **spec)
        write_report(sweep, replicates=50)
        markdown = [p.read_text() for p in sorted((sweep / "report").rglob("*.md"))]
        latex = [p.read_text() for p in sorted((sweep / "report").rglob("*.tex"))]
        assert len(markdown) == len(latex) + 1  # summary.md, and each table's .md and .tex in tables/
        made[name] = (markdown, latex)
    return made


def test_the_reports_hold_table_one_and_tables_two_to_four(exported):
    latex = "\n".join(t for _, tables in exported.values() for t in tables)
    for caption in ("Table I from data", "Table I evidence", "Cosine similarity", "practical FedAvg",
                    "Robbing the Fed"):
        assert caption in latex
    table_one = next(t for t in exported["ig"][1] if "Table I from data" in t)
    assert r"\textbar{} paper" in table_one and r"$\neq$" in table_one and r"$\rho$" in table_one


def test_every_markdown_row_has_one_cell_per_header(exported):
    for markdown, _ in exported.values():
        for text in markdown:
            check_markdown(text)
    table_one = next(t for t in exported["ig"][0] if "Table I from data" in t)
    assert "\\| paper" in table_one  # the cell's own `|`, escaped, not a column separator


def test_every_latex_table_is_well_formed(exported):
    for _, latex in exported.values():
        for tex in latex:
            check_latex(tex)


NO_PDFLATEX = "pdflatex is not installed (apt-get install -y texlive-latex-base texlive-latex-recommended)"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason=NO_PDFLATEX)
def test_every_latex_table_compiles(exported, tmp_path):
    tables = [tex for _, latex in exported.values() for tex in latex]
    tables.append(to_latex(pl.DataFrame({HOSTILE: [HOSTILE], "n": [1.5]}), caption=HOSTILE))
    compile_latex(tables, tmp_path)


def test_markup_characters_are_escaped_in_both_formats():
    table = pl.DataFrame({HOSTILE: [HOSTILE, None], "value": [np.float64(1.0), 2.5]})
    markdown = to_markdown(table)
    check_markdown(markdown)
    assert "a\\|b" in markdown and "\nsecond" not in markdown
    latex = to_latex(table, caption=HOSTILE)
    check_latex(latex)
    for escaped in (r"a\textbar{}b", r"\textbackslash{}", r"\&", r"\%", r"\$", r"\#", r"\_", r"\{x\}",
                    r"\textasciitilde{}", r"\textasciicircum{}", r"\textless{}", r"$\neq$", r"$\rho$", "U+2603", "é"):
        assert escaped in latex, escaped
