"""Jobs on Ray actors (`--ray [ADDRESS] --workers N`): each actor is one ComfyUI in its own process
that keeps its models loaded from job to job (one actor per GPU where the cluster has GPUs).

The driver reads the workflow and applies every job's overrides (against a worker's node
definitions), so a bad job fails the same way it does in a serial run; the workers only render.
Outputs come back to the driver as bytes and land in its output folder; the driver alone writes
the manifest. A job whose worker dies is given to another worker (a new one is started in its place).
Ray is imported only here, and only when --ray is used.
"""
import atexit
import collections
import logging
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

from . import jobs
from .jobs import prepare, record, seed_of
from .progress import Progress
from .render import pipeline_module, start_comfyui
from .server_client import write_unique

ATTEMPTS = 3  # a job is tried on at most this many workers before it counts as failed
log = logging.getLogger("animatelcm.render")


class ComfyUIWorker:
    """The body of a Ray actor: starts ComfyUI in the actor's process and renders prompts there."""

    def __init__(self, comfyui, cpu, input_dir):
        self.output_dir = Path(tempfile.mkdtemp(prefix="animatelcm-ray-worker-"))
        atexit.register(shutil.rmtree, self.output_dir, ignore_errors=True)  # outputs travel to the driver
        pack = start_comfyui(comfyui, cpu, self.output_dir, input_dir)
        self.in_process = pipeline_module(pack, "in_process")
        self.measure = pipeline_module(pack, "measure")
        self.runner = self.in_process.InProcessRunner()

    def close(self):
        """Remove this worker's scratch folder (its outputs are the driver's by now); the process ends with Ray."""
        shutil.rmtree(self.output_dir, ignore_errors=True)

    def catalog(self):
        """The node definitions, in /object_info's shape and JSON-safe (they travel to the driver)."""
        import json
        return json.loads(json.dumps(dict(self.runner.catalog.items()), default=str))

    def render(self, prompt, stand_ins, size):
        """{"status", "outputs": [(relative path, bytes)], "graph_seconds", "error", "worker"}."""
        import os
        import socket
        worker = f"{socket.gethostname()}:{os.getpid()}"
        try:
            with self.measure.PeakMemory() as peak:
                rendered = self.runner.render(prompt, stand_ins, size)
        except (self.in_process.JobFailed, ValueError) as error:  # stand-in and job errors are ValueErrors
            return {"status": "failed", "error": str(error), "worker": worker}
        outputs = []
        for path in rendered.outputs:
            outputs.append((str(Path(path).relative_to(self.output_dir)), Path(path).read_bytes()))
            Path(path).unlink()  # the driver keeps the copy
        return {"status": "done", "outputs": outputs, "graph_seconds": rendered.graph_seconds, "worker": worker,
                "measured": peak.fields}


class RayRunner:
    kind = "ray"

    def __init__(self, args):
        try:
            import ray
        except ImportError as error:
            raise jobs.JobError("--ray needs Ray: pip install 'ray>=2.9' (or the pack's `ray` extra)") from error
        import ray.cloudpickle
        from . import ray_jobs, render, server_client
        for module in (ray_jobs, render, server_client):
            # the pack is not importable by name on a worker (ComfyUI loads it by path), so its
            # worker code travels by value; the worker then loads the pack through its own ComfyUI
            ray.cloudpickle.register_pickle_by_value(module)
        self.ray = ray
        if not ray.is_initialized():
            on_sigterm = signal.getsignal(signal.SIGTERM)
            ray.init(address=args.ray or None, log_to_driver=args.verbose, logging_level=logging.WARNING)
            if on_sigterm is not None and threading.current_thread() is threading.main_thread():
                # ray.init made SIGTERM exit at once; the renderer's handler stops as Ctrl-C does
                signal.signal(signal.SIGTERM, on_sigterm)
        gpus = int(ray.cluster_resources().get("GPU", 0))
        self.workers_wanted = args.workers or gpus or 2
        self.actor_class = ray.remote(num_gpus=1 if gpus else 0, num_cpus=1, max_restarts=0)(ComfyUIWorker)
        self.boot = (str(args.comfyui) if args.comfyui else None, args.cpu,
                     str(args.input_dir) if args.input_dir else None)
        self.output_dir = Path(args.output_dir or "output")
        self.actors = [self._start() for _ in range(self.workers_wanted)]
        log.info("Ray: %d workers (%s)", len(self.actors), "one GPU each" if gpus else "CPU")
        self.catalog = ray.get(self.actors[0].catalog.remote())

    def _start(self):
        return self.actor_class.remote(*self.boot)

    def run_jobs(self, workflow, base, todo, manifest, args):
        ray = self.ray
        progress = Progress(len(todo), args.quiet)
        failed, queue, running = [], collections.deque(), {}
        for job in todo:
            try:
                queue.append((job, prepare(workflow, base, job, self.catalog), 0))
            except jobs.JobError as error:
                record(manifest, job, "failed", error=str(error))
                failed.append(job)
                progress.finish()
        idle = list(self.actors)
        try:
            while queue or running:
                while queue and idle:
                    job, prompt, attempts = queue.popleft()
                    actor = idle.pop()
                    running[actor.render.remote(prompt, args.stand_ins, jobs.stand_in_size(args.size, args.preview))] = (job, prompt, attempts + 1,
                                                                                       time.perf_counter(), actor)
                [done], _ = ray.wait(list(running), num_returns=1)
                job, prompt, attempts, started, actor = running.pop(done)
                try:
                    result = ray.get(done)
                except ray.exceptions.RayActorError as error:  # the worker process died (killed, out of memory)
                    log.warning("job %s: its worker died (%s); %s", job.key, type(error).__name__,
                                "trying another" if attempts < ATTEMPTS else "giving up")
                    idle.insert(0, self._start())  # used last: a live worker takes the job while it starts
                    if attempts < ATTEMPTS:
                        queue.appendleft((job, prompt, attempts))
                        continue
                    result = {"status": "failed", "error": f"its worker died {attempts} times: {error}"}
                except ray.exceptions.RayTaskError as error:
                    result = {"status": "failed", "error": str(error.cause if hasattr(error, "cause") else error)}
                    idle.append(actor)
                else:
                    idle.append(actor)
                seconds = time.perf_counter() - started
                if result["status"] == "done":
                    try:
                        outputs = [write_unique(self.output_dir / relative, data)
                                   for relative, data in result["outputs"]]
                    except OSError as error:  # the output folder: this job fails, the batch goes on
                        result = {"status": "failed", "worker": result["worker"],
                                  "error": f"its outputs could not be written into {self.output_dir} ({error})"}
                if result["status"] == "done":
                    record(manifest, job, "done", outputs, seed_of(prompt), seconds, result["graph_seconds"],
                           worker=result["worker"], **result.get("measured", {}))
                    for path in outputs:
                        log.info("job %s wrote %s", job.key, path)
                else:
                    record(manifest, job, "failed", error=result["error"], seconds=seconds, worker=result.get("worker"))
                    failed.append(job)
                progress.finish()
        finally:
            progress.close()
            self._close(idle)
        return failed

    def _close(self, actors):
        """Idle workers remove their scratch folders (Ray ends a worker's process without its exit handlers)."""
        try:
            self.ray.get([actor.close.remote() for actor in actors], timeout=30)
        except (self.ray.exceptions.GetTimeoutError, self.ray.exceptions.RayError) as error:  # a dead worker
            log.debug("a worker's scratch folder stays in its temp folder: %s", error)
