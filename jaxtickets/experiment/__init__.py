"""Experiments: the IMP driver over replicates x levels x branches, and its outputs."""
