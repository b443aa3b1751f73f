"""One module per kernel, named like it: its declaration (`KERNEL`) and its run function. `declarations`
holds the pieces several kernels share. Torch-free at import: torch loads inside run()."""
