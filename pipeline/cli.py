"""The renderer's command once ComfyUI (or, for --server and --ray, only this pack) is loaded; render.py
parses the arguments and starts ComfyUI, then calls run(args)."""
import logging
import sys
import time
from pathlib import Path

from . import jobs

log = logging.getLogger("animatelcm.render")


def _make_runner(args):
    if args.server:
        from .server_client import ServerRunner
        return ServerRunner(args.server, args.output_dir or Path("output"))
    from .in_process import InProcessRunner
    return InProcessRunner()


class Progress:
    """tqdm bars: one over the jobs, one over the steps of the node that runs now."""

    def __init__(self, total, quiet):
        from tqdm import tqdm
        self.tqdm, self.quiet = tqdm, quiet
        self.overall = tqdm(total=total, desc="jobs", unit="job", position=0, disable=quiet or total < 2)
        self.job = None

    def start(self, key, titles):
        self.key, self.titles = key, titles
        self.job = self.tqdm(total=1, desc=f"job {key}", unit="step", position=1, leave=False, disable=self.quiet)

    def node(self, node_id):
        self.job.set_description(f"job {self.key}: {self.titles.get(node_id, node_id)}")

    def step(self, value, total):
        if self.job.total != total:
            self.job.reset(total=total)
        self.job.n = value
        self.job.refresh()

    def finish(self):
        self.job.close()
        self.overall.update(1)

    def close(self):
        self.overall.close()


def prepare(workflow, base, job, catalog):
    """The job's API prompt: the workflow with the command's overrides, then the job's own."""
    return jobs.apply_overrides(workflow, {**base, **job.overrides}, catalog)


def run(args):
    try:
        runner = _make_runner(args) if args.ray is None else None
        if runner is None:
            from .ray_jobs import RayRunner
            runner = RayRunner(args)
        if args.stand_ins and args.server:
            raise jobs.JobError("--stand-ins makes files in this process's ComfyUI only; a server renders with "
                                "the files in its own model folders")
        workflow = jobs.load_workflow(args.workflow, runner.catalog)
        base = {**jobs.resize(workflow, args.frames, args.size, args.preview),
                **dict(jobs.parse_set(text) for text in args.overrides)}
        jobs.apply_overrides(workflow, base, runner.catalog)  # a wrong --set stops here, before any job
        job_list = jobs.read_jobs(args.jobs) if args.jobs else [jobs.Job("render", {})]
        manifest_path = args.manifest or (args.jobs.with_name(args.jobs.stem + ".manifest.json") if args.jobs else None)
        manifest = jobs.Manifest(manifest_path, args.workflow)
    except (jobs.JobError, OSError) as error:
        print(f"!! {error}", file=sys.stderr)
        return 2
    todo = [job for job in job_list if not manifest.done(job)]
    if len(todo) < len(job_list):
        log.info("%d of %d jobs are done already (%s): skipped", len(job_list) - len(todo), len(job_list),
                 manifest.path)
    failed = runner.run_jobs(workflow, base, todo, manifest, args) if hasattr(runner, "run_jobs") else \
        run_serial(runner, workflow, base, todo, manifest, args)
    if manifest.path:
        log.info("manifest: %s", manifest.path)
    for job in failed:
        print(f"!! job {job.key} failed: {manifest.data['jobs'][job.key]['error']}", file=sys.stderr)
    return 1 if failed else 0


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
                rendered = runner.render(prompt, args.stand_ins, args.size, progress.step, progress.node)
            except (jobs.JobError, JobFailed, StandInError) as error:
                manifest.record(job, "failed", error=str(error), seconds=time.perf_counter() - started)
                failed.append(job)
                continue
            finally:
                progress.finish()
            entry = manifest.record(job, "done", rendered.outputs, _seed(prompt), time.perf_counter() - started,
                                    rendered.graph_seconds)
            for path in entry["outputs"]:
                log.info("job %s wrote %s", job.key, path)
    finally:
        progress.close()
    return failed


def _seed(prompt):
    found = jobs.seeds(prompt)
    return next(iter(found.values())) if len(set(found.values())) == 1 else (found or None)
