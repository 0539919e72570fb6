"""ComfyUI's own server (its main.py, in a subprocess) with the pack in its custom_nodes, for the
browser test: the same program a user starts, on loopback, with every folder in a temporary base.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import comfy_host

START_TIMEOUT = 240  # seconds: importing ComfyUI and every built-in node takes ~20 s on a busy 2-core CPU


class ServerDidNotStart(RuntimeError):
    pass


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    def __init__(self, comfyui_path, base_dir, front_end_root=None, other_custom_nodes=(), return_freed_heap=True,
                 extra_env=None):
        """other_custom_nodes: folders (or .py files) of other node packs to serve beside this one (bench_vs_ade.py).
        return_freed_heap=False: glibc's default heap, as a user's server runs (for timing).
        extra_env: environment variables for the server process only."""
        self.base = Path(base_dir)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        for folder in ("custom_nodes", "models", "input", "output", "temp", "user/default"):
            (self.base / folder).mkdir(parents=True, exist_ok=True)
        (self.base / "custom_nodes" / comfy_host.PACK_NAME).symlink_to(comfy_host.REPO, target_is_directory=True)
        for folder in other_custom_nodes:
            (self.base / "custom_nodes" / Path(folder).name).symlink_to(Path(folder).resolve(), target_is_directory=True)
        # a returning user: no first-run template browser over the graph
        (self.base / "user" / "default" / "comfy.settings.json").write_text(json.dumps({"Comfy.TutorialCompleted": True}))
        self.log_path = self.base / "server.log"
        command = [sys.executable, str(Path(comfyui_path) / "main.py"), "--cpu", "--listen", "127.0.0.1",
                   "--port", str(self.port), "--base-directory", str(self.base), "--disable-auto-launch",
                   "--database-url", f"sqlite:///{self.base / 'user' / 'comfyui.db'}"]
        if front_end_root:  # another frontend than the one ComfyUI pins (its static folder), as users update it
            command += ["--front-end-root", str(front_end_root)]
        # glibc returns freed blocks of 1 MB and more to the OS at once (the default keeps up to 32 MB blocks
        # in the heap): a UNet's weights, freed when the test unloads a workflow's models, leave the
        # server instead of staying resident beside the next workflow's
        env = {**os.environ, **({"MALLOC_MMAP_THRESHOLD_": str(2**20)} if return_freed_heap else {}), **(extra_env or {})}
        self.process = subprocess.Popen(command, cwd=comfyui_path, stdout=open(self.log_path, "wb"),
                                        stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self._wait_until_ready()

    def models_dir(self, folder):
        """The server's model folder `folder` (what tests/stand_ins.py links stand-ins into)."""
        path = self.base / "models" / folder
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def input_dir(self):
        return self.base / "input"

    @property
    def output_dir(self):
        return self.base / "output"

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def post(self, path, body):
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def log_tail(self, lines=40):
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _wait_until_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerDidNotStart(f"ComfyUI's main.py exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                self.get("/system_stats")
                return
            except OSError:
                time.sleep(1)
        self.stop()
        raise ServerDidNotStart(f"ComfyUI's server did not answer within {START_TIMEOUT} s:\n{self.log_tail()}")

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
