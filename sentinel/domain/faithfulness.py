"""Faithfulness of an agent's summary: every number, time and object label it states must
appear in the facts it was given.

A small model writes fluent summaries that invent details ("a truck" from a person track, "for
ten minutes" from a 35 s dwell). This check is deliberately literal and cheap, so it can run on
every decision: it extracts the numbers (digits and number words), clock times and object words
of the summary, and looks each one up in the context text the model saw. It cannot judge tone
or padding, only checkable facts; what it flags is a fact the context does not contain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Object words a summary may use, mapped to the detector labels (COCO) they stand for. A word is
# grounded when it, or one of its labels, appears in the context.
_OBJECT_WORDS: dict[str, tuple[str, ...]] = {
    "person": ("person",),
    "persons": ("person",),
    "people": ("person",),
    "man": ("person",),
    "men": ("person",),
    "woman": ("person",),
    "women": ("person",),
    "pedestrian": ("person",),
    "pedestrians": ("person",),
    "child": ("person",),
    "children": ("person",),
    "intruder": ("person",),
    "intruders": ("person",),
    "individual": ("person",),
    "individuals": ("person",),
    "car": ("car",),
    "cars": ("car",),
    "truck": ("truck",),
    "trucks": ("truck",),
    "lorry": ("truck",),
    "van": ("van", "truck", "car"),
    "vans": ("van", "truck", "car"),
    "bus": ("bus",),
    "buses": ("bus",),
    "motorcycle": ("motorcycle",),
    "motorcycles": ("motorcycle",),
    "motorbike": ("motorcycle",),
    "motorbikes": ("motorcycle",),
    "scooter": ("motorcycle",),
    "bicycle": ("bicycle",),
    "bicycles": ("bicycle",),
    "bike": ("bicycle", "motorcycle"),
    "bikes": ("bicycle", "motorcycle"),
    "cyclist": ("bicycle",),
    "cyclists": ("bicycle",),
    "vehicle": ("car", "truck", "bus", "motorcycle", "van", "vehicle"),
    "vehicles": ("car", "truck", "bus", "motorcycle", "van", "vehicle"),
    "boat": ("boat",),
    "train": ("train",),
    "airplane": ("airplane",),
    "dog": ("dog",),
    "dogs": ("dog",),
    "cat": ("cat",),
    "cats": ("cat",),
    "bird": ("bird",),
    "birds": ("bird",),
    "horse": ("horse",),
    "horses": ("horse",),
    "sheep": ("sheep",),
    "cow": ("cow",),
    "cows": ("cow",),
    "bear": ("bear",),
    "deer": ("deer",),
    "fox": ("fox",),
    "animal": ("dog", "cat", "bird", "horse", "sheep", "cow", "bear", "animal", "fox", "deer"),
    "animals": ("dog", "cat", "bird", "horse", "sheep", "cow", "bear", "animal", "fox", "deer"),
    "backpack": ("backpack",),
    "handbag": ("handbag",),
    "suitcase": ("suitcase",),
    "umbrella": ("umbrella",),
    "knife": ("knife",),
    "weapon": ("weapon", "knife", "gun"),
    "weapons": ("weapon", "knife", "gun"),
    "gun": ("gun",),
    "firearm": ("gun",),
}

_NUMBER_WORDS: dict[str, int] = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "hundred": 100,
}

# A clock time, with its seconds (and their fraction) if stated: "19:01:16" claims 19:01, not
# also a number 16.
_TIME = re.compile(
    r"\b([01]?\d|2[0-3])[:.h]([0-5]\d)(?::[0-5]\d(?:\.\d+)?)?\b(?:\s*([ap])\.?m\.?)?",
    re.IGNORECASE,
)
_AMPM = re.compile(r"\b(1[0-2]|0?[1-9])\s*([ap])\.?m\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?(?![\w])")
_WORD = re.compile(r"[a-z]+")
_ISO_TIME = re.compile(r"T(\d{2}):(\d{2})")
# Timestamps and clock times, whose digits are not quantities ("02:14:05" states no "5").
_STAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"|\b\d{1,2}:\d{2}(?::\d{2})?\b"
)
_ANY_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True, slots=True)
class Unsupported:
    """One claim of a summary that the context does not contain."""

    kind: str  # "number", "time" or "label"
    text: str

    def __str__(self) -> str:
        return f"{self.kind} {self.text!r}"


def _context_numbers(context: str) -> set[float]:
    """Every value the context states, generously: digit runs anywhere (dates and ISO times
    too), number words, scores as percentages, and durations of a minute or more in minutes."""
    dates = [
        float(part) for m in _STAMP.finditer(context) if m.group(1) for part in m.group(1, 2, 3)
    ]
    stated = {float(m) for m in _ANY_NUMBER.findall(_STAMP.sub(" ", context))} | set(dates)
    stated |= {
        float(_NUMBER_WORDS[w]) for w in _WORD.findall(context.lower()) if w in _NUMBER_WORDS
    }
    numbers = set(stated)
    for value in stated:
        if 0.0 < value < 1.0:
            numbers.add(float(round(value * 100)))
        if value >= 60.0:
            numbers.update({float(value // 60), float(round(value / 60))})
    return numbers


def _context_times(context: str) -> set[tuple[int, int]]:
    times = {(int(h) % 24, int(m)) for h, m, _ in _TIME.findall(context)}
    times |= {(int(h), int(m)) for h, m in _ISO_TIME.findall(context)}
    return times


def _to_24h(hour: int, ampm: str) -> int:
    if not ampm:
        return hour
    return (hour % 12) + (12 if ampm.lower() == "p" else 0)


def unsupported_claims(summary: str, context: str) -> list[Unsupported]:
    """Returns the numbers, clock times and object words of ``summary`` absent from ``context``.

    Args:
        summary: What the model wrote for the operator.
        context: The facts it was given (the rendered prompt), as text.

    Returns:
        One entry per unsupported claim, in order of appearance; empty when faithful. A number
        is supported when the same value appears in the context (``45`` matches ``45`` or
        ``45.0``; a number word counts as its value); a clock time when the same hour and
        minute appear (``23:14``, ``11:14 pm`` and ISO timestamps match each other); an object
        word (``truck``, ``people``, ``dog``…) when the word itself or a detector label it
        stands for appears in the context.
    """
    context_lower = context.lower()
    context_words = set(_WORD.findall(context_lower))
    numbers = _context_numbers(context)
    times = _context_times(context)
    found: list[Unsupported] = []
    rest = summary
    for match in _TIME.finditer(summary):
        hour, minute, ampm = int(match.group(1)), int(match.group(2)), match.group(3) or ""
        if (_to_24h(hour, ampm) % 24, minute) not in times:
            found.append(Unsupported("time", match.group()))
    rest = _TIME.sub(" ", rest)
    for match in _AMPM.finditer(rest):
        hour = _to_24h(int(match.group(1)), match.group(2))
        if not any(h == hour for h, _ in times):
            found.append(Unsupported("time", match.group()))
    rest = _AMPM.sub(" ", rest)
    for match in _NUMBER.finditer(rest):
        value = float(match.group().replace(",", ""))
        if value not in numbers:
            found.append(Unsupported("number", match.group()))
    for word in _WORD.findall(rest.lower()):
        if word in _NUMBER_WORDS and word != "one" and float(_NUMBER_WORDS[word]) not in numbers:
            # "one" is too often a pronoun ("no one", "one of") to count as a claim
            found.append(Unsupported("number", word))
        labels = _OBJECT_WORDS.get(word)
        grounded = labels is None or word in context_words
        if not grounded and not any(label in context_words for label in labels or ()):
            found.append(Unsupported("label", word))
    return found
