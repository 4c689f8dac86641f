"""CLI sub-commands of audioflow.launch."""
