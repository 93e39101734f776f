"""Each Param declared once: its doc, kind (converter and type), default and constraint.

A stage's Params mixin lists :class:`ParamSpec` rows and is decorated with :func:`declare`,
which creates the ``Param`` attributes and the ``get*`` methods. The stage class (estimator,
model or transformer) is decorated with :func:`stage`, which adds the keyword-only
constructor, ``setParams`` and one typed ``set*`` per Param. :func:`validate_params` checks
every constraint before any Spark job with the house message, and
:func:`config_fields` turns rows into the jobs' YAML keys, with the same defaults. In the
spirit of scikit-learn's ``_parameter_constraints``; the Params stay plain pyspark Params,
so persistence, ``copy``, ``explainParams`` and the tuning tools see nothing new.
"""

from __future__ import annotations

import difflib
import inspect
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from pyspark.ml.param import Param, Params, TypeConverters

#: Spark's handleInvalid values.
HANDLE_INVALID = ("error", "skip", "keep")
#: The default of a Param that has none (its getter returns None while unset).
UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET"})()


def to_json_object(value: Any) -> str:
    """Type converter: a dict, or a JSON string holding an object, to canonical JSON text."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise TypeError(f"Could not parse {value!r} as a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise TypeError(f"Expected a dict or a JSON object string. Got {value!r}.")
    try:
        return json.dumps(value, sort_keys=True)
    except TypeError as exc:
        raise TypeError(f"Value {value!r} is not JSON-serializable: {exc}") from None


@dataclass(frozen=True)
class Kind:
    """How a kind of Param converts values, what Python type it holds, and its YAML types."""

    converter: Callable[[Any], Any]
    annotation: str
    yaml_types: tuple[type, ...]


KINDS: dict[str, Kind] = {
    "int": Kind(TypeConverters.toInt, "int", (int,)),
    "float": Kind(TypeConverters.toFloat, "float", (float,)),
    "bool": Kind(TypeConverters.toBoolean, "bool", (bool,)),
    "str": Kind(TypeConverters.toString, "str", (str,)),
    "ints": Kind(TypeConverters.toListInt, "list[int]", (list,)),
    "floats": Kind(TypeConverters.toListFloat, "list[float]", (list,)),
    "strs": Kind(TypeConverters.toListString, "list[str]", (list,)),
    # JSON text in the Param (so it persists as-is); the getter returns the parsed dict.
    "json": Kind(to_json_object, "dict[str, Any] | str", (dict, str)),
    # A word or a JSON map kept as text (classWeights: 'none', 'balanced' or {"1": 50.0}).
    "word_or_map": Kind(TypeConverters.toString, "str | dict[str, float]", (str, dict)),
}


@dataclass(frozen=True)
class Check:
    """A constraint on a Param's value and its words for the error message."""

    test: Callable[[Any], bool]
    words: str


def at_least(low: int | float) -> Check:
    """Value >= ``low`` (an int when ``low`` is one)."""
    noun = "an int" if isinstance(low, int) else "a float"
    return Check(lambda v: v >= low, f"{noun} >= {low}")


def above(low: float) -> Check:
    """Value > ``low``."""
    return Check(lambda v: v > low, f"a float > {low:g}")


def in_range(low: float, high: float, *, closed_low: bool = True,
             closed_high: bool = False) -> Check:
    """A float between ``low`` and ``high`` (bounds closed as given)."""
    def test(v: float) -> bool:
        return (v >= low if closed_low else v > low) and (v <= high if closed_high else v < high)
    words = f"a float in {'[' if closed_low else '('}{low:g}, {high:g}{']' if closed_high else ')'}"
    return Check(test, words)


def one_of(values: Iterable[str], *, ignore_case: bool = False) -> Check:
    """One of ``values`` (case-insensitive when asked)."""
    allowed = tuple(values)
    if ignore_case:
        return Check(lambda v: str(v).lower() in allowed, f"one of {list(allowed)}")
    return Check(lambda v: v in allowed, f"one of {list(allowed)}")


@dataclass(frozen=True)
class ParamSpec:
    """One Param: the single place its name, doc, kind, default and constraint are written.

    ``doc=""`` marks a Param that a ``pyspark.ml.param.shared`` mixin already declares (the
    row then only adds the default, the constraint and the config key). ``config`` is the
    jobs' YAML key (``"training.max_epochs"``); ``model_setter`` gives the fitted model a
    setter too (Params that ``transform()`` reads).
    """

    name: str
    doc: str = ""
    kind: str = "str"
    default: Any = UNSET
    check: Check | None = None
    converter: Callable[[Any], Any] | None = None
    config: str | None = None
    model_setter: bool = False
    required: bool = False  # no default, and validate_params refuses it unset

    def type_converter(self) -> Callable[[Any], Any]:
        return self.converter or KINDS[self.kind].converter

    @property
    def annotation(self) -> str:
        return KINDS[self.kind].annotation


def _capital(name: str) -> str:
    return name[0].upper() + name[1:]


def table(cls: type) -> dict[str, ParamSpec]:
    """Every row that ``cls`` and its bases declare, by name (subclasses override)."""
    rows: dict[str, ParamSpec] = {}
    for klass in cls.__mro__:  # the first (most derived) row of a name wins
        for spec in klass.__dict__.get("_param_rows", ()):
            rows.setdefault(spec.name, spec)
    return rows


def _getter(spec: ParamSpec) -> Callable[[Any], Any]:
    name = spec.name

    def get(self: Params) -> Any:
        param = self.getParam(name)
        if not self.isDefined(param):
            return None
        value = self.getOrDefault(param)
        return json.loads(value) if spec.kind == "json" else value

    get.__name__ = f"get{_capital(name)}"
    get.__doc__ = (f"Gets the value of :py:attr:`{name}`"
                   + (" (parsed into a dict)" if spec.kind == "json" else "")
                   + (", or None while unset." if spec.default is UNSET else
                      " or its default value."))
    get.__annotations__ = {"return": spec.annotation + (" | None" if spec.default is UNSET
                                                        else "")}
    return get


def declare(*rows: ParamSpec) -> Callable[[type], type]:
    """Class decorator for a Params mixin: create each row's Param and getter."""
    def apply(cls: type) -> type:
        cls._param_rows = rows  # type: ignore[attr-defined]
        for spec in rows:
            if spec.doc:
                setattr(cls, spec.name, Param(Params._dummy(), spec.name, spec.doc,
                                              typeConverter=spec.type_converter()))
            getter = f"get{_capital(spec.name)}"
            if getter in cls.__dict__:  # the mixin writes its own (say, a parsed value)
                continue
            if spec.doc or not any(getter in k.__dict__ for k in cls.__mro__):
                setattr(cls, getter, _getter(spec))
        return cls
    return apply


class TableParams(Params):
    """Base of the Params mixins built by :func:`declare`: sets the table's defaults.

    A stage changes a default with ``_default_overrides`` (for example the anomaly
    detector's ``model="autoencoder"``).
    """

    _default_overrides: dict[str, Any] = {}

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._setDefault(**defaults(type(self)))


def defaults(cls: type) -> dict[str, Any]:
    """Each Param's default for stage ``cls`` (rows without one left out)."""
    out = {s.name: s.default for s in table(cls).values() if s.default is not UNSET}
    out.update(getattr(cls, "_default_overrides", {}))
    return out


def _setter(name: str, kind: str) -> Callable[[Any, Any], Any]:
    def set_(self: Params, value: Any) -> Any:
        return self._set(**{name: value})

    set_.__name__ = f"set{_capital(name)}"
    set_.__doc__ = f"Sets the value of :py:attr:`{name}`."
    set_.__annotations__ = {"value": KINDS[kind].annotation, "return": "Any"}
    return set_


def _set_kwargs(self: Params, kwargs: dict[str, Any]) -> Any:
    names = [p.name for p in self.params]
    for key in kwargs:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise TypeError(f"{type(self).__name__} has no Param {key!r}.{hint} Its Params: "
                            f"{sorted(names)}.")
    return self._set(**{k: v for k, v in kwargs.items() if v is not None})


def stage(*, constructor: bool = True, setters: str = "all") -> Callable[[type], type]:
    """Class decorator for a stage: keyword-only ``__init__``/``setParams`` and ``set*``.

    ``setters="all"`` gives every Param a setter (estimators, transformers);
    ``"model"`` only the rows marked ``model_setter`` (fitted models, as in pyspark.ml).
    ``constructor=False`` keeps the class's own ``__init__`` (models built by ``fit``).
    """
    def apply(cls: type) -> type:
        rows = table(cls)
        for spec in rows.values():
            if setters == "all" or spec.model_setter:
                name = f"set{_capital(spec.name)}"
                if name not in cls.__dict__:
                    setattr(cls, name, _setter(spec.name, spec.kind))
        if constructor:
            _add_constructor(cls, rows)
        return cls
    return apply


def _add_constructor(cls: type, rows: dict[str, ParamSpec]) -> None:
    own = defaults(cls)

    def __init__(self: Any, **kwargs: Any) -> None:
        super(cls, self).__init__()
        _set_kwargs(self, kwargs)

    def setParams(self: Any, **kwargs: Any) -> Any:
        return _set_kwargs(self, kwargs)

    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + [
        inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY,
                          default=own.get(s.name), annotation=s.annotation)
        for s in rows.values()
    ]
    __init__.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore
    setParams.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        params, return_annotation=cls.__name__)
    __init__.__doc__ = f"Create a {cls.__name__}; every Param is a keyword argument."
    setParams.__doc__ = f"Sets Params for this {cls.__name__} (keyword arguments only)."
    __init__.__qualname__ = f"{cls.__name__}.__init__"
    setParams.__qualname__ = f"{cls.__name__}.setParams"
    cls.__init__ = __init__  # type: ignore[misc]
    cls.setParams = setParams  # type: ignore[attr-defined]


def param_error(owner: str, name: str, expected: str, got: Any) -> ValueError:
    """A ``ValueError`` in the house template for a bad parameter value."""
    return ValueError(f"The '{name}' parameter of {owner} must be {expected}. Got {got!r} instead.")


def validate_params(instance: Params, owner: str | None = None) -> None:
    """Check every set or defaulted Param of ``instance`` against its row's constraint."""
    owner = owner or type(instance).__name__
    for spec in table(type(instance)).values():
        param = instance.getParam(spec.name)
        if spec.required and not instance.isDefined(param):
            raise param_error(owner, spec.name, "set", None)
        if spec.check is None or not instance.isDefined(param):
            continue
        value = instance.getOrDefault(param)
        if not spec.check.test(value):
            raise param_error(owner, spec.name, spec.check.words, value)


def snake(name: str) -> str:
    """``maxEpochs`` -> ``max_epochs``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def config_rows(cls: type) -> list[ParamSpec]:
    """The rows of stage ``cls`` that a job config can set."""
    return [s for s in table(cls).values() if s.config]
