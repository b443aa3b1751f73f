"""Attacks: each reconstructs a client's images from what the server receives."""
