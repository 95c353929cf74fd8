"""Parsing the Redis generation notifications: anything that does not parse is counted and dropped.

The bump script publishes ``"{namespace}\\n{scope}\\t{value}\\n..."`` on ``{key_prefix}~gen``, and anyone who can
``PUBLISH`` on that channel can send anything there. A message that raised while being parsed used to end the
subscriber's loop: every malformed message cost a lost subscription, and with it everything the process knew
(20 of them in a second cost 10 losses). :func:`parse_notification` never raises: a message is used only when
every line is a scope and a positive decimal counter, else it is ``None`` (the store counts it and drops it).
"""

from __future__ import annotations

__all__ = ["MAX_NOTIFICATION_BYTES", "parse_notification"]

#: A larger message is dropped unparsed (a bump of thousands of scopes is far smaller).
MAX_NOTIFICATION_BYTES = 1 << 20
_LARGEST = (1 << 63) - 1


def parse_notification(data: object) -> tuple[str, list[tuple[str, int]]] | None:
    """``(namespace, [(scope, value), ...])`` of one notification, or ``None`` when it is not one cachekit sends."""
    if isinstance(data, (bytes, bytearray)):
        if len(data) > MAX_NOTIFICATION_BYTES:
            return None
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            return None
    elif isinstance(data, str):
        text = data
        if len(text) > MAX_NOTIFICATION_BYTES:
            return None
    else:
        return None
    namespace, *lines = text.split("\n")
    if not namespace or not lines:
        return None
    pairs = []
    for line in lines:
        scope, tab, value = line.rpartition("\t")
        if not tab or not scope or not value.isascii() or not value.isdigit() or len(value) > 19:
            return None
        number = int(value)
        if not 0 < number <= _LARGEST:
            return None
        pairs.append((scope, number))
    return namespace, pairs
