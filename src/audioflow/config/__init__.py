"""audioflow.config."""
