"""The layer names the pruner reads from parameter paths; every model follows them.

The final classifier is called `output`; 1x1 projection shortcuts contain `shortcut`
in their name. Kept free of Flax so that the mask and pruning code (and the public
`jaxtickets.lottery` module) import without it.
"""

OUTPUT_LAYER = "output"
SHORTCUT_MARK = "shortcut"
