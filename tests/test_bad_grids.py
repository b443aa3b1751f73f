"""Wrong and hostile grid and profile files, through the real CLI, as a user meets them.

The promise for each: exit code 2, one message of at most three lines on stderr naming the file,
`line:column` where the parser knows it, the full key path and the hint; no traceback; and the
working folder exactly as it was (no runs/, no cache, no file a planted tag tried to make).
Most cases are one small file in tests/bad_inputs/; files that are large or not text (a 10^12-job
product, 100,000 levels of nesting, Latin-1 bytes) are written by the tests.
"""
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import orch

CORPUS = Path(__file__).parent / "bad_inputs"
NESTING = 100_000

# (file, line:col or None where no single place is to blame, fragments the message must hold)
GRID_CASES = [
    # 1. shapes: a section of the wrong shape is named before any merge can crash on it
    ("shape_fixed_list.yaml", "3:1", ["fixed: expected a mapping of parameter -> value, got list"]),
    ("shape_fixed_two_key_item.yaml", "4:1", ["fixed: expected a mapping", "got list [{'dataset'"]),
    ("shape_axes_string.yaml", "4:1", ["axes: expected a mapping of parameter -> list of values, got str"]),
    ("shape_resources_list.yaml", "5:1", ["resources: expected a mapping (cpus, gpus, mem_gb, time_min)"]),
    ("shape_scale_section.yaml", "8:5", ["scales.small.axes: expected a mapping"]),
    ("shape_default_scale_list.yaml", "6:1", ["default_scale: expected the name of a scale, got list"]),
    ("shape_zip_item.yaml", "6:5", ["zip[0]: expected a mapping of parameter -> list of values, got list"]),
    ("exclude_item_string.yaml", "6:5", ["exclude[0]: expected a mapping", "got str 'batch_size'"]),
    # ...and every scale is validated, not only the one planned (the default here is `paper`)
    ("other_scale_typo.yaml", "10:7", ["scales.small.fixed.train_epocs: unknown parameter 'train_epocs' of "
                                       "kernel 'ig'; did you mean 'train_epochs'?"]),
    ("scale_unknown_key.yaml", "7:11", ["scales.small.fixd: unknown key 'fixd'; did you mean 'fixed'?"]),
    # 2. parsing
    ("syntax_error.yaml", "4:5", ["not valid YAML", "flow mapping that starts on line 3"]),
    ("duplicate_key.yaml", "6:1", ["duplicate key 'fixed': first on line 3, again on line 6"]),
    # 3. exhaustion: 9^9 values once expanded, refused while counting
    ("alias_bomb.yaml", "8:15", ["more than 20,000 values", "alias"]),
    # 4. values
    ("nan_lr.yaml", "3:24", ["fixed.lr: expected a finite number, got nan"]),
    ("inf_axis.yaml", "4:36", ["axes.tv[1]: expected a finite number, got inf"]),
    ("inf_mem.yaml", "5:13", ["resources.mem_gb: expected a finite number > 0, got inf"]),
    ("gpus_half.yaml", "5:13", ["resources.gpus: expected an integer >= 0, got 0.5"]),
    ("cpus_zero.yaml", "5:13", ["resources.cpus: expected an integer >= 1, got 0"]),
    # 5. names: a grid's name (and a scale's) is one folder under runs/
    ("name_traversal.yaml", "1:1", ["name: '../../x' is not a folder name", "--sweep-dir"]),
    ("name_absolute.yaml", "1:1", ["name: '/tmp/x' is not a folder name"]),
    ("scale_name_traversal.yaml", "5:10", ["scales['../up']: scale name '../up' is not a folder name"]),
    # planted code: safe loading refuses the tag, so `touch planted-by-grid` never runs
    ("python_tag.yaml", "4:30", ["tag !!python/object/apply:os.system is not allowed"]),
    ("python_tag_document.yaml", "1:1", ["tag !!python/object/apply:os.system is not allowed"]),
]


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def refused(cwd: Path, *args: str, source: str, position: str | None, names: list[str]) -> str:
    """Runs `orch ARGS` in cwd and checks the promise; `source` is the file the message must begin
    with, at `position` (line:col) where one applies."""
    before = snapshot(cwd)
    result = orch(*args, cwd=cwd, timeout=60, env={"ORCH_CACHE_DIR": ""})
    message = result.stderr.strip()
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-2000:]
    assert message.startswith("error: ") and len(message.splitlines()) <= 3, message
    assert message.startswith(f"error: {source}:{position}: " if position else f"error: {source}: "), message
    for name in names:
        assert name in message, (name, message)
    assert snapshot(cwd) == before, "a refused command changed the folder"
    return message


def copy_in(cwd: Path, name: str) -> str:
    (cwd / name).write_bytes((CORPUS / name).read_bytes())
    return name


@pytest.mark.parametrize("name, position, names", GRID_CASES, ids=[c[0].removesuffix(".yaml") for c in GRID_CASES])
def test_bad_grid_is_refused_and_creates_nothing(tmp_path, name, position, names):
    # `launch`, not `plan`: it is the command that would create runs/<name>/ and the cache
    refused(tmp_path, "launch", copy_in(tmp_path, name), "--workers", "1", source=name, position=position,
            names=names)
    assert not (tmp_path / "planted-by-grid").exists()


def test_non_utf8_bytes_are_named_with_their_offset(tmp_path):
    (tmp_path / "latin1.yaml").write_bytes(b"name: t\nkernel: ig\ndescription: caf\xe9\n")
    refused(tmp_path, "launch", "latin1.yaml", source="latin1.yaml", position="3:17",
            names=["not UTF-8 text: byte 0xe9 at offset 35"])


def test_a_missing_grid_file_names_the_nearest_one(tmp_path):
    copy_in(tmp_path, "good.yaml")
    refused(tmp_path, "plan", "god.yaml", source="god.yaml", position=None,
            names=["cannot read grid file", "did you mean good.yaml?"])


def test_unknown_scale_on_the_command_line(tmp_path):
    refused(tmp_path, "launch", copy_in(tmp_path, "good.yaml"), "--scale", "smal", source="good.yaml", position=None,
            names=["--scale: unknown scale 'smal'; did you mean 'small'?"])


@pytest.mark.parametrize("name, position, names", [
    ("profile_negative_delay.yaml", "2:1", ["signal_delay_s: expected an integer >= 0, got -30"]),
    ("profile_setup_item.yaml", "4:5", ["setup[1]: expected a shell line (a string), got dict"]),
])
def test_bad_profile_is_refused_by_a_dry_run(tmp_path, name, position, names):
    copy_in(tmp_path, "good.yaml")
    refused(tmp_path, "launch", "good.yaml", "--dry-run", "--executor", "slurm", "--profile", copy_in(tmp_path, name),
            source=name, position=position, names=names)


def hostile_files(folder: Path) -> dict[str, str]:
    """Files that only a generator makes, with what their refusal says."""
    n = 1000  # four factors of 1000 levels: 10^12 grid points
    (folder / "product.yaml").write_text(
        "name: product\nkernel: ig\nfixed: {num_images: 4, batch_size: 1, batch_index: 0}\naxes:\n"
        f"  lr: {[round(0.001 * (i + 1), 6) for i in range(n)]}\n"
        f"  tv: {[round(1e-5 * (i + 1), 8) for i in range(n)]}\n"
        f"  iterations: {list(range(1, n + 1))}\nseeds: {list(range(n))}\n")
    (folder / "deep.yaml").write_text("name: t\nkernel: ig\nfixed: " + "[" * NESTING + "]" * NESTING + "\n")
    (folder / "alias_bomb.yaml").write_bytes((CORPUS / "alias_bomb.yaml").read_bytes())
    (folder / "big.yaml").write_text("#" * 600_000 + "\n")
    return {"product.yaml": "1,000,000,000,000 jobs, above the cap of 10,000,000",
            "deep.yaml": "nested deeper than 32 levels", "alias_bomb.yaml": "more than 20,000 values",
            "big.yaml": "larger than 512 KiB"}


# The CLI run as a grandchild, so that RUSAGE_CHILDREN holds its peak memory and nothing else's.
MEASURE = """
import resource, subprocess, sys, time
started = time.monotonic()
result = subprocess.run([sys.executable, "-m", "orchestrator.cli", "plan", sys.argv[1]], capture_output=True,
                        text=True)
seconds = time.monotonic() - started
print(result.returncode, seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, sep="\\n")
print(result.stderr, end="")
"""


def measure(cwd: Path, name: str) -> tuple[int, float, int, str]:
    """`orch plan NAME` in cwd: exit code, seconds, peak memory (kB), stderr."""
    out = subprocess.run([sys.executable, "-c", MEASURE, name], cwd=cwd, capture_output=True, text=True,
                         timeout=120).stdout.splitlines()
    return int(out[0]), float(out[1]), int(out[2]), "\n".join(out[3:])


def test_hostile_grids_are_refused_at_once_in_bounded_memory(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    expected = hostile_files(cwd)
    copy_in(cwd, "good.yaml")
    code, _, baseline_kb, _ = measure(cwd, "good.yaml")  # the CLI and its imports: about 120 MB
    assert code == 0
    before = snapshot(cwd)
    for name, fragment in expected.items():
        code, seconds, peak_kb, message = measure(cwd, name)
        assert code == 2 and fragment in message and len(message.splitlines()) <= 3, (name, message)
        # Unbounded work would take gigabytes (9^9 values, 10^12 jobs); the bound leaves room for noise.
        assert peak_kb < baseline_kb + 64_000, f"{name}: peak {peak_kb / 1024:.0f} MB, plan of a good grid " \
                                               f"{baseline_kb / 1024:.0f} MB"
        assert seconds < 10, f"{name}: {seconds:.1f} s"  # under 1 s here; slack for a loaded 2-core machine
    assert snapshot(cwd) == before


def test_the_loader_itself_is_quick_on_hostile_files(tmp_path):
    """The parse and count alone, without the CLI's imports: well inside the 2 s promise."""
    from orchestrator.errors import GridError
    from orchestrator.expand import expand
    from orchestrator.grid import load_grid

    for name, fragment in hostile_files(tmp_path).items():
        started = time.perf_counter()
        with pytest.raises(GridError, match=fragment.replace("(", r"\(")):
            expand(load_grid(tmp_path / name))
        assert time.perf_counter() - started < 2.0, name
