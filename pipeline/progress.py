"""The renderer's progress: tqdm bars on a terminal, plain log lines elsewhere (for the serial and the Ray runs)."""
import contextlib
import logging
import sys
import time

log = logging.getLogger("animatelcm.render")


def bar_class():
    """tqdm, for bars that a Ctrl-C may cut short while they are being made (a stop raises wherever the
    renderer is): tqdm closes every bar it collects, and closing one that never got its position prints a
    traceback under the renderer's "stopped" line."""
    from tqdm import tqdm

    class Bar(tqdm):
        def __del__(self):
            if hasattr(self, "pos"):  # made whole: close it as tqdm does
                super().__del__()

    return Bar


class Progress:
    """On a terminal, tqdm bars: one over the jobs, one over the steps of the node that runs now, with log
    lines written above them. Elsewhere (a log file, a pipe) plain log lines, a few per node, and no
    cursor movement. Rates count from the first step a node reports: the time before it (loading) is
    no step."""

    PLAIN_EVERY = 10.0  # seconds between two plain progress lines of one node

    def __init__(self, total, quiet, stream=None):
        self.stream = stream or sys.stderr
        self.total, self.done, self.quiet = total, 0, quiet
        self.bars = not quiet and self.stream.isatty()
        self.job, self.key, self.titles, self.node_id = None, None, {}, None
        self.redirect = contextlib.ExitStack()
        if self.bars:
            from tqdm.contrib.logging import logging_redirect_tqdm
            self.tqdm = bar_class()
            self.redirect.enter_context(logging_redirect_tqdm())
            self.overall = self.tqdm(total=total, desc="jobs", unit="job", position=0, disable=total < 2,
                                     file=self.stream)

    def start(self, key, titles):
        self.key, self.titles, self.node_id, self.first = key, titles, None, None
        if self.bars:
            self._job_bar(f"job {key}", 1, 0)
        elif not self.quiet:
            log.info("job %s (%d of %d)", key, self.done + 1, self.total)

    def _job_bar(self, description, total, initial):
        if self.job is not None:
            self.job.close()
        # `initial`: the rate counts the steps after this one, over the time after it
        self.job = self.tqdm(total=total, initial=initial, desc=description, unit="step", position=1, leave=False,
                             file=self.stream)

    def node(self, node_id):
        self.node_id, self.first = node_id, None
        if self.bars:
            self.job.set_description(f"job {self.key}: {self.titles.get(node_id, node_id)}")

    def step(self, value, total):
        now = time.perf_counter()
        if self.first is None or total != self.first[2] or value < self.last:  # a new node, or a new pass
            self.first, self.printed, self.last = (now, value, total), now, value
            if self.bars:
                self._job_bar(self.job.desc, total, value)
            return
        if self.bars:
            self.job.update(value - self.last)
        elif not self.quiet and (now - self.printed >= self.PLAIN_EVERY or value == total):
            started, first_value, _ = self.first
            rate = (value - first_value) / max(now - started, 1e-9)
            log.info("job %s: %s %d/%d (%s)", self.key, self.titles.get(self.node_id, self.node_id or "?"), value,
                     total, f"{rate:.2f} steps/s" if rate >= 1 else f"{1 / rate:.2f} s/step" if rate else "?")
            self.printed = now
        self.last = value

    def finish(self):
        """A job ended (done or failed)."""
        self.done += 1
        if self.bars:
            if self.job is not None:  # Ray's jobs run side by side, with no bar of their own
                self.job.close()
                self.job = None
            self.overall.update(1)

    def close(self):
        if self.bars:
            if self.job is not None:  # a job that was stopped
                self.job.close()
            self.overall.close()
        self.redirect.close()
