"""Site profiles: what differs from one SLURM cluster to the next (slurm/profiles/<name>.yaml)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from orchestrator.errors import GridError, OrchError, unknown_name


def profile_dirs() -> tuple[Path, ...]:
    """The working directory's slurm/profiles, then the project's own."""
    return Path.cwd() / "slurm" / "profiles", Path(__file__).resolve().parents[1] / "slurm" / "profiles"


@dataclass(frozen=True)
class Profile:
    name: str
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


_TYPES = {"partition": str, "account": str, "qos": str, "constraint": str, "gpu_request": str, "setup": list,
          "array_parallelism": int, "jobs_per_task": int, "signal_delay_s": int, "max_requeues": int, "python": str,
          "sbatch": dict}
_CHOICES = {"gpu_request": ("gpus", "gres")}


def available() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in reversed(profile_dirs()):  # the working directory's profiles win
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.yaml"))})
    return found


def load_profile(name_or_path: str) -> Profile:
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        profiles = available()
        if name_or_path not in profiles:
            raise OrchError(f"--profile: {unknown_name('profile', name_or_path, profiles)} "
                            f"(profiles live in slurm/profiles/<name>.yaml)")
        path = profiles[name_or_path]
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise GridError(str(path), [f"not valid YAML: {e}"]) from None
    if not isinstance(raw, dict):
        raise GridError(str(path), ["expected a mapping of profile keys"])
    problems = []
    for key, value in raw.items():
        if key not in _TYPES:
            problems.append(f"{key}: {unknown_name('key', key, _TYPES)}")
        elif value is not None and (not isinstance(value, _TYPES[key]) or isinstance(value, bool)):
            problems.append(f"{key}: expected {_TYPES[key].__name__}, got {type(value).__name__} {value!r}")
        elif key in _CHOICES and value not in _CHOICES[key]:
            problems.append(f"{key}: {unknown_name('value', value, _CHOICES[key])}")
        elif _TYPES[key] is int and value < 1 and key != "signal_delay_s":
            problems.append(f"{key}: expected an integer >= 1, got {value}")
    if problems:
        raise GridError(str(path), problems)
    return Profile(name=path.stem, **{k: v for k, v in raw.items() if v is not None})
