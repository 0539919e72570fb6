"""Weight files: where the pack finds them (ComfyUI's model folders) and how it reads them safely."""
