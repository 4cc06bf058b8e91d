"""The Lua scripts' sources: finding ``lua/`` (a checkout or an installed wheel), reading
every ``<name>-<N>.lua`` with its ``-- @include name`` lines replaced by
``lua/lib/name.lua``, and their SHA1 for EVALSHA; and telling a NOSCRIPT reply (the script
is not loaded: it did not run) from other errors."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from redis.exceptions import NoScriptError, ResponseError


def _lua_dir() -> Path:
    """``lua/`` of a source checkout (editable install), else the copy a wheel installs
    under ``<prefix>/share/onsale/lua`` (pyproject ``data-files``)."""
    import sys

    for candidate in (
        Path(__file__).resolve().parent.parent / "lua",
        Path(sys.prefix) / "share" / "onsale" / "lua",
    ):
        if (candidate / "lib" / "common.lua").is_file():
            return candidate
    raise FileNotFoundError("the lua/ scripts are neither beside engine/ nor installed")


LUA_DIR = _lua_dir()
_INCLUDE = re.compile(r"^-- @include (\w+)$", re.MULTILINE)


@dataclass(frozen=True)
class Script:
    name: str
    source: str
    sha: str
    num_keys: int


def _expand(text: str) -> str:
    return _INCLUDE.sub(lambda m: (LUA_DIR / "lib" / f"{m.group(1)}.lua").read_text(), text)


def load_sources(lua_dir: Path = LUA_DIR) -> dict[str, Script]:
    """Every ``<name>-<N>.lua`` under lua_dir, keyed by name."""
    scripts: dict[str, Script] = {}
    for path in sorted(lua_dir.glob("*.lua")):
        name, _, n = path.stem.rpartition("-")
        source = _expand(path.read_text())
        sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        scripts[name] = Script(name, source, sha, int(n))
    return scripts


SOURCES = load_sources()  # every script, read once at import


def is_noscript(exc: BaseException) -> bool:
    return isinstance(exc, NoScriptError) or (
        isinstance(exc, ResponseError) and str(exc).startswith("NOSCRIPT")
    )
