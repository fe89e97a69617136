"""The accelerator check: `python -m bench.accelerator --out DIR` (see __main__.py)."""
