"""A sweep's contact sheet (PNG: a row per cell, its frames across, settings and numbers at the left) and
its table (CSV and Markdown: the settings, time, peak memory and each measure per cell), made from the
manifest once every cell is rendered and measured. Each cell's first video is the one shown.
"""
import csv
import logging
import math
from pathlib import Path

from ..quality.sheet import SheetRow, contact_sheet, shown_frames, thumbnail
from ..video.decode import read_frames
from ..video.errors import VideoFileError

log = logging.getLogger("animatelcm.render")
MEASURES = ("flicker", "warping_error", "motion", "window_seam", "loop_seam")


def outputs_of(manifest_path):
    """(sheet, CSV, Markdown) paths beside the sweep's manifest: x.sweep.manifest.json -> x.sweep.sheet.png..."""
    path = Path(manifest_path)
    stem = path.name[:-len(".manifest.json")] if path.name.endswith(".manifest.json") else path.stem
    return tuple(path.with_name(stem + suffix) for suffix in (".sheet.png", ".csv", ".md"))


def cell_video(entry):
    """(path, numbers) of the first measured video of a manifest entry, or (None, None)."""
    for path, numbers in (entry or {}).get("quality", {}).items():
        if "flicker" in numbers:
            return path, numbers
    return None, None


def table_rows(axes, job_list, manifest):
    """One dict per cell: its settings, status, time, peak memory, measures and video."""
    rows = []
    for job in job_list:
        entry = manifest.data["jobs"].get(job.key) or {}
        path, numbers = cell_video(entry)
        row = {axis.key: job.overrides[axis.key] for axis in axes}
        row.update(status=entry.get("status", "not rendered"), seconds=entry.get("seconds"),
                   graph_seconds=entry.get("graph_seconds"), peak_ram_mib=entry.get("peak_ram_mib"),
                   peak_vram_mib=entry.get("peak_vram_mib"))
        row.update({measure: (numbers or {}).get(measure) for measure in MEASURES})
        row["video"] = path or ""
        rows.append(row)
    return rows


def sheet_row(job, row, entry):
    """The sheet's row of one cell: its label, numbers and (for a measured video) frames."""
    if row["status"] != "done" or not row["video"]:
        why = (entry or {}).get("error") or ("not rendered" if row["status"] != "done" else "no video to show")
        return SheetRow(job.key, failed=why)
    lines = [f"flicker {row['flicker']:.4f}   motion {row['motion']:.2f} px",
             f"warping error {row['warping_error']:.3g}",
             f"window seam {row['window_seam']:.2f}x   loop seam {row['loop_seam']:.2f}x",
             f"{row['seconds']:.1f} s" + (f"   peak RAM {row['peak_ram_mib'] / 1024:.2f} GiB"
                                            if row["peak_ram_mib"] is not None else "")
             + (f"   VRAM {row['peak_vram_mib'] / 1024:.2f} GiB" if row.get("peak_vram_mib") is not None else "")]
    try:
        thumbnails = [thumbnail(frame) for frame in read_frames(row["video"])]  # small: 128 px high
    except (VideoFileError, OSError) as error:
        return SheetRow(job.key, lines, failed=f"cannot read {row['video']}: {error}")
    indices = shown_frames(len(thumbnails))
    return SheetRow(job.key, lines, [thumbnails[i] for i in indices], indices)


def write_sheet_and_table(title, axes, job_list, manifest):
    """Write the sheet and the table beside the manifest; returns their paths."""
    sheet_path, csv_path, markdown_path = outputs_of(manifest.path)
    rows = table_rows(axes, job_list, manifest)
    if all(row["peak_vram_mib"] is None for row in rows):  # no GPU: no column of dashes
        for row in rows:
            del row["peak_vram_mib"]
    sheet = contact_sheet(title, [sheet_row(job, row, manifest.data["jobs"].get(job.key))
                                  for job, row in zip(job_list, rows)])
    sheet.save(sheet_path)
    with open(csv_path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_shown(row[k]) for k in header) + " |" for row in rows]
    markdown_path.write_text(f"# {title}\n\n" + "\n".join(lines) + "\n")
    for path in (sheet_path, csv_path, markdown_path):
        log.info("sweep: wrote %s", path)
    return sheet_path, csv_path, markdown_path


def _shown(value):
    """A table cell for Markdown: numbers to 4 significant figures, nothing as a dash, pipes escaped."""
    if value is None or value == "":
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value).replace("|", "\\|")
