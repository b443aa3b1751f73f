"""Reference data typed in from the paper (Guo et al., Table I, "Comparison of different types of GIA
methods in terms of influence factors"): whether each factor influences each attack family. Directions
are added only where the paper's text states them: Fig. 3 caption, Sec. III-B (FedAvg) and Fig. 5
caption for OP-GIA; Fig. 11 caption for Fishing (manipulating model parameters). These are the marks the
data-derived Table I is compared with, never a substitute for it."""
from __future__ import annotations

FACTORS = ("Batch Size", "Image Resolution", "# Same Label", "Model Training State", "Network Architecture",
           "Practical FedAvg")

# family -> factor -> (influences?, direction of quality as the factor's level rises: "↑", "↓" or None)
PAPER_TABLE_I: dict[str, dict[str, tuple[bool, str | None]]] = {
    "OP-GIA": {"Batch Size": (True, "↓"), "Image Resolution": (True, "↓"), "# Same Label": (True, "↓"),
               "Model Training State": (True, "↓"), "Network Architecture": (True, "↓"),
               "Practical FedAvg": (True, "↓")},
    "GEN-GIA / Opti. Lat. Vec.": {f: (False, None) for f in FACTORS},
    "GEN-GIA / Opti. Gen. Para.": {f: (True, None) for f in FACTORS},
    "GEN-GIA / Train. Inv. Mod.": {**{f: (True, None) for f in FACTORS}, "Model Training State": (False, None)},
    "ANA-GIA / Manip. Mod. Arch.": {f: (False, None) for f in FACTORS},
    "ANA-GIA / Manip. Mod. Para.": {"Batch Size": (False, None), "Image Resolution": (True, "↓"),
                                    "# Same Label": (False, None), "Model Training State": (True, "↑"),
                                    "Network Architecture": (True, "↓"), "Practical FedAvg": (False, None)},
}

# Kernel name -> family, for rows without an `attack_family` column. The attacks the paper runs:
# IG (and IG under FedAvg), DLG, GGL, CI-Net, LTI, Robbing the Fed, Fishing.
KERNEL_FAMILY = {"ig": "OP-GIA", "ig_fedavg": "OP-GIA", "dlg": "OP-GIA", "ggl": "GEN-GIA / Opti. Lat. Vec.", "cinet": "GEN-GIA / Opti. Gen. Para.",
                 "lti": "GEN-GIA / Train. Inv. Mod.", "rtf": "ANA-GIA / Manip. Mod. Arch.",
                 "robbing_the_fed": "ANA-GIA / Manip. Mod. Arch.", "fishing": "ANA-GIA / Manip. Mod. Para."}


def paper_mark(family: str, factor: str) -> str:
    """'✓↓', '✓', '✗', or '–' when the paper has no row for this family."""
    entry = PAPER_TABLE_I.get(family, {}).get(factor)
    if entry is None:
        return "–"
    matters, direction = entry
    return ("✓" + (direction or "")) if matters else "✗"
