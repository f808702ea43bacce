"""The runner the workers call: `module:factory` (mapper.run.runner:Runner unless a test names a stand-in)."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, cast

from mapper.service.options import ServiceError
from mapper.service.worker import RunFunction


class Runner(Protocol):
    """What `--runner module:factory` must build from the environment (mapper.run.runner.Runner does)."""

    run: RunFunction

    def aclose(self) -> Awaitable[None]: ...


def load_runner(spec: str, env: Mapping[str, str]) -> Runner:
    """Build the runner named `module:factory`; ServiceError when it cannot be imported or built."""
    return cast(Runner, find_runner(spec)(env))


def find_runner(spec: str) -> Callable[[Mapping[str, str]], object]:
    """The factory named `module:factory`, not yet called; ServiceError when it cannot be imported."""
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ServiceError(f"cannot load the runner `{spec}`: {exc}") from None
    factory = getattr(module, attribute or "Runner", None)
    if not callable(factory):
        raise ServiceError(f"cannot load the runner `{spec}`: {module_name} has no `{attribute or 'Runner'}`")
    return cast(Callable[[Mapping[str, str]], object], factory)
