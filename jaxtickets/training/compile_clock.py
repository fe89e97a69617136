"""Seconds XLA spends compiling, per jitted function, while a run is open: issue 6 asks
that an experiment say not only how often its steps compiled but how long it took.
JAX reports every backend compilation as a monitoring event with the function's name."""

from __future__ import annotations

import collections

from jax import monitoring

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class CompileClock:
    """Context manager summing XLA compile seconds by function name (train_chunk,
    eval_batch, ...; small helper computations land under their own names)."""

    def __init__(self):
        self.seconds: dict[str, float] = collections.defaultdict(float)

    def _on_event(self, event: str, duration: float, **metadata) -> None:
        if event == BACKEND_COMPILE_EVENT:
            name = str(metadata.get("fun_name", "?"))  # 'jit(train_chunk)'
            if name.startswith("jit(") and name.endswith(")"):
                name = name[4:-1]
            self.seconds[name] += float(duration)

    def __enter__(self) -> "CompileClock":
        monitoring.register_event_duration_secs_listener(self._on_event)
        return self

    def __exit__(self, *exc) -> None:
        monitoring.unregister_event_duration_listener(self._on_event)

    def summary(self, names=("train_chunk", "eval_batch")) -> dict[str, float]:
        """Seconds for the named step functions, everything else as 'other', and the total."""
        out = {n: round(self.seconds.get(n, 0.0), 3) for n in names}
        out["other"] = round(float(sum(v for k, v in self.seconds.items()
                                       if k not in names)), 3)
        out["total"] = round(float(sum(self.seconds.values())), 3)
        return out
