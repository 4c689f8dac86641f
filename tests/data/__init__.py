"""Tests of audioflow.data."""
