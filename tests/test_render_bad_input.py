"""The renderer refuses bad input before ComfyUI starts, and never loses a job (issue 20): each row of
the issue's table, through the real command.

Refusals run pipeline/render.py in a fresh Python under `-X importtime`, so a test sees that the command
ended before anything of ComfyUI (or torch) was imported: one `!!` line, exit code 2. Stops (Ctrl-C,
SIGTERM) signal the real command while it renders, in its own ComfyUI or on a real ComfyUI server
(conftest's comfyui_server), then look at what is left: the manifest, the outputs, the server's queue,
and no `.partial` file.
"""
import fcntl
import importlib
import io
import json
import logging
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RENDER = REPO / "pipeline" / "render.py"
T2V, I2V = "workflows/animatelcm_t2v.json", "workflows/animatelcm_i2v.json"
SHIPPED = sorted(p.name for p in (REPO / "workflows").glob("*.json"))
# what starting ComfyUI imports first (importtime also lists imports that fail, like the pack's try of
# folder_paths when --server imports it without ComfyUI, so that one is not among them)
STARTING_COMFYUI = {"comfy", "execution", "nodes", "torch"}
# a job long enough to be stopped in (about 1 s in this process's ComfyUI here, 6 s on a server, which
# sends each frame's progress); Save Video reports each frame, so a stop lands within one frame
SLOW = {"Canvas.batch_size": 200, "Canvas.width": 128, "Canvas.height": 128}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def pipeline(pack):
    return lambda name: importlib.import_module(f"{pack.__name__}.pipeline.{name}")


def refused(*argv, cwd=REPO, command=(sys.executable, str(RENDER)), env=None):
    """Run the command; assert that it refused (exit code 2, one `!!` line, no ComfyUI imported); the line."""
    run = subprocess.run([*command, *map(str, argv)], cwd=cwd, capture_output=True, text=True, timeout=120,
                         env={**os.environ, **(env or {}), "PYTHONPROFILEIMPORTTIME": "1"})  # -X importtime
    imported, lines = set(), []
    for line in run.stderr.splitlines():
        if line.startswith("import time:"):
            imported.add(line.rsplit("|", 1)[-1].strip().split(".")[0])
        else:
            lines.append(line)
    lines += run.stdout.splitlines()
    assert run.returncode == 2, "\n".join(lines)
    assert len(lines) == 1 and lines[0].startswith("!! "), "\n".join(lines)
    assert not imported & STARTING_COMFYUI, f"imported before refusing: {imported & STARTING_COMFYUI}"
    return lines[0]


def write_jobs(path, *jobs):
    path.write_text("\n".join(json.dumps(job) for job in jobs))
    return path


def partial_files(*folders):
    return [p for folder in folders for p in Path(folder).rglob("*.partial")]


def wait_for(condition, what, timeout=120):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def manifest_jobs(path):
    try:
        return json.loads(Path(path).read_text())["jobs"]
    except (OSError, ValueError):
        return {}


# --- refused before ComfyUI starts (rows 1-5, 7, 8, 10) ------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    ([T2V, "--frames", "0"], "--frames 0: give a positive number of frames"),  # row 1: was ignored (16 frames)
    ([T2V, "--size", "-64"], "--size -64: give a positive number of pixels"),  # row 2: was clamped to 16 px
    ([T2V, "--preview", "--size", "0"], "--size 0: give a positive number of pixels"),  # not --preview's 128
    ([T2V, "--frames", "-3"], "--frames -3: give a positive number of frames"),  # row 3: was a traceback
    ([T2V, "--size", "8"], "the workflow's Empty Latent Image takes 16 to 16384 pixels"),
    ([T2V, "--frames", "5000"], "the workflow's Empty Latent Image takes 1 to 4096 frames"),
    ([I2V, "--frames", "65"], "the workflow's AnimateLCM Image to Video takes 1 to 64 frames"),
    ([T2V, "--frames", "2.5"], "argument --frames: invalid int value: '2.5'"),
    ([T2V, "--ray", "--workers", "0"], "--workers 0: give 1 or more"),
], ids=["frames-0", "size-negative", "preview-size-0", "frames-negative", "size-under-16", "frames-over-4096",
        "i2v-frames-over-64", "frames-not-whole", "workers-0"])
def test_numbers_the_nodes_would_not_take(argv, message):
    assert message in refused(*argv)


def test_a_mistyped_workflow_names_the_shipped_ones():  # row 10: was refused after ~20 s of start-up
    line = refused("workflows/animatelcm_t2.json", "--stand-ins", "--preview")
    assert line.startswith("!! no workflow file workflows/animatelcm_t2.json: the shipped workflows, in workflows/")
    assert line.endswith("(did you mean workflows/animatelcm_t2v.json?)")
    assert all(name in line for name in SHIPPED)
    assert "(that is a folder)" in refused("workflows")


@pytest.mark.parametrize("typed, meant", [
    ("animatelcm_tv2.json", "animatelcm_t2v.json"),  # two letters swapped: was "did you mean ...v2v"
    ("animatelcm_vv2.json", "animatelcm_v2v.json"),
    ("animatelcm_2iv.json", "animatelcm_i2v.json"),
    ("animatelcm-t2v.json", "animatelcm_t2v.json"),
    ("AnimateLCM_T2V", "animatelcm_t2v.json"),
    ("animatelcm_svdxt.json", "animatelcm_svd_xt_i2v.json"),
    ("prompt_travel.json", "animatelcm_prompt_travel.json"),
])
def test_a_misspelt_workflow_suggests_the_one_meant(typed, meant):
    assert refused(f"workflows/{typed}").endswith(f"(did you mean workflows/{meant}?)")


def test_the_usage_line_names_the_command_used(host):
    """Started through pipeline/render.sh, the renderer says `bash pipeline/render.sh`, not the console script's name."""
    shell = ("bash", "pipeline/render.sh")
    env = {"PYTHON": sys.executable, "COMFYUI_PATH": str(host.comfyui_path)}
    assert refused("--frames", "x", command=shell, env=env).endswith("(see bash pipeline/render.sh --help)")
    assert refused("--frames", "x").endswith(f"(see python {RENDER} --help)")
    shown = subprocess.run([*shell, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60,
                           env={**os.environ, **env})
    assert shown.returncode == 0 and shown.stdout.startswith("usage: bash pipeline/render.sh [-h]"), shown.stderr


def test_the_shell_script_refuses_as_the_command_does(host):
    """pipeline/render.sh (the README's command) hands its arguments to render.py, here with this Python."""
    line = refused(T2V, "--stand-ins", "--preview", "--frames", "0", command=("bash", "pipeline/render.sh"),
                   env={"PYTHON": sys.executable, "COMFYUI_PATH": str(host.comfyui_path)})
    assert "--frames 0: give a positive number of frames" in line


@pytest.mark.parametrize("name, text, argv, message", [
    # rows 4 and 5: were a TypeError and a KeyError traceback
    ("jobs.manifest.json", "[]", ["--jobs", "jobs.jsonl"], "is not a manifest of this renderer"),
    ("m.json", '{"workflow": "t2v.json"}', ["--manifest", "m.json"], "is not a manifest of this renderer"),
    ("m.json", '{"jobs": {"a": 1}}', ["--manifest", "m.json"], "is not a manifest of this renderer"),
    ("m.json", '{"jobs": ', ["--manifest", "m.json"], "cannot read the manifest m.json"),
    ("m.json/x", "", ["--manifest", "m.json"], "the manifest m.json is a folder"),
    ("bad.jsonl", '{"id": "a"}\n{"id": "b", ', ["--jobs", "bad.jsonl"], "bad.jsonl line 2 is not JSON"),
    ("x", "", ["--jobs", "missing.jsonl"], "cannot read the job file missing.jsonl"),
    ("w.json", "{", ["--set", "a.b=1"], "cannot read the workflow w.json"),  # the workflow given: w.json
    ("w.json", "[]", [], "w.json is not a ComfyUI workflow"),
], ids=["manifest-list", "manifest-without-jobs", "manifest-entry-no-object", "manifest-not-json",
        "manifest-folder", "jobs-line-not-json", "jobs-missing", "workflow-not-json", "workflow-list"])
def test_files_that_cannot_be_used(tmp_path, name, text, argv, message):
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(text)
    write_jobs(tmp_path / "jobs.jsonl", {"id": "a", "KSampler.seed": 1})
    workflow = "w.json" if name == "w.json" else REPO / T2V
    assert message in refused(workflow, *argv, cwd=tmp_path)


def test_an_output_folder_that_cannot_be_written(tmp_path):  # row 7: was a traceback after the render
    (tmp_path / "a-file").write_text("")
    assert "the output folder a-file is a file, not a folder" in refused(REPO / T2V, "--output-dir", "a-file",
                                                                         cwd=tmp_path)
    assert "cannot write into the output folder a-file/videos" in refused(REPO / T2V, "--output-dir", "a-file/videos",
                                                                          cwd=tmp_path)
    # a folder nobody may write in, root included (root ignores file modes)
    assert "cannot write into the output folder /proc/self" in refused(T2V, "--output-dir", "/proc/self")


def test_a_server_that_does_not_answer(tmp_path):  # row 8: the message came after a traceback
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the test runs
    line = refused(T2V, "--server", f"127.0.0.1:{port}", "--output-dir", tmp_path / "out")
    assert line.startswith(f"!! no ComfyUI answers at http://127.0.0.1:{port} (") and "check --server" in line


def test_resized_ranges_are_the_nodes_own(host, pipeline):
    """The ranges --frames/--size are judged by before ComfyUI starts are the ones the nodes declare (an
    older ComfyUI's Empty Latent Image takes sizes up to 8192, not 16384: its own check refuses the rest)."""
    import nodes
    for class_type, (frames_input, frames, size) in pipeline("jobs").RESIZED.items():
        declared = nodes.NODE_CLASS_MAPPINGS[class_type].INPUT_TYPES()["required"]
        assert (declared[frames_input][1]["min"], declared[frames_input][1]["max"]) == frames, class_type
        for side in ("width", "height") if size else ():
            low, high = declared[side][1]["min"], declared[side][1]["max"]
            assert low == size[0] and (high == size[1] or class_type in ("EmptyLatentImage", "SVD_img2vid_Conditioning")
                                        and high == 8192)


# --- nothing is lost (rows 6 and 7) ----------------------------------------------------------------

def test_a_manifest_that_cannot_be_written_loses_no_job(host, pipeline, colour_workflow, tmp_path, capsys, caplog):
    """Row 6: the manifest's name is taken by a folder the first job's Save Video makes, so no write of it
    can succeed: each job says so and names its outputs, which stay; no `.partial` is left."""
    name = f"manifest-{tmp_path.name}"
    manifest = host.output_dir / name
    jobs_file = write_jobs(tmp_path / "jobs.jsonl", {"id": "first", "Save.filename_prefix": f"{name}/clip"},
                           {"id": "second", "Save.filename_prefix": f"{name}-second/clip"})
    assert pipeline("render").main([str(colour_workflow), "--jobs", str(jobs_file), "--manifest", str(manifest),
                                    "--quiet"]) == 1
    for key, folder in (("first", name), ("second", f"{name}-second")):
        [kept] = (host.output_dir / folder).glob("clip_*.webp")
        assert (f"!! job {key} is done, but the manifest {manifest} could not be written (" in caplog.text
                and f"its outputs are kept: {kept}" in caplog.text)
    assert f"!! 2 jobs are not in the manifest {manifest}" in capsys.readouterr().err
    assert not partial_files(host.output_dir, tmp_path)


def test_an_output_folder_that_fails_fails_the_job_not_the_batch(comfyui_server, pipeline, colour_workflow, tmp_path,
                                                                 capsys):
    """Row 7: one job's output cannot be downloaded (a file stands where its folder goes); that job is
    recorded as failed, its file stays on the server, and the next job runs and is recorded."""
    url, base = comfyui_server
    out = tmp_path / "out"
    out.mkdir()
    (out / "blocked").write_text("a file where the job's folder goes")
    jobs_file = write_jobs(tmp_path / "jobs.jsonl", {"id": "blocked", "Save.filename_prefix": "blocked/clip"},
                           {"id": "fine", "Canvas.color": 0x00FF00, "Save.filename_prefix": "fine/clip"})
    assert pipeline("render").main([str(colour_workflow), "--server", url, "--jobs", str(jobs_file),
                                    "--output-dir", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "!! job blocked failed: its output could not be written into" in err
    assert "it stays in the server's output folder as blocked/clip_00001_.webp" in err
    assert (base / "output" / "blocked" / "clip_00001_.webp").is_file()
    manifest = manifest_jobs(tmp_path / "jobs.manifest.json")
    assert (manifest["blocked"]["status"], manifest["fine"]["status"]) == ("failed", "done")
    assert Path(manifest["fine"]["outputs"][0]).is_file()
    assert not partial_files(tmp_path)


# --- stopping (row 9) and what the user sees (row 11) ----------------------------------------------

def in_terminal(argv, cwd, stop_when, signum):
    """Run the command with a terminal (a pty, 120 columns) as its stdout and stderr; send `signum` once
    stop_when() is true. Returns (exit code, everything it wrote there)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen([sys.executable, str(RENDER), *map(str, argv)], cwd=cwd, stdin=subprocess.DEVNULL,
                               stdout=follower, stderr=follower)
    os.close(follower)
    written, signalled, deadline = bytearray(), False, time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            if not signalled and stop_when():
                process.send_signal(signum)
                signalled = True
            if select.select([leader], [], [], 0.05)[0]:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the command ended and closed the terminal
                    break
                if not chunk:
                    break
                written += chunk
        return process.wait(timeout=60), written.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)


def test_a_bar_cut_short_by_ctrl_c_is_collected_without_a_traceback(pipeline, monkeypatch):
    """Ctrl-C while the renderer makes a progress bar (between two jobs): the half-made bar is collected
    quietly, not with tqdm's "Exception ignored in __del__" traceback under the "stopped" line."""
    import gc

    from tqdm import tqdm
    bar_class = pipeline("progress").bar_class()

    def interrupted(*_):
        raise KeyboardInterrupt

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    monkeypatch.setattr(tqdm, "_get_free_pos", interrupted)  # where tqdm's __init__ was when the signal came
    for kind in (tqdm, bar_class):
        with pytest.raises(KeyboardInterrupt):
            kind(total=3, file=io.StringIO())
        gc.collect()
        # tqdm's own class shows the failure this guards against; the renderer's is quiet
        assert bool(unraisable) == (kind is tqdm), [u.exc_value for u in unraisable]
        unraisable.clear()


def test_ctrl_c_in_process_keeps_finished_jobs_and_log_lines_stay_above_the_bars(host, pipeline, colour_workflow,
                                                                                tmp_path, caplog):
    caplog.set_level(logging.INFO)
    manifest = tmp_path / "jobs.manifest.json"
    jobs_file = write_jobs(tmp_path / "jobs.jsonl", {"id": "quick", "Canvas.color": 0x203040},
                           {"id": "slow", "Canvas.color": 0x405060, **SLOW})
    code, shown = in_terminal([colour_workflow, "--jobs", jobs_file, "--output-dir", tmp_path / "out"], tmp_path,
                              lambda: "quick" in manifest_jobs(manifest), signal.SIGINT)
    assert code == 128 + signal.SIGINT, shown
    assert f"!! stopped (SIGINT): 1 of 2 jobs done; {manifest} holds them, and the same command again renders " \
           "the other 1" in shown
    assert "Traceback" not in shown
    # row 11: the bars were drawn, and every log line starts its own line (tqdm writes it above the bars)
    assert "job quick" in shown and "|" in shown
    # what each line of the terminal shows in the end: the text after its last carriage return
    lines = [ANSI.sub("", line).split("\r")[-1] for line in shown.replace("\r\n", "\n").split("\n")]
    saved = [line for line in lines if "saved 2 frames to" in line]
    assert saved and all(line.startswith("saved 2 frames to") for line in saved), saved
    assert list(manifest_jobs(manifest)) == ["quick"] and not partial_files(tmp_path)

    # the same command again: the finished job is skipped, the other one runs
    before = manifest_jobs(manifest)["quick"]
    assert pipeline("render").main([str(colour_workflow), "--jobs", str(jobs_file), "--quiet"]) == 0
    assert "1 of 2 jobs are done already" in caplog.text
    after = manifest_jobs(manifest)
    assert after["quick"] == before and after["slow"]["status"] == "done"


def test_progress_rates_start_at_the_first_step(pipeline):
    """Row 11: the time before a node's first step (loading) is no step: no thousands of steps/s."""
    class Terminal(io.StringIO):
        def isatty(self):
            return True
    terminal = Terminal()
    progress = pipeline("progress").Progress(1, quiet=False, stream=terminal)
    progress.start("a", {"7": "AnimateLCM Sampler"})
    progress.node("7")
    time.sleep(0.3)  # the model loads
    for value in (1, 2, 3, 4):
        progress.step(value, 4)
        time.sleep(0.15)
    progress.finish()
    progress.close()
    rates = [float(rate) for rate in re.findall(r"([\d.]+)step/s", terminal.getvalue())]
    per_step = [float(seconds) for seconds in re.findall(r"([\d.]+)s/step", terminal.getvalue())]
    assert rates or per_step, terminal.getvalue()
    assert all(rate < 20 for rate in rates), terminal.getvalue()  # 1 step / 0.15 s is under 7/s


def history(url):
    with urllib.request.urlopen(url + "/history", timeout=10) as response:
        return json.loads(response.read())


def server_queue(url):
    with urllib.request.urlopen(url + "/queue", timeout=10) as response:
        queue = json.loads(response.read())
    return [item[1] for item in queue["queue_running"]], [item[1] for item in queue["queue_pending"]]


def post(url, path, body):
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def start_renderer(*argv, cwd):
    return subprocess.Popen([sys.executable, str(RENDER), *map(str, argv)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_ctrl_c_in_server_mode_interrupts_its_prompt_and_a_rerun_does_the_rest(comfyui_server, pipeline,
                                                                              colour_workflow, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    url, _ = comfyui_server
    manifest = tmp_path / "jobs.manifest.json"
    jobs_file = write_jobs(tmp_path / "jobs.jsonl", {"id": "quick", "Canvas.color": 0x304050},
                           {"id": "slow", "Canvas.color": 0x506070, **SLOW})
    renderer = start_renderer(colour_workflow, "--server", url, "--jobs", jobs_file, "--output-dir", tmp_path / "out",
                              cwd=tmp_path)
    wait_for(lambda: "quick" in manifest_jobs(manifest) and server_queue(url)[0], "the slow job running on the server")
    renderer.send_signal(signal.SIGINT)
    out, err = renderer.communicate(timeout=60)
    assert renderer.returncode == 128 + signal.SIGINT, err
    assert "took this run's prompts off" in err and "0 queued deleted, 1 running interrupted" in err
    assert f"!! stopped (SIGINT): 1 of 2 jobs done; {manifest} holds them" in err and "Traceback" not in err
    # the server stops our prompt at once (it would run for seconds more) and its queue is empty
    wait_for(lambda: server_queue(url) == ([], []), "the server's queue to empty", timeout=30)
    with urllib.request.urlopen(url + "/history", timeout=10) as response:
        history = json.loads(response.read())
    assert any("execution_interrupted" in json.dumps(entry.get("status")) for entry in history.values())
    # row 11: not a terminal, so plain log lines and no cursor movement
    assert "job quick (1 of 2)" in err and "\r" not in err + out and "\x1b" not in err + out
    assert list(manifest_jobs(manifest)) == ["quick"] and not partial_files(tmp_path)

    before = manifest_jobs(manifest)["quick"]
    assert pipeline("render").main([str(colour_workflow), "--server", url, "--jobs", str(jobs_file),
                                    "--output-dir", str(tmp_path / "out"), "--quiet"]) == 0
    assert "1 of 2 jobs are done already" in caplog.text
    after = manifest_jobs(manifest)
    assert after["quick"] == before and after["slow"]["status"] == "done"


def test_sigterm_in_server_mode_deletes_its_queued_prompt_and_leaves_others_alone(comfyui_server, colour_workflow,
                                                                                 tmp_path):
    url, _ = comfyui_server
    ran_before = set(history(url))
    # another client's long prompt holds the server, so the renderer's prompt waits in the queue
    prompt = json.loads(colour_workflow.read_text())
    prompt["1"]["inputs"].update(batch_size=4096, width=64, height=64, color=0x607080)  # the most frames it takes
    for copy in ("3", "4"):  # saved three times over: long enough to outlast the renderer's start on a quick machine
        prompt[copy] = json.loads(json.dumps(prompt["2"]))
    other = post(url, "/prompt", {"prompt": prompt, "client_id": "someone-else"})["prompt_id"]
    try:
        wait_for(lambda: server_queue(url)[0] == [other], "the other client's prompt running")
        renderer = start_renderer(colour_workflow, "--server", url, "--output-dir", tmp_path / "out", cwd=tmp_path)
        wait_for(lambda: server_queue(url)[1], "the renderer's prompt queued")
        renderer.send_signal(signal.SIGTERM)
        out, err = renderer.communicate(timeout=60)
        assert renderer.returncode == 128 + signal.SIGTERM, err
        assert "1 queued deleted, 0 running interrupted" in err and "!! stopped (SIGTERM): 0 of 1 jobs done" in err
        assert "Traceback" not in err
        assert server_queue(url)[1] == []  # ours is gone from the queue
        # and it never runs, while the other client's prompt runs on to its end, not interrupted (however soon
        # it ends: a fast machine may have finished it already)
        wait_for(lambda: server_queue(url) == ([], []), "the other client's prompt to finish", timeout=120)
        ran = history(url)
        assert set(ran) - ran_before == {other} and ran[other]["status"]["status_str"] == "success"
    finally:
        post(url, "/interrupt", {})
        wait_for(lambda: server_queue(url) == ([], []), "the server's queue to empty", timeout=60)


def test_an_event_loop_cut_short_by_ctrl_c_is_collected_without_a_traceback(pipeline):
    """Once stopping, the renderer says nothing of an event loop (ComfyUI's executor runs them) whose collection
    fails because the signal cut it short; every other unraisable exception is still reported."""
    import asyncio
    import types
    reported = []
    quiet = pipeline("cli").quiet_about_cut_short_event_loops(reported.append)
    loop_collected = types.SimpleNamespace(object=asyncio.BaseEventLoop.__del__, exc_value=KeyboardInterrupt())
    other = types.SimpleNamespace(object=test_an_event_loop_cut_short_by_ctrl_c_is_collected_without_a_traceback,
                                  exc_value=RuntimeError())
    quiet(loop_collected)
    quiet(other)
    assert reported == [other]
