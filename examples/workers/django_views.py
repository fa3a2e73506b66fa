"""A Django view that sends one message over a WebSocket and returns (docs/workers.md).

In a project: put ``notify`` in an app's views.py, route it in urls.py, and set
``FEED_URL`` in settings.py.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

import wsclient


@csrf_exempt
@require_POST
def notify(request: HttpRequest) -> JsonResponse:
    try:
        with wsclient.connect(settings.FEED_URL, timeout=5, close_timeout=2) as ws:
            ws.send(request.body.decode())
            reply = ws.recv(timeout=5)
    except wsclient.WebSocketError as exc:
        return JsonResponse({"error": str(exc)}, status=502)
    except TimeoutError:
        return JsonResponse({"error": "no reply within 5 s"}, status=504)
    return JsonResponse({"reply": reply})


urlpatterns = [path("notify", notify)]
