"""Masked training: optimizers, schedules, the train state and the jitted steps."""
