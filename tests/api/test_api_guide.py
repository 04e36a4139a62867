"""docs/api-guide.md has a curl example for every route of the API, and every example names a real route."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "api-guide.md"


def examples() -> list[tuple[str, str]]:
    """(method, path) of each curl command in the guide's sh blocks."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), flags=re.S):
        for command in re.split(r"\n(?=curl )", block.replace("\\\n", " ")):
            command = command.strip()
            if not command.startswith("curl "):
                continue
            argv = shlex.split(command.split("#")[0], posix=True)
            method = "GET"
            if "-X" in argv:
                method = argv[argv.index("-X") + 1]
            elif any(flag in argv for flag in ("-sI", "-I")):
                method = "HEAD"
            elif any(flag in argv for flag in ("-d", "-F")):
                method = "POST"
            url = next(arg for arg in argv if arg.startswith("$API"))
            found.append((method, url.removeprefix("$API").split("?")[0]))
    return found


def route_pattern(path: str) -> re.Pattern:
    pattern = re.sub(r"\{path\}", r"[^?]+", path)
    return re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", pattern) + "$")


def test_every_route_has_an_example_and_every_example_a_route(app):
    operations = [(method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops]
    shown = examples()
    assert len(shown) > 30
    missing = [
        (method, path)
        for method, path in operations
        if not any(m == method and route_pattern(path).match(p) for m, p in shown)
    ]
    assert missing == [], f"routes without a curl example in {GUIDE.name}: {missing}"
    unknown = [
        (m, p) for m, p in shown if not any(m == method and route_pattern(path).match(p) for method, path in operations)
    ]
    assert unknown == [], f"examples naming no route: {unknown}"
