"""The LightningModule's own training step, as a ``step_fn`` for ``find_batch_size``.

:class:`LightningStep` runs what Lightning's automatic-optimization loop runs
for one batch: ``training_step`` under the precision plugin's
``train_step_context`` (autocast for ``"16-mixed"``/``"bf16-mixed"``), the
``optimizer_zero_grad`` hook, ``strategy.backward`` (the precision plugin's
loss scaling, the module's ``backward``), then the module's ``optimizer_step``
hook with the ``LightningOptimizer``, whose step goes through
``strategy.optimizer_step`` -> ``precision_plugin.optimizer_step`` (GradScaler
unscale/step/update, gradient clipping). Under manual optimization the
``training_step`` is the whole step. The optimizers are the ones
``configure_optimizers`` built.

:meth:`LightningStep.probing` is what the search runs inside: other callbacks
do not see the probe steps (``trainer.callbacks`` is emptied), ``self.log``
in ``training_step`` works and what it logged is dropped afterwards, a
``DistributedDataParallel`` wrapper is in ``no_sync`` (the step is called on
the module, never through the wrapper, so no probe runs a collective: ranks
agree through ``find_batch_size``), and the GradScaler's state is put back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any


def _call(trainer: Any) -> Any:
    """Lightning's hook-calling module, from the package the trainer comes from."""
    if type(trainer).__module__.startswith("pytorch_lightning"):
        from pytorch_lightning.trainer import call
    else:
        from lightning.pytorch.trainer import call
    return call


def _loss_of(output: Any) -> Any:
    """The loss in what ``training_step`` returned (a tensor, a dict with ``"loss"``, or None)."""
    if isinstance(output, Mapping):
        return output.get("loss")
    return output


class LightningStep:
    """``step_fn(module, batch, optimizer)`` running ``pl_module``'s real step in ``trainer``."""

    def __init__(self, trainer: Any, pl_module: Any) -> None:
        self.trainer = trainer
        self.pl_module = pl_module
        self.batch_idx = 0

    @property
    def optimizers(self) -> list[Any]:
        """The torch optimizers ``configure_optimizers`` built (what the snapshot restores)."""
        return list(self.trainer.optimizers)

    def _training_step(self, batch: Any) -> Any:
        trainer = self.trainer
        call = _call(trainer)
        args, _ = trainer.precision_plugin.convert_input(((batch, self.batch_idx), {}))
        with trainer.precision_plugin.train_step_context():
            return call._call_lightning_module_hook(trainer, "training_step", *args)

    def __call__(self, module: Any, batch: Any, optimizer: Any) -> Any:
        del module, optimizer  # the module is pl_module; the optimizers are Lightning's
        trainer, pl_module = self.trainer, self.pl_module
        call = _call(trainer)
        results = trainer._results
        if results is not None:
            results.batch, results.batch_size = batch, None
        if not pl_module.automatic_optimization:
            return _loss_of(self._training_step(batch))
        optimizers = trainer.strategy._lightning_optimizers
        if not optimizers:
            out = _loss_of(self._training_step(batch))
            if out is not None:
                trainer.strategy.backward(out, None)
            return out
        optimizer = optimizers[0]
        losses: list[Any] = []

        def closure() -> Any:
            loss = _loss_of(self._training_step(batch))
            if loss is None:
                return None
            call._call_lightning_module_hook(
                trainer, "optimizer_zero_grad", trainer.current_epoch, self.batch_idx, optimizer
            )
            trainer.strategy.backward(loss, optimizer)
            losses.append(loss.detach())
            return loss

        call._call_lightning_module_hook(
            trainer, "optimizer_step", trainer.current_epoch, self.batch_idx, optimizer, closure
        )
        return losses[-1] if losses else None

    @contextlib.contextmanager
    def probing(self) -> Iterator[None]:
        """The search's surroundings (see the module docstring); everything put back on exit."""
        trainer, pl_module = self.trainer, self.pl_module
        callbacks = list(trainer.callbacks)
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        scaler_state = scaler.state_dict() if scaler is not None else None
        results = trainer._results
        saved_keys = set(results) if results is not None else set()
        saved_batch = (results.batch, results.batch_size) if results is not None else None
        connector = trainer._logger_connector
        saved_fx = (getattr(connector, "_current_fx", None), pl_module._current_fx_name)
        wrapper = trainer.strategy.model
        no_sync = getattr(wrapper, "no_sync", None) if wrapper is not pl_module else None
        trainer.callbacks = []
        try:
            with no_sync() if callable(no_sync) else contextlib.nullcontext():
                yield
        finally:
            trainer.callbacks = callbacks
            if scaler is not None and scaler_state is not None:
                scaler.load_state_dict(scaler_state)
            if results is not None:
                for key in [k for k in results if k not in saved_keys]:
                    del results[key]
                results.batch, results.batch_size = saved_batch
            connector._current_fx, pl_module._current_fx_name = saved_fx
