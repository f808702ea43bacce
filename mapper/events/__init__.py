"""Normalise one raw Scope AR WorkLink webhook (legacy or subscription) into the Event that mappings see.

Imports nothing of ours outside this package. `event` holds the Event and the generations; `reading` reads
untrusted values; `legacy` and `subscription` read each generation; `normalise` chooses between them.
"""

from mapper.events.event import (
    CUSTOM_QUERY,
    EVENT_FIELDS,
    GENERATIONS,
    LEGACY,
    SUBSCRIPTION,
    UNKNOWN,
    Event,
    event_key,
    type_key,
)
from mapper.events.normalise import normalise

__all__ = [
    "CUSTOM_QUERY",
    "EVENT_FIELDS",
    "GENERATIONS",
    "LEGACY",
    "SUBSCRIPTION",
    "UNKNOWN",
    "Event",
    "event_key",
    "normalise",
    "type_key",
]
