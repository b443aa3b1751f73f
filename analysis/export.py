"""Every table in the three forms people use: Markdown (READMEs, issues), CSV (scripts), LaTeX (papers)."""
from __future__ import annotations

from pathlib import Path

import polars as pl

from analysis.tables import to_markdown


def _cell(value, digits: int) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _latex_escape(text: str) -> str:
    for plain, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                           ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"),
                           ("^", r"\textasciicircum{}")):
        text = text.replace(plain, escaped)
    for symbol, command in (("✓", r"\checkmark{}"), ("✗", r"$\times$"), ("↑", r"$\uparrow$"), ("↓", r"$\downarrow$"),
                            ("±", r"$\pm$"), ("ρ", r"$\rho$"), ("–", "--")):
        text = text.replace(symbol, command)
    return text


def to_latex(table: pl.DataFrame, caption: str = "", digits: int = 3) -> str:
    """A booktabs table (\\toprule / \\midrule / \\bottomrule, no vertical rules); needs
    \\usepackage{booktabs} and, for ✓, \\usepackage{amssymb}."""
    align = "".join("r" if dtype.is_numeric() else "l" for dtype in table.dtypes)
    lines = [r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{_latex_escape(caption)}}}")
    lines += [rf"\begin{{tabular}}{{{align}}}", r"\toprule",
              " & ".join(_latex_escape(c) for c in table.columns) + r" \\", r"\midrule"]
    for row in table.iter_rows():
        lines.append(" & ".join(_latex_escape(_cell(v, digits)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(table: pl.DataFrame, stem: Path, caption: str = "") -> list[Path]:
    """<stem>.csv, <stem>.md and <stem>.tex; returns the three paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".csv"), stem.with_suffix(".md"), stem.with_suffix(".tex")]
    table.write_csv(paths[0])
    paths[1].write_text((f"**{caption}**\n\n" if caption else "") + to_markdown(table))
    paths[2].write_text(to_latex(table, caption))
    return paths
