from __future__ import annotations

import pytest

import wsclient
from wsclient import ClientConfig


def test_defaults_follow_the_api() -> None:
    c = ClientConfig()
    assert c.web_socket_version == 13
    assert c.max_received_frame_size == 1 << 20
    assert c.max_received_message_size == 8 << 20
    assert c.fragment_outgoing_messages is True
    assert c.fragmentation_threshold == 16 << 10
    assert c.assemble_fragments is True
    assert c.close_timeout == 5.0
    assert c.disable_nagle_algorithm is True
    assert c.ping_interval == 20.0 and c.ping_timeout == 20.0
    assert c.compression is not None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"web_socket_version": 12},
        {"max_received_frame_size": 0},
        {"max_received_message_size": -1},
        {"fragmentation_threshold": 1.5},
        {"close_timeout": -1},
        {"ping_interval": 0},
        {"max_queue": 0},
        {"assemble_fragments": "yes"},
        {"tls_options": {"nonsense": 1}},
        {"compression": "brotli"},
    ],
)
def test_bad_values_raise_at_construction(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ClientConfig(**kwargs)
    with pytest.raises(ValueError):
        wsclient.WebSocketClient(**kwargs)


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        wsclient.WebSocketClient(no_such_option=1)


def test_frozen() -> None:
    c = ClientConfig(compression=None)
    assert c.compression is None
    with pytest.raises(AttributeError):
        c.close_timeout = 1  # type: ignore[misc]


def test_shared_configs_never_confuse_equal_values_of_other_types() -> None:
    from wsclient.client import WebSocketClient

    assert WebSocketClient(max_queue=1).config.max_queue == 1
    # True == 1 and hash(True) == hash(1): a cache keyed by value alone would hand back the
    # valid config of max_queue=1 instead of refusing the bool.
    with pytest.raises(ValueError, match="max_queue"):
        WebSocketClient(max_queue=True)
    assert WebSocketClient(close_timeout=1).config == WebSocketClient(close_timeout=1.0).config
    # The same options give equal configs; other options another one.
    assert WebSocketClient(max_queue=7).config == WebSocketClient(max_queue=7).config
    assert WebSocketClient(max_queue=8).config.max_queue == 8
    # Each client has its own tls_options dict: changing one never reaches another.
    first, second = WebSocketClient(max_queue=9), WebSocketClient(max_queue=9)
    first.config.tls_options["ciphers"] = "X"  # type: ignore[index]
    assert second.config.tls_options == {}
    assert WebSocketClient(max_queue=9).config.tls_options == {}


def test_unhashable_option_values_still_work() -> None:
    from wsclient.client import WebSocketClient

    config = WebSocketClient(tls_options={"check_hostname": False}).config
    assert config.tls_options == {"check_hostname": False}
