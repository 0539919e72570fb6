"""Weight files that cannot be read; each message names the file and what to do."""


class WeightFileError(ValueError):
    """The file cannot be read as weights; the message names the file and what to do."""
