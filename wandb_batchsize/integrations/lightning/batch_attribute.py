"""The batch-size attribute Lightning's own finder sets, found, set and put back.

Lightning's ``BatchSizeFinder`` looks for ``batch_arg_name`` (default
``"batch_size"``) on the datamodule, the module, and the module's ``hparams``;
so do the probe and the finder here, so a user's ``train_dataloader`` that
reads ``self.batch_size`` trains at the size chosen.
"""

from __future__ import annotations

from typing import Any


class BatchSizeAttribute:
    """``name`` on the datamodule, the module and its ``hparams``, wherever it exists."""

    def __init__(self, model: Any, datamodule: Any = None, name: str = "batch_size") -> None:
        self.model = model
        self.datamodule = datamodule
        self.name = name
        self._saved: list[tuple[Any, str, Any]] = []

    def holders(self) -> list[tuple[Any, str]]:
        """(object, how) pairs holding the attribute: ``"attr"`` or ``"item"`` (hparams)."""
        found: list[tuple[Any, str]] = []
        if self.datamodule is not None and hasattr(self.datamodule, self.name):
            found.append((self.datamodule, "attr"))
        if hasattr(self.model, self.name):
            found.append((self.model, "attr"))
        hparams = getattr(self.model, "hparams", None)
        if hparams is not None and self.name in hparams:
            found.append((hparams, "item"))
        return found

    @property
    def exists(self) -> bool:
        return bool(self.holders())

    def set(self, batch_size: int) -> None:
        for holder, how in self.holders():
            if how == "attr":
                setattr(holder, self.name, batch_size)
            else:
                holder[self.name] = batch_size

    def save(self) -> None:
        self._saved = [
            (holder, how, getattr(holder, self.name) if how == "attr" else holder[self.name])
            for holder, how in self.holders()
        ]

    def restore(self) -> None:
        for holder, how, value in self._saved:
            if how == "attr":
                setattr(holder, self.name, value)
            else:
                holder[self.name] = value
