"""Running API prompts on a running ComfyUI server (`--server URL`), through its own HTTP API:
GET /object_info (to read UI-format workflows against the server's nodes), a websocket on /ws for
progress and the end of the run, POST /prompt, GET /history/<id> for the outputs, GET /view to
download them. No timeout per event: a long node is not a dead server.
"""
import asyncio
import json
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

from .in_process import JobFailed, Rendered, failure_message, validation_message


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
        return asyncio.run(self._render(prompt, on_progress, on_node))

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
        return write_unique(self.output_dir / entry.get("subfolder", "") / entry["filename"], data)


def write_unique(path, data):
    """Write bytes to `path`, or to `<stem>-2<suffix>`... when a file of that name exists."""
    path, n = Path(path), 1
    target = path
    while target.exists():
        n += 1
        target = path.with_name(f"{path.stem}-{n}{path.suffix}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(data)
    partial.replace(target)
    return target.resolve()
