"""Study files: several grids, each at a scale, planned, launched, followed and reported as one unit.

    name: paper                                  # names the study folder, runs/<name>[-<scale>]
    description: every table and figure of the paper
    grids:
      - {grid: grids/opgia.yaml, scale: small}   # scale optional: the grid's default_scale
      - grid: grids/rtf.yaml
    scales:                                      # optional: study scales, chosen with --scale
      small: {}                                  # every grid at its own scale of that name
      quick: {opgia: small}                      # per grid name, another scale of that grid

The scale each grid is planned at: with a study scale chosen (`--scale S`), the grid's scale named under
`scales.S.<grid name>`, else the grid's own scale `S` (a grid without scales is used as it is); without
one, the entry's `scale`, else the grid's default_scale. Grid paths are relative to the current
directory, as on the command line (`orch launch grids/rtf.yaml`).

The file is read by the strict loader of yaml_source and checked like a grid: every problem names
`study.yaml:line:column`, the key path and the nearest valid name; every grid must exist, validate at
its scale and expand, and every study scale must name scales the grids have, all before anything is
created. A mistake inside a grid file is reported by that grid's own checks, naming the grid file.

The study folder holds one ordinary sweep folder per grid, so every command works on each of them:

    study.yaml           the study text as first launched (frozen)
    study.json           name, scale, source, and per grid its file, scale and sweep folder: written
                         last, after every sweep folder exists, so resuming needs the folder alone
    <grid>[-<scale>]/    the grid's sweep folder (see orchestrator/sweep.py)
    report/              the study's report: index.md and, with --html, report.html

Trained models are shared across the grids (and with sweeps beside the study folder): the cache is
$ORCH_CACHE_DIR, else .cache/ beside the study folder.
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import GridError, OrchError, got, short, unknown_name
from orchestrator.expand import Plan, expand
from orchestrator.grid import Problems, is_folder_name, load_grid
from orchestrator.launch import default_sweep_dir
from orchestrator.sweep import Sweep, now
from orchestrator.yaml_source import Document, read_yaml

TOP_LEVEL = ("name", "description", "grids", "scales")
ENTRY = ("grid", "scale")
# Files and folders of the study folder itself: no grid's sweep folder may take these names.
RESERVED = ("report", "study.yaml", "study.json", ".lock")


@dataclass(frozen=True)
class StudyGrid:
    """One grid of a study, planned at its scale."""
    plan: Plan
    folder: str  # its sweep folder inside the study folder: <grid name>[-<scale>]


@dataclass(frozen=True)
class Study:
    name: str
    source: str  # the study file
    text: str
    scale: str | None  # the study scale chosen, or None
    grids: list[StudyGrid]

    @property
    def all_jobs(self) -> list:
        """Every job of every grid (a study adds none of its own)."""
        return [job for grid in self.grids for job in grid.plan.all_jobs]


def read_if_study(path: str | Path) -> Document | None:
    """The parsed file when it is a study (a mapping with a `grids` key), None when it is something
    else (a grid). A file that cannot be read or parsed raises here the error a grid file raises."""
    doc = read_yaml(path, "grid file")
    return doc if isinstance(doc.data, dict) and "grids" in doc.data else None


def is_study_folder(path: str | Path) -> bool:
    """A launched study's folder, or one whose first launch was killed before study.json."""
    return (Path(path) / "study.json").is_file() or (Path(path) / "study.yaml").is_file()


def load_study(path: str | Path, scale: str | None = None) -> Study:
    doc = read_if_study(path)
    if doc is None:
        raise OrchError(f"{path}: not a study file (a study lists its grid files under `grids:`)")
    return study_from(doc, scale)


def default_study_dir(study: Study) -> Path:
    return Path("runs") / (study.name if study.scale is None else f"{study.name}-{study.scale}")


def study_from(doc: Document, scale: str | None) -> Study:
    raw, problems = doc.data, Problems(doc)
    # Round 1: the study file alone.
    for key in raw:
        if key not in TOP_LEVEL:
            problems.add((key,), unknown_name("key", key, TOP_LEVEL))
    if not is_folder_name(raw.get("name")):
        problems.add(("name",), f"required, a folder name (letters, digits, '.', '_', '-'; it names runs/<name>), "
                                f"got {short(raw.get('name'))}")
    if not isinstance(raw.get("description"), (str, type(None))):
        problems.add(("description",), f"expected a string, got {got(raw['description'])}")
    entries = raw["grids"]
    if not isinstance(entries, list) or not entries:
        problems.add(("grids",), f"expected a non-empty list of {{grid: <file>, scale: <name>}}, got {short(entries)}")
        entries = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.add(("grids", i), f"expected a mapping {{grid: <file>, scale: <name>}}, got {got(entry)}")
            continue
        for key in entry:
            if key not in ENTRY:
                problems.add(("grids", i, key), unknown_name("key", key, ENTRY))
        if not isinstance(entry.get("grid"), str) or not entry.get("grid"):
            problems.add(("grids", i, "grid"), f"required, the path of a grid file, got {short(entry.get('grid'))}")
        if "scale" in entry and not is_folder_name(entry["scale"]):
            problems.add(("grids", i, "scale"), f"expected the name of a scale of the grid, got {short(entry['scale'])}")
    scales = raw.get("scales") or {}
    if not isinstance(scales, dict):
        problems.add(("scales",), f"expected a mapping of study scale -> {{}} or {{grid name: scale}}, got {got(scales)}")
        scales = {}
    for name, overrides in scales.items():
        if not is_folder_name(name):
            problems.add(("scales", name), f"scale name {short(name)} is not a folder name (it names runs/<study>-<scale>)")
        if overrides is not None and (not isinstance(overrides, dict)
                                      or not all(isinstance(v, str) for v in overrides.values())):
            problems.add(("scales", name), f"expected {{}} or a mapping of grid name -> its scale, got {got(overrides)}")
    if scale is not None and scale not in scales:
        problems.add((), unknown_name("scale", scale, scales) if scales else "this study defines no scales",
                     where="--scale")
    problems.raise_if_any()

    # Round 2: every grid exists and validates; every study scale names scales the grids have.
    grids = []
    for i, entry in enumerate(entries):
        try:
            grids.append(load_grid(entry["grid"]))
        except GridError:
            raise  # a mistake inside the grid: its own checks name the grid file, line and key
        except OrchError as error:  # missing or unreadable: the study names the file, so the study's line
            problems.add(("grids", i, "grid"), str(error))
    problems.raise_if_any()
    names = [grid.name for grid in grids]
    for name, overrides in scales.items():
        for grid_name in overrides or {}:
            if grid_name not in names:
                problems.add(("scales", name, grid_name), unknown_name("grid name", grid_name, names))
    for study_scale in [None, *scales]:
        for i, grid in enumerate(grids):
            chosen = _scale_of(entries[i], grid, study_scale, scales)
            if chosen is None or chosen in grid.scales:
                continue
            if study_scale is None:
                where = ("grids", i, "scale")
            elif grid.name in (scales[study_scale] or {}):
                where = ("scales", study_scale, grid.name)
            else:
                where = ("scales", study_scale)
            owner = f" of grid {grid.name!r} ({grid.source})"
            problems.add(where, unknown_name("scale", chosen, grid.scales, owner) if grid.scales
                         else f"grid {grid.name!r} ({grid.source}) defines no scales")
    problems.raise_if_any()

    # Round 3: the chosen scale, expanded; one sweep folder per grid and scale.
    planned, folders = [], {}
    for i, grid in enumerate(grids):
        chosen = _scale_of(entries[i], grid, scale, scales)
        if chosen is not None and chosen != grid.scale:
            grid = load_grid(entries[i]["grid"], chosen)
        plan = expand(grid)
        folder = default_sweep_dir(plan).name
        if folder in folders:
            problems.add(("grids", i), f"grids[{folders[folder]}] already plans grid {grid.name!r} at this scale "
                                       f"(both would be the sweep folder {folder})")
        elif folder in RESERVED:
            problems.add(("grids", i), f"grid {grid.name!r} would make the sweep folder {folder!r}, a name the study "
                                       "folder uses itself; rename the grid")
        folders.setdefault(folder, i)
        planned.append(StudyGrid(plan, folder))
    problems.raise_if_any()
    return Study(raw["name"], doc.source, doc.text, scale, planned)


def _scale_of(entry: dict, grid, study_scale: str | None, scales: dict) -> str | None:
    """The grid scale an entry is planned at; None: the grid's default_scale (or a grid without scales)."""
    if study_scale is None:
        return entry.get("scale")
    overrides = scales.get(study_scale) or {}
    if grid.name in overrides:
        return overrides[grid.name]
    return study_scale if grid.scales else None


class StudyFolder:
    """The folder of one launched study (see the module docstring for its layout)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    @property
    def meta_path(self) -> Path:
        return self.root / "study.json"

    def exists(self) -> bool:
        return self.meta_path.is_file()

    def meta(self) -> dict:
        if not self.exists():
            if (self.root / "study.yaml").is_file():
                raise OrchError(f"{self.root}: a launch was killed before it finished creating this study (no "
                                f"study.json); launch the study again with --sweep-dir {self.root}")
            raise OrchError(f"{self.root}: not a study folder (no study.json)")
        try:
            meta = json.loads(self.meta_path.read_text())
            if not all(isinstance(entry["sweep"], str) for entry in meta["grids"]):
                raise TypeError("a sweep folder that is not a name")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise OrchError(f"{self.meta_path}: unreadable ({error}); launch the study again with --sweep-dir "
                            f"{self.root}") from None
        return meta

    def sweeps(self) -> list[Sweep]:
        """The study's sweep folders, in the order of its grids."""
        return [Sweep(self.root / entry["sweep"]) for entry in self.meta()["grids"]]

    def check_target(self, study: Study) -> None:
        """Before a launch creates anything: the folder is absent, this study's folder, or what a launch
        of it that was killed before writing study.json left (study.yaml and its sweep folders)."""
        if self.root.exists() and not self.root.is_dir():
            raise OrchError(f"--sweep-dir {self.root} is a file; a study folder is a folder (absent or a study)")
        if self.root.is_dir() and not self.exists():
            allowed = {"study.yaml", ".lock", *(grid.folder for grid in study.grids)}
            foreign = sorted(e.name for e in os.scandir(self.root) if e.name not in allowed)
            if foreign:
                shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
                raise OrchError(f"--sweep-dir {self.root} is a folder that is not a study (it holds {shown}); "
                                "pick a new or empty folder")
        if self.exists():
            frozen = (self.root / "study.yaml").read_text() if (self.root / "study.yaml").is_file() else None
            if frozen != study.text or self.meta().get("scale") != study.scale:
                raise OrchError(f"{self.root} was launched from a different study or scale; resume it with "
                                f"`orch resume {self.root}` or pick another --sweep-dir")

    def freeze(self, study: Study) -> None:
        """The first write of a launch: the study text, before any sweep folder is created."""
        self._write_atomic(self.root / "study.yaml", study.text)

    def commit(self, study: Study) -> None:
        """The last write of a first launch, once every sweep folder exists: study.json."""
        meta = {"name": study.name, "source": study.source, "scale": study.scale,
                "grids": [{"grid": g.plan.grid.source, "name": g.plan.grid.name, "scale": g.plan.grid.scale,
                           "sweep": g.folder} for g in study.grids],
                "created": now().isoformat()}
        self._write_atomic(self.meta_path, json.dumps(meta, indent=2))

    def _write_atomic(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{time.monotonic_ns()}")
        partial.write_text(text)
        os.replace(partial, path)

    def lock(self):
        """One launcher at a time for the whole study (the sweep's own lock, on the study folder)."""
        return Sweep(self.root).lock()
