"""Video files: IMAGE frames to a file and back, with the workflow embedded where the container allows.

formats.py is the one table both nodes use; encode.py writes one frame at a time, through PyAV
(av_writer.py: WebM/VP9, MP4/H.264) or chunk by chunk (image_containers.py: WebP, GIF, APNG);
decode.py reads into one preallocated tensor (PyAV, or Pillow for animated images); metadata.py
puts the prompt and workflow where the ComfyUI frontend reads them back on drag-and-drop; audio.py
reads a file's sound as ComfyUI's AUDIO and writes an AUDIO beside the frames (mp4, webm).
"""
