"""Ops from outside archspec: modules named by the person running a command (`--plugin MODULE`,
ARCHSPEC_PLUGINS) and installed packages' `archspec.ops` entry points. A spec never names code;
importing a plugin module registers its ops (`@archspec.register`), as pytest's `-p` does."""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterable
from importlib.metadata import entry_points

from archspec.errors import ArchspecError, unknown_message
from archspec.ops.base import REGISTRY, Op, register

GROUP = "archspec.ops"
ENV = "ARCHSPEC_PLUGINS"

ORIGINS: dict[str, str] = {}  # op name -> where a plugin op came from; built-ins are absent
_loaded: set[str] = set()  # plugin modules and entry points loaded so far


class PluginError(ArchspecError):
    """A plugin module or entry point could not be loaded."""


def origin(name: str) -> str:
    """'archspec' for a built-in op, else the plugin that registered it."""
    return ORIGINS.get(name, "archspec")


def _record(where: str, before: set[str]) -> None:
    for name in set(REGISTRY) - before:
        ORIGINS[name] = where


def _register_value(value: object, where: str) -> None:
    """An entry point may name a module (its import registers), an Op class or a list of them."""
    values = value if isinstance(value, (list, tuple)) else [value]
    for item in values:
        if isinstance(item, type) and issubclass(item, Op):
            if REGISTRY.get(item.op) is not item:
                try:
                    register(item)
                except ValueError as exc:
                    raise PluginError(f"plugin {where}: {exc}") from exc


def load_module(module: str) -> None:
    """Import plugin `module` (a dotted name), recording the ops it registers."""
    key = f"module:{module}"
    if key in _loaded:
        return
    if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", module):
        raise PluginError(f"plugin {module!r}: expected a module name such as my_ops.attention")
    before = set(REGISTRY)
    try:
        importlib.import_module(module)
    except ValueError as exc:  # a duplicate or badly named op
        raise PluginError(f"plugin {module}: {exc}") from exc
    except ImportError as exc:
        raise PluginError(f"plugin {module}: cannot import it ({exc})") from exc
    _loaded.add(key)
    _record(module, before)


def load_entry_points() -> None:
    """Load every installed package's `archspec.ops` entry points (once each)."""
    for ep in entry_points(group=GROUP):
        dist = getattr(ep.dist, "name", None) or "?"
        key = f"entry:{dist}:{ep.name}:{ep.value}"
        if key in _loaded:
            continue
        where = f"{dist} (entry point {ep.name} = {ep.value})"
        before = set(REGISTRY)
        try:
            value = ep.load()
        except ValueError as exc:
            raise PluginError(f"plugin {where}: {exc}") from exc
        except ImportError as exc:
            raise PluginError(f"plugin {where}: cannot import it ({exc})") from exc
        _register_value(value, where)
        _loaded.add(key)
        _record(where, before)


def env_modules() -> list[str]:
    """The modules ARCHSPEC_PLUGINS names (separated by commas or spaces)."""
    return [m for m in re.split(r"[,\s]+", os.environ.get(ENV, "")) if m]


def load_plugins(modules: Iterable[str] = ()) -> None:
    """What every command does first: entry points, then ARCHSPEC_PLUGINS, then `modules`."""
    load_entry_points()
    for module in [*env_modules(), *modules]:
        load_module(module)


def get_op(name: str) -> type[Op]:
    """The op class called `name`; KeyError with the nearest valid names otherwise."""
    if name not in REGISTRY:
        load_entry_points()  # installed packages' ops, loaded on the first unknown name
    try:
        return REGISTRY[name]
    except KeyError:
        message = unknown_message("op", name, REGISTRY)
        if "did you mean" not in message:
            message += " (an op written in Python must be loaded as a plugin first)"
        raise KeyError(message) from None
