"""Sample a benchmark server with py-spy, and summarise where its time goes.

``python -m bench.run --profile bocadillo`` records each Bocadillo server while it is
measured, into ``bench/results/raw/profile-<scenario>-<target>-<rep>.txt`` (py-spy's raw,
collapsed stacks) with a summary beside it (``.summary.txt``): the functions that use the
most time, by their own samples and by samples with them anywhere on the stack.
``python -m bench.profile FILE`` prints the summary of a recorded file.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import IO

__all__ = ["Profiler", "summarize"]


class Profiler:
    """py-spy sampling one server process until ``stop()`` (on ``core`` if given; the
    load generator starts it from the load core, which it inherits)."""

    def __init__(self, pid: int, path: Path, *, core: str | None, log: IO[bytes]) -> None:
        binary = Path(sys.executable).with_name("py-spy")
        command = [str(binary) if binary.exists() else shutil.which("py-spy") or "py-spy"]
        command += ["record", "-p", str(pid), "-o", str(path), "--format", "raw"]
        command += ["--rate", "250", "--nonblocking"]
        self.path = path
        if core is not None:
            command = ["taskset", "-c", core, *command]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )

    def stop(self) -> None:
        """Stop sampling (SIGINT makes py-spy write its file) and write the summary."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.path.exists():
            self.path.with_suffix(".summary.txt").write_text(summarize(self.path))


def _function(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/module.py:123)".
    name, _, where = frame.partition(" (")
    module = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in module:
            module = module.split(marker, 1)[1]
    return f"{name} ({module})"


def summarize(path: Path, top: int = 30) -> str:
    """The ``top`` functions by own samples and by inclusive samples, in % of all samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [
            _function(frame)
            for frame in stack.split(";")
            if not frame.startswith(("process ", "thread ("))  # with --threads/--idle
        ]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if not total:
        return "no samples\n"
    lines = [f"{total} samples", "", "own time (the function itself):"]
    lines += [f"{100 * n / total:6.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive time (the function and what it calls):"]
    lines += [f"{100 * n / total:6.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        sys.stdout.write(summarize(Path(argument)))
