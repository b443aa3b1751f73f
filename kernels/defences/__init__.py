"""What an honest client can do against a malicious server: check the model it receives (client_validation)."""
