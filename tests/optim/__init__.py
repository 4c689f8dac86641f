"""Tests of audioflow.optim."""
