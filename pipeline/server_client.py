"""Running API prompts on a running ComfyUI server (`--server URL`), through its own HTTP API:
GET /object_info (to read UI-format workflows against the server's nodes), a websocket on /ws for
progress and the end of the run, POST /prompt, GET /history/<id> for the outputs, GET /view to
download them. No timeout per event: a long node is not a dead server. Stopped (Ctrl-C, SIGTERM), the
renderer takes its prompts off the server: POST /queue {"delete": ...} for the queued ones, POST
/interrupt for the one running (only when it is ours).
"""
import asyncio
import contextlib
import json
import logging
import signal
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlencode

from .in_process import JobFailed, Rendered, failure_message, validation_message

log = logging.getLogger("animatelcm.render")


class ServerRunner:
    kind = "server"

    def __init__(self, url, output_dir):
        self.url = url.rstrip("/")
        if "://" not in self.url:
            self.url = "http://" + self.url
        self.output_dir = Path(output_dir)
        self.client_id = uuid.uuid4().hex
        self.catalog = asyncio.run(self._get_json("/object_info"))

    async def _get_json(self, path):
        import aiohttp
        try:
            async with aiohttp.ClientSession() as session, session.get(self.url + path) as response:
                response.raise_for_status()
                return await response.json()
        except aiohttp.ClientError as error:
            raise JobFailed(f"no ComfyUI answers at {self.url} ({error}): start it, or check --server") from error

    def render(self, prompt, stand_ins=False, size=None, on_progress=None, on_node=None):
        import aiohttp
        try:
            rendered, signum = asyncio.run(_until_signalled(self._render(prompt, on_progress, on_node)))
        except aiohttp.ClientError as error:
            raise JobFailed(f"{self.url} stopped answering ({error}): is the server still running?") from error
        if signum is not None:
            signal.raise_signal(signum)  # again, now that the loop is closed: the renderer's own handler stops it
        return rendered

    def withdraw(self):
        """Take this renderer's prompts off the server: the queued ones are deleted, the running one is
        interrupted; another client's prompt, queued or running, is left alone. Returns their ids."""
        def mine(items):  # queue items: [number, prompt id, prompt, extra data (client_id), outputs]
            return [item[1] for item in items if (item[3] or {}).get("client_id") == self.client_id]
        try:
            with urllib.request.urlopen(self.url + "/queue", timeout=10) as response:
                queue = json.loads(response.read())
            queued, running = mine(queue.get("queue_pending", [])), mine(queue.get("queue_running", []))
            if queued:
                self._post("/queue", {"delete": queued})
            for prompt_id in running:  # a server older than /interrupt's prompt_id interrupts what runs: ours
                self._post("/interrupt", {"prompt_id": prompt_id})
        except (OSError, ValueError) as error:
            log.warning("!! could not take this run's prompts off %s (%s): see its queue", self.url, error)
            return []
        if queued or running:
            log.info("took this run's prompts off %s: %d queued deleted, %d running interrupted", self.url,
                     len(queued), len(running))
        return queued + running

    def _post(self, path, body):
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    async def _render(self, prompt, on_progress, on_node):
        import aiohttp
        ws_url = self.url.replace("http", "ws", 1) + "/ws?" + urlencode({"clientId": self.client_id})
        started = time.perf_counter()
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(ws_url, max_msg_size=0) as ws:  # before queueing: no event is missed
                async with session.post(self.url + "/prompt",
                                        json={"prompt": prompt, "client_id": self.client_id}) as response:
                    answer = await response.json(content_type=None)
                if response.status != 200 or "prompt_id" not in answer:
                    raise JobFailed(f"{self.url} refused the prompt: "
                                    + validation_message(answer.get("error", answer), answer.get("node_errors")))
                prompt_id = answer["prompt_id"]
                await self._follow(ws, prompt_id, on_progress, on_node)
            graph_seconds = time.perf_counter() - started
            history = await self._history(session, prompt_id)
            status = history.get("status") or {}
            if status.get("status_str") == "error":
                raise JobFailed(failure_message(status.get("messages", [])))
            outputs = []
            for ui in history.get("outputs", {}).values():
                for key in ("images", "gifs", "videos", "audio"):
                    for entry in ui.get(key, []) or []:
                        if isinstance(entry, dict) and entry.get("type", "output") == "output":
                            outputs.append(await self._download(session, entry))
        return Rendered(outputs, graph_seconds)

    async def _follow(self, ws, prompt_id, on_progress, on_node):
        """Read the websocket until the server says our prompt finished (or failed)."""
        async for message in ws:
            if message.type != 1:  # aiohttp.WSMsgType.TEXT; binary frames are previews
                continue
            event = json.loads(message.data)
            data = event.get("data") or {}
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            if event.get("type") == "progress" and on_progress is not None:
                on_progress(data.get("value", 0), data.get("max", 1))
            elif event.get("type") == "executing" and data.get("prompt_id") == prompt_id:
                if data.get("node") is None:
                    return
                if on_node is not None:
                    on_node(str(data["node"]))
            elif event.get("type") in ("execution_error", "execution_interrupted"):
                raise JobFailed(failure_message([(event["type"], data)]))
            elif event.get("type") == "execution_success":
                return
        # the socket closed early (a proxy?): the history says when the prompt is done

    async def _history(self, session, prompt_id):
        while True:
            async with session.get(f"{self.url}/history/{prompt_id}") as response:
                history = await response.json()
            if prompt_id in history:  # the server writes the entry when the prompt has finished
                return history[prompt_id]
            await asyncio.sleep(0.25)

    async def _download(self, session, entry):
        """Fetch one output into output_dir/<subfolder>/<filename>, never over an earlier file."""
        query = urlencode({"filename": entry["filename"], "subfolder": entry.get("subfolder", ""), "type": "output"})
        async with session.get(f"{self.url}/view?{query}") as response:
            if response.status != 200:
                raise JobFailed(f"{self.url} did not give the output {entry['filename']} (HTTP {response.status})")
            data = await response.read()
        try:
            return write_unique(self.output_dir / entry.get("subfolder", "") / entry["filename"], data)
        except OSError as error:  # this job fails, the batch goes on; the file stays on the server
            on_server = "/".join(filter(None, (entry.get("subfolder"), entry["filename"])))
            raise JobFailed(f"its output could not be written into {self.output_dir} ({error}); it stays in the "
                            f"server's output folder as {on_server}") from error


async def _until_signalled(work):
    """(work's result, None), or (None, the signal) when SIGINT or SIGTERM arrives first: the signal cancels
    the work inside the loop, where aiohttp closes its connections (an exception raised into a task by a
    signal handler would leave that task to report it, with a traceback, when collected)."""
    if threading.current_thread() is not threading.main_thread():
        return await work, None
    loop, task, received = asyncio.get_running_loop(), asyncio.ensure_future(work), []
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(signum):
        received.append(signum)
        task.cancel()
    for signum in previous:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await task, None
    except asyncio.CancelledError:
        if not received:
            raise
        return None, received[0]
    finally:
        for signum, handler in previous.items():
            loop.remove_signal_handler(signum)  # which leaves the default handler: put the renderer's back
            if handler is not None:
                signal.signal(signum, handler)


def write_unique(path, data):
    """Write bytes to `path`, or to `<stem>-2<suffix>`... when a file of that name exists."""
    path, n = Path(path), 1
    target = path
    while target.exists():
        n += 1
        target = path.with_name(f"{path.stem}-{n}{path.suffix}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_bytes(data)
        partial.replace(target)
    finally:  # a failed write, or Ctrl-C between the two steps, leaves no half-made file
        with contextlib.suppress(OSError):
            partial.unlink()
    return target.resolve()
