"""ControlNets and other per-frame controls over a video's frames and windows."""
