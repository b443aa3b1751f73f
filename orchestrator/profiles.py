"""Site profiles: what differs from one SLURM cluster to the next (slurm/profiles/<name>.yaml)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.errors import GridError, OrchError, Problem, got, key_path, short, unknown_name, valid_list
from orchestrator.yaml_source import read_yaml


def profile_dirs() -> tuple[Path, ...]:
    """The working directory's slurm/profiles, then the project's own."""
    return Path.cwd() / "slurm" / "profiles", Path(__file__).resolve().parents[1] / "slurm" / "profiles"


@dataclass(frozen=True)
class Profile:
    name: str
    source: str = ""  # the file it was read from, for messages
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpu_request: str = "gpus"  # "gpus": --gpus-per-node=N; "gres": --gres=gpu:N
    setup: list[str] = field(default_factory=list)  # shell lines before the job: module load, venv activation
    array_parallelism: int = 64  # the %N throttle of each array
    jobs_per_task: int = 1  # pack small jobs into one array task to amortise start-up
    signal_delay_s: int = 90  # SIGUSR2 this long before the time limit: checkpoint and requeue
    max_requeues: int = 3  # time-outs and preemptions tolerated per task
    python: str | None = None  # interpreter on the nodes (default: the one running orch)
    sbatch: dict = field(default_factory=dict)  # any other sbatch option, e.g. {mail-type: FAIL}


_STRINGS = ("partition", "account", "qos", "constraint", "python")
_COUNTS = ("array_parallelism", "jobs_per_task", "max_requeues")  # each at least 1
_CHOICES = {"gpu_request": ("gpus", "gres")}
KEYS = (*_STRINGS, *_COUNTS, *_CHOICES, "setup", "signal_delay_s", "sbatch")


def available() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in reversed(profile_dirs()):  # the working directory's profiles win
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.yaml"))})
    return found


def load_profile(name_or_path: str) -> Profile:
    """A profile by name (slurm/profiles/<name>.yaml) or by path; every problem of the file is a
    GridError of at most three lines naming `file:line:column` and the key."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml") and "/" not in name_or_path:
        profiles = available()
        if name_or_path not in profiles:
            raise OrchError(f"--profile: {unknown_name('profile', name_or_path, profiles)} "
                            f"(profiles live in slurm/profiles/<name>.yaml, or give a path)")
        path = profiles[name_or_path]
    doc = read_yaml(path, "profile")
    raw = {} if doc.data is None else doc.data
    if not isinstance(raw, dict):
        raise GridError(doc.source, [Problem("", f"expected a mapping of profile keys ({valid_list(KEYS)}), "
                                                 f"got {type(raw).__name__}", (1, 1))])
    problems = []
    for key, value in raw.items():
        if key not in KEYS:
            problems.append(Problem(key, unknown_name("key", key, KEYS), doc.position((key,))))
        elif value is not None and (found := _problem(key, value)):
            path = (key, *found[0])
            problems.append(Problem(key_path(path), found[1], doc.position(path)))
    if problems:
        raise GridError(doc.source, problems)
    return Profile(name=path.stem, source=str(path), **{k: v for k, v in raw.items() if v is not None})


def _problem(key: str, value) -> tuple[tuple, str] | None:
    """What is wrong with one profile value, as (key path below `key`, message); null keeps the
    default and is never wrong."""
    if key in _STRINGS:
        return None if isinstance(value, str) and value else ((), f"expected a non-empty string, got {short(value)}")
    if key in _COUNTS or key == "signal_delay_s":
        least = 0 if key == "signal_delay_s" else 1  # 0 s: no warning signal before the time limit
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= least
        return None if ok else ((), f"expected an integer >= {least}, got {short(value)}")
    if key in _CHOICES:
        return None if value in _CHOICES[key] else ((), unknown_name("value", value, _CHOICES[key]))
    if key == "setup":  # shell lines run before each job: module load, venv activation
        if not isinstance(value, list):
            return (), f"expected a list of shell lines (strings), got {got(value)}"
        for i, line in enumerate(value):
            if not isinstance(line, str):
                return (i,), f"expected a shell line (a string), got {got(line)}"
        return None
    if key == "sbatch":  # any other sbatch option: name -> value
        if not isinstance(value, dict):
            return (), f"expected a mapping of sbatch option -> value, got {got(value)}"
        for option, setting in value.items():
            if not isinstance(setting, (str, int)) or isinstance(setting, bool):
                return (option,), f"expected a string or an integer, got {short(setting)}"
        return None
    return None
