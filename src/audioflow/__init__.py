"""audioflow: reproducible training pipelines for audio and speech models."""

__version__ = "0.1.0"
