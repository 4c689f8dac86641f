"""Workflow commands of the `audioflow` command table."""
