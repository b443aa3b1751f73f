"""The one registry: kernel name -> its declaration (kernels.kernel.Kernel), collected from the modules
of kernels/jobs/, one per kernel and named like it.

Importing this module must stay cheap (no torch): the orchestrator reads it to validate and expand
grids of 100,000 jobs. Torch loads when a job runs.
"""
from __future__ import annotations

from kernels.jobs import (activation_inputs, dlg, fishing, gradient_embedding, gradient_similarity, ig, ig_fedavg,
                          rtf, train_model)
from kernels.kernel import Kernel

JOB_MODULES = (ig, dlg, ig_fedavg, rtf, fishing, gradient_similarity, gradient_embedding, activation_inputs,
               train_model)

KERNELS: dict[str, Kernel] = {module.KERNEL.name: module.KERNEL for module in JOB_MODULES}