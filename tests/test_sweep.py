"""The renderer's --report and --sweep, through its own command (render.main) in the test host: reports beside
the videos and in the manifest, a 2x2 sweep stopped after its first cell and resumed, its contact sheet and
table checked cell by cell, and the values, grids and combinations refused before anything renders.

The graphs need no model: Load Video (a texture moving by a known step, in the input folder) -> Save Video.
"""
import csv
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fixture_quality import moving, with_seams

STEP = 0.5  # pixels the input clip's texture moves per frame


@pytest.fixture(scope="module")
def pipeline(pack):
    return lambda name: importlib.import_module(f"{pack.__name__}.pipeline.{name}")


@pytest.fixture(scope="module")
def clip(host, pack):
    """12 frames of 32x32, lossless, in the input folder."""
    images = torch.from_numpy(np.stack(moving(12, size=32, step=(STEP, 0)))).float() / 255
    pack.video.encode.save_video(images, str(host.input_dir / "sweep_moving.png"), "apng", 8.0)
    return "sweep_moving.png"


@pytest.fixture
def workflow(clip, tmp_path):
    prompt = {"1": {"class_type": "ALCM_LoadVideo", "_meta": {"title": "Load"}, "inputs": {
                  "video": clip, "frame_cap": 0, "skip_first_frames": 0, "select_every_nth": 1,
                  "resize_to_multiple_of_8": False}},
              "2": {"class_type": "ALCM_SaveVideo", "_meta": {"title": "Save"}, "inputs": {
                  "images": ["1", 0], "filename_prefix": f"sweep/{tmp_path.name}/clip", "format": "apng",
                  "frame_rate": 8.0, "loop_count": 0, "pingpong": False, "quality": 90}}}
    path = tmp_path / "moving.json"
    path.write_text(json.dumps(prompt))
    return path


def render(pipeline, *argv):
    return pipeline("render").main([str(a) for a in argv] + ["--quiet"])


def videos(host, tmp_path):
    return sorted((host.output_dir / "sweep" / tmp_path.name).glob("clip_*_.png"))


class StopAfterFirstJob(logging.Handler):
    """Ctrl-C as a user would press it, right after the renderer logs that its first job wrote its video."""

    def emit(self, record):
        if " wrote " in record.getMessage():
            os.kill(os.getpid(), signal.SIGINT)


def test_a_2x2_sweep_resumes_after_a_stop_and_writes_its_sheet_and_table(host, pack, pipeline, workflow, tmp_path):
    manifest_path = tmp_path / "grid.manifest.json"
    argv = [workflow, "--sweep", "Load.select_every_nth=1,2", "--sweep", "Load.frame_cap=4,6",
            "--manifest", manifest_path]
    logger = logging.getLogger("animatelcm.render")
    stop, level = StopAfterFirstJob(), logger.level
    logger.addHandler(stop)
    logger.setLevel(logging.INFO)
    try:
        assert render(pipeline, *argv) == 128 + signal.SIGINT
    finally:
        logger.removeHandler(stop)
        logger.setLevel(level)
    first = json.loads(manifest_path.read_text())["jobs"]
    assert list(first) == ["select_every_nth=1  frame_cap=4"] and len(videos(host, tmp_path)) == 1

    assert render(pipeline, *argv) == 0  # the same command: the other 3 cells, then every report and the sheet
    jobs = json.loads(manifest_path.read_text())["jobs"]
    assert list(jobs) == ["select_every_nth=1  frame_cap=4", "select_every_nth=1  frame_cap=6",
                          "select_every_nth=2  frame_cap=4", "select_every_nth=2  frame_cap=6"]
    kept = {k: v for k, v in jobs["select_every_nth=1  frame_cap=4"].items() if k != "quality"}
    assert kept == first["select_every_nth=1  frame_cap=4"]  # not rendered again
    assert len(videos(host, tmp_path)) == 4

    # the table: one row per cell, each cell the manifest's and the report's
    with open(tmp_path / "grid.csv", newline="") as file:
        table = list(csv.DictReader(file))
    assert [(row["Load.select_every_nth"], row["Load.frame_cap"]) for row in table] == [
        ("1", "4"), ("1", "6"), ("2", "4"), ("2", "6")]
    for row, (key, entry) in zip(table, jobs.items()):
        [(video, numbers)] = entry["quality"].items()
        report = json.loads(open(numbers["report"]).read())
        assert row["status"] == "done" and row["video"] == video
        assert float(row["seconds"]) == entry["seconds"] and float(row["peak_ram_mib"]) == entry["peak_ram_mib"] > 0
        assert all(float(row[m]) == numbers[m] for m in ("flicker", "warping_error", "motion", "window_seam",
                                                         "loop_seam"))
        assert report["frames"] == int(row["Load.frame_cap"])
        assert abs(float(row["motion"]) - STEP * int(row["Load.select_every_nth"])) < 0.1
    markdown = (tmp_path / "grid.md").read_text().splitlines()
    assert markdown[2].startswith("| Load.select_every_nth | Load.frame_cap | status | seconds |")
    assert len([line for line in markdown if line.startswith("| 1 |") or line.startswith("| 2 |")]) == 4

    # the sheet: a row per cell, its frames across (32 px frames shown 4x, at most 6 of them)
    sheet_module = pack.quality.sheet
    sheet = np.asarray(Image.open(tmp_path / "grid.sheet.png").convert("RGB"))
    margin, gap, thumb = sheet_module.MARGIN, sheet_module.GAP, sheet_module.THUMB
    assert sheet.shape == (2 * margin + sheet_module.HEADER + 4 * (thumb + gap),
                           2 * margin + sheet_module.LABEL + 6 * (thumb + gap), 3)
    for r, entry in enumerate(jobs.values()):
        [video] = entry["quality"]
        frames, _ = pack.video.decode.load_video(video, multiple_of=None)
        top = margin + sheet_module.HEADER + r * (thumb + gap)
        for n in range(len(frames)):  # 4 or 6 frames: every one is shown
            left = margin + sheet_module.LABEL + n * (thumb + gap)
            expected = np.repeat(np.repeat((frames[n] * 255).round().byte().numpy(), 4, 0), 4, 1)
            assert np.array_equal(sheet[top:top + thumb, left:left + thumb], expected), (r, n)
        label = sheet[top:top + thumb, margin:margin + sheet_module.LABEL]
        assert (label < 128).any()  # the settings and numbers are written there


def test_report_beside_each_video_and_in_the_manifest(host, pipeline, workflow, tmp_path, caplog):
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text('{"id": "all"}\n{"id": "every-other", "Load.select_every_nth": 2}\n')
    caplog.set_level(logging.INFO, logger="animatelcm.render")
    assert render(pipeline, workflow, "--jobs", jobs_file, "--report") == 0
    assert "job every-other: flicker 0.96" in caplog.text
    jobs = json.loads((tmp_path / "jobs.manifest.json").read_text())["jobs"]
    for key, step in (("all", STEP), ("every-other", 2 * STEP)):
        [(video, numbers)] = jobs[key]["quality"].items()
        report = json.loads(open(f"{video}.quality.json").read())
        assert numbers["report"] == f"{video}.quality.json" and abs(report["motion"] - step) < 0.1
        assert numbers["motion"] == report["motion"] and report["video"] == video
        assert Image.open(f"{video}.quality.png").size[0] == 768
    # again: done jobs and their reports are kept, nothing is measured twice
    caplog.clear()
    assert render(pipeline, workflow, "--jobs", jobs_file, "--report") == 0
    assert "flicker" not in caplog.text and json.loads((tmp_path / "jobs.manifest.json").read_text())["jobs"] == jobs


def test_the_windows_of_a_jobs_prompt_mark_the_seams_of_its_report(pack, pipeline, tmp_path):
    reports = pipeline("reports")
    prompt = {"4": {"class_type": "ALCM_ContextWindows", "inputs": {
                  "model": ["3", 0], "context_length": 16, "overlap": 4, "schedule": "static", "closed_loop": False,
                  "fuse": "pyramid", "freenoise": True}},
              "7": {"class_type": "ALCM_Sampler", "inputs": {"steps": 2, "model": ["4", 0]}}}
    windows, steps = reports.prompt_windows(prompt)
    assert windows == pack.motion.context_windows.ContextOptions(16, 4, "static", False, "pyramid", True)
    assert steps == 2 and reports.prompt_windows({"7": prompt["7"]}) == (None, 2)
    path = tmp_path / "seamed.png"
    frames = with_seams(moving(40, size=32), [12, 16, 24, 28])
    pack.video.encode.save_video(torch.from_numpy(np.stack(frames)).float() / 255, str(path), "apng", 8.0)
    numbers = reports.report_video(path, windows, steps)
    assert numbers["window_seam"] > 5
    assert json.loads(open(numbers["report"]).read())["window_seam"]["seams"] == [12, 16, 24, 28]


@pytest.mark.parametrize("sweep, message", [
    (["Load.frame_cap=4,-1"], "--sweep Load.frame_cap: '-1' is outside 0 to 100000, so node 1 (Load) would refuse it"),
    (["Save.format=webp,avi"], "--sweep Save.format: 'avi' is not one of its choices (webp, webm, apng, gif, mp4)"),
    (["Save.frame_rate=8,nan"], "--sweep Save.frame_rate: 'nan' is not a finite number"),
    (["Load.frame_caps=1,2"], "node 1 (Load) has no input 'frame_caps'"),
    (["Load.frame_cap=two"], "Load.frame_cap: 'two' is not an INT"),
], ids=["out-of-range", "not-a-choice", "nan", "no-such-input", "not-a-number"])
def test_a_value_a_node_would_refuse_stops_the_sweep_before_anything_renders(host, pipeline, workflow, tmp_path,
                                                                              capsys, sweep, message):
    argv = [workflow, "--manifest", tmp_path / "refused.manifest.json"]
    for axis in sweep:
        argv += ["--sweep", axis]
    assert render(pipeline, *argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("!! ")
    assert not (tmp_path / "refused.manifest.json").exists() and not videos(host, tmp_path)


@pytest.mark.parametrize("extra, message", [
    (["--sweep", "Save.quality=" + ",".join(map(str, range(1, 12))),
      "--sweep", "Save.frame_rate=" + ",".join(map(str, range(1, 11)))],
     "--sweep makes 110 renders (11 x 10 values), more than 100: add --yes to render them all"),
    (["--sweep", "Save.format"], "--sweep 'Save.format': write NODE.INPUT=V1,V2,..."),
    (["--sweep", "Save.format=webp,,gif"], "an empty value"),
    (["--sweep", "Save.format=webp,gif,webp"], "--sweep Save.format: webp is listed twice"),
    (["--sweep", "Save.format=webp", "--sweep", "Save.format=gif"], "--sweep Save.format is given twice"),
    (["--sweep", "Save.format=webp,gif", "--jobs", "jobs.jsonl"], "--sweep makes its own jobs"),
], ids=["over-100-cells", "no-values", "empty-value", "repeated-value", "repeated-input", "with-jobs"])
def test_grids_that_cannot_be_swept_are_refused_by_the_first_checks(pipeline, workflow, tmp_path, capsys, monkeypatch,
                                                                    extra, message):
    (tmp_path / "jobs.jsonl").write_text('{"id": "a"}\n')
    monkeypatch.chdir(tmp_path)  # the jobs file, and the default manifest, are beside the command
    assert render(pipeline, workflow, *extra) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list(tmp_path.glob("*.manifest.json"))


def test_the_docs_example_refuses_a_cfg_the_sampler_would_not_take(pipeline, tmp_path, capsys):
    """docs/pipelines.md's example grid on the shipped t2v workflow (read against the host's nodes; nothing loads)."""
    t2v = pipeline("preflight").WORKFLOWS / "animatelcm_t2v.json"
    assert render(pipeline, t2v, "--sweep", "AnimateLCM Sampler.steps=1,2,4,8", "--sweep",
                  "AnimateLCM Sampler.cfg=1,0.5", "--manifest", tmp_path / "t2v.manifest.json") == 2
    assert capsys.readouterr().err == ("!! --sweep AnimateLCM Sampler.cfg: '0.5' is outside 1.0 to 10.0, so node 7 "
                                       "(AnimateLCM Sampler (4 steps)) would refuse it; give values it takes\n")


def test_a_grid_over_100_cells_is_refused_before_comfyui_or_torch_is_imported(tmp_path):
    """The real command in a fresh Python: one `!!` line, exit code 2, nothing of ComfyUI or torch imported."""
    render_py = Path(__file__).resolve().parents[1] / "pipeline" / "render.py"
    run = subprocess.run([sys.executable, "-X", "importtime", str(render_py), "workflows/animatelcm_t2v.json",
                          "--sweep", "AnimateLCM Sampler.seed=" + ",".join(map(str, range(11))),
                          "--sweep", "AnimateLCM Sampler.steps=" + ",".join(map(str, range(1, 11)))],
                         cwd=render_py.parents[1], capture_output=True, text=True, timeout=120)
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in run.stderr.splitlines()
                if line.startswith("import time:")}
    said = [line for line in run.stderr.splitlines() if not line.startswith("import time:")]
    assert run.returncode == 2 and said == [
        "!! --sweep makes 110 renders (11 x 10 values), more than 100: add --yes to render them all, or sweep fewer "
        "values"]
    assert not imported & {"comfy", "execution", "nodes", "torch", "cv2"}


def test_cells_are_named_by_their_settings_and_json_lists_hold_commas(pipeline):
    sweep = pipeline("sweep")
    axes = sweep.parse(['Positive prompt.text=["a fox, running", "a cat"]', "AnimateLCM Sampler.seed= 1, 2"])
    assert [(job.key, job.overrides) for job in sweep.sweep_jobs(axes)] == [
        ("text=a fox, running  seed=1", {"Positive prompt.text": "a fox, running", "AnimateLCM Sampler.seed": "1"}),
        ("text=a fox, running  seed=2", {"Positive prompt.text": "a fox, running", "AnimateLCM Sampler.seed": "2"}),
        ("text=a cat  seed=1", {"Positive prompt.text": "a cat", "AnimateLCM Sampler.seed": "1"}),
        ("text=a cat  seed=2", {"Positive prompt.text": "a cat", "AnimateLCM Sampler.seed": "2"})]
    shared = sweep.sweep_jobs(sweep.parse(["4.text=a,b", "5.text=c"]))  # two axes on inputs of one name
    assert [job.key for job in shared] == ["4.text=a  5.text=c", "4.text=b  5.text=c"]
