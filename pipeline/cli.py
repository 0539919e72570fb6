"""The renderer's command once ComfyUI (or, for --server and --ray, only this pack) is loaded; render.py
parses the arguments and starts ComfyUI, then calls run(args)."""
import logging
import signal
import sys
import time
from pathlib import Path

from . import jobs
from .jobs import prepare, record, seed_of
from .measure import PeakMemory
from .progress import Progress

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
    sys.unraisablehook = quiet_about_cut_short_event_loops(sys.unraisablehook)
    if hasattr(runner, "withdraw"):
        runner.withdraw()
    signum = getattr(stop, "signum", signal.SIGINT)  # a plain KeyboardInterrupt is Ctrl-C
    done = sum(manifest.done(job) for job in job_list)
    kept = (f"; {manifest.path} holds them, and the same command again renders the other {len(job_list) - done}"
            if manifest.path and not manifest.unwritten else "")
    print(f"!! stopped ({signal.Signals(signum).name}): {done} of {len(job_list)} jobs done{kept}", file=sys.stderr)
    return 128 + signum


def quiet_about_cut_short_event_loops(hook):
    """`hook`, but silent about an event loop whose collection fails because the stop cut it short (its
    `__del__` closes it, and a loop a signal left half-run can fail there: "Exception ignored in
    BaseEventLoop.__del__" and a traceback under the "stopped" line). Set by the renderer once it is stopping."""
    def quiet(unraisable):
        if getattr(unraisable.object, "__qualname__", "") != "BaseEventLoop.__del__":
            hook(unraisable)
    return quiet


def run_serial(runner, workflow, base, todo, manifest, args):
    """Run the jobs one after the other on `runner`; a failing job is recorded and the batch goes on."""
    from .in_process import JobFailed
    from ..stand_ins.files import StandInError
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
            entry = record(manifest, job, "done", rendered.outputs, seed_of(prompt), time.perf_counter() - started,
                           rendered.graph_seconds, **(peak.fields if runner.kind != "server" else {}))
            for path in entry["outputs"]:
                log.info("job %s wrote %s", job.key, path)
    finally:
        progress.close()
    return failed


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
