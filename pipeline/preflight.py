"""What the renderer checks before ComfyUI starts: every argument and file it can judge alone (the
numbers, the workflow file, the job file, the manifest, the output folder), so a mistake costs a
second and one `!!` line instead of ComfyUI's start-up and a traceback.

Standard library only: render.py loads this module and jobs.py as a package of their own, before
ComfyUI or the pack is imported.
"""
import difflib
import tempfile
from pathlib import Path

from . import jobs, sweep

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"


def check(args):
    """Raise jobs.JobError naming the first thing in `args` that cannot work, and what to do."""
    if args.workers is not None and args.workers < 1:
        raise jobs.JobError(f"--workers {args.workers}: give 1 or more Ray workers")
    if args.stand_ins and args.server:
        raise jobs.JobError("--stand-ins makes files in this process's ComfyUI only; a server renders with "
                            "the files in its own model folders")
    data = jobs.read_workflow(existing_workflow(args.workflow))
    jobs.check_resize(jobs.node_types(data), args.frames, args.size, args.preview)
    if args.jobs:
        jobs.read_jobs(args.jobs)
    sweep.check(args)
    if args.input_dir and args.input_dir.exists() and not args.input_dir.is_dir():
        raise jobs.JobError(f"--input-dir {args.input_dir} is a file: give the folder the input files are in")
    manifest = sweep.manifest_path(args) if args.sweep else jobs.manifest_path(args.manifest, args.jobs)
    if manifest:
        if manifest.is_dir():
            raise jobs.JobError(f"the manifest {manifest} is a folder: give --manifest a file name (e.g. "
                                f"{manifest / 'manifest.json'})")
        jobs.Manifest(manifest, args.workflow)  # refuses one it cannot read, or of another shape
        writable_folder(manifest.parent, "the manifest's folder", "--manifest")
    if args.output_dir or args.server or args.ray is not None:  # else ComfyUI's own output folder
        writable_folder(args.output_dir or Path("output"), "the output folder", "--output-dir")


def existing_workflow(path):
    """`path` when it is a file; else refuse, naming the shipped workflows (and the likeliest one)."""
    path = Path(path)
    if path.is_file():
        return path
    shipped = sorted(p.name for p in WORKFLOWS.glob("*.json"))
    guess = difflib.get_close_matches(path.name, shipped, n=1, cutoff=0.6)
    raise jobs.JobError(
        f"no workflow file {path}{' (that is a folder)' if path.is_dir() else ''}: the shipped workflows, in "
        f"{_shown(WORKFLOWS)}/, are {', '.join(shipped)}"
        + (f" (did you mean {_shown(WORKFLOWS / guess[0])}?)" if guess else ""))


def writable_folder(path, what, option):
    """Make the folder `path` when missing and check that a file can be written in it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise jobs.JobError(f"{what} {path} is a file, not a folder: give a folder to {option} "
                            "(it is made when missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise jobs.JobError(f"cannot write into {what} {path} ({error.strerror or error}): give {option} a "
                            "folder you can write to") from error


def _shown(path):
    """`path` relative to the working folder when it is under it, as a user would type it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
