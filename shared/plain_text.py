"""Terminal output as plain text: Ultralytics' progress bars and colours are ANSI escape sequences and
carriage-return redraws, which an error text or a served log must not carry."""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """``text`` without escape sequences; of a line redrawn with carriage returns only its last state."""
    lines = []
    for line in _ANSI.sub("", text).split("\n"):
        lines.append(line.rstrip("\r").rsplit("\r", 1)[-1])
    return "\n".join(lines)
