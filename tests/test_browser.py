"""The shipped workflows in the program users run: ComfyUI's own server (main.py) with the pack in
custom_nodes and the frontend that ComfyUI pins, driven in headless Chromium through Playwright.

Each workflow file is opened the way a user opens one (the frontend's file input), queued from
the page (the frontend's own graph-to-prompt conversion and queue) on random-weight stand-ins,
and its preview must appear in the Save node; every format Save Video writes is opened back in
the page and must restore the graph that made it. Screenshots of the loaded graphs and the
previews are kept in output/browser-<time>/ (or $ALCM_ARTIFACTS; the folder is printed at the end
of the run).
"""
import importlib
import importlib.metadata
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

import comfy_server
from fixture_models import rendered_side

pytestmark = pytest.mark.browser

WORKFLOWS = sorted((Path(__file__).resolve().parents[1] / "workflows").glob("*.json"))
T2V = next(p for p in WORKFLOWS if p.name == "animatelcm_t2v.json")
FRONTEND_ONLY = {"Reroute", "PrimitiveNode", "Note", "MarkdownNote"}
VIDEO_PREVIEW_WIDGET = "video-preview"  # what the frontend adds to a node with a video upload (ComfyUI ignores it)
# What a CPU renders in seconds: 2 frames of 32 px in 2 steps (the widgets are changed in the page, as a user
# would). A full-size UNet call costs the same few seconds at any size this small, so the calls are what count.
SIZE = 32
SMALL = {"EmptyLatentImage": {"width": SIZE, "height": SIZE, "batch_size": 2}, "ALCM_LoadVideo": {"frame_cap": 2},
         "ALCM_ImageToVideo": {"width": SIZE, "height": SIZE, "frames": 2},
         "SVD_img2vid_Conditioning": {"width": SIZE, "height": SIZE, "video_frames": 2},
         "ALCM_Sampler": {"steps": 2},
         "ALCM_FreeInitOptions": {"iterations": 2}}  # the passes and the filter between them, not a third
# Four keyframes need four frames: at two, two pictures would share a frame, which is refused.
SMALL_FOR = {"animatelcm_keyframes_long.json": {"EmptyLatentImage": {"width": SIZE, "height": SIZE, "batch_size": 4}}}
RUN_TIMEOUT_MS = 600_000
ARTIFACTS = Path(os.environ.get("ALCM_ARTIFACTS", Path(__file__).resolve().parents[1] / "output"))


def _chromium():
    path = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail("No Chromium: install Debian's `chromium` (tests/run.sh does it as root) or set CHROMIUM.")
    return path


def _newest_frontend():
    """The static folder of the newest frontend release the test environment carries (tests/env.sh installs
    it beside ComfyUI's pinned one): what users get when they update the frontend package."""
    root = Path(sys.prefix) / "frontend-newest"
    static = root / "comfyui_frontend_package" / "static"
    if not static.is_dir():
        pytest.fail(f"No newest frontend in {root}: tests/env.sh installs it (pip install --no-deps --target "
                    f"{root} comfyui-frontend-package==<newest>); an environment made before it needs remaking.")
    version = next(root.glob("comfyui_frontend_package-*.dist-info")).name.split("-")[1].removesuffix(".dist")
    return static, version


@pytest.fixture(scope="module")
def frontend(request, host):
    """The frontend this ComfyUI pins, or (tests parametrized with "newest") the newest release."""
    if getattr(request, "param", "pinned") == "pinned":
        return None, f"{importlib.metadata.version('comfyui-frontend-package')} (pinned by this ComfyUI)"
    return _newest_frontend()


@pytest.fixture(scope="module")
def server(host, workflow_api, frontend, tmp_path_factory, request):
    """ComfyUI's server with stand-ins for every model and input file the shipped workflows name."""
    base = tmp_path_factory.mktemp("browser")
    front_end_root, version = frontend
    running = comfy_server.ComfyServer(host.comfyui_path, base, front_end_root)
    running.front_end_root, running.newer_than_server = front_end_root, 0
    stand_ins = importlib.import_module(host.pack.__name__ + ".stand_ins.files")  # what render --stand-ins makes
    for path in WORKFLOWS:
        prompt = workflow_api.to_api(json.loads(path.read_text()))
        for _, _, folder, name in stand_ins.model_files(prompt):
            stand_ins.link(stand_ins.cached_file(folder, name), running.models_dir(folder), name)
        for node in prompt.values():  # input files go into the server's input folder, where the page lists them
            if node["class_type"] == "ALCM_LoadVideo":
                stand_ins.write_video(running.input_dir / node["inputs"]["video"], 4, SIZE)
            if node["class_type"] == "LoadImage":
                stand_ins.write_image(running.input_dir / node["inputs"]["image"], 64)
    # Outside pytest's temporary folders, which later runs delete; output/ is git-ignored.
    running.screenshots = ARTIFACTS / time.strftime("browser-%Y%m%d-%H%M%S") / f"frontend-{version.split()[0]}"
    running.screenshots.mkdir(parents=True)
    request.config._alcm_notes.append(f"browser test screenshots, frontend {version}: {running.screenshots}")
    yield running
    running.stop()
    if running.newer_than_server:
        request.config._alcm_notes.append(
            f"frontend {version} is newer than this ComfyUI's server: it logged {running.newer_than_server} errors "
            "asking for /api/jobs, which the server lacks (the frontend's own; set aside, every other error "
            "counted). The newest frontend without them is 1.38.3.")


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=_chromium(), headless=True,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


# What a fresh, offline ComfyUI 0.3.75 page logs whatever graph it shows: the registry and release
# checks at api.comfy.org (no network here) and optional user files a new user does not have.
OPTIONAL_FILES = ("/api/userdata", "/user.css", "/favicon.ico")
# What a frontend newer than the server logs because the server lacks an API: from 1.38.4 on the frontend
# reads the queue and history from /api/jobs, which ComfyUI's server gained after 0.3.75 (1.38.3 is the
# newest frontend without it). Set aside and counted in the run's notes, never in the pinned frontend.
NEWER_THAN_SERVER = ("/api/jobs", "[Jobs API]", "JobsApiError", "Failed to fetch jobs")


class Page:
    """One browser tab on the server, recording every console error, page error and dialog."""

    def __init__(self, browser, server):
        self.server = server
        self.page = browser.new_page(viewport={"width": 1600, "height": 1000})
        self.errors = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("dialog", lambda d: (self.errors.append(f"dialog: {d.message}"), d.dismiss()))
        self.page.goto(server.url)
        self.page.wait_for_function("() => window.app?.graph && window.LiteGraph?.registered_node_types?.ALCM_Sampler"
                                    " && document.querySelector('#comfy-file-input')", timeout=120_000)
        # Start-up errors are the frontend's own (0.3.75 logs one TypeError on every fresh start): none may
        # come from the pack; from here on, every error counts.
        self.startup_errors, self.errors = self.errors, []
        assert not [e for e in self.startup_errors if "alcm" in e.lower() or "animatelcm" in e.lower()]
        self.page.evaluate("""() => {
            window.__alcm = {executed: [], failed: []};
            app.api.addEventListener('executed', e => window.__alcm.executed.push(e.detail));
            app.api.addEventListener('execution_error', e => window.__alcm.failed.push(e.detail));
        }""")

    def _console(self, message):
        url = message.location.get("url", "")
        offline_or_optional = "Failed to load resource" in message.text and (
            not url.startswith(self.server.url) or url[len(self.server.url):].startswith(OPTIONAL_FILES))
        if message.type != "error" or offline_or_optional:
            return
        if self.server.front_end_root and any(m in message.text or m in url for m in NEWER_THAN_SERVER):
            self.server.newer_than_server += 1
            return
        self.errors.append(f"console: {message.text} ({url})")

    def open_file(self, path, expect_nodes):
        """Open a file through the frontend's own file input, as File > Open does; wait for its graph."""
        self.page.evaluate("() => app.graph.clear()")
        self.page.set_input_files("#comfy-file-input", str(path))
        self.page.wait_for_function("n => app.graph.nodes.length === n", arg=expect_nodes, timeout=30_000)
        self.page.wait_for_timeout(500)  # let the canvas draw before a screenshot

    def node_types(self):
        return self.page.evaluate("() => app.graph.nodes.map(n => n.type)")

    def frontend_prompt(self):
        """The API prompt the frontend itself would queue: app.graphToPrompt(), without its metadata."""
        output = self.page.evaluate("async () => (await app.graphToPrompt()).output")
        return {node_id: {"class_type": node["class_type"], "inputs": node["inputs"]} for node_id, node in output.items()}

    def set_widgets(self, values):
        """{node type: {widget name: value}} set on every such node, as typing into the widget does."""
        self.page.evaluate("""values => {
            for (const node of app.graph.nodes)
                for (const w of node.widgets || [])
                    if (values[node.type] && w.name in values[node.type]) w.value = values[node.type][w.name];
            app.graph.setDirtyCanvas(true, true);
        }""", values)

    def queue_and_wait(self, output_node):
        """Queue from the page (the Queue button's own code path) and wait for `output_node`'s result."""
        done = self.page.evaluate("() => window.__alcm.executed.length")
        self.page.evaluate("async () => await app.queuePrompt(0, 1)")
        self.page.wait_for_function(
            "([done, id]) => window.__alcm.failed.length || window.__alcm.executed.slice(done).some(e => e.node == id)",
            arg=[done, str(output_node)], timeout=RUN_TIMEOUT_MS)
        failed = self.page.evaluate("() => window.__alcm.failed")
        assert not failed, f"the run failed in the server: {failed}"
        return next(e["output"] for e in self.page.evaluate("() => window.__alcm.executed")[done:]
                    if e["node"] == str(output_node))

    def preview_sizes(self, node_id):
        """[width, height] of every preview the node shows once loaded: its <img>s (node.imgs), or the
        <video> of the frontend's video-preview widget (which it uses for webm)."""
        script = """id => {
            const node = app.graph.getNodeById(id);
            const images = (node.imgs || []).filter(i => i.complete && i.naturalWidth > 0);
            const videos = (node.widgets || []).filter(w => w.element).flatMap(
                w => w.element.tagName === 'VIDEO' ? [w.element] : [...w.element.querySelectorAll('video')]);
            const shown = images.map(i => [i.naturalWidth, i.naturalHeight])
                .concat(videos.filter(v => v.readyState >= 2).map(v => [v.videoWidth, v.videoHeight]));
            return shown.length ? shown : null;
        }"""
        self.page.wait_for_function(script, arg=int(node_id), timeout=60_000)
        self.page.wait_for_timeout(500)  # let the canvas draw before a screenshot
        return self.page.evaluate(script, int(node_id))

    def screenshot(self, name):
        self.page.screenshot(path=str(self.server.screenshots / f"{name}.png"))


@pytest.fixture(scope="module")
def tab(browser, server):
    """One tab per server: loading the frontend takes 3 s, and every test opens its graph on a cleared one."""
    opened = Page(browser, server)
    yield opened
    opened.page.close()


@pytest.fixture
def page(tab):
    """The module's tab, as if fresh for this test: its errors and its runs' results are this test's own."""
    tab.errors = []
    tab.page.evaluate("() => { window.__alcm.executed = []; window.__alcm.failed = []; }")
    return tab


def _save_node(workflow):
    return next(n["id"] for n in workflow["nodes"] if n["type"] == "ALCM_SaveVideo")


def _unload_models(server):
    """What the "Unload Models" and "Free model and node cache" buttons send: otherwise ComfyUI 0.3.6x+ keeps
    this workflow's full-size models (and its node cache, which holds them) beside the next one's. Keeping
    the cache saved a checkpoint load per workflow (~2 s) but raised the server's peak from 7.4 to 8.9 GiB
    and the suite's from 9.4 to 11.3: over the 12 GB budget's margin."""
    server.post("/free", {"unload_models": True, "free_memory": True})


def _saved_file(server, output):
    entries = output.get("videos") or output["images"]
    entry = next(e for e in entries if e.get("type", "output") == "output")
    return server.output_dir / entry.get("subfolder", "") / entry["filename"]


# One server per frontend, the whole module long (pytest groups the tests by it).
ON_THE_PINNED_SERVER = pytest.mark.parametrize("frontend", ["pinned"], indirect=True, scope="module")


# Both frontends open and convert every workflow; each workflow is rendered through one of them: the newest
# renders these (one per way a graph saves: IMAGE, streamed latents, an uploaded video, a second pass), the
# pinned one all the others. The server side of a render is the same whatever the frontend: rendering every
# workflow twice would only repeat it, and CI has 30 minutes.
NEWEST_RENDERS = {"animatelcm_t2v", "animatelcm_long_t2v", "animatelcm_controlnet_v2v", "animatelcm_hires_v2v"}


@pytest.mark.parametrize("frontend", ["pinned", "newest"], indirect=True, scope="module")
@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_opens_converts_runs_and_previews(page, server, frontend, workflow_api, path):
    workflow = json.loads(path.read_text())
    page.open_file(path, len(workflow["nodes"]))
    page.screenshot(f"{path.stem}-loaded")
    registered = set(server.get("/object_info"))
    assert sorted(t for t in page.node_types() if t not in registered | FRONTEND_ONLY) == []
    assert page.errors == [], "\n".join(page.errors)

    # The pack's own UI-to-API conversion (the headless renderer's) against the frontend's.
    ours = {node_id: {"class_type": node["class_type"], "inputs": node["inputs"]}
            for node_id, node in workflow_api.to_api(workflow).items()}
    theirs = page.frontend_prompt()
    for node in theirs.values():  # the upload widget's preview: sent by the frontend, not a node input
        if node["class_type"] == "ALCM_LoadVideo":
            assert node["inputs"].pop(VIDEO_PREVIEW_WIDGET, "") == ""
    differing = {i: (ours.get(i), theirs.get(i)) for i in set(ours) | set(theirs) if ours.get(i) != theirs.get(i)}
    assert not differing, "node: [the pack's conversion, the frontend's]\n" + json.dumps(differing, sort_keys=True)
    if (frontend[0] is not None) != (path.stem in NEWEST_RENDERS):  # the other frontend renders it
        return

    page.set_widgets({**SMALL, **SMALL_FOR.get(path.name, {})})
    queued = page.frontend_prompt()
    output = page.queue_and_wait(_save_node(workflow))
    side = rendered_side(workflow, SIZE)  # a hi-res second pass upscales
    assert page.preview_sizes(_save_node(workflow)) == [[side, side]]
    page.screenshot(f"{path.stem}-preview")
    saved = _saved_file(server, output)
    assert saved.is_file()

    page.open_file(saved, len(workflow["nodes"]))  # the saved video gives the graph back
    assert page.frontend_prompt() == queued
    assert page.errors == [], "\n".join(page.errors)
    _unload_models(server)


@ON_THE_PINNED_SERVER
def test_every_video_format_reopens_as_its_graph(page, server, host):
    """Save Video's every format, queued from the page, is opened back there and restores the graph
    that made it (gif through the .json written beside it)."""
    workflow = json.loads(T2V.read_text())
    save = _save_node(workflow)
    page.open_file(T2V, len(workflow["nodes"]))
    page.set_widgets(SMALL)
    for video_format in host.pack.video.encode.FORMATS:
        page.set_widgets({"ALCM_SaveVideo": {"format": video_format, "filename_prefix": f"formats/{video_format}"}})
        queued = page.frontend_prompt()
        saved = _saved_file(server, page.queue_and_wait(save))
        assert page.preview_sizes(save) == [[SIZE, SIZE]], video_format
        page.screenshot(f"format-{video_format}-preview")
        if video_format == "gif":  # GIF has no room for the workflow: it is written beside the file
            saved = saved.with_suffix(".json")
        page.open_file(saved, len(workflow["nodes"]))
        assert page.frontend_prompt() == queued, video_format
    assert page.errors == [], "\n".join(page.errors)


@ON_THE_PINNED_SERVER
def test_a_graph_without_the_spatial_lora_is_warned_on_screen(page, server):
    """A hand-built graph that leaves out AnimateLCM's spatial LoRA still renders, and the page shows the
    sampler's warning (the pack's web extension puts it in a toast)."""
    workflow = json.loads(T2V.read_text())
    page.open_file(T2V, len(workflow["nodes"]))
    page.page.evaluate("""() => {
        const byType = t => app.graph.nodes.find(n => n.type === t);
        byType('CheckpointLoaderSimple').connect(0, byType('ALCM_ApplyMotionModule'), 0);
        app.graph.remove(byType('ALCM_LoadAnimateLCMLoRA'));
    }""")
    assert "ALCM_LoadAnimateLCMLoRA" not in page.node_types()
    page.set_widgets(SMALL)
    page.queue_and_wait(_save_node(workflow))
    sampler = str(next(n["id"] for n in workflow["nodes"] if n["type"] == "ALCM_Sampler"))
    executed = page.page.evaluate("() => window.__alcm.executed")
    [warning] = next(e["output"]["animatelcm_warnings"] for e in executed if e["node"] == sampler)
    assert warning.startswith("AnimateLCM without its spatial LoRA")
    page.page.wait_for_selector("text=AnimateLCM without its spatial LoRA", timeout=10_000)  # the toast
    page.screenshot("t2v-without-spatial-lora-warned")
    assert page.errors == [], "\n".join(page.errors)
    _unload_models(server)
