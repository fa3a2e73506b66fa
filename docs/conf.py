"""Sphinx configuration of the wsclient documentation site.

Why Sphinx (and not MkDocs): autodoc reads the docstrings through the real import of the
package, so the API reference cannot drift from the code; ``-W -n`` turns every warning,
unresolved cross-reference and broken internal link into a build failure; and MyST lets the
pages stay plain Markdown that reads well on a code forge too. furo is the theme.

Build: ``python -m sphinx -W --keep-going -n -b html docs docs/_build/html``
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document this tree's wsclient, installed or not

import wsclient  # noqa: E402

project = "wsclient"
author = "the wsclient authors"
copyright = "the wsclient authors, MIT License"
release = wsclient.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "requirements.txt", "Thumbs.db", ".DS_Store"]

# MyST: anchors for headings down to ### so pages can link to sections (page.md#anchor).
myst_heading_anchors = 3
myst_enable_extensions = ["deflist", "colon_fence"]

# autodoc: members in source order, type hints in the description (readable signatures).
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# -n (nitpicky) resolves every type named in a signature. Names from the standard library
# and urllib3 have no target here: the site builds offline (no intersphinx download), so
# those are listed as known outside names instead of silently ignoring every miss.
_OUTSIDE = [
    r"ssl\..*", r"socket\..*", r"logging\..*", r"typing\..*", r"collections\.abc\..*",
    r"threading\..*", r"enum\..*", r"argparse\..*", r"datetime\..*",
    r"Any", r"Callable", r"Iterator", r"Iterable", r"Mapping", r"MutableMapping", r"Sequence",
    r"TextIO", r"T", r"TypeVar", r"Literal", r"IntEnum", r"Exception", r"ValueError",
    r"TimeoutError", r"TypeError", r"RuntimeError", r"ImportError", r"OSError",
    r"SSLContext", r"Protocol", r"Frame", r"Headers", r"Response", r"WebSocketConnection",
    r"ClientConfig", r"DeflateOptions", r"EventEmitter", r"wsclient\..*",
    r"float", r"int", r"str", r"bytes", r"bool", r"None", r"bytearray", r"memoryview",
    r"dict", r"list", r"tuple", r"object", r"frozenset", r"type",
]
nitpick_ignore_regex = [(role, name) for role in ("py:class", "py:obj", "py:data", "py:exc") for name in _OUTSIDE]

# Every warning is fatal (none is suppressed).
suppress_warnings: list[str] = []

html_theme = "furo"
html_title = f"wsclient {release}"
html_static_path: list[str] = []
