"""Write docker compose's ``.env`` with a random ``JWT_SECRET``, once (``make compose-env``).

Compose reads ``.env`` beside docker-compose.yml by itself, so every ``docker compose up``
and ``docker compose run`` uses the same secret: tokens survive a redeploy. An existing
``.env`` that already sets ``JWT_SECRET`` is left as it is; one without it gets the line
appended. The file is created mode 0600.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path


def ensure(path: Path) -> bool:
    """True when a secret was written, False when ``path`` already had one."""
    text = path.read_text() if path.exists() else ""
    if any(
        line.strip().startswith(("JWT_SECRET=", "export JWT_SECRET=")) for line in text.splitlines()
    ):
        return False
    line = f"JWT_SECRET={secrets.token_hex(32)}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as f:
        if text and not text.endswith("\n"):
            f.write("\n")
        f.write(line)
    return True


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / ".env"
    if ensure(path):
        print(f"{path}: JWT_SECRET written (keep this file: a new secret signs everyone out)")
    else:
        print(f"{path}: JWT_SECRET already set, left unchanged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
