"""A throw-away MIT Kerberos realm on loopback, for the Negotiate (Kerberos) proxy tests.

Everything lives in one temp folder: ``krb5.conf`` and ``kdc.conf``, the KDC database, a
keytab for the proxy's service principal, the KDC's log and the client's credential cache.
Nothing outside it is touched: the programs find the files through ``KRB5_CONFIG``,
``KRB5_KDC_PROFILE`` and ``KRB5CCNAME`` (see :meth:`Realm.env`).

Principals:

* ``alice@WSCLIENT.TEST`` (password :data:`USER_PASSWORD`): the user;
* ``HTTP/localhost@WSCLIENT.TEST``: the proxy's service, exported to :attr:`Realm.keytab`
  for squid's ``negotiate_kerberos_auth``;
* ``HTTP/127.0.0.1@WSCLIENT.TEST``: a service that exists in the KDC but NOT in the proxy's
  keytab, so a client that names the proxy by its address gets a ticket the proxy cannot
  read (the "wrong principal" case).

The Debian packages are krb5-kdc, krb5-admin-server, krb5-user and libkrb5-dev
(``.ci/install-kerberos.sh``). Run this file to build a realm by hand and print the
environment to use it::

    python3 tests/integration/proxy/krb5realm.py
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REALM = "WSCLIENT.TEST"
USER = "alice"
USER_PASSWORD = "Kerberos-Pass-1"
SERVICE = f"HTTP/localhost@{REALM}"
OTHER_SERVICE = f"HTTP/127.0.0.1@{REALM}"

#: The programs the realm needs (sbin ones are not on a normal user's PATH).
PROGRAMS = {
    "krb5kdc": "/usr/sbin/krb5kdc",
    "kdb5_util": "/usr/sbin/kdb5_util",
    "kadmin.local": "/usr/sbin/kadmin.local",
    "kinit": "/usr/bin/kinit",
    "kdestroy": "/usr/bin/kdestroy",
}


def find_program(name: str) -> str | None:
    """The path of one of :data:`PROGRAMS`, or ``None`` when it is not installed."""
    found = shutil.which(name)
    if found:
        return found
    default = PROGRAMS[name]
    return default if os.access(default, os.X_OK) else None


def missing_programs() -> list[str]:
    return [name for name in PROGRAMS if find_program(name) is None]


def _free_port() -> int:
    """A loopback port free for both TCP and UDP (the KDC listens on both)."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no loopback port free for both TCP and UDP")


_KRB5_CONF = """\
[libdefaults]
    default_realm = {realm}
    dns_lookup_realm = false
    dns_lookup_kdc = false
    rdns = false
    dns_canonicalize_hostname = false
    ignore_acceptor_hostname = true
    udp_preference_limit = 1
    default_ccache_name = FILE:{dir}/ccache

[realms]
    {realm} = {{
        kdc = 127.0.0.1:{port}
    }}

[domain_realm]
    localhost = {realm}
    127.0.0.1 = {realm}
"""

_KDC_CONF = """\
[kdcdefaults]
    kdc_listen = 127.0.0.1:{port}
    kdc_tcp_listen = 127.0.0.1:{port}

[realms]
    {realm} = {{
        database_name = {dir}/principal
        key_stash_file = {dir}/stash
        acl_file = {dir}/kadm5.acl
        max_life = 1h
        max_renewable_life = 1h
    }}

[logging]
    kdc = FILE:{dir}/kdc.log
    admin_server = FILE:{dir}/kadmin.log
    default = FILE:{dir}/krb5lib.log
"""


class Realm:
    """The loopback realm; :meth:`start` builds it and starts the KDC, :meth:`stop` undoes it."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="wsclient-krb5-"))
        self.dir.chmod(0o755)  # squid's helper (user "proxy") reads krb5.conf and the keytab
        self.port = _free_port()
        self.krb5_conf = self.dir / "krb5.conf"
        self.kdc_conf = self.dir / "kdc.conf"
        self.keytab = self.dir / "http.keytab"
        self.ccache = self.dir / "ccache"
        self.kdc: subprocess.Popen[bytes] | None = None
        self.service = SERVICE

    def env(self, ccache: Path | None = None) -> dict[str, str]:
        """The variables that point MIT Kerberos (and gssapi) at this realm."""
        env = {
            "KRB5_CONFIG": str(self.krb5_conf),
            "KRB5_KDC_PROFILE": str(self.kdc_conf),
            "KRB5CCNAME": f"FILE:{ccache or self.ccache}",
        }
        if os.environ.get("WSCLIENT_KRB5_TRACE"):  # MIT's own trace, for debugging a test
            env["KRB5_TRACE"] = str(self.dir / "trace.log")
        return env

    def _run(self, *argv: str, stdin: str | None = None) -> str:
        env = {**os.environ, **self.env()}
        result = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, env=env, timeout=60
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr or result.stdout}")
        return result.stdout

    def kadmin(self, query: str) -> str:
        return self._run(find_program("kadmin.local") or "kadmin.local", "-r", REALM, "-q", query)

    def start(self) -> Realm:
        missing = missing_programs()
        if missing:
            raise RuntimeError(f"MIT Kerberos programs missing: {', '.join(missing)}")
        values = {"realm": REALM, "dir": self.dir, "port": self.port}
        self.krb5_conf.write_text(_KRB5_CONF.format(**values))
        self.kdc_conf.write_text(_KDC_CONF.format(**values))
        (self.dir / "kadm5.acl").write_text(f"*/admin@{REALM} *\n")
        for path in (self.krb5_conf, self.kdc_conf):
            path.chmod(0o644)
        self._run(find_program("kdb5_util") or "kdb5_util", "create", "-s", "-r", REALM, "-P", "master-Pass-1")
        self.kadmin(f"addprinc -pw {USER_PASSWORD} {USER}@{REALM}")
        self.kadmin(f"addprinc -randkey {SERVICE}")
        self.kadmin(f"addprinc -randkey {OTHER_SERVICE}")
        self.kadmin(f"ktadd -k {self.keytab} {SERVICE}")
        self.keytab.chmod(0o644)
        # The port was free when chosen, but another process (tests run in parallel on this
        # machine) may take it, for TCP or UDP, before the KDC binds it: then start again on
        # another port.
        failures: list[str] = []
        for _attempt in range(3):
            if failures:
                self.port = _free_port()
                values["port"] = self.port
                self.krb5_conf.write_text(_KRB5_CONF.format(**values))
                self.kdc_conf.write_text(_KDC_CONF.format(**values))
            problem = self._start_kdc()
            if problem is None:
                return self
            failures.append(problem)
        raise RuntimeError("krb5kdc did not start: " + " | ".join(failures))

    def _start_kdc(self) -> str | None:
        """Start the KDC on ``self.port``; ``None`` once it answers, else what went wrong."""
        env = {**os.environ, **self.env()}
        if getattr(self, "_log", None) is not None:
            self._log.close()
        log = open(self.dir / "krb5kdc.stderr", "wb")  # closed in stop()
        self._log = log
        self.kdc = subprocess.Popen(
            [find_program("krb5kdc") or "krb5kdc", "-n", "-r", REALM, "-P", str(self.dir / "kdc.pid")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.kdc.poll() is not None:
                return f"krb5kdc exited: {(self.dir / 'krb5kdc.stderr').read_text(errors='replace')[-500:]}"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
            except OSError:
                if time.monotonic() > deadline:
                    self.kdc.kill()
                    self.kdc.wait(5)
                    return "krb5kdc did not start listening"
                time.sleep(0.05)
                continue
            # Something listens: make sure it is our KDC (not a process that took the port).
            time.sleep(0.1)
            if self.kdc.poll() is None:
                return None

    def kinit(self, ccache: Path | None = None) -> None:
        """Get alice's ticket-granting ticket into ``ccache`` (the realm's default cache)."""
        target = ccache or self.ccache
        self._run(
            find_program("kinit") or "kinit",
            "-c",
            f"FILE:{target}",
            f"{USER}@{REALM}",
            stdin=USER_PASSWORD + "\n",
        )

    def stop(self) -> None:
        if self.kdc is not None and self.kdc.poll() is None:
            self.kdc.terminate()
            try:
                self.kdc.wait(10)
            except subprocess.TimeoutExpired:
                self.kdc.kill()
                self.kdc.wait(5)
        if getattr(self, "_log", None) is not None:
            self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__":
    realm = Realm().start()
    realm.kinit()
    print(f"# realm {REALM} in {realm.dir}, KDC on 127.0.0.1:{realm.port} (pid {realm.kdc.pid if realm.kdc else '?'})")
    for name, value in realm.env().items():
        print(f"export {name}={value}")
    print(f"# squid: auth_param negotiate program /usr/lib/squid/negotiate_kerberos_auth -k {realm.keytab} -s {SERVICE}")
    print("# press Ctrl-C to stop the KDC and remove the folder")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        realm.stop()
