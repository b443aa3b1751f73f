"""What a kernel returns to whoever runs it."""
from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np


@dataclass
class KernelResult:
    rows: list[dict]  # the metrics table: one row per attacked image (or one per job without images)
    images: list[dict] = field(default_factory=list)  # image_index, original_png, reconstruction_png
    # Arrow type names for columns that may hold only nulls in one job (e.g. LPIPS without weights), so
    # every shard of a sweep has the same schema.
    column_types: dict[str, str] = field(default_factory=dict)


def png_bytes(image: np.ndarray) -> bytes:
    """[C, H, W] float in [0, 1] -> PNG."""
    from PIL import Image

    array = (np.clip(image, 0, 1).transpose(1, 2, 0) * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
