"""The layering rules, checked in fresh interpreters."""
import subprocess
import sys


def modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())


def test_analysis_never_imports_torch():
    loaded = modules_after("import analysis, analysis.report")
    assert "torch" not in loaded and "kernels" not in loaded


def test_kernel_registry_is_cheap_and_kernels_need_no_orchestrator():
    assert "torch" not in modules_after("import kernels.registry")
    loaded = modules_after("import kernels.ig_kernel, kernels.training")
    assert not any(m == "orchestrator" or m.startswith("orchestrator.") for m in loaded)


def test_orchestrator_knows_no_kernel_module():
    loaded = modules_after("import orchestrator.cli, orchestrator.runner, orchestrator.executors.local")
    assert "torch" not in loaded
    assert not any(m.startswith("kernels.") and m not in ("kernels.registry", "kernels.params", "kernels.data",
                                                          "kernels.data.catalog") for m in loaded)
