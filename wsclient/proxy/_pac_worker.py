"""The PAC evaluator's own process: ``python -m wsclient.proxy._pac_worker``.

dukpy's JavaScript engine holds the GIL while it runs, so a PAC file that never returns
(``while (true) {}``) would freeze every thread of the program, and nothing in-process can
stop it. wsclient therefore compiles and runs each PAC file in a process of its own
(:class:`wsclient.proxy.pac._Script`), which it kills when an answer does not come within the
opening's timeout.

The protocol is one JSON object per line. The first request is ``{"source": text}`` (compile
the file); each later one is ``{"url": ..., "host": ...}`` (call ``FindProxyForURL``). Every
reply is ``{"answer": value}`` or ``{"error": message, "missing": bool}`` (``missing``: pypac or
dukpy is not installed). The process ends when its standard input closes, so it never
outlives the program that started it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _serve(requests: Any, reply: Any) -> None:
    pac: Any = None
    for line in requests:
        try:
            request = json.loads(line)
        except ValueError as exc:
            reply({"error": f"bad request: {exc}"})
            continue
        try:
            if "source" in request:
                try:
                    from pypac.parser import PACFile  # type: ignore[import-not-found,import-untyped]
                except ImportError as exc:
                    reply({"error": str(exc), "missing": True})
                    continue
                pac = PACFile(request["source"])
                reply({"answer": None})
            elif pac is None:
                reply({"error": "no PAC file was compiled"})
            else:
                reply({"answer": pac.find_proxy_for_url(request["url"], request["host"])})
        except Exception as exc:  # MalformedPacError, dukpy's JSRuntimeError, ...
            reply({"error": f"{type(exc).__name__}: {exc}"})


def main() -> None:
    # Replies go to a private copy of stdout; anything the script or a library prints
    # goes to stderr instead, so that it can never be read as a reply.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)

    def reply(message: dict[str, Any]) -> None:
        out.write(json.dumps(message, default=repr) + "\n")
        out.flush()

    _serve(sys.stdin, reply)


if __name__ == "__main__":
    main()
