"""Evaluation metrics: SI-SNR, mel distance and bitrate of codec reconstructions (``codec``)."""
