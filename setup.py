"""Build of the optional C accelerator ``wsclient._speedups``; metadata lives in setup.cfg.

The extension is optional: without a working compiler (or Python headers) the build warns
and installs the pure-Python package, which behaves the same, only slower at masking large
messages. ``WSCLIENT_SPEEDUPS=1`` at build time makes a failed build an error instead (for
CI and packagers who want to be sure the accelerator is in); ``WSCLIENT_SPEEDUPS=0`` skips it.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, CompileError, ExecError, LinkError, PlatformError

_BUILD_ERRORS = (CCompilerError, CompileError, ExecError, LinkError, PlatformError, OSError, ValueError)


class OptionalBuildExt(build_ext):
    """``build_ext`` that turns a failed compile into a warning unless the build is required."""

    def run(self) -> None:
        setting = os.environ.get("WSCLIENT_SPEEDUPS", "")
        if setting == "0":
            self.warn("WSCLIENT_SPEEDUPS=0: not building the C accelerator")
            return
        try:
            super().run()
        except _BUILD_ERRORS as exc:
            # run() fails before any compile when there is no usable compiler toolchain.
            self._give_up(exc, setting)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except _BUILD_ERRORS as exc:
            self._give_up(exc, os.environ.get("WSCLIENT_SPEEDUPS", ""))

    def _give_up(self, exc: BaseException, setting: str) -> None:
        if setting == "1":
            raise exc
        message = (
            f"WARNING: the optional C accelerator wsclient._speedups could not be built ({exc}); "
            "wsclient will use its pure-Python masking, which is slower for large messages."
        )
        self.warn(message)
        # pip hides setuptools' log unless -v: print the same line to stderr as well.
        print(message, file=sys.stderr)


setup(
    ext_modules=[
        Extension(
            "wsclient._speedups",
            sources=["wsclient/_speedups.c"],
            # Our own build_ext already makes failures non-fatal; optional=True on top keeps
            # setuptools' copy of the same guard from turning them fatal in other paths.
            optional=os.environ.get("WSCLIENT_SPEEDUPS", "") != "1",
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
