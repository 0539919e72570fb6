"""The headless renderer (pipeline/): overrides, job batches and their manifest, a real ComfyUI server,
and Ray workers, each run through the renderer's own command (render.main) in the test host.

Most tests render a graph that needs no model (Empty Image -> Save Video (AnimateLCM)), so they stay
quick; the shipped workflows and the Ray-equals-serial check use the full-size stand-ins (slow).
"""
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import comfy_host
from fixture_models import rendered_side

WORKFLOWS = sorted((Path(__file__).resolve().parents[1] / "workflows").glob("*.json"))
T2V = WORKFLOWS[0].parent / "animatelcm_t2v.json"
PROMPT_TRAVEL = WORKFLOWS[0].parent / "animatelcm_prompt_travel.json"
RENDER = comfy_host.REPO / "pipeline" / "render.py"


@pytest.fixture(scope="module")
def pipeline(pack):
    return lambda name: importlib.import_module(f"{pack.__name__}.pipeline.{name}")


def _as_ui_workflow(prompt):
    """The UI format of a prompt of plain nodes (widgets in declaration order, links for [id, slot] inputs)."""
    import nodes
    ui_nodes, links = [], []
    for node_id, node in prompt.items():
        types = nodes.NODE_CLASS_MAPPINGS[node["class_type"]].INPUT_TYPES()
        declared = {**types["required"], **types.get("optional", {})}  # Save Video's images is optional
        inputs, widgets = [], []
        for name, spec in declared.items():
            if name not in node["inputs"]:
                continue
            value = node["inputs"][name]
            if isinstance(value, list):  # a link
                links.append([len(links) + 1, int(value[0]), value[1], int(node_id), len(inputs), spec[0]])
                inputs.append({"name": name, "type": spec[0], "link": len(links)})
            else:
                widgets.append(value)
        ui_nodes.append({"id": int(node_id), "type": node["class_type"], "mode": 0, "inputs": inputs,
                         "outputs": [], "widgets_values": widgets, "title": node["_meta"]["title"]})
    return {"nodes": ui_nodes, "links": links, "version": 0.4}


def _render(pipeline, *argv):
    return pipeline("render").main([str(a) for a in argv] + ["--quiet"])


def _frames(pack, path):
    frames, _ = pack.video.decode.load_video(str(path))
    return frames


# --- overrides ---------------------------------------------------------------------------------

def test_overrides_by_title_id_and_type(host, pipeline):
    jobs, catalog = pipeline("jobs"), pipeline("workflow_api").LiveCatalog()
    workflow = jobs.load_workflow(T2V, catalog)
    before = json.dumps(workflow.prompt, sort_keys=True)
    prompt = jobs.apply_overrides(workflow, {
        "AnimateLCM Sampler (4 steps).seed": "7",  # the node's title, as text from the command line
        "4.text": "a cat",  # an id
        "empty latent image.batch_size": 2.0,  # the node's display name in any case; a whole float is an INT
        "ALCM_Sampler.cfg": "1",  # its type
    }, catalog)
    sampler = prompt["7"]["inputs"]
    assert (sampler["seed"], sampler["cfg"], prompt["4"]["inputs"]["text"]) == (7, 1.0, "a cat")
    assert prompt["6"]["inputs"]["batch_size"] == 2 and isinstance(prompt["6"]["inputs"]["batch_size"], int)
    assert json.dumps(workflow.prompt, sort_keys=True) == before  # the workflow itself is unchanged


def test_wrong_names_list_what_there_is(host, pipeline):
    jobs, catalog = pipeline("jobs"), pipeline("workflow_api").LiveCatalog()
    workflow = jobs.load_workflow(T2V, catalog)
    with pytest.raises(jobs.JobError, match=r"has no input 'seeds'; its inputs: model, positive, negative, "
                                            r"latent_image, seed, steps, cfg"):
        jobs.apply_overrides(workflow, {"7.seeds": 1}, catalog)
    with pytest.raises(jobs.JobError, match=r"no node 'Sampler'.*7 \(AnimateLCM Sampler \(4 steps\)\)"):
        jobs.apply_overrides(workflow, {"Sampler.seed": 1}, catalog)
    with pytest.raises(jobs.JobError, match=r"'CLIPTextEncode' fits nodes 4 \(Positive prompt\), 5 \(Negative prompt\)"):
        jobs.apply_overrides(workflow, {"CLIPTextEncode.text": "x"}, catalog)
    with pytest.raises(jobs.JobError, match="7.seed: 'abc' is not an INT"):
        jobs.apply_overrides(workflow, {"7.seed": "abc"}, catalog)


def test_wrong_name_on_the_command_line_stops_before_any_job(host, pipeline, colour_workflow, capsys):
    assert _render(pipeline, colour_workflow, "--set", "Canvas.colour=3") == 2
    assert "node 1 (Canvas) has no input 'colour'; its inputs: width, height, batch_size, color" in \
        capsys.readouterr().err


def test_stand_in_videos_take_the_previews_size(host, pipeline, tmp_path):
    """--preview renders its latents at 128 px: a stand-in source video is made that size too (it was 512 px, so a
    video-to-video preview sampled 512 px frames at many times the promised time)."""
    prompt = {"1": {"class_type": "ALCM_LoadVideo", "inputs": {"video": "a_missing_source.mp4", "frame_cap": 2,
                                                               "skip_first_frames": 0, "select_every_nth": 1,
                                                               "resize_to_multiple_of_8": True}},
              "2": {"class_type": "ALCM_SaveVideo", "inputs": {"images": ["1", 0], "filename_prefix":
                                                               f"pipeline/{tmp_path.name}", "format": "webp",
                                                               "frame_rate": 8.0, "loop_count": 0, "pingpong": False,
                                                               "quality": 90}}}
    path = tmp_path / "source.json"
    path.write_text(json.dumps(prompt))
    manifest = tmp_path / "manifest.json"
    assert _render(pipeline, path, "--stand-ins", "--preview", "--manifest", manifest) == 0
    [video] = json.loads(manifest.read_text())["jobs"]["render"]["outputs"]
    assert tuple(_frames(host.pack, video).shape) == (8, 128, 128, 3)  # --preview: 8 frames of 128 px


def test_api_and_ui_format_name_nodes_alike(host, pipeline, tmp_path):
    """An API export carries titles in _meta; a --set by title reaches the same node in both formats."""
    jobs, workflow_api = pipeline("jobs"), pipeline("workflow_api")
    catalog = workflow_api.LiveCatalog()
    ui = jobs.load_workflow(T2V, catalog)
    api_path = tmp_path / "t2v_api.json"
    api_path.write_text(json.dumps(_as_api_export(workflow_api, T2V)))
    api = jobs.load_workflow(api_path, catalog)
    change = {"Positive prompt.text": "a heron", "AnimateLCM Sampler (4 steps).seed": 11}
    assert jobs.apply_overrides(ui, change, catalog) == jobs.apply_overrides(api, change, catalog)



@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_shipped_workflow_reads_alike_in_ui_and_api_format(host, pipeline, path, tmp_path):
    jobs, workflow_api = pipeline("jobs"), pipeline("workflow_api")
    catalog = workflow_api.LiveCatalog()
    api_path = tmp_path / f"{path.stem}_api.json"
    api_path.write_text(json.dumps(_as_api_export(workflow_api, path)))
    ui, api = jobs.load_workflow(path, catalog), jobs.load_workflow(api_path, catalog)
    assert jobs.apply_overrides(ui, {}, catalog) == jobs.apply_overrides(api, {}, catalog)

def _as_api_export(workflow_api, path):
    """What the frontend's Export (API) writes: the prompt with each node's title under _meta."""
    ui = json.loads(path.read_text())
    prompt = workflow_api.to_api(ui)
    titles = {str(n["id"]): n.get("title") for n in ui["nodes"]}
    for node_id, node in prompt.items():
        node["_meta"] = {"title": titles.get(node_id) or node["class_type"]}
    return prompt


# --- --preview, --frames and a job's own values -------------------------------------------------

def test_a_preview_that_cuts_a_prompt_travel_story_says_so(host, pipeline, caplog):
    """--preview's 8 frames never reach the shipped story's keyframes 16, 32 and 48: the renderer says so before
    the render, and how to see all of it; a workflow without a Prompt Schedule, or enough frames, gets no word."""
    # the command says it before any job runs (this job then stops at once: its checkpoint is missing)
    assert _render(pipeline, PROMPT_TRAVEL, "--preview", "--set", "CheckpointLoaderSimple.ckpt_name=not_here.ckpt") == 1
    assert "--preview renders 8 of the workflow's 64 frames" in caplog.text
    jobs, catalog = pipeline("jobs"), pipeline("workflow_api").LiveCatalog()
    story, t2v = jobs.load_workflow(PROMPT_TRAVEL, catalog), jobs.load_workflow(T2V, catalog)
    said = jobs.cut_story(story, None, preview=True)
    assert said.startswith("--preview renders 8 of the workflow's 64 frames: keyframes of its Prompt Schedule after "
                           "frame 7 are never reached") and said.endswith("Add --frames 64 to render all of it")
    assert jobs.cut_story(story, 16).startswith("--frames 16 renders 16 of the workflow's 64 frames")
    assert jobs.cut_story(story, 64, preview=True) is None and jobs.cut_story(story, None) is None
    assert jobs.cut_story(t2v, None, preview=True) is None


def test_a_jobs_own_values_win_over_preview_frames_and_set(host, pipeline):
    """As docs/pipelines.md says: a job line is the most specific, so its batch_size renders 16 frames at the
    preview's size, and its seed wins over --set's."""
    jobs, cli, catalog = pipeline("jobs"), pipeline("cli"), pipeline("workflow_api").LiveCatalog()
    workflow = jobs.load_workflow(T2V, catalog)
    base = {**jobs.resize(workflow, None, None, preview=True), "AnimateLCM Sampler (4 steps).seed": 3}
    prompt = cli.prepare(workflow, base, jobs.Job("long", {"Empty Latent Image.batch_size": 16,
                                                           "AnimateLCM Sampler (4 steps).seed": 9}), catalog)
    latent = prompt["6"]["inputs"]
    assert (latent["batch_size"], max(latent["width"], latent["height"]), prompt["7"]["inputs"]["seed"]) == (16, 128, 9)


# --- the renderer's own process: its glibc heap, nothing left in the working folder --------------

def test_the_kept_heap_is_the_one_measured_and_the_users_own_wins(pipeline):
    import bench_vs_ade
    heap = pipeline("heap")
    assert heap.KEPT_HEAP == bench_vs_ade.TUNED_HEAP  # the settings docs/benchmarks.md measured
    glibc = heap.runs_on_glibc()
    assert heap.settings_to_add({}) == ((heap.KEPT_HEAP, None) if glibc else ({}, "not glibc"))
    assert heap.settings_to_add({}, wanted=False) == ({}, "--no-tuned-heap")
    if glibc:  # any one of the three, as a variable or a glibc tunable, and the renderer adds none
        assert heap.settings_to_add({"MALLOC_TRIM_THRESHOLD_": "0"}) == (
            {}, "your environment sets MALLOC_TRIM_THRESHOLD_")
        assert heap.settings_to_add({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.top_pad=0"}) == (
            {}, "your environment sets MALLOC_TOP_PAD_")
        assert heap.settings_to_add({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})[0] == heap.KEPT_HEAP


def _heap_of_its_comfyui(argv, env, cwd):
    """Run the renderer command (no MALLOC_ settings of this process's passed on, only `env`); once it starts
    ComfyUI (after any restart of itself), read the environment of its process, the one glibc read when the
    process started. Returns ({name: value} of the three heap settings, exit code, what it wrote on stderr)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    process = subprocess.Popen([sys.executable, str(RENDER), *map(str, argv)], cwd=cwd, env={**inherited, **env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    said, heap = [], None
    try:
        for line in process.stderr:
            said.append(line)
            if line.startswith("starting ") and heap is None:
                environ = Path(f"/proc/{process.pid}/environ").read_bytes().decode().split("\0")
                heap = dict(entry.split("=", 1) for entry in environ if entry.startswith("MALLOC_"))
        return heap, process.wait(timeout=300), "".join(said)
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize("case", ["default", "users-own", "no-tuned-heap"])
def test_the_renderers_own_comfyui_runs_with_the_kept_heap_and_leaves_no_input_folder(host, pipeline,
                                                                                      colour_workflow, tmp_path, case):
    """The command's own ComfyUI process starts with the kept-heap settings, unless the user's environment sets
    one of them (then theirs alone) or --no-tuned-heap; and a render in a folder without input/ leaves none."""
    heap = pipeline("heap")
    env = {"MALLOC_TOP_PAD_": "1048576"} if case == "users-own" else {}
    argv = [colour_workflow, "--output-dir", tmp_path / "out", "--quiet"]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    settings, code, said = _heap_of_its_comfyui(argv + (["--no-tuned-heap"] if case == "no-tuned-heap" else []),
                                                env, cwd)
    assert code == 0, said
    expected = {"default": heap.KEPT_HEAP if heap.runs_on_glibc() else {}, "users-own": env, "no-tuned-heap": {}}
    assert settings == expected[case], said
    if case == "users-own" and heap.runs_on_glibc():
        assert "glibc heap: your environment sets MALLOC_TOP_PAD_; the renderer adds none of its own" in said
    assert list(cwd.iterdir()) == [], "the render left files or folders in its working folder"
    assert len(list((tmp_path / "out").rglob("*.webp"))) == 1


def test_a_failed_render_leaves_no_empty_folders(host, colour_workflow, tmp_path):
    """The renderer makes ./output and ./input for the test environment's ComfyUI; a render that wrote nothing
    (its one job failed) takes both away again."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    failed = subprocess.run([sys.executable, str(RENDER), colour_workflow, "--set", "Save.frame_rate=nan", "--quiet"],
                            cwd=cwd, capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1 and "job render failed" in failed.stderr, failed.stderr
    assert list(cwd.iterdir()) == []


def test_only_empty_folders_are_taken_away(pipeline, tmp_path):
    remove_if_empty = pipeline("render")._remove_if_empty
    (tmp_path / "input" / "3d").mkdir(parents=True)  # what ComfyUI 0.3.x's 3D loader makes in the input folder
    remove_if_empty(tmp_path / "input")
    assert not (tmp_path / "input").exists()
    (tmp_path / "output" / "AnimateLCM").mkdir(parents=True)
    (tmp_path / "output" / "empty").mkdir()
    (tmp_path / "output" / "AnimateLCM" / "t2v_00001_.webp").write_bytes(b"a video")
    remove_if_empty(tmp_path / "output")
    assert sorted(p.name for p in (tmp_path / "output").rglob("*")) == ["AnimateLCM", "t2v_00001_.webp"]


# --- batches -----------------------------------------------------------------------------------

def test_batch_manifest_failure_and_resume(host, pack, pipeline, colour_workflow, tmp_path, capsys):
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text("\n".join(json.dumps(job) for job in [
        {"id": "red", "Canvas.color": 0xFF0000},
        {"id": "broken", "Save.frame_rate": float("nan")},  # the node refuses NaN by name
        {"Canvas.color": 0x0000FF, "Canvas.batch_size": 3},  # no id: named by its overrides
    ]))
    manifest_path = tmp_path / "jobs.manifest.json"
    assert _render(pipeline, colour_workflow, "--jobs", jobs_file) == 1  # one job failed
    err = capsys.readouterr().err
    assert "job broken failed: node 2 (ALCM_SaveVideo) raised" in err
    manifest = json.loads(manifest_path.read_text())["jobs"]
    assert {k: v["status"] for k, v in manifest.items()} == {
        "red": "done", "broken": "failed", pipeline("jobs").job_key({"Canvas.color": 255, "Canvas.batch_size": 3}): "done"}
    red = manifest["red"]
    assert len(red["outputs"]) == 1 and red["seconds"] >= red["graph_seconds"] > 0
    frames = _frames(pack, red["outputs"][0])
    assert frames.shape == (2, 16, 16, 3) and frames[..., 0].min() > 0.9 and frames[..., 2].max() < 0.1
    blue = next(v for k, v in manifest.items() if k not in ("red", "broken"))
    assert _frames(pack, blue["outputs"][0]).shape[0] == 3

    # re-run: the done jobs are skipped (no new file, same record); the failed one runs again
    files_before = sorted(p for p in host.output_dir.rglob("*") if p.is_file())
    assert _render(pipeline, colour_workflow, "--jobs", jobs_file) == 1
    again = json.loads(manifest_path.read_text())["jobs"]
    assert again["red"] == manifest["red"] and again["broken"]["finished"] >= manifest["broken"]["finished"]
    assert sorted(p for p in host.output_dir.rglob("*") if p.is_file()) == files_before

    # fixed job file: only the job that changed runs, and now all are done
    jobs_file.write_text(jobs_file.read_text().replace('"Save.frame_rate": NaN', '"Save.frame_rate": 12'))
    assert _render(pipeline, colour_workflow, "--jobs", jobs_file) == 0
    final = json.loads(manifest_path.read_text())["jobs"]
    assert all(v["status"] == "done" for v in final.values()) and final["red"] == manifest["red"]


def test_csv_jobs_and_job_file_errors(host, pipeline, tmp_path):
    jobs = pipeline("jobs")
    csv_file = tmp_path / "jobs.csv"
    csv_file.write_text("id,Canvas.color,Save.filename_prefix\na,1,x/a\nb,2,\n")
    assert [(j.key, j.overrides) for j in jobs.read_jobs(csv_file)] == [
        ("a", {"Canvas.color": "1", "Save.filename_prefix": "x/a"}), ("b", {"Canvas.color": "2"})]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "seed": 1}\n')
    with pytest.raises(jobs.JobError, match="seed is not NODE.INPUT"):
        jobs.read_jobs(bad)
    bad.write_text('{"id": "a"}\n{"id": "a"}\n')
    with pytest.raises(jobs.JobError, match="a second job named 'a'"):
        jobs.read_jobs(bad)


def test_missing_model_files_are_named_and_never_stood_in_unasked(host, pipeline, tmp_path, capsys):
    api = tmp_path / "t2v.json"
    api.write_text(json.dumps(_as_api_export(pipeline("workflow_api"), T2V)))
    api.write_text(api.read_text().replace("AnimateLCM_sd15_t2v.ckpt", "not_here_motion.ckpt"))
    assert _render(pipeline, api) == 1
    err = capsys.readouterr().err
    assert "node 2 motion_module_name: 'not_here_motion.ckpt' is not in ComfyUI's animatediff_models folder" in err
    assert "--stand-ins" in err


# --- a real ComfyUI server ---------------------------------------------------------------------

def test_server_mode(host, pack, pipeline, comfyui_server, colour_workflow, tmp_path, capsys):
    url, base = comfyui_server
    out = tmp_path / "downloaded"
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text('{"id": "green", "Canvas.color": 65280}\n{"id": "nan", "Save.frame_rate": NaN}\n')
    assert _render(pipeline, colour_workflow, "--server", url, "--jobs", jobs_file, "--output-dir", out) == 1
    assert "job nan failed: node 2 (ALCM_SaveVideo)" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "jobs.manifest.json").read_text())["jobs"]
    [downloaded] = manifest["green"]["outputs"]
    assert Path(downloaded).is_relative_to(out.resolve())
    [on_server] = (base / "output").rglob("*.webp")  # the server wrote it; we downloaded the same bytes
    assert Path(downloaded).read_bytes() == on_server.read_bytes()
    assert _frames(pack, downloaded)[..., 1].min() > 0.9
    # a UI-format file is read against the server's own node definitions (/object_info)
    ui = tmp_path / "colour_ui.json"
    ui.write_text(json.dumps(_as_ui_workflow(json.loads(colour_workflow.read_text()))))
    assert _render(pipeline, ui, "--server", url, "--set", "Canvas.color=255", "--manifest", tmp_path / "ui.json",
                   "--output-dir", out) == 0
    [blue] = json.loads((tmp_path / "ui.json").read_text())["jobs"]["render"]["outputs"]
    assert _frames(pack, blue)[..., 2].min() > 0.9 and _frames(pack, blue)[..., 0].max() < 0.1
    # a wrong input name is found against the server's own node definitions
    assert _render(pipeline, colour_workflow, "--server", url, "--set", "Save.fps=3") == 2
    assert "has no input 'fps'" in capsys.readouterr().err


# --- Ray ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_ray():
    import ray  # part of the test extra: missing, this is an error, not a skip
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def test_ray_two_workers_equal_serial(host, pack, pipeline, local_ray, colour_workflow, tmp_path):
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text("\n".join(json.dumps({"id": f"c{i}", "Canvas.color": i * 0x203040}) for i in range(4)))
    serial_manifest, ray_manifest = tmp_path / "serial.json", tmp_path / "ray.json"
    assert _render(pipeline, colour_workflow, "--jobs", jobs_file, "--manifest", serial_manifest) == 0
    scratch = set(Path(tempfile.gettempdir()).glob("animatelcm-ray-worker-*"))
    assert _render(pipeline, colour_workflow, "--jobs", jobs_file, "--manifest", ray_manifest, "--ray",
                   "--workers", "2", "--output-dir", tmp_path / "ray-out") == 0
    assert set(Path(tempfile.gettempdir()).glob("animatelcm-ray-worker-*")) <= scratch  # the workers cleaned up
    serial = json.loads(serial_manifest.read_text())["jobs"]
    on_ray = json.loads(ray_manifest.read_text())["jobs"]
    assert len({entry["worker"] for entry in on_ray.values()}) == 2  # both workers took jobs
    for key, entry in serial.items():
        assert Path(on_ray[key]["outputs"][0]).is_relative_to((tmp_path / "ray-out").resolve())
        assert Path(on_ray[key]["outputs"][0]).read_bytes() == Path(entry["outputs"][0]).read_bytes()


# --- the shipped workflows, on the full-size stand-ins -----------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_shipped_workflows_render_and_ui_and_api_format_give_the_same_video(host, pack, pipeline, path, tmp_path):
    api = tmp_path / f"{path.stem}_api.json"
    api.write_text(json.dumps(_as_api_export(pipeline("workflow_api"), path)))
    # Every workflow renders from its UI file; the API export is rendered too for t2v (both formats through
    # the whole renderer: the suite's time goes to full-size renders, and the formats' prompts are compared
    # for every workflow by the quick tests). 2 frames of 32 px in 2 steps: a full-size UNet call costs
    # seconds at any size, and every node of the graph runs the same at 2 steps as at the shipped 4
    # (tests/test_workflows.py checks the shipped settings).
    # Four keyframes need four frames (two frames would put two pictures on one frame, which is refused).
    frames = 4 if path.name == "animatelcm_keyframes_long.json" else 2
    videos = []
    for workflow in (path, api) if path == T2V else (path,):  # each render is a new runner
        manifest = tmp_path / f"{workflow.stem}.manifest.json"
        assert _render(pipeline, workflow, "--stand-ins", "--frames", frames, "--size", 32, "--manifest", manifest,
                       "--set", "AnimateLCM Sampler.seed=5", "--set", "AnimateLCM Sampler.steps=2") == 0
        [video] = json.loads(manifest.read_text())["jobs"]["render"]["outputs"]
        videos.append(_frames(pack, video))
        comfy_host.let_go_of_models()  # the finished render's runner and its full-size models
    count, height, width, channels = videos[0].shape
    side = rendered_side(json.loads(path.read_text()), 32)  # a hi-res pass upscales: 48
    assert (count, max(height, width), channels) == (frames, side, 3)  # --size is the longer side (i2v is 3:2)
    assert (videos[0] == videos[-1]).all()


def test_ray_job_of_a_dead_worker_runs_on_another(host, pipeline, local_ray, colour_workflow, tmp_path):
    """A worker killed in the middle of a job (SIGKILL, as the OOM killer does): the job is run again on
    another worker and the batch finishes."""
    import threading

    import psutil
    killed = []

    def kill_a_rendering_worker():
        deadline = time.monotonic() + 180
        while not killed and time.monotonic() < deadline:
            for process in psutil.process_iter(["cmdline"]):
                if (process.info["cmdline"] or [""])[0].startswith("ray::ComfyUIWorker.render"):
                    killed.append(process.pid)
                    process.kill()
                    return
            time.sleep(0.05)

    jobs_file = tmp_path / "jobs.jsonl"
    # long enough to be caught while rendering: many frames to encode
    jobs_file.write_text("\n".join(json.dumps({"id": f"c{i}", "Canvas.color": i, "Canvas.batch_size": 120,
                                               "Canvas.width": 128, "Canvas.height": 128}) for i in range(3)))
    killer = threading.Thread(target=kill_a_rendering_worker)
    killer.start()
    try:
        code = _render(pipeline, colour_workflow, "--jobs", jobs_file, "--ray", "--workers", "2",
                       "--output-dir", tmp_path / "out")
    finally:
        killer.join()
    assert killed, "no worker was seen rendering"
    manifest = json.loads((tmp_path / "jobs.manifest.json").read_text())["jobs"]
    assert code == 0 and all(entry["status"] == "done" for entry in manifest.values())
    assert all(not entry["worker"].endswith(f":{killed[0]}") for entry in manifest.values())
