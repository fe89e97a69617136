"""Masks, prunable-set policies and pruning rules."""
