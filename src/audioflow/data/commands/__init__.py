"""CLI sub-commands of audioflow.data."""
