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
    guess = likeliest(path.name, shipped)
    raise jobs.JobError(
        f"no workflow file {path}{' (that is a folder)' if path.is_dir() else ''}: the shipped workflows, in "
        f"{_shown(WORKFLOWS)}/, are {', '.join(shipped)}"
        + (f" (did you mean {_shown(WORKFLOWS / guess)}?)" if guess else ""))


def likeliest(name, names):
    """The one of `names` that `name` most likely misspells, or None. Stems are compared by difflib's ratio
    (the share of letters in matching runs); among the names within 0.05 of the best, the fewest typos win,
    two swapped letters counting as one: animatelcm_tv2 is as close to animatelcm_v2v as to animatelcm_t2v by
    ratio, but one swap from the second and two edits from the first."""
    stem = (Path(name).stem if Path(name).suffix.lower() == ".json" else name).casefold()
    ratios = {other: difflib.SequenceMatcher(None, stem, Path(other).stem.casefold()).ratio() for other in names}
    best = max(ratios.values(), default=0.0)
    if best < 0.6:
        return None
    close = [other for other, ratio in ratios.items() if ratio >= best - 0.05]
    return min(close, key=lambda other: (typos(stem, Path(other).stem.casefold()), -ratios[other]))


def typos(a, b):
    """Edits from `a` to `b`: letters added, removed, changed, or two neighbours swapped (the optimal string
    alignment distance)."""
    previous2, previous = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], previous2[j - 2] + 1)
        previous2, previous = previous, row
    return previous[len(b)]


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
