"""What can go wrong with video files; every message names the file or input and says what to do."""


class VideoError(ValueError):
    """Base of the video engine's errors."""


class VideoFileError(VideoError):
    """A file cannot give the frames asked for (missing, damaged, too big for RAM, too few frames)."""


class VideoFormatError(VideoError):
    """A format cannot be written here (a missing encoder, frames too large or small for it)."""


class OutputPathError(VideoError):
    """The filename prefix is empty, holds a NUL, or would put the file outside the output folder."""


class AudioInputError(VideoError):
    """An AUDIO input that cannot be written (NaN/inf samples, no channel, a sample rate that is no rate)."""
