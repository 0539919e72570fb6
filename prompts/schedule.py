"""Prompt schedules as users already write them (REFERENCE.md §11), read into keyframes and per-frame blends.

Formats (detected from the text):
- FizzNodes / AnimateDiff-Evolved JSON: `"0": "a fox sleeping", "16": "a fox running"` (braces optional,
  commas between entries optional);
- AnimateDiff-Evolved pythonic: `0 = "a fox sleeping", 16 = "a fox running"`;
- the A1111 AnimateDiff extension: one `frame: prompt` per line; lines before the first keyframe (the
  head) and after the last (the tail) are shared by every prompt: "head, prompt, tail".
Index forms (AnimateDiff-Evolved's utils_scheduling.py): `16`; `-1` (from the end: frames - 1); `0.5` (a
fraction of the frames: int(0.5 * frames), 1.0 = the last frame); `0:12` (frames 0-11 hold the prompt, then
it blends on from frame 11 to the next keyframe); `16:` (held from 16 until the next keyframe, which then
starts at once: no blend).
Between keyframes a and b (not held), frame f is (1 - w)·E(a) + w·E(b), w = (f - a) / (b - a); before the
first keyframe every frame is the first prompt, after the last the last. `start_frame` numbers this video's
frames from there on, so a story rendered in parts continues where the previous part ended.
"""
import re
from dataclasses import dataclass

INTERPOLATIONS = ("linear", "none")
NUMBER = r"-?(?:\d+(?:\.\d*)?|\.\d+)"
KEY = rf"{NUMBER}(?:\s*:\s*(?:{NUMBER})?)?"
STRING = r'"((?:[^"\\\n]|\\.)*)"'
QUOTED_ENTRY = re.compile(rf'"\s*({KEY})\s*"\s*:\s*{STRING}\s*,?')
PYTHONIC_ENTRY = re.compile(rf'({KEY})\s*=\s*{STRING}\s*,?')
LINE_ENTRY = re.compile(rf"\s*({NUMBER}(?::(?:{NUMBER})?)?)\s*:\s*(.*?)\s*")
# A line that starts like a keyframe but is not one ("16 = a fox", "16 -> a fox", "16; a fox").
BROKEN_ENTRY = re.compile(rf'\s*"?{NUMBER}"?\s*(?:=|->|;|\|)')
FORMS = {"json": '"16": "a fox running",', "pythonic": '16 = "a fox running",', "lines": "16: a fox running"}


class ScheduleError(ValueError):
    """A schedule that cannot be read; the message names the line and shows the expected form."""


@dataclass(frozen=True)
class Entry:
    key: str  # the index as written: 16, -1, 0.5, 0:12, 16:
    prompt: str
    line: int


@dataclass(frozen=True)
class Keyframe:
    frame: int  # in story frames (start_frame counts from here)
    prompt: str  # with pre_text/app_text (and the A1111 head and tail) around it
    hold: bool  # kept until the next keyframe, which starts at once
    line: int


@dataclass(frozen=True)
class Blend:
    """Per frame of the video: prompts[first[f]] blended towards prompts[second[f]] by weight[f]."""
    prompts: list
    first: list
    second: list
    weight: list


def _line_of(text, position):
    number = text.count("\n", 0, position) + 1
    return number, text.splitlines()[number - 1].strip() if text.splitlines() else ""


def _scan(text, pattern, form):
    """Entries matched one after another; any other text is refused by line."""
    entries, position = [], 0
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text):
            return entries
        match = pattern.match(text, position)
        if match is None:
            number, line = _line_of(text, position)
            raise ScheduleError(f"line {number} of the schedule is not a schedule entry: '{line}'. Write one entry "
                                f"per keyframe as {FORMS[form]} (frame number, then the prompt in double quotes).")
        entries.append(Entry(re.sub(r"\s+", "", match.group(1)), match.group(2).replace('\\"', '"'),
                             _line_of(text, position)[0]))
        position = match.end()


def _lines(text):
    """(entries, head lines, tail lines) of the A1111 extension's format."""
    entries, head, tail = [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = LINE_ENTRY.fullmatch(line)
        if BROKEN_ENTRY.match(line) and match is None:
            raise ScheduleError(f"line {number} of the schedule is not a schedule entry: '{line.strip()}'. Write "
                                f"'{FORMS['lines']}' (frame number, a colon, the prompt).")
        if match:
            if tail:
                raise ScheduleError(
                    f"line {tail[0][0]} of the schedule is not a schedule entry: '{tail[0][1]}', and keyframes "
                    f"follow it. Write it as '{FORMS['lines']}' (frame number, a colon, the prompt); text shared "
                    "by every prompt goes before the first keyframe or after the last.")
            entries.append(Entry(match.group(1), match.group(2), number))
        elif entries:
            tail.append((number, line.strip()))
        else:
            head.append(line.strip())
    return entries, head, [line for _, line in tail]


def parse(text):
    """(entries, head, tail) of a schedule in any of the formats above."""
    body = text.strip()
    if not body:
        raise ScheduleError("the schedule is empty: write one keyframe per line, e.g. '0: a fox sleeping' and "
                            "'16: a fox running'.")
    if body.startswith("{") and body.endswith("}"):  # JSON braces: blanked, so line numbers stay the user's
        start, end = text.index("{"), text.rindex("}")
        text = text[:start] + " " + text[start + 1:end] + " " + text[end + 1:]
        body = body[1:-1].strip()
    if body.startswith('"'):
        return _scan(text, QUOTED_ENTRY, "json"), [], []
    if re.match(rf'\s*{KEY}\s*=\s*"', body):
        return _scan(text, PYTHONIC_ENTRY, "pythonic"), [], []
    entries, head, tail = _lines(text)
    if not entries:
        raise ScheduleError(f"the schedule has no keyframe: write one per line as '{FORMS['lines']}' (for one "
                            f"prompt on every frame: '0: {head[0] if head else 'your prompt'}').")
    return entries, head, tail


def _index(written, entry, frames, start_frame):
    """A frame number from an index as written: n, -n (from the end), or a fraction 0-1 of the frames."""
    relative = written.startswith("-") or "." in written
    if relative and start_frame:
        raise ScheduleError(f"line {entry.line}: '{entry.key}' counts from this video's length, which is not the "
                            f"story's when start_frame is {start_frame}: write frame numbers (e.g. '{frames - 1}').")
    if "." in written:
        fraction = float(written)
        if not 0.0 <= fraction <= 1.0:
            raise ScheduleError(f"line {entry.line}: the fraction {written} is not between 0 and 1 (0.5 = the "
                                f"middle frame, 1.0 = the last).")
        return frames - 1 if fraction == 1.0 else int(fraction * frames)
    index = int(written)
    if index < 0:
        if frames + index < 0:
            raise ScheduleError(f"line {entry.line}: {written} is before the first frame of this {frames}-frame video "
                                f"(-1 is the last frame, -{frames} the first).")
        return frames + index
    return index


def _text(prompt, pre_text, app_text, head=(), tail=()):
    return ", ".join(part.strip() for part in (pre_text, *head, prompt, *tail, app_text) if part.strip())


def keyframes(text, frames, start_frame=0, pre_text="", app_text="", interpolation="linear"):
    """The schedule's keyframes in story frames, sorted; duplicates and overlaps refused by line."""
    if interpolation not in INTERPOLATIONS:
        raise ScheduleError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not '{interpolation}'.")
    entries, head, tail = parse(text)
    found, ranges = {}, []
    for entry in entries:
        prompt = _text(entry.prompt, pre_text, app_text, head, tail)
        start, colon, end = entry.key.partition(":")
        first = _index(start, entry, frames, start_frame)
        if not colon or (end and _index(end, entry, frames, start_frame) - 1 == first):
            points = [Keyframe(first, prompt, interpolation == "none", entry.line)]
        elif not end:
            points = [Keyframe(first, prompt, True, entry.line)]
        else:
            last = _index(end, entry, frames, start_frame) - 1
            if last < first:
                raise ScheduleError(f"line {entry.line}: the range {entry.key} holds no frame (it ends before it "
                                    f"starts; write start:end with end > start, e.g. {first}:{first + 8}).")
            points = [Keyframe(first, prompt, True, entry.line), Keyframe(last, prompt, interpolation == "none",
                                                                          entry.line)]
            ranges.append((first, last, entry))
        for point in points:
            if point.frame in found:
                other = found[point.frame]
                raise ScheduleError(f"frame {point.frame} has two keyframes (line {other.line} and line {point.line}): "
                                    "keep one of them.")
            found[point.frame] = point
    for first, last, entry in ranges:
        inside = [k for k in found.values() if first < k.frame < last]
        if inside:
            raise ScheduleError(f"line {inside[0].line}: keyframe {inside[0].frame} lies inside the range "
                                f"{entry.key} of line {entry.line}, which holds its prompt there: move one of them.")
    return [found[frame] for frame in sorted(found)]


def past_the_end(points, frames, start_frame=0):
    """The keyframes after this video's last frame (their story continues in a later part, or a typo)."""
    return [k for k in points if k.frame >= start_frame + frames]


def blend(points, frames, start_frame=0):
    """Which prompts make each of the video's `frames` frames, and how (a Blend over distinct prompts)."""
    prompts = list(dict.fromkeys(k.prompt for k in points))
    slot = {prompt: i for i, prompt in enumerate(prompts)}
    first, second, weight = [], [], []
    for frame in range(start_frame, start_frame + frames):
        before = [k for k in points if k.frame <= frame]
        after = [k for k in points if k.frame > frame]
        a = before[-1] if before else after[0]
        b = after[0] if before and after else a
        w = 0.0 if a.hold or a is b or a.prompt == b.prompt else (frame - a.frame) / (b.frame - a.frame)
        first.append(slot[a.prompt])
        second.append(slot[b.prompt])
        weight.append(w)
    return Blend(prompts, first, second, weight)
