"""When training stops early: a signal, a step limit or a time budget, agreed by all processes.

SIGINT and SIGTERM do not kill a run: they finish the current step, and the trainer then
checkpoints and returns. In a multi-process job every rank must leave the loop at the same
step, so each step the ranks agree on the most urgent reason any of them has.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator

from pixelrnn.training.distributed import DistributedContext

STOP_REASONS = ("max_steps", "time_budget", "signal")  # least to most urgent


class Stopper:
    """Decides, before each step, whether the run stops there and why.

    Args:
        max_steps: stop once this many steps are done in all (None: no limit).
        time_budget_minutes: stop after this many minutes of this process's loop (None: no
            limit).
        dist: the process group that must agree.
    """

    def __init__(
        self,
        max_steps: int | None,
        time_budget_minutes: float | None,
        dist: DistributedContext,
    ) -> None:
        self.max_steps = max_steps
        self.time_budget_minutes = time_budget_minutes
        self.dist = dist
        self.signalled = False
        self.started = time.monotonic()

    def start_clock(self) -> None:
        """Count the time budget from now."""
        self.started = time.monotonic()

    @contextlib.contextmanager
    def catching_signals(self) -> Iterator[None]:
        """Within the block, SIGINT / SIGTERM ask for a stop instead of killing the process
        (main thread only; the previous handlers come back afterwards)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum: int, frame: object) -> None:
            self.signalled = True

        old = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

    def reason(self, global_step: int) -> str | None:
        """Why this process would stop before step ``global_step + 1``, or None."""
        if self.signalled:
            return "signal"
        if self.max_steps is not None and global_step >= self.max_steps:
            return "max_steps"
        budget = self.time_budget_minutes
        if budget is not None and time.monotonic() - self.started >= 60 * budget:
            return "time_budget"
        return None

    def agreed_reason(self, global_step: int) -> str | None:
        """:meth:`reason`, agreed on by all processes (the most urgent reason wins), so that
        every rank leaves the loop at the same step."""
        reason = self.reason(global_step)
        code = 0 if reason is None else 1 + STOP_REASONS.index(reason)
        code = self.dist.all_reduce_max(code)
        return None if code == 0 else STOP_REASONS[code - 1]
