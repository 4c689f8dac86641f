"""audioflow.losses."""
