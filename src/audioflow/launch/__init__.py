"""audioflow.launch."""
