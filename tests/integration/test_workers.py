"""The worker recipes of docs/workers.md, each run against a real websockets server.

The recipes live in ``examples/workers/`` and the page shows them verbatim (checked below):
a Flask route and a Django view (through their test clients), a Celery task run by a real
worker process (its failure crosses the process boundary pickled), a long-lived consumer
stopped with SIGTERM, and gevent.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import wsclient

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "examples" / "workers"
SLACK = 1.5


def _need(module: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is missing: .ci/install-workers.sh must install it")
        pytest.skip(f"{module} is not installed")


def _load(name: str) -> ModuleType:
    if str(RECIPES) not in sys.path:
        sys.path.insert(0, str(RECIPES))
    return importlib.import_module(name)


def _env(*extra_paths: Path) -> dict[str, str]:
    paths = [str(ROOT), str(RECIPES), *map(str, extra_paths)]
    old = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths + ([old] if old else [])))


# --------------------------------------------------------------------------- the page shows them


@pytest.mark.parametrize(
    "name", ["flask_app.py", "django_views.py", "celery_tasks.py", "consumer.py", "gevent_client.py"]
)
def test_the_page_shows_each_recipe_verbatim(name: str) -> None:
    page = (ROOT / "docs" / "workers.md").read_text()
    code = (RECIPES / name).read_text()
    # Everything after the module docstring is on the page, unchanged.
    body = code.split('"""', 2)[2].strip()
    assert body in page, f"docs/workers.md does not show examples/workers/{name} as it is"


# --------------------------------------------------------------------------- Flask


def test_flask_route_sends_one_message(websockets_server: Any, refused_port: int) -> None:
    _need("flask")
    flask_app = _load("flask_app")
    client = flask_app.app.test_client()
    flask_app.app.config["FEED_URL"] = websockets_server.url("/echo")
    reply = client.post("/notify", data="from flask")
    assert reply.status_code == 200 and reply.get_json() == {"reply": "from flask"}
    websockets_server.wait_event("close", flask_app.app.config["FEED_URL"])
    flask_app.app.config["FEED_URL"] = f"ws://127.0.0.1:{refused_port}/"
    failed = client.post("/notify", data="x")
    assert failed.status_code == 502 and "refused" in failed.get_json()["error"]


# --------------------------------------------------------------------------- Django


@pytest.fixture(scope="module")
def django_client() -> Any:
    _need("django")
    import django
    from django.conf import settings

    _load("django_views")
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="tests-only",
            ROOT_URLCONF="django_views",
            ALLOWED_HOSTS=["testserver"],
            INSTALLED_APPS=[],
            MIDDLEWARE=[],
            FEED_URL="ws://127.0.0.1:1/",
        )
        django.setup()
    from django.test import Client

    return Client()


def test_django_view_sends_one_message(django_client: Any, websockets_server: Any, httpserver: Any) -> None:
    from django.test import override_settings

    url = websockets_server.url("/echo")
    with override_settings(FEED_URL=url):
        reply = django_client.post("/notify", data="from django", content_type="text/plain")
    assert reply.status_code == 200 and reply.json() == {"reply": "from django"}
    websockets_server.wait_event("close", url)
    httpserver.expect_request("/deny").respond_with_data("no", status=403)
    with override_settings(FEED_URL=httpserver.url_for("/deny").replace("http://", "ws://")):
        failed = django_client.post("/notify", data="x", content_type="text/plain")
    assert failed.status_code == 502 and "403" in failed.json()["error"]


# --------------------------------------------------------------------------- Celery


_CELERY_TEST_APP = '''
import os
import time
import uuid

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps

from celery_tasks import app, push  # noqa: F401


class _RenamingChannel(filesystem.Channel):
    """kombu's filesystem channel creates a message file and then writes it, so a
    worker polling the folder can take the file while it is still empty and die on
    the JSON; this one writes under a name the worker ignores, then renames."""

    def _put(self, queue, payload, **kwargs):
        name = "%d_%s.%s.msg" % (int(time.monotonic() * 1000), uuid.uuid4(), queue)
        part = os.path.join(self.data_folder_out, "part-" + uuid.uuid4().hex)
        with open(part, "wb") as f:
            f.write(dumps(payload).encode())
        os.replace(part, os.path.join(self.data_folder_out, name))


class RenamingFilesystemTransport(filesystem.Transport):
    Channel = _RenamingChannel


TRANSPORT_ALIASES["renamingfs"] = "celery_test_app:RenamingFilesystemTransport"

base = os.environ["WSCLIENT_CELERY_DIR"]
app.conf.update(
    broker_url="renamingfs://",
    broker_transport_options={
        "data_folder_in": base + "/queue",
        "data_folder_out": base + "/queue",
        "processed_folder": base + "/processed",
        "store_processed": False,
        "polling_interval": 0.1,
    },
    result_backend="file://" + base + "/results",
    broker_connection_retry_on_startup=True,
)
'''


@pytest.fixture
def celery_worker(tmp_path: Path) -> Iterator[tuple[ModuleType, subprocess.Popen[str]]]:
    """A real worker in another process, a filesystem broker and result store between."""
    _need("celery")
    for sub in ("queue", "processed", "results"):
        (tmp_path / sub).mkdir()
    (tmp_path / "celery_test_app.py").write_text(_CELERY_TEST_APP)
    os.environ["WSCLIENT_CELERY_DIR"] = str(tmp_path)
    env = _env(tmp_path)
    # Celery refuses pickle as root unless told; CI machines run the suite as root.
    env["C_FORCE_ROOT"] = "1"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_test_app", "worker", "--pool=solo",
         "--loglevel=INFO", "--without-heartbeat", "--without-mingle", "--without-gossip"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    sys.path.insert(0, str(tmp_path))
    try:
        sys.modules.pop("celery_test_app", None)
        yield _load("celery_test_app"), worker
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("celery_test_app", None)
        del os.environ["WSCLIENT_CELERY_DIR"]
        worker.terminate()
        try:
            output, _ = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
        print(output[-3000:])


def _get(result: Any, worker: subprocess.Popen[str], timeout: float = 60) -> Any:
    """result.get(), failing at once if the worker process died."""
    import celery.exceptions

    deadline = time.monotonic() + timeout
    while True:
        assert worker.poll() is None, "the celery worker exited"
        try:
            return result.get(timeout=1)
        except celery.exceptions.TimeoutError:
            assert time.monotonic() < deadline, "no result from the worker"


def test_celery_task_result_and_pickled_exception(
    celery_worker: tuple[ModuleType, subprocess.Popen[str]], websockets_server: Any, httpserver: Any
) -> None:
    app, worker = celery_worker
    push = app.push
    assert _get(push.delay(websockets_server.url("/echo"), "from celery"), worker) == "from celery"
    httpserver.expect_request("/deny").respond_with_data("token expired", status=403, headers={"X-Why": "expired"})
    result = push.delay(httpserver.url_for("/deny").replace("http://", "ws://"), "x")
    with pytest.raises(wsclient.InvalidStatus) as info:
        _get(result, worker)
    # The exception was raised in the worker process and crossed the broker pickled.
    assert info.value.response.status == 403
    assert info.value.response.headers["x-why"] == "expired"
    assert info.value.response.body == b"token expired"
    assert "403" in str(info.value)
    assert result.traceback and "InvalidStatus" in result.traceback


# --------------------------------------------------------------------------- consumer + SIGTERM


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_line(lines: queue.Queue[str], wanted: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no line {wanted!r} within {timeout} s")
        try:
            if lines.get(timeout=left) == wanted:
                return
        except queue.Empty:
            continue


def test_long_lived_consumer_stops_cleanly_on_sigterm(websockets_server: Any) -> None:
    url = websockets_server.url("/echo")
    proc = subprocess.Popen(
        [sys.executable, str(RECIPES / "consumer.py"), url],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = _lines(proc)
        _wait_line(lines, "connected", 20)
        _wait_line(lines, "got 'subscribe'", 10)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=3 + SLACK + 2)  # close_timeout=3 bounds the close
        elapsed = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, proc.stderr.read() if proc.stderr else ""
    assert elapsed < 3 + SLACK
    _wait_line(lines, "stopped", 2)
    # The server saw a clean closing handshake with 1001 (going away).
    assert websockets_server.wait_event("close", url)["code"] == 1001


def test_consumer_reconnects_after_an_abnormal_close(raw_server: Any) -> None:
    """Each connection: the consumer subscribes, the server closes with 1011. The consumer
    catches ConnectionClosedError, reconnects (after a backoff delay) and subscribes again;
    SIGTERM then ends it, even in the middle of an opening or a backoff sleep."""
    from rawserver import Op, close, expect_close, expect_frame, send_close

    script = [expect_frame(Op.TEXT, b"subscribe"), send_close(1011, "restart"), expect_close(1011), close()]
    server = raw_server(script, connections=2)
    proc = subprocess.Popen(
        [sys.executable, str(RECIPES / "consumer.py"), server.url()],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = _lines(proc)
        _wait_line(lines, "connected", 20)
        _wait_line(lines, "connected", 20)  # the second connection, after the 1011
        server.join()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=3 + SLACK + 2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0
    stderr = proc.stderr.read() if proc.stderr else ""
    assert stderr.count("connection lost (1011); reconnecting") >= 2, stderr
    assert len(server.connections) == 2


# --------------------------------------------------------------------------- gevent


def test_gevent_round_trips(websockets_server: Any) -> None:
    _need("gevent")
    result = subprocess.run(
        [sys.executable, str(RECIPES / "gevent_client.py"), websockets_server.url("/echo")],
        env=_env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello 0 | hello 1 | hello 2"

