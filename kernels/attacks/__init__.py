"""The attack algorithms (ig, dlg, fishing, imprint for Robbing the Fed, fedavg for the server's
simulation of local training, labels for label restoration), their checkpoints, and their settings as
declared parameters (settings, torch-free)."""
