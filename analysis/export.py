"""Every table in the three forms people use: Markdown (READMEs, issues), CSV (scripts), LaTeX (papers)."""
from __future__ import annotations

from pathlib import Path

import polars as pl

from analysis.tables import to_markdown


def _cell(value, digits: int) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


# Every character that LaTeX reads as markup, and every non-ASCII symbol the tables print, with what
# typesets it. One pass over the text, character by character: replacing one character after another
# would escape the braces of `\textbackslash{}` again.
LATEX = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "|": r"\textbar{}",
    "<": r"\textless{}", ">": r"\textgreater{}",
    "✓": r"\checkmark{}", "✗": r"$\times$", "×": r"$\times$", "↑": r"$\uparrow$", "↓": r"$\downarrow$",
    "→": r"$\rightarrow$", "±": r"$\pm$", "≠": r"$\neq$", "≤": r"$\leq$", "≥": r"$\geq$", "≈": r"$\approx$",
    "∞": r"$\infty$", "·": r"$\cdot$", "–": "--", "—": "---", "…": r"\dots{}", "°": r"$^\circ$",
    "ρ": r"$\rho$", "α": r"$\alpha$", "β": r"$\beta$", "γ": r"$\gamma$", "δ": r"$\delta$", "ε": r"$\epsilon$",
    "λ": r"$\lambda$", "μ": r"$\mu$", "µ": r"$\mu$", "σ": r"$\sigma$", "τ": r"$\tau$", "θ": r"$\theta$",
}


def _latex_escape(text: str) -> str:
    """`text` as LaTeX that pdflatex typesets as it reads. Accented Latin letters pass through (UTF-8 is
    LaTeX's default input encoding); any other symbol not in LATEX is written as its code point
    (`U+2603`) rather than left to stop the compilation."""
    out = []
    for character in text:
        if character in LATEX:
            out.append(LATEX[character])
        elif character.isascii() or (character.isalpha() and ord(character) < 0x250):
            out.append(character)
        else:
            out.append(rf"\texttt{{U+{ord(character):04X}}}")
    return "".join(out)


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
