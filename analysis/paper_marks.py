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

# The paper's names of the families and mechanisms the kernels declare (kernels/kernel.py FAMILIES and
# MECHANISMS; every row carries them as `attack_family` and `attack_mechanism`): display labels only.
FAMILY_LABELS = {"OP": "OP-GIA", "GEN": "GEN-GIA", "ANA": "ANA-GIA", "PEFT": "PEFT-GIA"}
MECHANISM_LABELS = {"optimised_latent_vector": "Opti. Lat. Vec.", "optimised_generator": "Opti. Gen. Para.",
                    "trained_inversion_model": "Train. Inv. Mod.", "manipulated_architecture": "Manip. Mod. Arch.",
                    "manipulated_parameters": "Manip. Mod. Para."}


def family_label(family: str | None, mechanism: str | None = None) -> str:
    """Table I's row name: 'OP-GIA', 'ANA-GIA / Manip. Mod. Arch.'; a code without a label is shown as is."""
    label = FAMILY_LABELS.get(family, family) if family is not None else "family unknown"
    return f"{label} / {MECHANISM_LABELS.get(mechanism, mechanism)}" if mechanism else label


def paper_mark(family: str, factor: str) -> str:
    """'✓↓', '✓', '✗', or '–' when the paper has no row for this family."""
    entry = PAPER_TABLE_I.get(family, {}).get(factor)
    if entry is None:
        return "–"
    matters, direction = entry
    return ("✓" + (direction or "")) if matters else "✗"
