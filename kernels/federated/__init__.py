"""The federated client: its batch and model (client), what it sends under FedSGD (fedsgd) and under
FedAvg (local_training)."""
