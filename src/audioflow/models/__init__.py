"""audioflow.models."""
