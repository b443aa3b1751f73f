"""One report for a study (several grids launched as one unit): each grid's report, made by
analysis.report.write_report in a folder of its own, composed under a heading per grid into index.md and,
on request, one self-contained HTML page. A grid without results yet keeps its heading and says so, so
the page shows what is still missing."""
from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path

from analysis.html_report import _image, html_table, write_page
from analysis.report import Report
from analysis.status import failure_groups, job_status, status_counts
from analysis.tables import to_markdown


@dataclass(frozen=True)
class GridSection:
    """One grid of the study, as its report shows it."""
    heading: str  # e.g. "rtf-small: grids/rtf.yaml, kernel rtf, scale small"
    sweep: Path  # its sweep folder
    report: Report | None  # None while the grid has no results
    states: dict[str, str]  # job id -> state, as `orch status` decides it


def _progress(section: GridSection) -> str:
    done = sum(1 for state in section.states.values() if state == "done")
    return f"{done} of {len(section.states)} jobs done"


def write_index(title: str, sections: list[GridSection], out: Path) -> Path:
    """out/index.md: per grid its progress, every table in Markdown and links to its figures."""
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.heading}", "", f"{_progress(section)} (`{section.sweep}`)", ""]
        if section.report is None:
            lines += ["No results yet.", ""]
            continue
        lines += [f"note: {note}" for note in section.report.notes]
        for table in section.report.tables:
            lines += [f"### {table.caption}", "", to_markdown(table.table), ""]
        for caption, figure in section.report.figures:
            lines += [f"![{caption}]({os.path.relpath(figure, out)})", "", f"*{caption}*", ""]
    path = out / "index.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def write_study_html(title: str, sections: list[GridSection], path: Path) -> Path:
    """One page: a table of contents, then per grid its status, failures, tables, figures and (collapsed)
    the reconstructions of each configuration. Images are embedded, so the page opens offline."""
    parts = [f"<h1>{html.escape(title)}</h1>", '<p id="images-loaded" data-loaded="0">images not loaded yet</p>',
             "<ul>" + "".join(f'<li><a href="#grid-{i}">{html.escape(s.heading)}</a>: {_progress(s)}</li>'
                              for i, s in enumerate(sections)) + "</ul>"]
    for i, section in enumerate(sections):
        parts.append(f'<h2 id="grid-{i}">{html.escape(section.heading)}</h2>')
        status = job_status(section.sweep, section.states)
        parts.append(html_table(status_counts(status)))
        failures = failure_groups(status)
        if failures.height:
            parts += ["<h3>Failures (jobs not done, by last error)</h3>", html_table(failures)]
        if section.report is None:
            parts.append("<p>No results yet.</p>")
            continue
        parts += [f"<p>{html.escape(note)}</p>" for note in section.report.notes]
        for table in section.report.tables:
            parts += [f"<h3>{html.escape(table.caption)}</h3>", html_table(table.table)]
        parts += [_image(figure, caption) for caption, figure in section.report.figures]
        if section.report.grids:
            parts += ["<details><summary>reconstructions per configuration</summary>", '<div class="grids">',
                      *(_image(grid, caption) for caption, grid in section.report.grids), "</div></details>"]
    return write_page(path, f"gia-orch study: {title}", parts)
