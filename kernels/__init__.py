"""The science: data, models, federated clients, attacks and metrics.

Importable without the orchestrator. `kernels.registry.KERNELS` is the one map from a kernel name to
its parameters and its run function; importing it does not import torch.
"""
