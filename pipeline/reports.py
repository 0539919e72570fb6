"""`--report` (and every --sweep): each done job's videos measured by the quality engine (quality/), the
report written beside the video (<video>.quality.json, and its curves as <video>.quality.png) and its
numbers into the job's manifest entry ("quality").

It runs after the jobs, over every done job whose videos have no report yet, so a stopped batch gets
its reports on the next run like its missing renders. The videos are measured as written (after the
format's compression: what a viewer sees), read a frame at a time. The context windows come from
the job's own prompt: its Context Windows (AnimateLCM) node and the sampler's steps.
"""
import logging
from pathlib import Path

from ..motion.context_windows import ContextOptions
from ..quality.plot import plot
from ..quality.report import QualityInputError, measure_video, summary, to_json
from ..video.decode import read_frames
from ..video.errors import VideoFileError
from ..video.formats import is_loadable
from . import jobs

log = logging.getLogger("animatelcm.render")
WINDOWS_NODE = "ALCM_ContextWindows"
WINDOW_INPUTS = ("context_length", "overlap", "schedule", "closed_loop", "fuse", "freenoise")


def prompt_windows(prompt):
    """(ContextOptions or None, the sampler's steps) of an API prompt."""
    steps = [n["inputs"]["steps"] for n in prompt.values() if isinstance(n["inputs"].get("steps"), int)]
    nodes = [n["inputs"] for n in prompt.values() if n["class_type"] == WINDOWS_NODE]
    if len(nodes) != 1 or any(isinstance(nodes[0].get(k), list) for k in WINDOW_INPUTS):
        if nodes:
            log.warning("!! %s: no window seams measured", "several Context Windows nodes" if len(nodes) > 1 else
                        "the Context Windows node's settings come from other nodes")
        return None, max(steps, default=1)
    return ContextOptions(**{k: nodes[0][k] for k in WINDOW_INPUTS if k in nodes[0]}), max(steps, default=1)


def report_video(path, windows, steps):
    """Measure one video file; write its report and plot beside it. Returns the manifest's entry for it."""
    report = measure_video(read_frames(str(path)), windows, steps, name=Path(path).name)
    report["video"] = str(path)
    json_path, plot_path = Path(f"{path}.quality.json"), Path(f"{path}.quality.png")
    json_path.write_text(to_json(report))
    from PIL import Image
    Image.fromarray(plot(report)).save(plot_path)
    return {"report": str(json_path), "plot": str(plot_path), **summary(report)}


def write_reports(manifest, job_list, prompt_of):
    """Reports for every done job of `job_list` whose videos have none yet. `prompt_of(job)` is its prompt."""
    for job in job_list:
        entry = manifest.data["jobs"].get(job.key)
        if not manifest.done(job) or set(entry.get("quality", {})) >= set(entry["outputs"]):
            continue
        windows, steps = prompt_windows(prompt_of(job))
        quality = dict(entry.get("quality", {}))
        for output in entry["outputs"]:
            if output in quality:
                continue
            if not is_loadable(output):
                quality[output] = {"note": "not a video"}
                continue
            try:
                quality[output] = report_video(output, windows, steps)
            except (QualityInputError, VideoFileError, OSError) as error:
                log.warning("!! job %s: no quality report for %s: %s", job.key, output, error)
                quality[output] = {"note": str(error)}
                continue
            numbers = quality[output]
            log.info("job %s: flicker %.4f, warping error %.3g, motion %.2f px, window seam %.2fx, loop seam %.2fx "
                     "(%s)", job.key, numbers["flicker"], numbers["warping_error"], numbers["motion"],
                     numbers["window_seam"], numbers["loop_seam"], numbers["report"])
        try:
            manifest.annotate(job, quality=quality)
        except jobs.ManifestNotWritten as error:
            log.error("!! %s", error)
