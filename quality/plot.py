"""A report's per-frame curves as a picture: flicker, warping error and motion over the frame pairs, one
panel each, with the window seams marked and the video's numbers written on top. Drawn with Pillow's
ImageDraw (lines, text), which the pack already uses for images; no plotting library is needed for
three line charts.
"""
import numpy as np
from PIL import Image, ImageDraw, ImageFont

WIDTH = 768
PANEL = 110  # height of one curve's panel
TOP, LEFT, RIGHT, GAP = 34, 64, 16, 22
PANELS = (("flicker", "flicker (1 = still)", "{:.4f}"),
          ("warping_error", "warping error (0 = follows the motion)", "{:.2e}"),
          ("motion", "motion (px per frame)", "{:.2f}"))
BACKGROUND, INK, GRID, CURVE, SEAM, WORST = "white", (40, 40, 40), (225, 225, 225), (31, 119, 180), (255, 127, 14), \
    (214, 39, 40)


def font(size):
    """Pillow's own scalable font (Pillow >= 10.1), else its small bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # an older Pillow: load_default takes no size
        return ImageFont.load_default()


def plot(report):
    """uint8 RGB [H, W, 3]: the report's curves."""
    height = TOP + len(PANELS) * (PANEL + GAP) + 8
    image = Image.new("RGB", (WIDTH, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    text, small = font(13), font(11)
    draw.text((LEFT, 8), headline(report), fill=INK, font=text)
    frames = report["pairs"]["frame"]
    first, last = frames[0], frames[-1]

    def x_of(frame):
        return LEFT + (frame - first) * (WIDTH - LEFT - RIGHT) / max(last - first, 1)

    for row, (key, title, number) in enumerate(PANELS):
        top = TOP + row * (PANEL + GAP) + 14
        bottom = top + PANEL - 14
        values = np.nan_to_num(np.asarray(report["pairs"][key], dtype=np.float64))
        low, high = float(values.min()), float(values.max())
        if high - low < 1e-12:  # a flat curve sits in the middle of its panel
            low, high = low - 0.5 * max(abs(low), 1e-6), high + 0.5 * max(abs(high), 1e-6)
        draw.text((LEFT, top - 15), title, fill=INK, font=small)
        draw.rectangle((LEFT, top, WIDTH - RIGHT, bottom), outline=GRID)
        for value, y in ((high, top), (low, bottom)):
            write(draw, (LEFT - 4, y), number.format(value), small, INK, "rm")
        for seam in report["window_seam"]["seams"]:
            draw.line((x_of(seam), top, x_of(seam), bottom), fill=SEAM, width=1)

        def y_of(value):
            return bottom - (value - low) * (bottom - top) / (high - low)
        points = [(x_of(f), y_of(v)) for f, v in zip(frames, values)]
        if len(points) > 1:
            draw.line(points, fill=CURVE, width=2, joint="curve")
        for worst in report["worst"].get(key, [])[:1]:  # the worst pair of the measure, ringed
            x, y = points[frames.index(worst)]
            draw.ellipse((x - 4, y - 4, x + 4, y + 4), outline=WORST, width=2)
        if len(points) == 1:
            draw.ellipse((points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2), fill=CURVE)
    axis = TOP + len(PANELS) * (PANEL + GAP) - GAP + 2
    for frame in _ticks(first, last):
        write(draw, (x_of(frame), axis), str(frame), small, INK, "mt")
    if report["window_seam"]["seams"]:
        write(draw, (WIDTH - RIGHT, TOP - 1), "| window seams", small, SEAM, "rm")
    return np.asarray(image)


def write(draw, xy, text, font_, fill, anchor):
    """Text placed by `anchor` (Pillow's two letters: l/m/r, a/m/t), measured with textbbox: Pillow's own
    anchors need a TrueType font, which an old Pillow's default font is not."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font_)
    x = xy[0] - {"l": left, "m": (left + right) / 2, "r": right}[anchor[0]]
    y = xy[1] - {"a": top, "t": top, "m": (top + bottom) / 2}[anchor[1]]
    draw.text((x, y), text, fill=fill, font=font_)


def headline(report):
    """The video's numbers in one line."""
    seam = report["window_seam"]
    return (f"{report['frames']} frames {report['width']}x{report['height']}   flicker {report['flicker']:.4f}   "
            f"warping error {report['warping_error']:.2e}   motion {report['motion']:.2f} px   "
            + (f"window seams {seam['score']:.2f}x   " if seam["seams"] else "")
            + f"loop seam {report['loop_seam']['score']:.2f}x")


def _ticks(first, last, most=12):
    step = max(1, int(np.ceil((last - first + 1) / most)))
    return list(range(first, last + 1, step))
