"""The one registry: kernel name -> its declaration (kernels.kernel.Kernel), collected from the modules
of kernels/jobs/, one per kernel, named like it, each holding `KERNEL`. Adding a module adds a kernel.

Importing this module must stay cheap (no torch): the orchestrator reads it to validate and expand
grids of 100,000 jobs. Torch loads when a job runs.
"""
from __future__ import annotations

import importlib
import pkgutil

from kernels import jobs
from kernels.kernel import Kernel

SHARED_MODULES = {"declarations"}  # kernels/jobs/ modules that hold pieces, not a kernel


def _collect() -> dict[str, Kernel]:
    found: dict[str, Kernel] = {}
    for module_info in sorted(pkgutil.iter_modules(jobs.__path__), key=lambda m: m.name):
        if module_info.name in SHARED_MODULES:
            continue
        kernel = importlib.import_module(f"{jobs.__name__}.{module_info.name}").KERNEL
        if kernel.name != module_info.name:
            raise ValueError(f"kernels/jobs/{module_info.name}.py declares kernel {kernel.name!r}: a kernel's "
                             "module is named like the kernel")
        found[kernel.name] = kernel
    return found


KERNELS: dict[str, Kernel] = _collect()
