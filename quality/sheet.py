"""A contact sheet: one row per video (a setting of a sweep), its frames across, its settings and numbers
written at the left. Composed with Pillow (paste, text), like the plot.
"""
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from .plot import INK, WORST, font, write

THUMB = 128  # height of a frame on the sheet, pixels
MOST_FRAMES = 8  # frames shown across: evenly spaced, first and last included
MARGIN, GAP, LABEL, HEADER = 12, 6, 300, 44


@dataclass
class SheetRow:
    label: str  # the setting, e.g. "steps=4  cfg=1.5"
    lines: list = field(default_factory=list)  # its numbers, one line each
    frames: list = field(default_factory=list)  # uint8 RGB thumbnails, THUMB high (thumbnail())
    indices: list = field(default_factory=list)  # which frames of the video they are
    failed: str = None  # why there is no video


def shown_frames(frame_count, most=MOST_FRAMES):
    """The indices of the frames a row shows: evenly spaced, the first and the last among them."""
    return sorted({int(round(i)) for i in np.linspace(0, frame_count - 1, min(frame_count, most))})


def thumbnail(frame):
    """A uint8 RGB frame scaled to THUMB pixels high (aspect kept): Lanczos when shrinking, nearest
    when enlarging, so a tiny frame shows its pixels instead of a blur."""
    image = Image.fromarray(frame)
    width = max(1, round(image.width * THUMB / image.height))
    resample = Image.Resampling.LANCZOS if image.height > THUMB else Image.Resampling.NEAREST
    return np.asarray(image.resize((width, THUMB), resample))


def sheet_size(rows):
    """(width, height) of the sheet of `rows`: what contact_sheet makes, for a caller that checks it."""
    columns = max((len(row.frames) for row in rows), default=0)
    column = max((f.shape[1] for row in rows for f in row.frames), default=THUMB)
    width = 2 * MARGIN + LABEL + max(columns, 1) * (column + GAP)
    return width, 2 * MARGIN + HEADER + len(rows) * (THUMB + GAP)


def contact_sheet(title, rows):
    """The sheet as a PIL image (RGB)."""
    width, height = sheet_size(rows)
    column = max((f.shape[1] for row in rows for f in row.frames), default=THUMB)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    big, text, small = font(15), font(13), font(11)
    draw.text((MARGIN, MARGIN), title, fill=INK, font=big)
    widest = max(rows, key=lambda row: len(row.indices), default=SheetRow(""))
    # the frame numbers go above the columns when every row shows the same frames (as far as it has them),
    # else onto each frame
    shared = all(row.indices == widest.indices[:len(row.indices)] for row in rows)
    for n, index in enumerate(widest.indices if shared else []):
        x = MARGIN + LABEL + n * (column + GAP) + column / 2
        write(draw, (x, MARGIN + HEADER - 4), f"frame {index}", small, INK, "mm")
    for r, row in enumerate(rows):
        top = MARGIN + HEADER + r * (THUMB + GAP)
        draw.text((MARGIN, top), _fit(draw, row.label, text), fill=INK, font=text)
        lines = [f"failed: {row.failed}"] if row.failed else row.lines
        for n, line in enumerate(lines):
            draw.text((MARGIN, top + 20 + 15 * n), _fit(draw, line, small), fill=WORST if row.failed else INK,
                      font=small)
        for n, frame in enumerate(row.frames):
            left = MARGIN + LABEL + n * (column + GAP) + (column - frame.shape[1]) // 2
            image.paste(Image.fromarray(frame), (left, top))
            if not shared:
                caption = str(row.indices[n])
                box = draw.textbbox((left + 2, top + THUMB - 14), caption, font=small)
                draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1), fill="white")
                draw.text((left + 2, top + THUMB - 14), caption, fill=INK, font=small)
    return image


def _fit(draw, line, font_):
    """The line, cut with an ellipsis to the label column's width."""
    while line and draw.textlength(line, font=font_) > LABEL - GAP:
        line = line[:-2] + "…"
    return line
