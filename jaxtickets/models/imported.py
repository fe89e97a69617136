"""A model named by import path (`model.name = 'package.module:attr'`): the user's own
Flax linen or NNX network, built like a registered one (docs/extending.md).

The calling convention:

* the object is called with `num_classes=` (required) and, where its signature takes
  it, `dropout=` (model.dropout); one that takes no dropout refuses a model.dropout
  other than 0;
* an NNX model is an `nnx.Module` subclass or a factory with an `rngs` parameter; it
  gets `rngs=` as well and is wrapped in `flax.nnx.bridge.ToLinen`, which builds it
  anew inside every linen `init` (each replicate's key initializes it fresh) and
  `apply`; its `nnx.Param`s become `params` and its `nnx.BatchStat`s `batch_stats`;
* anything else must return a linen module;
* the module's `__call__` takes `(images, train)`: `train` is False at initialization
  and evaluation (NNX: `use_running_average=not train`, `deterministic=not train`).

What the rest of the package assumes of a model holds by name and shape: kernels named
`kernel` (2-D dense, 4-D conv) are prunable, a layer named `output` is the output layer
(pruning.rates.output, and the head that transfers between sources replace), and the
variables hold `params` and `batch_stats` only. `check` refuses a model that breaks the
last rule or whose output is not [batch, num_classes], before any compute.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx
from flax.core import FrozenDict
from flax.nnx import bridge

from jaxtickets.errors import ConfigError
from jaxtickets.import_paths import failure, resolve

KEY = "model.name"
COLLECTIONS = ("params", "batch_stats")  # what runs keep of a model's variables


def _plain_value(variable: nnx.Variable) -> Any:
    """NNX variables as plain arrays in the linen collections (masks, checkpoints and
    optimizers see the same trees as for a linen model)."""
    return variable.get_value()


def _parameters(obj: Any) -> dict[str, inspect.Parameter] | None:
    """The keyword parameters `obj` is called with (a class: its __init__'s, without
    self); None where Python cannot tell."""
    try:
        if isinstance(obj, type):
            params = list(inspect.signature(obj.__init__).parameters.values())[1:]
        else:
            params = list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError):
        return None
    return {p.name: p for p in params}


def _accepts(params: dict[str, inspect.Parameter] | None, name: str) -> bool:
    if params is None:
        return name == "num_classes"
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD
                                 for p in params.values())


def is_nnx(obj: Any) -> bool:
    """An NNX model: an nnx.Module subclass, or a factory that takes `rngs`."""
    if isinstance(obj, type):
        return issubclass(obj, nnx.Module)
    params = _parameters(obj)
    return params is not None and "rngs" in params


def _resolved(path: str) -> Any:
    obj = resolve(path, KEY)
    if isinstance(obj, (nn.Module, nnx.Module)):
        raise failure(KEY, path, f"it is a {type(obj).__name__} instance; name its class, "
                                 "or a function that builds one from num_classes=")
    if not callable(obj):
        raise failure(KEY, path, f"it is a {type(obj).__name__}, not a callable that "
                                 "returns a Flax module")
    return obj


def _kwargs(obj: Any, path: str, num_classes: int, dropout: float) -> dict:
    params = _parameters(obj)
    if not _accepts(params, "num_classes"):
        raise failure(KEY, path, "it takes no num_classes= argument (a model is called "
                                 "with num_classes= and, if it takes them, dropout= and "
                                 "for NNX rngs=)")
    kwargs = {"num_classes": num_classes}
    if _accepts(params, "dropout"):
        kwargs["dropout"] = dropout
    elif dropout:
        raise ConfigError(f"model.dropout: set to {dropout}, but {path!r} takes no "
                          "dropout= argument; leave it at 0.0 or add the argument")
    return kwargs


def build(path: str, num_classes: int, dropout: float = 0.0) -> nn.Module:
    """The linen module of import path `path` for `num_classes` outputs; an NNX model
    comes wrapped by flax.nnx.bridge.ToLinen."""
    obj = _resolved(path)
    kwargs = _kwargs(obj, path, num_classes, dropout)
    if is_nnx(obj):
        _check_nnx_builds(obj, path, kwargs)
        return bridge.ToLinen(obj, kwargs=FrozenDict(kwargs), metadata_fn=_plain_value)
    try:
        model = obj(**kwargs)
    except Exception as err:
        raise failure(KEY, path, f"calling it with {_show(kwargs)} raised "
                                 f"{type(err).__name__}: {err}") from err
    if isinstance(model, nnx.Module):
        raise failure(KEY, path, "it returned an NNX module built outside the model's "
                                 "initialization; name the nnx.Module class, or a factory "
                                 "that takes rngs=, so each run builds it from its own key")
    if not isinstance(model, nn.Module):
        raise failure(KEY, path, f"calling it returned a {type(model).__name__}, not a "
                                 "Flax linen module (or an NNX one: a class or a factory "
                                 "taking rngs=)")
    return model


def _show(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def _check_nnx_builds(obj: Any, path: str, kwargs: dict) -> None:
    """Builds the NNX model abstractly (shapes only, nothing computed) to see that the
    call works and returns an nnx.Module."""
    try:
        module = nnx.eval_shape(lambda: obj(**kwargs, rngs=nnx.Rngs(0)))
    except Exception as err:
        raise failure(KEY, path, f"calling it with {_show(kwargs)}, rngs=... raised "
                                 f"{type(err).__name__}: {err}") from err
    if not isinstance(module, nnx.Module):
        raise failure(KEY, path, f"calling it returned a {type(module).__name__}, not an "
                                 "NNX module")


@functools.lru_cache(maxsize=None)
def check(path: str, image_shape: tuple[int, ...], dropout: float = 0.0) -> None:
    """Traces the model once on one [1, H, W, C] image (shapes only, no compute) and
    refuses, naming model.name, one that fails there, returns other than
    [1, num_classes] or keeps variables other than params and batch_stats."""
    num_classes = 10
    model = build(path, num_classes, dropout)
    key = jax.random.PRNGKey(0)
    sample = jax.ShapeDtypeStruct((1,) + tuple(image_shape), jnp.float32)
    try:
        out, variables = jax.eval_shape(lambda x: model.init_with_output(
            {"params": key, "dropout": key}, x, train=False), sample)
    except ConfigError:
        raise
    except Exception as err:
        raise _unusable(path, f"initializing it on one image of shape "
                                 f"{tuple(image_shape)} with train=False raised "
                                 f"{type(err).__name__}: {err}") from err
    if getattr(out, "shape", None) != (1, num_classes):
        shape = getattr(out, "shape", type(out).__name__)
        raise _unusable(path, f"built with num_classes={num_classes}, it returns "
                                 f"{shape} for one image, not (1, {num_classes}) logits")
    others = sorted(set(variables) - set(COLLECTIONS))
    if others:
        raise _unusable(path, f"its variables hold the collections {others}; runs keep "
                                 f"{list(COLLECTIONS)} only (NNX: nnx.Param and "
                                 "nnx.BatchStat)")
    if not jax.tree_util.tree_leaves(variables.get("params", {})):
        raise _unusable(path, "it has no parameters")


def _unusable(path: str, reason: str) -> ConfigError:
    """A model that imports and builds but breaks the conventions the runs rely on."""
    return ConfigError(f"{KEY}: the model {path!r} cannot be used: {reason}")
