"""Plain-Python planning for the Snakemake workflow: which XPs, which stages, which epochs.

The Snakefile stays thin: it reads ``config/workflow.yaml``, asks this package for the
XPs to run (override sets and grid files, like ``dora grid`` without a scheduler), their
signatures, and the epochs at which each stage runs, then declares rules over them.
Nothing here imports torch.
"""
