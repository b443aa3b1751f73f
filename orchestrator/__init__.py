"""Sweep orchestration: grid files -> job specs -> executors -> sweep directory.

Knows nothing of gradient inversion: kernels are found by name through the `orch.kernels` entry points.
"""
