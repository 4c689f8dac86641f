"""audioflow.data."""
