"""The renderer's command once ComfyUI (or, for --server and --ray, only this pack) is loaded; render.py
parses the arguments and starts ComfyUI, then calls run(args)."""
import contextlib
import logging
import signal
import sys
import time
from pathlib import Path

from . import jobs
from .measure import PeakMemory

log = logging.getLogger("animatelcm.render")


def _make_runner(args):
    if args.server:
        try:
            import aiohttp  # noqa: F401  (ComfyUI's own requirement; a driver outside ComfyUI may lack it)
        except ImportError as error:
            raise jobs.JobError("--server needs aiohttp in this Python: pip install aiohttp") from error
        from .server_client import ServerRunner
        return ServerRunner(args.server, args.output_dir or Path("output"))
    from .in_process import InProcessRunner
    return InProcessRunner()


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


def prepare(workflow, base, job, catalog):
    """The job's API prompt: the workflow with the command's overrides, then the job's own."""
    return jobs.apply_overrides(workflow, {**base, **job.overrides}, catalog)


def run(args):
    """The renderer's command (render.py has checked the arguments): 0 when every job is done and recorded,
    1 when one failed or could not be recorded, 2 for a refusal, 128 + the signal when stopped."""
    from .in_process import JobFailed
    try:
        runner = _make_runner(args) if args.ray is None else None
        if runner is None:
            from .ray_jobs import RayRunner
            runner = RayRunner(args)
        workflow = jobs.load_workflow(args.workflow, runner.catalog)
        base = {**jobs.resize(workflow, args.frames, args.size, args.preview),
                **dict(jobs.parse_set(text) for text in args.overrides)}
        jobs.apply_overrides(workflow, base, runner.catalog)  # a wrong --set stops here, before any job
        cut = jobs.cut_story(workflow, args.frames, args.preview)
        if cut:
            log.warning("%s", cut)
        job_list = jobs.read_jobs(args.jobs) if args.jobs else [jobs.Job("render", {})]
        manifest = jobs.Manifest(jobs.manifest_path(args.manifest, args.jobs), args.workflow)
        if args.sweep:  # a value a node would refuse stops here, before any cell renders
            job_list, manifest = sweep_jobs(args, workflow, base, runner.catalog)
    except (jobs.JobError, JobFailed, OSError) as error:  # JobFailed: a --server that does not answer
        print(f"!! {error}", file=sys.stderr)
        return 2
    todo = [job for job in job_list if not manifest.done(job)]
    if len(todo) < len(job_list):
        log.info("%d of %d jobs are done already (%s): skipped", len(job_list) - len(todo), len(job_list),
                 manifest.path)
    try:
        failed = runner.run_jobs(workflow, base, todo, manifest, args) if hasattr(runner, "run_jobs") else \
            run_serial(runner, workflow, base, todo, manifest, args)
        if args.report or args.sweep:
            measure_videos(args, workflow, base, job_list, manifest, runner.catalog)
    except KeyboardInterrupt as stop:
        return _stopped(stop, runner, manifest, job_list)
    if manifest.path:
        log.info("manifest: %s", manifest.path)
    for job in failed:
        print(f"!! job {job.key} failed: {manifest.data['jobs'][job.key]['error']}", file=sys.stderr)
    if manifest.unwritten:
        print(f"!! {len(manifest.unwritten)} jobs are not in the manifest {manifest.path} (it could not be written, "
              "see above): a re-run renders them again", file=sys.stderr)
    return 1 if failed or manifest.unwritten else 0


def _stopped(stop, runner, manifest, job_list):
    """Ctrl-C or SIGTERM: take this run's prompts off a server, and say what is done and kept."""
    # an event loop the stop cut short (ComfyUI's executor runs one) reports its task's KeyboardInterrupt,
    # with a traceback, when the task is collected: the stop is said here instead
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    if hasattr(runner, "withdraw"):
        runner.withdraw()
    signum = getattr(stop, "signum", signal.SIGINT)  # a plain KeyboardInterrupt is Ctrl-C
    done = sum(manifest.done(job) for job in job_list)
    kept = (f"; {manifest.path} holds them, and the same command again renders the other {len(job_list) - done}"
            if manifest.path and not manifest.unwritten else "")
    print(f"!! stopped ({signal.Signals(signum).name}): {done} of {len(job_list)} jobs done{kept}", file=sys.stderr)
    return 128 + signum


def record(manifest, job, status, *details, **more):
    """manifest.record; a manifest that cannot be written is said, with the outputs, and the batch goes on."""
    try:
        return manifest.record(job, status, *details, **more)
    except jobs.ManifestNotWritten as error:
        log.error("!! %s", error)
        return manifest.data["jobs"][job.key]


def run_serial(runner, workflow, base, todo, manifest, args):
    """Run the jobs one after the other on `runner`; a failing job is recorded and the batch goes on."""
    from .in_process import JobFailed
    from .stand_ins import StandInError
    progress = Progress(len(todo), args.quiet)
    failed = []
    try:
        for job in todo:
            progress.start(job.key, workflow.titles)
            started = time.perf_counter()
            try:
                prompt = prepare(workflow, base, job, runner.catalog)
                with PeakMemory() as peak:
                    rendered = runner.render(prompt, args.stand_ins, jobs.stand_in_size(args.size, args.preview),
                                             progress.step, progress.node)
            except (jobs.JobError, JobFailed, StandInError) as error:
                progress.finish()
                record(manifest, job, "failed", error=str(error), seconds=time.perf_counter() - started)
                failed.append(job)
                continue
            progress.finish()
            entry = record(manifest, job, "done", rendered.outputs, _seed(prompt), time.perf_counter() - started,
                           rendered.graph_seconds, **(peak.fields if runner.kind != "server" else {}))
            for path in entry["outputs"]:
                log.info("job %s wrote %s", job.key, path)
    finally:
        progress.close()
    return failed


def _seed(prompt):
    found = jobs.seeds(prompt)
    return next(iter(found.values())) if len(set(found.values())) == 1 else (found or None)


def sweep_jobs(args, workflow, base, catalog):
    """(the cells as jobs, the sweep's manifest), every value checked against its node first."""
    from . import sweep
    axes = sweep.parse(args.sweep)
    sweep.check_cells(workflow, base, axes, catalog)
    cells = sweep.sweep_jobs(axes)
    log.info("sweep: %d cells (%s)", len(cells), " x ".join(f"{len(a.values)} {a.key}" for a in axes))
    return cells, jobs.Manifest(sweep.manifest_path(args), args.workflow)


def measure_videos(args, workflow, base, job_list, manifest, catalog):
    """--report: the quality report of each done job's videos; --sweep: those and the sheet and table."""
    from . import reports
    reports.write_reports(manifest, job_list, lambda job: prepare(workflow, base, job, catalog))
    if args.sweep:
        from . import sweep, sweep_sheet
        axes = sweep.parse(args.sweep)
        title = f"{Path(args.workflow).name}: " + " x ".join(axis.key for axis in axes)
        sweep_sheet.write_sheet_and_table(title, axes, job_list, manifest)
