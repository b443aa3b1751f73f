"""One self-contained HTML page per sweep: status counts and failures, every table, every figure,
reconstruction grids per configuration, provenance. Images are embedded as base64 data URIs, so the
page is a single file that opens anywhere, offline. A small inline script counts the images the browser
decoded and writes the count into the page (`#images-loaded`), which is how the browser test checks it."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import polars as pl

from analysis.report import Report
from analysis.status import failure_groups, job_status, provenance, status_counts

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { border-bottom: 2px solid #444; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; } figcaption { font-size: 0.85em; color: #555; }
.grids { display: flex; flex-wrap: wrap; gap: 1em; } .grids figure { max-width: 48%; }
pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; font-size: 0.8em; }
"""

# Counts decoded images (naturalWidth > 0) once everything has loaded.
COUNTER = """
window.addEventListener('load', function () {
  var images = Array.from(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var out = document.getElementById('images-loaded');
  out.textContent = loaded + ' of ' + images.length + ' images loaded';
  out.setAttribute('data-loaded', loaded);
  out.setAttribute('data-total', images.length);
});
"""


def _cell(value) -> str:
    if value is None:
        return "<td>–</td>"
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def html_table(table: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in table.iter_rows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def write_html(sweep: str | Path, report: Report, states: dict[str, str], path: Path) -> Path:
    """The page for `report` (made by `write_report(..., grids=True)`), written to `path`; `states` maps
    each job id to its state as `orch status` decides it."""
    sweep = Path(sweep)
    status = job_status(sweep, states)
    failures = failure_groups(status)
    launches = provenance(sweep)
    parts = [f"<h1>Sweep {html.escape(sweep.name)}</h1>",
             '<p id="images-loaded" data-loaded="0">images not loaded yet</p>',
             "<h2>Status</h2>", html_table(status_counts(status))]
    if failures.height:
        parts += ["<h3>Failures (jobs not done, by last error)</h3>", html_table(failures)]
    else:
        parts.append("<p>No failed job.</p>")
    parts += [f"<p>{html.escape(note)}</p>" for note in report.notes]
    parts.append("<h2>Tables</h2>")
    for table in report.tables:
        parts += [f"<h3>{html.escape(table.caption)}</h3>",
                  f"<p>files: tables/{table.name}.csv, .md, .tex</p>", html_table(table.table)]
    parts.append("<h2>Figures</h2>")
    parts += [_image(figure, title) for title, figure in report.figures]
    if report.grids:
        parts += ["<h2>Reconstructions per configuration</h2>", '<div class="grids">',
                  *(_image(grid, title) for title, grid in report.grids), "</div>"]
    parts.append("<h2>Provenance</h2>")
    if launches:
        summary = pl.DataFrame([{"time": p.get("time"), "git_sha": p.get("git_sha"), "host": p.get("host"),
                                 "python": p.get("python"), "command": " ".join(p.get("command") or [])}
                                for p in launches])
        parts += [html_table(summary), "<details><summary>package versions per launch</summary><pre>",
                  html.escape("\n".join(json.dumps(p.get("packages", {}), sort_keys=True) for p in launches)),
                  "</pre></details>"]
    else:
        parts.append("<p>provenance.jsonl is missing.</p>")
    return write_page(path, f"gia-orch report: {sweep.name}", parts)


def write_page(path: Path, title: str, parts: list[str]) -> Path:
    """One self-contained page: the shared style, the parts, the image counter."""
    page = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
            + "\n".join(parts) + f"<script>{COUNTER}</script></body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
