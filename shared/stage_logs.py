"""Stage logs as plain text, what ``GET /v1/jobs/{id}/logs`` serves.

Each stage's process writes ``<artifacts root>/<stage.dir>/stage.log`` (worker/supervisor.py ``launch``). Served,
a log carries no ANSI escape sequences, and a line redrawn with carriage returns (a tqdm bar) is its last state
only (shared/plain_text.py). Lines are cut at ``\\n`` bytes only, which never occur inside a UTF-8 sequence, so a
log read piece by piece decodes as it would whole.

Without a stage index the logs of every stage come in pipeline order, each under a line ``==> stage N (type) <==``
(N as ``?stage=N`` counts, from 0); ``tail`` is then the last lines of each stage, as ``tail -n N a b`` does.
A re-run job's reused stage shows the log of the stage whose outputs it reuses (its ``dir`` is that stage's)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.errors import PathOutsideRoot
from shared.plain_text import strip_ansi
from shared.states import JobState, StageState
from shared.storage import safe_resolve

LOG_NAME = "stage.log"
_CHUNK = 1 << 16


def log_path(root: Path, stage: Any) -> Path | None:
    """Where ``stage`` writes its log (None if its folder could not be inside ``root``)."""
    try:
        return safe_resolve(root, f"{stage.dir}/{LOG_NAME}", must_exist=False, what="log")
    except PathOutsideRoot:
        return None


def header(stage: Any) -> str:
    return f"==> stage {stage.index} ({stage.type}) <=="


def plain_lines(data: bytes) -> list[str]:
    """Log bytes (whole lines, the last one perhaps unfinished) as plain-text lines."""
    if not data:
        return []
    lines = strip_ansi(data.decode("utf-8", "replace")).split("\n")
    if data.endswith(b"\n"):
        lines.pop()  # the empty string after the last newline is no line
    return lines


def tail_start(handle, size: int, lines: int) -> int:
    """The byte offset at which the last ``lines`` lines of the file's first ``size`` bytes start (0 when it has
    fewer). Reads backwards a chunk at a time, so a long log is not read whole for its last lines."""
    position = size - 1 if size and _byte_at(handle, size - 1) == b"\n" else size  # a final newline ends a line
    needed = lines
    while position > 0:
        start = max(0, position - _CHUNK)
        handle.seek(start)
        block = handle.read(position - start)
        end = len(block)
        while (newline := block.rfind(b"\n", 0, end)) >= 0:
            needed -= 1
            if needed == 0:
                return start + newline + 1
            end = newline
        position = start
    return 0


def _byte_at(handle, offset: int) -> bytes:
    handle.seek(offset)
    return handle.read(1)


def read_log(path: Path | None, tail: int | None = None) -> list[str]:
    """A stage's log as it is now, its unfinished last line included; [] before the stage has written one."""
    if path is None:
        return []
    try:
        with path.open("rb") as handle:
            size = path.stat().st_size
            start = tail_start(handle, size, tail) if tail else 0
            handle.seek(start)
            data = handle.read(size - start)
    except FileNotFoundError:
        return []
    return plain_lines(data)


def read_logs(root: Path, job: Any, stage: int | None = None, tail: int | None = None) -> str:
    """The text of one stage's log (``stage``), or of every stage's under its header line."""
    if stage is not None:
        lines = read_log(log_path(root, job.stages[stage]), tail)
    else:
        lines = []
        for each in job.stages:
            lines.append(header(each))
            lines.extend(read_log(log_path(root, each), tail))
    return "".join(line + "\n" for line in lines)


class LogFollower:
    """The new lines of a job's stage logs, one ``poll`` at a time, for ``follow=true``.

    Stages are followed in order: a stage's log is complete once the stage is terminal (its process has ended
    before the worker records the state), so the follower moves to the next stage only then, after reading
    what is left. Until then it hands out whole lines only (an unfinished line, a progress bar being redrawn,
    waits for its newline). Each poll is given a fresh job snapshot, read *before* the files: a stage seen
    terminal has written its last byte. The first poll starts each stage it reaches at its last ``tail`` lines,
    an unfinished one among them (handed out once finished), as ``tail -n N -f`` does. ``done`` once every
    followed stage is finished and read to its end."""

    def __init__(self, root: Path, stage: int | None = None, tail: int | None = None):
        self.root = root
        self.stage = stage
        self.tail = tail
        self.position = 0  # which of the followed stages is being read
        self.offset = 0  # bytes of its log handed out
        self.headed = False
        self.first = True
        self.done = False

    def poll(self, job: Any) -> str:
        stages: Sequence[Any] = job.stages if self.stage is None else [job.stages[self.stage]]
        job_over = JobState(job.state).is_terminal()
        out: list[str] = []
        while self.position < len(stages):
            stage = stages[self.position]
            finished = job_over or StageState(stage.state).is_terminal()
            if self.stage is None and not self.headed:
                out.append(header(stage))
                self.headed = True
            out.extend(self._new_lines(log_path(self.root, stage), finished))
            if not finished:
                break
            self.position, self.offset, self.headed = self.position + 1, 0, False
        self.first = False
        self.done = self.position >= len(stages)
        return "".join(line + "\n" for line in out)

    def _new_lines(self, path: Path | None, finished: bool) -> list[str]:
        if path is None:
            return []
        try:
            with path.open("rb") as handle:
                size = path.stat().st_size
                if size < self.offset:  # the log was replaced: start it over
                    self.offset = 0
                if self.first and self.tail:
                    self.offset = max(self.offset, tail_start(handle, size, self.tail))
                handle.seek(self.offset)
                data = handle.read(size - self.offset)
        except FileNotFoundError:
            return []
        if not finished:
            data = data[: data.rfind(b"\n") + 1]  # whole lines only while the stage may still write
        self.offset += len(data)
        return plain_lines(data)
