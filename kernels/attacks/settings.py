"""The optimisation attacks' settings, declared once as kernel parameters (torch-free): the kernels'
declarations (kernels/jobs) compose these groups, and the algorithms read them as IGConfig / DLGConfig,
dataclasses derived from the same declarations."""
from __future__ import annotations

from kernels.data.catalog import DATASETS, DatasetInfo
from kernels.params import Param, settings_class

IG_OPTIMISATION = {
    "iterations": Param(int, 24000, "attack iterations", min=1),
    "lr": Param(float, 0.1, "Adam learning rate, x0.1 at 3/8, 5/8 and 7/8 of the iterations", min=0.0),
    "tv": Param(float, None, "total-variation weight (default: 1e-2 for 32x32 sets, 1e-6 for ImageNet)",
                nullable=True, min=0.0),
    "cost_fn": Param(str, "sim", "gradient distance: cosine ('sim') or squared L2", choices=("sim", "l2")),
    "signed": Param(bool, True, "step on the sign of the image gradient"),
    "boxed": Param(bool, True, "clamp pixels to the valid range after each step"),
    "layers": Param(str, None, "parameter tensors whose gradients are matched: all, or top10 (the 10 with the "
                    "largest target-gradient norm; default: top10 for ImageNet, as the authors' script, else all)",
                    nullable=True, choices=("all", "top10")),
    "median_filter": Param(bool, None, "3x3 median filter on the final reconstruction (default: on for ImageNet, "
                           "as the authors' script, else off)", nullable=True),
}


def ig_defaults(info: DatasetInfo) -> dict:
    """The IG settings whose default depends on the data set (declared null, resolved per job)."""
    return {"tv": info.ig_tv, "layers": "top10" if info.ig_imagenet_settings else "all",
            "median_filter": info.ig_imagenet_settings}


# Standalone (tests, notebooks), IGConfig defaults to the settings of a 32x32 data set.
IGConfig = settings_class("IGConfig", IG_OPTIMISATION, resolved=ig_defaults(DATASETS["embedded"]))

DLG_OPTIMISATION = {
    "iterations": Param(int, 300, "L-BFGS steps (each up to 20 evaluations of the objective)", min=1),
    "lr": Param(float, 1.0, "L-BFGS learning rate", min=0.0),
}
DLGConfig = settings_class("DLGConfig", DLG_OPTIMISATION)

# What the server knows of a FedAvg client's local training (kernels/attacks/fedavg.py simulates each).
SIMULATIONS = ("strong", "weak", "none")
