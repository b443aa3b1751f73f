"""The layering rules, checked in fresh interpreters."""
import subprocess
import sys

from kernels import registry


def modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())


def test_analysis_never_imports_torch():
    loaded = modules_after("import analysis, analysis.report")
    assert "torch" not in loaded and "kernels" not in loaded


def test_kernel_registry_is_cheap_and_kernels_need_no_orchestrator():
    assert "torch" not in modules_after("import kernels.registry")
    # Every kernel's module imports torch only when it runs; its algorithms never need the orchestrator.
    modules = ", ".join(f"kernels.jobs.{name}" for name in registry.KERNELS)
    assert "torch" not in modules_after(f"import {modules}")
    loaded = modules_after(f"import {modules}, kernels.models.training, kernels.metrics.scoring, kernels.attacks.ig, "
                           "kernels.attacks.dlg, kernels.attacks.fedavg, kernels.attacks.imprint, kernels.attacks.fishing, "
                           "kernels.defences.client_validation, kernels.analyses.gradient_embedding, "
                           "kernels.analyses.gradient_similarity, kernels.analyses.activation_inputs")
    assert "torch" in loaded
    assert not any(m == "orchestrator" or m.startswith("orchestrator.") for m in loaded)


def test_every_kernel_is_one_module_named_like_it():
    for name, kernel in registry.KERNELS.items():
        assert kernel.run.__module__ == f"kernels.jobs.{name}"


def test_orchestrator_knows_no_kernel_module():
    loaded = modules_after("import orchestrator.cli, orchestrator.runner, orchestrator.executors.local")
    assert "torch" not in loaded
    # What it reaches of kernels (through the entry point, when it reads a grid) is the registry's own.
    declarations = {m for m in modules_after("import kernels.registry") if m.startswith("kernels")}
    assert not any(m.startswith("kernels.") and m not in declarations for m in loaded)
