"""Video nodes: save IMAGE frames and sound as a video file (workflow embedded); load a video as frames and sound."""
import logging
import os

import comfy.utils
import folder_paths
from comfy.cli_args import args

from ..video.audio import FileSound, check_audio
from ..video.decode import load_video, load_video_latent
from ..video.encode import check_prefix, save_video
from ..video.errors import VideoFileError
from ..video.formats import FORMATS, is_loadable
from ..video.latent_frames import frames_to_save
from .declare import Node, Output
from .inputs import require_finite

log = logging.getLogger(__name__)

FORMAT_TOOLTIP = (
    "webp: animated WebP, plays in every browser and in the node; quality applies. "
    "webm: VP9, plays in browsers and the node. "
    "apng: animated PNG (.png), lossless (large files), plays in browsers. "
    "gif: plays everywhere, 256 colours per frame; the workflow goes into a .json beside it. "
    "mp4: H.264, plays in browsers, the node and every video editor. "
    "All but gif carry the prompt and workflow inside the file: drop it on ComfyUI to get the graph back.")


class SaveVideo(Node):
    NODE_ID = "ALCM_SaveVideo"
    DISPLAY_NAME = "Save Video (AnimateLCM)"
    CATEGORY = "AnimateLCM"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "filename_prefix": ("STRING", {
                    "default": "AnimateLCM/video",
                    "tooltip": "Where in the output folder, and the start of the file name; a number is added. "
                               "Subfolders are fine, paths that leave the output folder are refused."}),
                "format": (list(FORMATS), {"default": "webp", "tooltip": FORMAT_TOOLTIP}),
                "frame_rate": ("FLOAT", {"default": 8.0, "min": 0.1, "max": 120.0, "step": 0.1,
                                         "tooltip": "Frames per second. 8 suits AnimateLCM's 16-frame clips (2 s). "
                                                    "GIF stores delays in 1/100 s, and browsers slow GIFs above 50."}),
                "loop_count": ("INT", {"default": 0, "min": 0, "max": 65535,
                                       "tooltip": "How many times the animation plays: 0 = forever. webp, gif and "
                                                  "apng store it; webm and mp4 loop as the player is set."}),
                "pingpong": ("BOOLEAN", {"default": False,
                                         "tooltip": "Play forward then backward (2N-2 frames), for a seamless loop."}),
                "quality": ("INT", {"default": 90, "min": 1, "max": 100,
                                    "tooltip": "WebP quality: 90 is near-transparent; lower makes smaller files. "
                                               "apng is lossless; webm and mp4 use a near-transparent setting."}),
            },
            "optional": {
                "images": ("IMAGE", {"tooltip": "The frames of the video, in order (VAE Decode's output). Or connect "
                                                "latent and vae instead, for long videos."}),
                "latent": ("LATENT", {"tooltip": "The video's latents (the sampler's output), instead of images: they "
                                                 "are decoded a few frames at a time straight into the file, so the "
                                                 "whole video never sits in RAM as IMAGE. Needs vae."}),
                "vae": ("VAE", {"tooltip": "The VAE that decodes `latent` (the checkpoint's)."}),
                "audio": ("AUDIO", {"tooltip": "Sound to put under the video (Load Video's audio, Load Audio, any "
                                               "AUDIO): mp4 gets AAC, webm Opus. It starts with the first frame and is "
                                               "cut, or padded with silence, to the video's length (frames ÷ "
                                               "frame_rate; with pingpong, the whole forward-and-back video: the sound "
                                               "plays once, forward). webp, apng and gif hold no sound: they are "
                                               "saved without it, with a warning."}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    OUTPUTS = ()
    OUTPUT_NODE = True
    FUNCTION = "save"
    DESCRIPTION = ("Saves the frames as a video in the output folder, writing one frame at a time, and shows it in "
                   "the node. The prompt and workflow are embedded (webp, webm, apng, mp4; gif: a .json file beside "
                   "it, which ComfyUI also loads), so dropping the file on ComfyUI restores the graph. mp4 and webm "
                   "also carry the sound connected to audio.")

    def save(self, images=None, filename_prefix="AnimateLCM/video", format="webp", frame_rate=8.0, loop_count=0,
             pingpong=False, quality=90, latent=None, vae=None, audio=None, prompt=None, extra_pnginfo=None):
        require_finite(self.DISPLAY_NAME, frame_rate=frame_rate)
        warnings = []
        if audio is not None and FORMATS[format].audio is None:  # not read at all: Load Video's is never decoded
            warnings.append(f"Save Video: {format} cannot hold sound, so the video was saved without its audio. "
                            "Pick mp4 or webm to keep it.")
            log.warning("%s", warnings[-1])
            audio = None
        if audio is not None:
            checked = check_audio(audio, "Save Video (AnimateLCM)")  # a Load Video's sound is decoded here
            warnings += audio.warnings if isinstance(audio, FileSound) else []
            audio = checked
        images = frames_to_save(images, latent, vae)
        output_dir = folder_paths.get_output_directory()
        check_prefix(filename_prefix, output_dir)
        height, width = images.shape[1:3]
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, output_dir,
                                                                               width, height)
        file = f"{name}_{counter:05}_{FORMATS[format].extension}"
        metadata = None if args.disable_metadata else {"prompt": prompt, **(extra_pnginfo or {})}
        progress_bar = comfy.utils.ProgressBar(images.shape[0])
        saved = save_video(images, os.path.join(folder, file), format, frame_rate, loop_count, pingpong, quality,
                           metadata, progress=lambda done, total: progress_bar.update_absolute(done, total),
                           audio=audio)
        log.info("saved %d frames to %s%s", saved.frame_count, saved.path,
                 f" (workflow in {saved.sidecar})" if saved.sidecar else "")
        # What core SaveWEBM / SaveVideo return. With "animated", the frontend shows a .webp or .png as an
        # image and anything else in a <video> (1.32.9: useNodeVideo), which cannot play a GIF: a GIF
        # goes without it, into an <img>, which plays it.
        ui = {"images": [{"filename": file, "subfolder": subfolder, "type": "output"}], "animated": (format != "gif",)}
        return {"ui": {**ui, "animatelcm_warnings": warnings} if warnings else ui}


class LoadVideo(Node):
    NODE_ID = "ALCM_LoadVideo"
    DISPLAY_NAME = "Load Video (AnimateLCM)"
    CATEGORY = "AnimateLCM"

    @classmethod
    def INPUT_TYPES(cls):
        input_dir = folder_paths.get_input_directory()
        files = sorted(f for f in os.listdir(input_dir)
                       if os.path.isfile(os.path.join(input_dir, f)) and is_loadable(os.path.join(input_dir, f)))
        return {"required": {
            "video": (files, {"video_upload": True,
                              "tooltip": "A video in ComfyUI's input folder: mp4, webm, mkv, mov, avi, or an animated "
                                         "webp, gif or png (every format Save Video writes)."}),
            "frame_cap": ("INT", {"default": 0, "min": 0, "max": 100000,
                                  "tooltip": "How many frames to load (16 is AnimateLCM's training length); 0 loads "
                                             "all. More than the video has is an error that says how many it has."}),
            "skip_first_frames": ("INT", {"default": 0, "min": 0, "max": 1000000,
                                          "tooltip": "Frames to skip at the start."}),
            "select_every_nth": ("INT", {"default": 1, "min": 1, "max": 1000,
                                         "tooltip": "1 loads every frame, 2 every other one (half the frame rate)."}),
            "resize_to_multiple_of_8": ("BOOLEAN", {"default": True,
                                                    "tooltip": "Scale to the nearest multiple of 8 px a side, which "
                                                               "VAE Encode needs (it would crop otherwise)."}),
        }, "optional": {
            "vae": ("VAE", {"tooltip": "Connect a VAE to get the video as latents, encoded a few frames at a time as "
                                       "they are decoded: a long video never sits in RAM at full resolution (the "
                                       "frames output is then only the first frame, unless a node takes the frames, "
                                       "a ControlNet's preprocessor say: then every frame, still encoded a few at a "
                                       "time)."}),
        }, "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"}}

    # new outputs go at the end: saved workflows link outputs by position
    OUTPUTS = (
        Output("IMAGE", "frames", "The frames as an IMAGE batch (VAE Encode turns it into latents for video-to-video); with a "
                                  "vae connected, only the first frame unless this output is connected to a node."),
        Output("INT", "frame_count", "How many frames were loaded."),
        Output("FLOAT", "fps", "The frame rate of the loaded frames (the file's, divided by select_every_nth)."),
        Output("LATENT", "latent", "With a vae connected: the video's latents, ready for the sampler (video-to-video)."),
        Output("AUDIO", "audio", "The video's sound over exactly the loaded frames (from skip_first_frames, for frame_count ÷ "
                                 "fps seconds), at the file's sample rate and channels (more than 8 are mixed down to "
                                 "stereo); silence (mono, 44.1 kHz) for a video without sound. Decoded only when a node uses "
                                 "it. Connect it to Save Video's audio to keep it."),
    )
    FUNCTION = "load"
    DESCRIPTION = ("Loads a video from the input folder as IMAGE frames, one frame at a time into one tensor, and its "
                   "sound over those frames as AUDIO; a video that would not fit in the free RAM is refused before "
                   "decoding, with the numbers. The sound is decoded only when a node uses it; a sound that cannot be "
                   "read is reported on that node (Save Video) and the frames still load.")

    def load(self, video, frame_cap, skip_first_frames, select_every_nth, resize_to_multiple_of_8, vae=None,
             prompt=None, unique_id=None):
        if vae is None and _output_is_linked(prompt, unique_id, self.RETURN_NAMES.index("latent")):
            # without this, the sampler downstream would fail on a missing latent, far from the cause
            raise ValueError("Load Video (AnimateLCM): the 'latent' output is connected but no vae is. Connect the "
                             "checkpoint's VAE to 'vae' (the video is then encoded as it is decoded), or take the "
                             "'frames' output through VAE Encode.")
        progress_bar = comfy.utils.ProgressBar(max(1, frame_cap))
        options = (frame_cap, skip_first_frames, select_every_nth, 8 if resize_to_multiple_of_8 else None)
        progress = lambda done, total: progress_bar.update_absolute(done, total)  # noqa: E731
        path = _video_path(video)
        if vae is None:
            frames, fps = load_video(path, *options, progress=progress)
            result = (frames, frames.shape[0], fps, None)
        else:
            # the frames too, when a node takes them (a ControlNet's preprocessor): still encoded a chunk at a time
            keep_frames = _output_is_linked(prompt, unique_id, self.RETURN_NAMES.index("frames"))
            samples, frames, fps = load_video_latent(path, vae, *options, progress=progress, keep_frames=keep_frames)
            result = (frames, samples.shape[0], fps, {"samples": samples})
        # the frames' span of the file: from frame skip_first_frames at the file's rate, as long as they play;
        # decoded only when a node reads it
        return (*result, FileSound(path, skip_first_frames / (fps * select_every_nth), result[1] / fps))

    @classmethod
    def IS_CHANGED(cls, video, **kwargs):
        # size and modification time: a re-uploaded file under the same name reloads, without hashing gigabytes
        try:
            stat = os.stat(_video_path(video))
        except (OSError, VideoFileError):
            return float("nan")  # never equal to itself: run again, and let the node say what is wrong
        return f"{stat.st_mtime_ns}:{stat.st_size}"

    @classmethod
    def VALIDATE_INPUTS(cls, video):
        # Taking `video` here turns off ComfyUI's own "value in the list" check, so the path is checked here.
        if video is None:  # linked from another node: known only when it runs, and checked then (load_video)
            return True
        try:
            path = _video_path(video)
        except VideoFileError as error:
            return str(error)
        if not os.path.isfile(path):
            return (f"'{video}' is not in the input folder ({os.path.dirname(path)}): upload it with the node's "
                    "button or copy it there.")
        return True


def _video_path(video):
    """The file an input value names ('clip.mp4', 'sub/clip.mp4', 'clip.mp4 [output]'), kept inside its folder."""
    if not isinstance(video, str) or "\0" in video:
        raise VideoFileError(f"video {video!r} is not a file name: pick a file from the list, or link a node that "
                             "gives a file name.")
    name, base = folder_paths.annotated_filepath(video)
    base = os.path.abspath(base or folder_paths.get_input_directory())
    path = os.path.abspath(os.path.join(base, name))
    if os.path.commonpath([base, path]) != base:
        raise VideoFileError(f"video '{video}' points outside {base}: pick a file from the list.")
    return path


def _output_is_linked(prompt, node_id, index):
    """Whether any node of the prompt (API format, as the executor passes it) takes output `index` of `node_id`."""
    if not prompt or node_id is None:
        return False
    link = [str(node_id), index]
    return any(isinstance(value, list) and len(value) == 2 and [str(value[0]), value[1]] == link
               for node in prompt.values() for value in node.get("inputs", {}).values())
