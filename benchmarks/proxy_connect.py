"""How long ``wsclient.connect`` takes through an authenticating squid, with and without the
remembered proxy scheme.

"cold" forgets the remembered schemes before every connect: each CONNECT is refused with a
407 first, then answered (the behaviour before schemes were remembered). "warm" keeps them:
from the second connect on, the credentials go with the first CONNECT. Both modes run in
interleaved rounds (cold, warm, cold, warm, ...) against the same squid and the same
``websockets`` echo server on loopback, and the script prints the median and the 10th/90th
percentiles of the time to an open connection (TCP + CONNECT + authentication + WebSocket
handshake; the close is not timed).

    python benchmarks/proxy_connect.py                 # squid with Basic, 200 connects per mode
    python benchmarks/proxy_connect.py --auth digest -n 500

It starts its own squid (Debian's, with basic_ncsa_auth / digest_file_auth, as the proxy
tests do: ``.ci/install-proxies.sh`` installs them) and must run as root or as a user that
can start squid.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration" / "proxy"))

import wsclient  # noqa: E402
from wsclient.proxy.auth import forget_proxy_schemes  # noqa: E402


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200, help="connects per mode (default 200)")
    parser.add_argument("--auth", choices=("basic", "digest"), default="basic")
    args = parser.parse_args()

    from proxypeers import BASIC_PASSWORD, DIGEST_PASSWORD, USER, Squid, WSTarget

    squid = Squid(args.auth)
    target = WSTarget()
    password = BASIC_PASSWORD if args.auth == "basic" else DIGEST_PASSWORD
    proxies = {"ws": squid.url("http", USER, password)}
    url = target.url("/bench")
    times: dict[str, list[float]] = {"cold": [], "warm": []}
    try:
        for _mode in ("cold", "warm"):  # warm-up, not counted
            forget_proxy_schemes()
            for _ in range(5):
                with wsclient.connect(url, proxies=proxies, timeout=10):
                    pass
        for _ in range(args.n):
            for mode in ("cold", "warm"):
                if mode == "cold":
                    forget_proxy_schemes()
                started = time.perf_counter()
                ws = wsclient.connect(url, proxies=proxies, timeout=10)
                times[mode].append(time.perf_counter() - started)
                ws.close()
    finally:
        target.stop()
        squid.stop()

    print(f"wsclient.connect through squid ({args.auth}), {args.n} connects per mode, loopback")
    print(f"{'mode':<6} {'median ms':>10} {'p10 ms':>8} {'p90 ms':>8}")
    for mode, values in times.items():
        print(
            f"{mode:<6} {statistics.median(values) * 1e3:>10.2f} "
            f"{_percentile(values, 0.1) * 1e3:>8.2f} {_percentile(values, 0.9) * 1e3:>8.2f}"
        )
    saved = statistics.median(times["cold"]) - statistics.median(times["warm"])
    print(f"median saved by the remembered scheme: {saved * 1e3:.2f} ms "
          f"({saved / statistics.median(times['cold']) * 100:.0f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
