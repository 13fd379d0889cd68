"""Typed method options: declare, list and parse them.

Every verification method has one frozen dataclass of options living next to it
(``relax.lp.method.LpOptions``, ``relax.krelu.method.KreluOptions``, ...), whose
fields are declared with :func:`option` (default and one-line doc).  Users reach them
as ``"method.field=value"`` strings (``relax verify --set krelu.k=2``):
:func:`parse_settings` turns such strings into option objects for
:attr:`relax.protocol.VerifyOptions.methods`, with a one-line
:class:`~relax.errors.UsageError` for an unknown method or field or an ill-typed
value; :func:`describe_options` lists a method's fields (``--help-method``).
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Sequence

from relax.errors import UsageError

__all__ = ["MethodOptions", "option", "OptionInfo", "METHOD_OPTIONS", "options_class", "describe_options",
           "format_options", "parse_settings", "parse_value"]

#: method name -> "module:Class" of its options (loaded on first use)
METHOD_OPTIONS: dict[str, str] = {
    "lp": "relax.lp.method:LpOptions",
    "exact": "relax.search.exact:ExactOptions",
    "milp": "relax.search.milp:MilpOptions",
    "sdp": "relax.sdp.method:SdpOptions",
    "sdp-dual1": "relax.sdp.dual1:SdpDual1Options",
    "crc": "relax.certificates.crc:CrcOptions",
    "krelu": "relax.krelu.method:KreluOptions",
}


def option(default: Any, doc: str, settable: bool = True) -> Any:
    """A dataclass field with its default and its one-line documentation; ``settable=False``
    for fields that only library callers can fill (arrays, dicts)."""
    return dataclasses.field(default=default, metadata={"doc": doc, "settable": settable})


class MethodOptions:
    """Base of the method options dataclasses: checks every field against its declared type
    (``Literal`` choices included) at construction, raising a one-line :class:`UsageError`."""

    def __post_init__(self) -> None:
        for f, hint in _fields(type(self)):
            value = getattr(self, f.name)
            if not _fits(value, hint):
                raise UsageError(f"option {f.name}={value!r} of {type(self).__name__}: "
                                 f"expected {_type_text(hint)}")


def _fits(value: Any, hint: Any) -> bool:
    if _is_union(hint):
        return any(_fits(value, a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is Literal:
        return any(value == c and type(value) is type(c) for c in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


@dataclass(frozen=True)
class OptionInfo:
    """One option of a method: its name, type (as text), default and documentation."""

    name: str
    type: str
    default: Any
    doc: str


def options_class(method: str) -> type | None:
    """The options dataclass of ``method`` (``None`` for methods without options)."""
    from relax.verify import BOUND_METHODS

    if method not in BOUND_METHODS:
        raise UsageError(f"unknown method {method!r}; choose from {', '.join(BOUND_METHODS)}")
    path = METHOD_OPTIONS.get(method)
    if path is None:
        return None
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def _fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)
            if f.metadata.get("settable", True)]


def _type_text(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    if _is_union(hint):
        return " | ".join(_type_text(a) for a in typing.get_args(hint))
    return "None" if hint is type(None) else getattr(hint, "__name__", str(hint))


def describe_options(method: str) -> list[OptionInfo]:
    """The settable options of ``method`` (empty for methods without options)."""
    cls = options_class(method)
    if cls is None:
        return []
    return [OptionInfo(f.name, _type_text(hint), f.default, f.metadata.get("doc", ""))
            for f, hint in _fields(cls)]


def format_options(method: str) -> str:
    """``relax verify --help-method METHOD``: one line per option."""
    infos = describe_options(method)
    if not infos:
        return f"method {method!r} has no options"
    width = max(len(i.name) for i in infos)
    lines = [f"options of method {method!r} (set with --set {method}.NAME=VALUE):"]
    lines += [f"  {i.name:<{width}}  {i.type} = {i.default!r}: {i.doc}" for i in infos]
    return "\n".join(lines)


def _is_union(hint) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_value(text: str, hint: Any) -> Any:
    """``text`` as a value of type ``hint`` (bool, int, float, str, Literal, unions with
    None); ``ValueError`` when it is not one."""
    if _is_union(hint):
        args = typing.get_args(hint)
        if type(None) in args and text.lower() in ("none", "null", ""):
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return parse_value(text, arg)
            except ValueError:
                continue
        raise ValueError(f"expected {_type_text(hint)}")
    if typing.get_origin(hint) is Literal:
        for choice in typing.get_args(hint):
            try:
                if parse_value(text, type(choice)) == choice:
                    return choice
            except ValueError:
                continue
        raise ValueError(f"expected one of {_type_text(hint)}")
    if hint is bool:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ValueError("expected true or false")
    if hint in (int, float, str):
        try:
            return hint(text)
        except ValueError:
            raise ValueError(f"expected {hint.__name__}") from None
    raise ValueError(f"options of type {_type_text(hint)} cannot be set from text")


def _split(setting: str) -> tuple[str, str, str]:
    key, eq, value = setting.partition("=")
    method, dot, name = key.strip().rpartition(".")
    if not eq or not dot or not method or not name:
        raise UsageError(f"bad option {setting!r}: write METHOD.NAME=VALUE, e.g. krelu.k=2")
    return method, name, value.strip()


def parse_settings(settings: Iterable[str], base: Sequence[object] = ()) -> tuple[object, ...]:
    """Option objects for ``VerifyOptions.methods`` from ``"method.field=value"`` strings,
    starting from ``base`` (option objects; later settings win)."""
    by_class: dict[type, dict[str, Any]] = {}
    for setting in settings:
        method, name, text = _split(setting)
        cls = options_class(method)
        known = {} if cls is None else {f.name: hint for f, hint in _fields(cls)}
        if name not in known:
            choices = ", ".join(known) or "none"
            raise UsageError(f"method {method!r} has no option {name!r} (options: {choices})")
        try:
            by_class.setdefault(cls, {})[name] = parse_value(text, known[name])
        except ValueError as error:
            raise UsageError(f"option {method}.{name}={text!r}: {error}") from None
    out = {type(b): b for b in base}
    for cls, values in by_class.items():
        out[cls] = dataclasses.replace(out[cls], **values) if cls in out else cls(**values)
    return tuple(out.values())
