"""``ClientConfig``: the options of a client (WebSocket-Node's names in snake_case), validated once at construction."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ClientConfig", "default_user_agent"]


@functools.cache
def default_user_agent() -> str:
    """``wsclient/<version> Python/<major.minor>``: what gateways and WAFs see by default."""
    import sys

    from . import __version__  # at call time: the package is imported by then

    return f"wsclient/{__version__} Python/{sys.version_info[0]}.{sys.version_info[1]}"


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, not {value!r}")


def _duration(name: str, value: Any, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        allowed = "a non-negative number of seconds" + (" or None" if optional else "")
        raise ValueError(f"{name} must be {allowed}, not {value!r}")
    if value != value:  # NaN
        raise ValueError(f"{name} must not be NaN")


@dataclass(frozen=True)
class ClientConfig:
    """Options of a :class:`~wsclient.WebSocketClient` (WebSocket-Node's names in snake_case).

    Durations are in seconds. A bad value raises ``ValueError`` here, at construction.
    """

    #: 13, or 8 (then ``Sec-WebSocket-Origin`` is sent instead of ``Origin``).
    web_socket_version: int = 13
    #: Largest frame accepted, in bytes (a larger one closes with 1009).
    max_received_frame_size: int = 1 << 20
    #: Largest message accepted (after decompression), in bytes (1009 past it).
    max_received_message_size: int = 8 << 20
    #: Split outgoing messages into frames of at most ``fragmentation_threshold`` bytes.
    fragment_outgoing_messages: bool = True
    fragmentation_threshold: int = 16 << 10
    #: Assemble fragmented messages; when False every data frame raises a ``frame`` event.
    assemble_fragments: bool = True
    #: How long to wait for the peer's close frame (and then for the TCP close).
    close_timeout: float = 5.0
    #: TLS settings: ``ca_certs``, ``certfile``, ``keyfile``, ``password``, ``ciphers``,
    #: ``minimum_version``, ``maximum_version``, ``check_hostname``, ``server_hostname``.
    tls_options: Mapping[str, Any] = field(default_factory=dict)
    #: Set TCP_NODELAY on the socket.
    disable_nagle_algorithm: bool = True
    #: Messages buffered for ``recv()`` before the reader stops reading.
    max_queue: int = 32
    #: Keepalive: ping every ``ping_interval`` seconds, fail if no pong within ``ping_timeout``.
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    #: ``"deflate"`` (permessage-deflate with default options), a
    #: :class:`~wsclient.DeflateOptions`, or ``None`` for no compression.
    compression: Any = "deflate"
    #: The ``User-Agent`` header, sent unless the request headers give one; None sends none.
    user_agent: str | None = field(default_factory=default_user_agent)
    #: Follow 301/302/303/307/308 answers that carry a ``Location`` (see docs/redirects.md).
    follow_redirects: bool = False
    #: How many redirects one opening follows at most.
    max_redirects: int = 10

    def __post_init__(self) -> None:
        if self.web_socket_version not in (8, 13) or isinstance(self.web_socket_version, bool):
            raise ValueError(f"web_socket_version must be 13 or 8, not {self.web_socket_version!r}")
        _positive_int("max_received_frame_size", self.max_received_frame_size)
        _positive_int("max_received_message_size", self.max_received_message_size)
        _positive_int("fragmentation_threshold", self.fragmentation_threshold)
        _positive_int("max_queue", self.max_queue)
        if self.user_agent is not None:
            if not isinstance(self.user_agent, str):
                raise ValueError(f"user_agent must be a str or None, not {type(self.user_agent).__name__}")
            from .handshake import check_header

            check_header("User-Agent", self.user_agent, what="user_agent")
        if isinstance(self.max_redirects, bool) or not isinstance(self.max_redirects, int) or self.max_redirects < 0:
            raise ValueError(f"max_redirects must be a non-negative int, not {self.max_redirects!r}")
        for name in (
            "fragment_outgoing_messages", "assemble_fragments", "disable_nagle_algorithm", "follow_redirects",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, not {getattr(self, name)!r}")
        _duration("close_timeout", self.close_timeout, optional=False)
        _duration("ping_interval", self.ping_interval, optional=True)
        _duration("ping_timeout", self.ping_timeout, optional=True)
        if self.ping_interval == 0:
            raise ValueError("ping_interval must be positive or None")
        if not isinstance(self.tls_options, Mapping):
            raise ValueError(f"tls_options must be a mapping, not {self.tls_options!r}")
        known_tls = {
            "ca_certs", "ca_cert_dir", "ca_cert_data", "certfile", "keyfile", "password",
            "ciphers", "minimum_version", "maximum_version", "check_hostname",
            "server_hostname", "cert_reqs", "ssl_context",
        }
        unknown = set(self.tls_options) - known_tls
        if unknown:
            raise ValueError(f"unknown tls_options: {', '.join(sorted(unknown))}")
        object.__setattr__(self, "tls_options", dict(self.tls_options))
        from .extensions.permessage_deflate import resolve_compression

        object.__setattr__(self, "compression", resolve_compression(self.compression))

    @classmethod
    def option_names(cls) -> frozenset[str]:
        """The names accepted as keyword options."""
        names: frozenset[str] | None = cls.__dict__.get("_option_names")
        if names is None:
            names = frozenset(f.name for f in dataclasses.fields(cls))
            type.__setattr__(cls, "_option_names", names)
        return names


# ``wsclient.connect(url, **options)`` builds a client, and so a config, per call: the same
# few option sets come back, and validating one costs about 20 us. Keyed by each value's
# type too, so that ``True`` never stands for ``1`` (they are equal and hash alike).
_CACHE: dict[tuple[tuple[str, type, Any], ...], ClientConfig] = {}
_CACHE_SIZE = 32


def config_for(options: dict[str, Any]) -> ClientConfig:
    """A validated :class:`ClientConfig` for keyword ``options`` (shared when seen before).

    Raises:
        ValueError: an option value is invalid.
        TypeError: an option name is unknown.
    """
    try:
        key = tuple(sorted((name, type(value), value) for name, value in options.items()))
        config = _CACHE.get(key)
    except TypeError:  # an unhashable value (a tls_options dict): no sharing
        return ClientConfig(**options)
    if config is None:
        config = ClientConfig(**options)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[key] = config
    # A copy with its own tls_options dict (the one mutable field), so that no client can
    # change another's options through the shared, already validated config.
    # (What copy.copy() does for a plain dataclass, without its generic reduce machinery.)
    shared = object.__new__(ClientConfig)
    shared.__dict__.update(config.__dict__)
    object.__setattr__(shared, "tls_options", dict(config.tls_options))
    return shared
