"""jaxtickets: find, transfer and study lottery tickets in JAX/Flax."""

__version__ = "0.1.0"
