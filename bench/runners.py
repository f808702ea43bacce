"""Runner factories for `--runner module:factory`: the same mapper.run.runner.Runner on other HTTP client stacks.

service_load.py starts wlmap with each, so the client stack is chosen by measurement in the same run.
"""

from __future__ import annotations

from collections.abc import Mapping

from mapper.run.runner import Runner


def httpcore(env: Mapping[str, str]) -> Runner:
    """httpx's own transport (httpcore's pool), as wlmap had it before aiohttp."""
    return Runner(env, stack="httpcore")


def httpx_aiohttp(env: Mapping[str, str]) -> Runner:
    """httpx-aiohttp's AiohttpTransport (one shared aiohttp connector), if that package is installed."""
    from httpx_aiohttp import AiohttpTransport

    return Runner(env, transport=AiohttpTransport())
