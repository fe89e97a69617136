"""Analyses of finished runs: aggregation, tables, plots, natural sparsity, ticket anatomy."""
