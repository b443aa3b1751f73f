"""The science: data, models, federated clients, attacks, defences, analyses and metrics.

Importable without the orchestrator. `kernels.registry.KERNELS` is the one map from a kernel name to
its declaration (kernels/kernel.py), collected from kernels/jobs/, one module per kernel; importing it
does not import torch.
"""
