r"""Prompt schedules as users already write them, read into keyframes and per-frame blends.

Formats (detected from the text):
- FizzNodes / AnimateDiff-Evolved JSON: `"0": "a fox sleeping", "16": "a fox running"` (braces optional,
  commas between entries optional); the strings are JSON strings (`\u00e9`, `\"`, `\\` decoded as FizzNodes'
  json.loads does; a backslash JSON gives no meaning, like ComfyUI's `\(`, stays as written);
- AnimateDiff-Evolved pythonic: `0 = "a fox sleeping", 16 = "a fox running"`;
- the A1111 AnimateDiff extension: one `frame: prompt` per line; lines before the first keyframe (the
  head) and after the last (the tail) are shared by every prompt: "head, prompt, tail". A line that starts
  like a keyframe but is not one (`4 - a forest`, `4. a forest`, `1e1: a forest`) is refused, not shared.
Index forms (AnimateDiff-Evolved's utils_scheduling.py): `16`; `-1` (from the end: frames - 1); `0.5` (a
fraction of the frames: int(0.5 * frames), 1.0 = the last frame); `0:12` (frames 0-11 hold the prompt, then
it blends on from frame 11 to the next keyframe); `16:` (held from 16 until the next keyframe, which then
starts at once: no blend).
FizzNodes' `--neg` splits a prompt (and pre_text, app_text, the head and tail) into its positive and negative
parts; its backtick expressions (`` `t/16` ``, `pw_a`) are refused by name, since no expression is evaluated.
Between keyframes a and b (not held), frame f is (1 - w)·E(a) + w·E(b), w = (f - a) / (b - a); before the
first keyframe every frame is the first prompt, after the last the last. `start_frame` numbers this video's
frames from there on, so a story rendered in parts continues where the previous part ended.
"""
import bisect
import json
import re
from dataclasses import dataclass

INTERPOLATIONS = ("linear", "none")
NUMBER = r"-?(?:\d+(?:\.\d*)?|\.\d+)"
KEY = rf"{NUMBER}(?:\s*:\s*(?:{NUMBER})?)?"
STRING = r'"((?:[^"\\\n]|\\.)*)"'
QUOTED_ENTRY = re.compile(rf'"\s*({KEY})\s*"\s*:\s*{STRING}\s*,?')
PYTHONIC_ENTRY = re.compile(rf'({KEY})\s*=\s*{STRING}\s*,?')
LINE_ENTRY = re.compile(rf"\s*({NUMBER}(?::(?:{NUMBER})?)?)\s*:\s*(.*?)\s*")
# A line that starts like a keyframe but is not one: a number (signed, with an exponent too), then a separator
# other than the colon ("16 = a fox", "16 -> a fox", "16; a fox", "4 - a fox", "4. a fox", "4) a fox", "4, a fox"),
# or a colon after a number no index takes ("1e1: a fox", "+4: a fox"), or a number alone. Prose that starts with
# a number runs straight on ("4k photo", "1girl", "35mm", "4-legged") or goes on with a word ("8 bit", "2 foxes").
BROKEN_ENTRY = re.compile(r'\s*"?([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"?\s*'
                          r'(?:(?:=>?|->|;|\||:|\)|,|\.(?=\s)|[-\u2013\u2014]+(?=\s))\s*(.*?)|)\s*')
# The JSON escapes json.loads decodes (a run of them at once, so a surrogate pair becomes its one character).
JSON_ESCAPES = re.compile(r'(?:\\(?:u[0-9a-fA-F]{4}|["\\/bfnrt]))+')
EXPRESSION = re.compile(r"`[^`\n]*`")
NEGATIVE = "--neg"
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
    negative: str  # the parts after --neg, put together the same way ("" when there are none)
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
        number = _line_of(text, position)[0]
        prompt = _json_string(match.group(2), number) if form == "json" else match.group(2).replace('\\"', '"')
        entries.append(Entry(re.sub(r"\s+", "", match.group(1)), prompt, number))
        position = match.end()


def _json_string(written, line):
    """A JSON string's text as FizzNodes' json.loads reads it; a backslash JSON gives no meaning (ComfyUI's
    escaped bracket, \\( ) stays as written instead of failing the schedule."""
    text = JSON_ESCAPES.sub(lambda match: json.loads(f'"{match.group(0)}"'), written)
    half = re.search("[\ud800-\udfff]", text)
    if half:
        raise ScheduleError(f"line {line}: '\\u{ord(half.group(0)):04x}' is half of a character (a UTF-16 surrogate "
                            "without its pair): write both halves, e.g. '\\ud83e\\udd8a', or the character itself.")
    return text


def _lines(text):
    """(entries, head lines, tail lines) of the A1111 extension's format."""
    entries, head, tail = [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = LINE_ENTRY.fullmatch(line)
        broken = None if match else BROKEN_ENTRY.fullmatch(line)
        if broken:
            raise ScheduleError(f"line {number} of the schedule is not a schedule entry: '{line.strip()}'. Write "
                                f"'{_as_entry(*broken.groups())}' (frame number, a colon, the prompt; a line of text "
                                "for every prompt goes in pre_text or app_text).")
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
            head.append((number, line.strip()))
    return entries, head, tail


def _as_entry(number, prompt):
    """The entry a mistyped keyframe line meant: '4 - a fox' -> '4: a fox', '1e1: a fox' -> '10: a fox'."""
    value = float(number)
    frame = str(int(value)) if value.is_integer() else number.lstrip("+")
    return f"{frame}: {prompt or 'your prompt'}"


def parse(text):
    """(entries, head, tail) of a schedule in any of the formats above; head and tail are (line, text) pairs."""
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
                            f"prompt on every frame: '0: {head[0][1] if head else 'your prompt'}').")
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


def _parts(text, where):
    """(positive, negative) of one part of a prompt, split at FizzNodes' --neg; an expression is refused."""
    expression = EXPRESSION.search(text)
    if expression:
        raise ScheduleError(
            f"{where}: {expression.group(0)} is a FizzNodes expression (text between backticks, which FizzNodes "
            "works out on every frame); this node works out no expression, and CLIP would read it as words. Write "
            "the value it stands for, e.g. (snow:1.2), or give each value its own keyframe and let the blend between "
            "keyframes move from one to the next.")
    positive, _, negative = text.partition(NEGATIVE)
    if NEGATIVE in negative:
        raise ScheduleError(f"{where}: '{NEGATIVE}' is written twice. FizzNodes splits a prompt once: the positive "
                            f"before '{NEGATIVE}', the negative after it.")
    return positive, negative


def _text(*parts):
    return ", ".join(part.strip() for part in parts if part.strip())


def keyframes(text, frames, start_frame=0, pre_text="", app_text="", interpolation="linear"):
    """The schedule's keyframes in story frames, sorted; duplicates and overlaps refused by line."""
    if interpolation not in INTERPOLATIONS:
        raise ScheduleError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not '{interpolation}'.")
    entries, head, tail = parse(text)
    pre, app = _parts(pre_text, "pre_text"), _parts(app_text, "app_text")
    head = [_parts(line, f"line {number}") for number, line in head]
    tail = [_parts(line, f"line {number}") for number, line in tail]
    found, ranges = {}, []
    for entry in entries:
        around = [pre, *head, _parts(entry.prompt, f"line {entry.line}"), *tail, app]
        prompt, negative = _text(*(p for p, _ in around)), _text(*(n for _, n in around))
        start, colon, end = entry.key.partition(":")
        first = _index(start, entry, frames, start_frame)
        if not colon or (end and _index(end, entry, frames, start_frame) - 1 == first):
            points = [Keyframe(first, prompt, negative, interpolation == "none", entry.line)]
        elif not end:
            points = [Keyframe(first, prompt, negative, True, entry.line)]
        else:
            last = _index(end, entry, frames, start_frame) - 1
            if last < first:
                raise ScheduleError(f"line {entry.line}: the range {entry.key} holds no frame (it ends before it "
                                    f"starts; write start:end with end > start, e.g. {first}:{first + 8}).")
            points = [Keyframe(first, prompt, negative, True, entry.line),
                      Keyframe(last, prompt, negative, interpolation == "none", entry.line)]
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


def has_negative(points):
    """Whether any part of the schedule has a --neg part (else the negative is the empty prompt)."""
    return any(k.negative for k in points)


def blend(points, frames, start_frame=0, negative=False):
    """Which prompts (or negatives) make each of the video's `frames` frames, and how: a Blend over the distinct
    prompts this video shows, so a keyframe whose prompt no frame of it uses is never encoded."""
    text = (lambda k: k.negative) if negative else (lambda k: k.prompt)
    starts = [k.frame for k in points]
    pairs, weight = [], []
    for frame in range(start_frame, start_frame + frames):
        after = bisect.bisect_right(starts, frame)  # points[after] is the first keyframe after this frame
        a = points[after - 1] if after else points[0]
        b = points[after] if after and after < len(points) else a
        w = 0.0 if a.hold or a is b or text(a) == text(b) else (frame - a.frame) / (b.frame - a.frame)
        pairs.append((text(a), text(b) if w else text(a)))
        weight.append(w)
    prompts = list(dict.fromkeys(prompt for pair in pairs for prompt in pair))
    slot = {prompt: i for i, prompt in enumerate(prompts)}
    return Blend(prompts, [slot[a] for a, _ in pairs], [slot[b] for _, b in pairs], weight)
