"""Data sets as arrays: images float32 [N, 3, H, W] in [0, 1], labels int64 [N]."""
