"""The prompt and workflow as text, for the places the ComfyUI frontend reads them on drag-and-drop.

What the frontend reads (comfyui-frontend-package src/scripts/metadata/, pnginfo.ts):
- PNG/APNG: tEXt chunks whose keyword is the key ("prompt", "workflow") and text the JSON;
- WebP: the first IFD of the EXIF chunk, ASCII values "key:JSON" (core SaveAnimatedWEBP's tags:
  0x0110 for the prompt, then 0x010F downwards for the extra keys);
- MP4: QuickTime 'mdta' keys in moov/udta/meta; WebM: SimpleTags PROMPT and WORKFLOW in the first
  2 MiB. FFmpeg writes both from container metadata (av_writer.py);
- GIF: nothing, so the workflow goes into a .json file beside it, which the frontend also loads.
"""
import json
import os
import re

from PIL import Image

WEBP_PROMPT_TAG = 0x0110  # EXIF "Model"
WEBP_FIRST_EXTRA_TAG = 0x010F  # EXIF "Make", then downwards


def json_texts(metadata):
    """{key: JSON text} of the metadata, ASCII only (non-ASCII escaped) so every container takes it."""
    return {key: brace_safe_json(json.dumps(value)) for key, value in (metadata or {}).items() if value is not None}


def brace_safe_json(text):
    """The same JSON with braces inside strings written as the escapes \\u007b and \\u007d.

    The WebM reader of the frontend that ComfyUI 0.3.75 pins (1.32.9, ebml.ts findJsonEnd) ends a
    tag's JSON at the brace that balances the first, counting braces inside strings too; a prompt
    such as "a {red|blue} fox" would cut it short. JSON reads the escapes back as the same text.
    """
    return re.sub(r'"(?:[^"\\]|\\.)*"', lambda m: m.group(0).replace("{", "\\u007b").replace("}", "\\u007d"), text)


def webp_exif(texts):
    """EXIF bytes for a WebP EXIF chunk, laid out like ComfyUI's SaveAnimatedWEBP."""
    if not texts:
        return None
    exif = Image.Exif()
    extra_tag = WEBP_FIRST_EXTRA_TAG
    for key, text in texts.items():
        if key == "prompt":
            exif[WEBP_PROMPT_TAG] = f"prompt:{text}"
        else:
            exif[extra_tag] = f"{key}:{text}"
            extra_tag -= 1
    return exif.tobytes()


def write_sidecar(video_path, metadata):
    """The workflow (or, without one, the API prompt) as a .json file the frontend loads when dropped.
    Same stem as the video, so a name that fits for `.webm` fits for `.json` too."""
    document = (metadata or {}).get("workflow") or (metadata or {}).get("prompt")
    if document is None:
        return None
    path = os.path.splitext(video_path)[0] + ".json"
    with open(path, "w", encoding="utf-8") as file:
        json.dump(document, file)
    return path
