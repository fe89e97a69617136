"""Supermasks learned on a frozen, untrained network (P4 Sec. 5.1)."""
