"""No planted file runs code: a crafted CIFAR batch, attack checkpoint or cached trained model is read
as data only, and one that cannot be is refused (data) or discarded with a note (checkpoints).

Each hostile file would `touch` a marker file if anything unpickled it the unsafe way; the first test of
each kind shows that it does, so the refusals below are refusals of a real attack."""
import os
import pickle
import shlex
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kernels.models import training
from kernels.attacks import dlg
from kernels.attacks.ig import IGConfig, invert
from kernels.federated.fedsgd import client_gradient
from kernels.attacks.checkpoint import AttackCheckpoint
from kernels.data import embedded
from kernels.data.catalog import DATASETS
from kernels.data.loaders import DataError, load_split
from kernels.models.architectures import build_model
from kernels.models.recipe import checkpoint_path, train_recipe
from kernels.registry import KERNELS
from orchestrator.runner import shard_table
from tests.test_kernels_run import context, resolved

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Planted:
    """Unpickling this calls function(*args), as a crafted file does."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def touch(marker) -> str:
    return f"touch {shlex.quote(str(marker))}"


# --- CIFAR batches --------------------------------------------------------------------------------

def plant_cifar_batch(root, payload):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    path = folder / "test_batch"
    with open(path, "wb") as f:
        # Today's protocol: it names modules as Python 3 does (protocol 2 says __builtin__, commands).
        pickle.dump({"data": payload, "labels": [0]}, f)
    return path


def test_the_planted_batch_runs_a_command_under_plain_pickle(tmp_path):
    path = plant_cifar_batch(tmp_path, Planted(os.system, touch(tmp_path / "PWNED")))
    with open(path, "rb") as f:
        pickle.load(f, encoding="latin1")
    assert (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("payload, refused_name", [
    (lambda marker: Planted(os.system, touch(marker)), "posix.system"),
    (lambda marker: Planted(eval, f"__import__('os').system({touch(marker)!r})"), "builtins.eval"),
    (lambda marker: Planted(subprocess.Popen, ["touch", str(marker)]), "subprocess.Popen"),
], ids=["os.system", "builtins.eval", "subprocess.Popen"])
def test_a_planted_cifar_batch_is_refused_and_runs_nothing(tmp_path, payload, refused_name):
    marker = tmp_path / "PWNED"
    path = plant_cifar_batch(tmp_path / "data", payload(marker))
    with pytest.raises(DataError) as refusal:
        load_split("cifar10", str(tmp_path / "data"), "attack")
    message = str(refusal.value)
    assert message.startswith(f"{path} is not a CIFAR python batch: it names {refused_name}")
    assert "refused without running it" in message and "\n" not in message and len(message) < 300
    assert not marker.exists()


# --- attack checkpoints ---------------------------------------------------------------------------

def test_the_planted_checkpoint_runs_a_command_under_an_unrestricted_torch_load(tmp_path):
    torch.save({"x": Planted(os.system, touch(tmp_path / "PWNED"))}, tmp_path / "attack.pt")
    torch.load(tmp_path / "attack.pt", weights_only=False)
    assert (tmp_path / "PWNED").exists()


def test_a_planted_checkpoint_runs_nothing_and_the_job_completes_saying_so(tmp_path):
    marker = tmp_path / "PWNED"
    ctx = context(tmp_path)
    ctx.scratch_dir.mkdir()
    torch.save({"x": Planted(os.system, touch(marker))}, ctx.scratch_dir / "attack.pt")
    params = resolved("ig", model="mlp", num_images=2, batch_size=1, batch_index=0, iterations=2)
    result = KERNELS["ig"].load()(params, ctx)
    assert not marker.exists()
    row = result.rows[0]
    assert row["checkpoint_discarded"].startswith("attack.pt is unreadable (UnpicklingError: Trying to load "
                                                  "unsupported GLOBAL posix.system whose module posix is blocked.)")
    assert row["checkpoint_discarded"].endswith("; the attack restarted from iteration 0")
    assert row["interruptions"] == 0 and row["resumed_from_iteration"] is None and row["iterations_done"] == 2
    # Moved aside, so no later attempt reads it again (and whoever wants to can look at it).
    assert not (ctx.scratch_dir / "attack.pt").exists() and (ctx.scratch_dir / "attack.pt.discarded").exists()


def test_the_note_is_a_string_column_also_where_nothing_was_discarded(tmp_path):
    params = resolved("ig", model="mlp", num_images=2, batch_size=1, batch_index=0, iterations=2)
    result = KERNELS["ig"].load()(params, context(tmp_path))
    table = shard_table(KERNELS["ig"], SimpleNamespace(params=params), result.rows, result.column_types, {}, {})
    assert table.schema.field("checkpoint_discarded").type == "string"
    assert table.column("checkpoint_discarded").to_pylist() == [None]


def photographs(count, side=16):
    images, labels = embedded.evaluation_split()
    return F.avg_pool2d(torch.as_tensor(images[:count]), 32 // side), torch.as_tensor(labels[:count])


class Killed(Exception):
    """Stands for SIGKILL: the attack stops between two checkpoints."""


def ig_attack(checkpoint=None, images=1, iterations=5, killed_at=None):
    x, y = photographs(images)
    mean = torch.tensor(DATASETS["embedded"].mean).view(1, 3, 1, 1)
    std = torch.tensor(DATASETS["embedded"].std).view(1, 3, 1, 1)
    model = build_model("mlp", 8, 16, 0).eval()

    def progress(step, loss):
        if step == killed_at:
            raise Killed

    return invert(model, client_gradient(model, (x - mean) / std, y), y, (3, 16, 16), mean, std,
                  IGConfig(iterations=iterations), torch.Generator().manual_seed(0), checkpoint, progress)


def saved_after_three_iterations(folder, images=1):
    """A real checkpoint: a 5-iteration attack killed in its fourth iteration, last saved after the third."""
    with pytest.raises(Killed):
        ig_attack(AttackCheckpoint(folder, every_s=0.0), images=images, killed_at=4)
    return folder / "attack.pt"


def test_a_real_checkpoint_still_resumes(tmp_path):
    straight, straight_loss, _ = ig_attack()
    saved_after_three_iterations(tmp_path)
    resumed, resumed_loss, run = ig_attack(AttackCheckpoint(tmp_path, every_s=120.0))
    assert run["interruptions"] == 1 and run["resumed_from_iteration"] == 3 and run["checkpoint_discarded"] is None
    torch.testing.assert_close(resumed, straight)
    assert resumed_loss == pytest.approx(straight_loss, rel=1e-5)


def test_a_truncated_checkpoint_is_discarded_and_the_attack_starts_over(tmp_path):
    path = saved_after_three_iterations(tmp_path)
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    straight, _, _ = ig_attack()
    restarted, _, run = ig_attack(AttackCheckpoint(tmp_path, every_s=120.0))
    assert run["checkpoint_discarded"].startswith("attack.pt is unreadable (")
    assert run["interruptions"] == 0 and run["resumed_from_iteration"] is None
    torch.testing.assert_close(restarted, straight)  # from scratch, exactly as if no file had been there


def another_batch_size(path):
    saved_after_three_iterations(path.parent / "other", images=2)
    os.replace(path.parent / "other" / "attack.pt", path)


def edit(change):
    def apply(path):
        state = torch.load(path, weights_only=True)
        change(state)
        torch.save(state, path)
    return apply


def moments_of_another_shape(state):
    state["optimizer"]["state"][0]["exp_avg"] = torch.zeros(5)


@pytest.mark.parametrize("spoil, reason", [
    (another_batch_size, "x: expected a torch.float32 tensor of shape [1, 3, 16, 16], found torch.float32 [2, 3, 16, 16]"),
    (edit(lambda state: state.pop("schedule")), "KeyError: 'schedule'"),
    (edit(moments_of_another_shape), "optimizer: holds a tensor of shape [5]"),
    (edit(lambda state: state["x"].fill_(float("nan"))), "x: holds NaN or infinite values"),
    (edit(lambda state: state.update(step=10**6)), "step: expected an integer in 0..5"),
], ids=["another batch size", "a missing key", "moments of another shape", "NaN images", "a step past the end"])
def test_a_foreign_checkpoint_is_discarded_and_the_attack_starts_over(tmp_path, spoil, reason):
    path = saved_after_three_iterations(tmp_path)
    spoil(path)
    straight, _, _ = ig_attack()
    restarted, _, run = ig_attack(AttackCheckpoint(tmp_path, every_s=120.0))
    assert run["checkpoint_discarded"].startswith("attack.pt is not this attack's state (")
    assert reason in run["checkpoint_discarded"]
    assert run["interruptions"] == 0 and run["resumed_from_iteration"] is None
    torch.testing.assert_close(restarted, straight)


def test_a_discard_is_still_reported_after_a_later_resume(tmp_path):
    (tmp_path / "attack.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Killed):  # discards the file, then checkpoints its own state, then is killed
        ig_attack(AttackCheckpoint(tmp_path, every_s=0.0), killed_at=4)
    straight, _, _ = ig_attack()
    resumed, _, run = ig_attack(AttackCheckpoint(tmp_path, every_s=120.0))
    assert run["interruptions"] == 1 and run["resumed_from_iteration"] == 3
    assert run["checkpoint_discarded"] == ("attack.pt is unreadable (UnpicklingError: Unsupported operand 110); "
                                           "the attack restarted from iteration 0")
    torch.testing.assert_close(resumed, straight)


def test_running_out_of_memory_while_reading_keeps_the_checkpoint(tmp_path, monkeypatch):
    """A shortage of memory is no fault of the file: the error reaches the orchestrator, which retries
    the job, and the checkpoint is still there for it. (A real shortage cannot be made on demand.)"""
    path = saved_after_three_iterations(tmp_path)

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(torch, "load", exhausted)
    with pytest.raises(MemoryError):
        AttackCheckpoint(tmp_path, every_s=120.0).load()
    assert path.exists()


def test_dlg_discards_a_checkpoint_of_the_other_label_mode(tmp_path):
    """A checkpoint of DLG's joint mode (labels optimised) read by a run with known labels: L-BFGS's
    state is reset with the images, so the run is exactly a fresh one."""
    x, y = photographs(1)
    model = build_model("lenet", 8, 16, 0).eval()
    gradient = client_gradient(model, x, y)

    def attack(labels, steps, checkpoint=None):
        return dlg.invert(model, gradient, labels, (3, 16, 16), 1, 8, dlg.DLGConfig(steps),
                          torch.Generator().manual_seed(0), checkpoint)

    attack(None, 2, AttackCheckpoint(tmp_path, every_s=0.0))
    straight, _, straight_loss, _ = attack(y, 3)
    restarted, _, restarted_loss, run = attack(y, 3, AttackCheckpoint(tmp_path, every_s=120.0))
    assert "label_logits: expected none, found a Tensor" in run["checkpoint_discarded"]
    assert run["interruptions"] == 0 and run["resumed_from_iteration"] is None
    torch.testing.assert_close(restarted, straight)
    assert restarted_loss == pytest.approx(straight_loss, rel=1e-6)


# --- cached trained models ------------------------------------------------------------------------

def test_a_planted_trained_model_runs_nothing_and_training_replaces_it(tmp_path):
    marker = tmp_path / "PWNED"
    params = resolved("train_model", model="mlp", train_epochs=1, train_pool=64)
    recipe = train_recipe(params)
    ctx = context(tmp_path)
    path = checkpoint_path(ctx.cache_dir, recipe)
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": Planted(os.system, touch(marker)), "metrics": {}}, path)
    model = build_model("mlp", DATASETS["embedded"].num_classes, params["resolution"], 0)
    with pytest.raises(RuntimeError) as refusal:
        training.load_trained(model, ctx.cache_dir, recipe)
    assert str(refusal.value).startswith(f"{path} is not a trained checkpoint of this recipe (UnpicklingError: "
                                         "Trying to load unsupported GLOBAL posix.system")
    # The training job does not fail on it forever: it trains again and replaces the file.
    row = KERNELS["train_model"].load()(params, ctx).rows[0]
    assert row["reused_cache"] is False and np.isfinite(row["train_loss"])
    training.load_trained(model, ctx.cache_dir, recipe)
    assert not marker.exists()
