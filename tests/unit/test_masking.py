"""Exhaustive checks of masking against a plain per-byte reference (RFC 6455 5.3).

Every test runs against both implementations: the pure-Python one and the optional C
accelerator ``wsclient._speedups``. The C one is skipped when it is not built, except under
``CI`` where it must be (``.ci/install-speedups.sh`` builds it in place).
"""

from __future__ import annotations

import array
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from wsclient import frames

_CHUNK = frames._MASK_CHUNK
_TABLE_MAX = frames._TABLE_MAX
_REPO = Path(__file__).resolve().parents[2]

Mask = Callable[[bytes | bytearray | memoryview, bytes], bytes]


def _c_mask() -> Mask | None:
    try:
        from wsclient._speedups import mask
    except ImportError:
        return None
    return mask


@pytest.fixture(params=["python", "c"])
def mask_payload(request: pytest.FixtureRequest) -> Mask:
    """Each masking implementation in turn."""
    if request.param == "python":
        return frames._py_mask_payload
    c = _c_mask()
    if c is None:
        # Same rule as tests/conftest.py's require_tool: a missing tool fails under CI.
        message = "wsclient._speedups is not built (python3 setup.py build_ext --inplace)"
        if os.environ.get("CI"):
            pytest.fail(message + ": .ci/install-speedups.sh must build it")
        pytest.skip(message)
    return c


def reference_mask(data: bytes, key: bytes) -> bytes:
    """The definition: octet i is XORed with key octet i mod 4."""
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def _sizes_around(points: list[int], spread: int = 5) -> list[int]:
    return sorted({n for p in points for n in range(max(0, p - spread), p + spread + 1)})


# Every size up to 300 (all the per-length tables and the first middle sizes), and a window
# around every threshold of the implementation and of the frame header.
THRESHOLD_SIZES = _sizes_around(
    [
        _TABLE_MAX,
        _CHUNK,
        2 * _CHUNK,
        3 * _CHUNK,
        4 * _CHUNK,
        16384,
        65535,
        65536,
        10 * _CHUNK,
    ]
)
ALL_SIZES = sorted(set(range(301)) | set(THRESHOLD_SIZES))


def _rng(seed: int) -> random.Random:
    return random.Random(seed)


def test_every_small_and_threshold_size_matches_the_reference(mask_payload: Mask) -> None:
    rng = _rng(6455)
    for n in ALL_SIZES:
        data = rng.randbytes(n)
        key = rng.randbytes(4)
        expected = reference_mask(data, key)
        masked = mask_payload(data, key)
        assert type(masked) is bytes, n
        assert masked == expected, n
        assert mask_payload(masked, key) == data, n


@pytest.mark.parametrize("kind", ["bytearray", "memoryview", "memoryview-slice", "memoryview-readonly"])
def test_every_input_type_gives_the_same_bytes(mask_payload: Mask, kind: str) -> None:
    rng = _rng(sum(kind.encode()))
    for n in ALL_SIZES[::3] + THRESHOLD_SIZES:
        raw = rng.randbytes(n + 7)
        key = rng.randbytes(4)
        payload = raw[3 : 3 + n]
        if kind == "bytearray":
            data: bytes | bytearray | memoryview = bytearray(payload)
        elif kind == "memoryview":
            data = memoryview(bytearray(payload))
        elif kind == "memoryview-slice":
            data = memoryview(raw)[3 : 3 + n]
        else:
            data = memoryview(bytearray(payload)).toreadonly()
        masked = mask_payload(data, key)
        assert type(masked) is bytes
        assert masked == reference_mask(payload, key), (kind, n)


def test_input_is_left_untouched(mask_payload: Mask) -> None:
    for n in (0, 5, _TABLE_MAX + 1, _CHUNK + 3, 3 * _CHUNK):
        buf = bytearray(range(256)) * (n // 256 + 1)
        del buf[n:]
        before = bytes(buf)
        mask_payload(buf, b"\xff\x01\x80\x7f")
        mask_payload(memoryview(buf), b"\xff\x01\x80\x7f")
        assert buf == before


@pytest.mark.parametrize("n", [0, 1, 7, 16, _TABLE_MAX + 2, _CHUNK + 1])
def test_memoryview_of_wider_items_masks_its_bytes(mask_payload: Mask, n: int) -> None:
    words = array.array("I", range(1, n + 1))
    raw = words.tobytes()
    key = b"\x12\x34\x56\x78"
    assert mask_payload(memoryview(words), key) == reference_mask(raw, key)
    if raw:
        grid = memoryview(bytearray(raw)).cast("B", shape=[len(raw) // 4, 4])
        assert mask_payload(grid, key) == reference_mask(raw, key)


def test_non_contiguous_memoryview(mask_payload: Mask) -> None:
    raw = bytes(range(256)) * 40
    view = memoryview(raw)[::3]
    key = b"\xa5\x5a\x00\xff"
    assert mask_payload(view, key) == reference_mask(raw[::3], key)


@pytest.mark.parametrize(
    "key",
    [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x00\x00\x00\x01", b"\x80\x00\x00\x00", b"\x01\x02\x03\x04"],
)
def test_edge_keys(mask_payload: Mask, key: bytes) -> None:
    for n in (1, 3, 4, 125, _TABLE_MAX, _TABLE_MAX + 1, _CHUNK, _CHUNK + 2, 3 * _CHUNK + 1):
        data = bytes((i * 37 + 11) & 0xFF for i in range(n))
        assert mask_payload(data, key) == reference_mask(data, key), (key, n)


def test_all_zero_and_all_ones_payloads_reveal_the_key_stream(mask_payload: Mask) -> None:
    # Leading/trailing zero bytes must survive the integer round trip in both directions.
    key = b"\x00\x11\x00\x22"
    for n in (1, 2, 3, 4, 5, 129, _TABLE_MAX + 3, _CHUNK - 1, _CHUNK, _CHUNK + 5, 2 * _CHUNK + 6):
        assert mask_payload(bytes(n), key) == (key * (n // 4 + 1))[:n], n
        ones = b"\xff" * n
        assert mask_payload(ones, key) == reference_mask(ones, key), n


def test_random_sizes_and_keys(mask_payload: Mask) -> None:
    rng = _rng(20240607)
    for _ in range(60):
        n = rng.randrange(0, 5 * _CHUNK)
        data = rng.randbytes(n)
        key = rng.randbytes(4)
        assert mask_payload(data, key) == reference_mask(data, key), n


def test_large_payload(mask_payload: Mask) -> None:
    rng = _rng(7)
    n = 300_001
    data = rng.randbytes(n)
    key = rng.randbytes(4)
    masked = mask_payload(data, key)
    # The reference is slow at this size: compare a sample of positions, and the round trip.
    for i in list(range(0, 64)) + [rng.randrange(n) for _ in range(2000)] + list(range(n - 64, n)):
        assert masked[i] == data[i] ^ key[i % 4], i
    assert mask_payload(masked, key) == data


@pytest.mark.parametrize("n", [*range(65), 127, 128, 129, 1000, 4093, 65536 - 1, 65536, 65536 + 7, 1 << 20])
def test_lengths_and_unaligned_starts(mask_payload: Mask, n: int) -> None:
    # Every length 0..64 covers the 8-byte word loop with every tail length; the offsets put
    # the start of a memoryview slice at every alignment; the large sizes run the word loop
    # over many pages.
    for offset in (0, 1, 2, 3, 5, 7):
        rng = _rng(n * 8 + offset)
        raw = rng.randbytes(n + offset + 3)
        key = rng.randbytes(4)
        view = memoryview(raw)[offset : offset + n]
        masked = mask_payload(view, key)
        assert type(masked) is bytes
        assert len(masked) == n
        if n <= 65536:
            assert masked == reference_mask(raw[offset : offset + n], key), offset
        else:
            for i in (*range(64), *range(n - 64, n)):
                assert masked[i] == raw[offset + i] ^ key[i % 4], (offset, i)
        assert mask_payload(masked, key) == raw[offset : offset + n], offset
        assert mask_payload(bytearray(view), key) == masked, offset


def test_key_may_be_any_bytes_like(mask_payload: Mask) -> None:
    data = bytes(range(40))
    key = b"\x0f\xf0\x3c\xc3"
    expected = reference_mask(data, key)
    assert mask_payload(data, bytearray(key)) == expected  # type: ignore[arg-type]
    assert mask_payload(data, memoryview(b"xx" + key)[2:]) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("key", [b"", b"\x01\x02\x03", b"\x01\x02\x03\x04\x05"])
def test_a_key_that_is_not_four_bytes_is_refused_by_the_c_path(key: bytes) -> None:
    c = _c_mask()
    if c is None:
        pytest.skip("wsclient._speedups is not built")
    with pytest.raises(ValueError, match="4 bytes"):
        c(b"payload", key)


def _c_mask_frame() -> Callable[[bytes, bytes, int, bytes], bytes]:
    try:
        from wsclient._speedups import mask_frame
    except ImportError:
        message = "wsclient._speedups is not built (python3 setup.py build_ext --inplace)"
        if os.environ.get("CI"):
            pytest.fail(message + ": .ci/install-speedups.sh must build it")
        pytest.skip(message)
    return mask_frame


def test_c_mask_frame_is_head_key_and_masked_payload() -> None:
    mask_frame = _c_mask_frame()
    rng = _rng(7)
    for n in [*range(130), 1000, 65536 + 3]:
        head = bytes(rng.randrange(256) for _ in range(rng.choice((0, 2, 4, 10))))
        keys = os.urandom(rng.randrange(4, 64))
        at = rng.randrange(len(keys) - 3)
        payload = os.urandom(n)
        key = keys[at : at + 4]
        assert mask_frame(head, keys, at, payload) == head + key + reference_mask(payload, key)


@pytest.mark.parametrize("at", [-1, 5, 1 << 40])
def test_c_mask_frame_refuses_a_key_offset_out_of_range(at: int) -> None:
    mask_frame = _c_mask_frame()
    with pytest.raises(ValueError, match="no 4-byte key"):
        mask_frame(b"\x82\x80", b"12345678", at, b"")


@pytest.mark.parametrize(
    "args",
    [
        (bytearray(b"\x82\x81"), b"1234", 0, b"x"),
        (b"\x82\x81", memoryview(b"1234"), 0, b"x"),
        (b"\x82\x81", b"1234", 0, "x"),
        (b"\x82\x81", b"1234", 0.0, b"x"),
    ],
)
def test_c_mask_frame_refuses_other_types(args: tuple[object, ...]) -> None:
    mask_frame = _c_mask_frame()
    with pytest.raises(TypeError):
        mask_frame(*args)
    with pytest.raises(TypeError):
        mask_frame(b"", b"1234", 0)


def test_text_is_refused(mask_payload: Mask) -> None:
    with pytest.raises(TypeError):
        mask_payload("text", b"\x01\x02\x03\x04")  # type: ignore[arg-type]


def _implementation_in_subprocess(setting: str | None, block_c: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WSCLIENT_SPEEDUPS"}
    if setting is not None:
        env["WSCLIENT_SPEEDUPS"] = setting
    env["PYTHONPATH"] = str(_REPO)
    # ``sys.modules[name] = None`` makes ``import name`` raise ImportError: a missing build.
    block = "import sys; sys.modules['wsclient._speedups'] = None; " if block_c else ""
    code = block + (
        "from wsclient import frames; "
        "print(frames.MASK_IMPLEMENTATION, frames.mask_payload is frames._py_mask_payload, "
        "frames.mask_payload(b'abcde', b'\\x01\\x02\\x03\\x04').hex())"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=_REPO, capture_output=True, text=True, timeout=60
    )


def test_environment_switch_zero_forces_pure_python() -> None:
    result = _implementation_in_subprocess("0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["python", "True", reference_mask(b"abcde", b"\x01\x02\x03\x04").hex()]


def test_environment_switch_one_requires_the_c_extension() -> None:
    result = _implementation_in_subprocess("1", block_c=True)
    assert result.returncode != 0
    assert "ImportError" in result.stderr and "WSCLIENT_SPEEDUPS=1" in result.stderr


def test_without_the_extension_the_default_falls_back_to_pure_python() -> None:
    result = _implementation_in_subprocess(None, block_c=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["python", "True"]


def test_default_and_one_use_the_c_extension_when_built() -> None:
    if _c_mask() is None:
        if os.environ.get("CI"):
            pytest.fail("wsclient._speedups is not built: .ci/install-speedups.sh must build it")
        pytest.skip("wsclient._speedups is not built")
    expected = ["c", "False", reference_mask(b"abcde", b"\x01\x02\x03\x04").hex()]
    for setting in (None, "1"):
        result = _implementation_in_subprocess(setting)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == expected, setting


# --- the optional build --------------------------------------------------------------------


def _tree_without_extension(tmp_path: Path) -> Path:
    """A copy of what setup.py builds from, without any compiled extension."""
    import shutil

    root = tmp_path / "src"
    root.mkdir()
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        if (_REPO / name).exists():
            shutil.copy2(_REPO / name, root / name)
    shutil.copytree(
        _REPO / "wsclient", root / "wsclient", ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__")
    )
    return root


def _build_in_place(root: Path, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WSCLIENT_SPEEDUPS", "CC")}
    env.update(env_vars)
    return subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )


def _env_for(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "WSCLIENT_SPEEDUPS"}
    env["PYTHONPATH"] = str(root)
    return env


def _built(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "wsclient").iterdir() if p.name.startswith("_speedups.") and p.suffix in (".so", ".pyd"))


def test_build_without_a_working_compiler_warns_and_succeeds(tmp_path: Path) -> None:
    # What `pip install .` runs on a machine without a compiler, made reproducible here with
    # an unusable one (CC=/bin/false).
    root = _tree_without_extension(tmp_path)
    result = _build_in_place(root, CC="/bin/false")
    assert result.returncode == 0, result.stderr
    assert "could not be built" in result.stderr
    assert _built(root) == []
    # The package works from that tree, on the pure-Python path.
    check = subprocess.run(
        [sys.executable, "-c", "from wsclient import frames; print(frames.MASK_IMPLEMENTATION)"],
        cwd=root, env=_env_for(root), capture_output=True, text=True, timeout=60,
    )
    assert check.stdout.strip() == "python", check.stderr


def test_build_required_by_the_switch_fails_without_a_compiler(tmp_path: Path) -> None:
    root = _tree_without_extension(tmp_path)
    result = _build_in_place(root, CC="/bin/false", WSCLIENT_SPEEDUPS="1")
    assert result.returncode != 0
    assert _built(root) == []


def test_build_with_the_compiler_produces_the_extension(tmp_path: Path) -> None:
    import shutil

    found = shutil.which("cc") or shutil.which("gcc")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("no C compiler: .ci/install-speedups.sh must install one")
        pytest.skip("no C compiler")
    root = _tree_without_extension(tmp_path)
    result = _build_in_place(root)
    assert result.returncode == 0, result.stderr
    assert len(_built(root)) == 1
    check = subprocess.run(
        [sys.executable, "-c", "from wsclient import frames; print(frames.MASK_IMPLEMENTATION)"],
        cwd=root, env=_env_for(root), capture_output=True, text=True, timeout=60,
    )
    assert check.stdout.strip() == "c", check.stderr
