"""The loss of a PyTorch model on a batch: the batch conventions of every backend call.

- a tuple/list batch is ``(*inputs, target)`` -> ``loss_fn(model(*inputs), target)``
  (a single input that is a dict or a tuple is spread into the call);
- a dict batch calls ``model(**batch)`` and ``loss_fn(output, batch)``;
- a bare tensor ``x`` calls ``loss_fn(model(x), x)``;
- a ``loss_fn`` of one parameter gets the output only (``loss_fn(output)``);
- with no ``loss_fn`` the model's output is the loss: a scalar tensor, or
  ``.loss`` / ``["loss"]`` as in transformers. With ``stand_in=True`` (the
  memory search, which needs a loss of the right memory profile, not the right
  value) :func:`stand_in_loss` makes one when the model returns none.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch

from wandb_batchsize.backends.torch_data import map_tensors


def stand_in_loss(output: Any, target: Any) -> torch.Tensor:
    """A loss with the memory profile of a real one when the user gives none.

    ``output.loss`` (Hugging Face) or ``output["loss"]`` when present; with an
    integer target, cross-entropy; with a float target of the output's shape,
    mean squared error; otherwise the mean of the output's floating tensors.
    """
    loss = _output_loss(output)
    if loss is not None:
        return loss
    first = output
    if isinstance(output, (tuple, list)) and output:
        first = output[0]
    if isinstance(output, Mapping):
        first = next((v for v in output.values() if torch.is_tensor(v)), None)
    first = getattr(first, "logits", first)
    if torch.is_tensor(first) and torch.is_tensor(target):
        if not target.is_floating_point() and first.dim() >= 2:
            logits = first.reshape(-1, first.shape[-1]) if first.dim() > 2 else first
            return torch.nn.functional.cross_entropy(logits.float(), target.reshape(-1).long())
        if target.shape == first.shape:
            return torch.nn.functional.mse_loss(first.float(), target.float())
    tensors: list[torch.Tensor] = []
    map_tensors(
        output, lambda t: tensors.append(t) if t.is_floating_point() and t.requires_grad else None
    )
    if not tensors:
        raise ValueError(
            "cannot make a loss from the model's output: pass loss_fn=(output, target) -> loss"
        )
    return sum(t.float().mean() for t in tensors)


def _output_loss(output: Any) -> torch.Tensor | None:
    loss = getattr(output, "loss", None)
    if loss is None and isinstance(output, Mapping):
        loss = output.get("loss")
    return loss if torch.is_tensor(loss) else None


def one_argument(loss_fn: Callable[..., Any] | None) -> bool:
    """True when ``loss_fn`` takes exactly one positional argument (the output)."""
    if loss_fn is None:
        return False
    try:
        params = inspect.signature(loss_fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [
        p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    variadic = any(p.kind == p.VAR_POSITIONAL for p in params)
    return len(positional) == 1 and not variadic


def call_model(model: torch.nn.Module, batch: Any) -> tuple[Any, Any]:
    """``(output, target)`` for a batch, by the rules of the module docstring."""
    if isinstance(batch, Mapping):
        return model(**batch), batch
    if isinstance(batch, (tuple, list)):
        if len(batch) == 1:
            return _call(model, batch[0]), batch[0]
        *inputs, target = batch
        if len(inputs) == 1:
            return _call(model, inputs[0]), target
        return model(*inputs), target
    return model(batch), batch


def _call(model: torch.nn.Module, inputs: Any) -> Any:
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def forward_loss(
    model: torch.nn.Module,
    batch: Any,
    loss_fn: Callable[..., Any] | None,
    *,
    stand_in: bool = False,
    single: bool | None = None,
) -> torch.Tensor:
    """The loss of ``model`` on ``batch`` (see the module docstring for the conventions)."""
    output, target = call_model(model, batch)
    if loss_fn is not None:
        if single is None:
            single = one_argument(loss_fn)
        return loss_fn(output) if single else loss_fn(output, target)
    if stand_in:
        return stand_in_loss(output, target)
    if torch.is_tensor(output) and output.numel() == 1:
        return output.reshape(())
    loss = _output_loss(output)
    if loss is None:
        raise TypeError(
            "loss_fn is None, so the model must return the loss (a tensor, or an "
            f"object with .loss); it returned {type(output).__name__}"
        )
    return loss
