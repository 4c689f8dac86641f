"""CLI sub-commands of audioflow.config."""
