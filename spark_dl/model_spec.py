"""ModelSpec: a network described as data (a name plus JSON keyword arguments), never pickled.

A spec names either a built-in network (``"mlp"``) or a user's own ``torch.nn.Module``
subclass as ``"package.module:ClassName"``. Resolving a spec imports at most that one
module and refuses anything that is not an ``nn.Module`` subclass.

Loading a saved model is stricter (:meth:`ModelSpec.check_loadable`): a spec read from
metadata resolves only to a built-in network or to a module the caller allowed
(``spark.dl.load.allowedModules`` or ``load(path, allowedModules=...)``), checked before
anything is imported, since importing a module runs its top-level code.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from spark_dl.errors import UnsafeModelError
from spark_dl.models import REGISTRY

if TYPE_CHECKING:
    from torch import nn

_PATH_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
#: Keyword arguments the estimator supplies from the data when the constructor accepts them.
INJECTED_KWARGS = ("in_features", "out_features")


def _is_stdlib(module: str) -> bool:
    top = module.split(".", 1)[0]
    return top in getattr(sys, "stdlib_module_names", ()) or top in sys.builtin_module_names


@dataclass(frozen=True)
class ModelSpec:
    """A network as data: a registry name or ``"module:Class"`` plus keyword arguments.

    Parameters
    ----------
    name : str
        A built-in name (see :data:`spark_dl.models.REGISTRY`) or ``"package.module:ClassName"``.
    kwargs : dict
        JSON-serializable keyword arguments for the network's constructor.

    Examples
    --------
    >>> spec = ModelSpec("mlp", {"hidden_layers": [16]})
    >>> net = spec.build(in_features=4, out_features=2)
    """

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ resolution
    @property
    def import_path(self) -> str:
        """The ``module:Class`` path this spec resolves to."""
        return REGISTRY.get(self.name, self.name)

    def resolve(self) -> type[nn.Module]:
        """Import and return the network class, refusing anything but an ``nn.Module`` subclass.

        Raises
        ------
        ValueError
            The name is neither a built-in network nor a ``module:Class`` path.
        UnsafeModelError
            The path names a standard-library module or an object that is not an
            ``nn.Module`` subclass.
        """
        from torch import nn

        path = self.import_path
        if not _PATH_RE.match(path):
            raise ValueError(
                f"The 'model' parameter must be a built-in network name {sorted(REGISTRY)} or "
                f"'package.module:ClassName' naming a torch.nn.Module subclass. Got {self.name!r}."
            )
        module_name, _, attr = path.partition(":")
        if _is_stdlib(module_name):
            raise UnsafeModelError(
                f"Refusing model {self.name!r}: {module_name!r} is a standard-library module, "
                "which holds no torch.nn.Module; the 'model' must name an nn.Module subclass."
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(
                f"The 'model' parameter names module {module_name!r}, which cannot be imported "
                f"({exc}). Install it on the driver and the executors, or fix the name."
            ) from exc
        obj = getattr(module, attr, None)
        if not (inspect.isclass(obj) and issubclass(obj, nn.Module)):
            raise UnsafeModelError(
                f"Refusing model {self.name!r}: {path!r} is not a torch.nn.Module subclass "
                f"(it is {type(obj).__name__}). Only nn.Module subclasses are ever constructed."
            )
        return obj

    def check_loadable(self, allowed: Sequence[str]) -> None:
        """Refuse, before any import, a spec that is neither built in nor ``allowed``.

        An entry of ``allowed`` is a module (allowing it and its submodules, ``"mypkg"``)
        or one class (``"mypkg.nets:Net"``).

        Raises
        ------
        UnsafeModelError
            The spec names a module the caller did not allow.
        """
        if self.name in REGISTRY:
            return
        module, _, _ = self.name.partition(":")
        for entry in allowed:
            entry = entry.strip()
            if entry and (entry == self.name or (":" not in entry and (
                    module == entry or module.startswith(entry + ".")))):
                return
        raise UnsafeModelError(
            f"Refusing model {self.name!r} on load: a saved model resolves only to a built-in "
            f"network {sorted(REGISTRY)} or to a module the caller allows, because importing a "
            f"module runs its code. If you trust {module!r}, allow it with the Spark conf "
            f"spark.dl.load.allowedModules={module} (comma-separated) or "
            f"load(path, allowedModules=[{module!r}])."
        )

    def build_meta(self, **injected: Any) -> nn.Module:
        """Construct the network on torch's ``meta`` device: shapes only, no memory."""
        import torch

        with torch.device("meta"):
            return self.build(**injected)

    def check_kwargs(self, **injected: Any) -> None:
        """Check, without building, that the constructor accepts ``kwargs`` (plus injected ones).

        Raises
        ------
        ValueError
            An argument the constructor does not accept, or a required one that is missing.
        """
        cls = self.resolve()
        sig = inspect.signature(cls.__init__)
        try:
            sig.bind(None, **self._merged(cls, injected))
        except TypeError as exc:
            accepted = [p for p in sig.parameters if p != "self"]
            raise ValueError(
                f"The 'modelParams' {json.dumps(self.kwargs)} do not fit network {self.name!r}: "
                f"{exc}. It accepts {accepted}."
            ) from None

    def build(self, **injected: Any) -> nn.Module:
        """Construct the network; ``injected`` (in/out features) are passed where accepted."""
        cls = self.resolve()
        self.check_kwargs(**injected)
        return cls(**self._merged(cls, injected))

    def _merged(self, cls: type, injected: dict[str, Any]) -> dict[str, Any]:
        params = inspect.signature(cls.__init__).parameters
        takes_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        merged = {k: v for k, v in injected.items() if k in params or takes_var_kw}
        merged.update(self.kwargs)
        return merged

    # ------------------------------------------------------------------ serialization
    def to_json(self) -> str:
        """Serialize as ``{"name": ..., "kwargs": {...}}``."""
        return json.dumps({"name": self.name, "kwargs": self.kwargs}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        """Parse :meth:`to_json` output; the result still has to pass :meth:`resolve`."""
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise ValueError(f"A model spec must be a JSON object with a 'name'. Got {text!r}.")
        kwargs = data.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise ValueError(f"A model spec's 'kwargs' must be a JSON object. Got {kwargs!r}.")
        return cls(data["name"], kwargs)
