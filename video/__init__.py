"""Video files: IMAGE frames to a file and back, with the workflow embedded where the container allows.

encode.py writes (one frame at a time), decode.py reads into one preallocated tensor, and the
containers are assembled in image_containers.py (WebP, GIF, APNG from Pillow-encoded frames) and
opencv_writer.py (WebM, MP4); metadata.py and webm_tags.py put the prompt and workflow where the
ComfyUI frontend reads them back on drag-and-drop.
"""
