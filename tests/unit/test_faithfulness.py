"""The summary faithfulness check: what a summary states must be in the facts it was given."""

from __future__ import annotations

import pytest

from sentinel.domain.faithfulness import unsupported_claims

CONTEXT = """\
Facts about the event:
- Camera: Loading dock (id cam-dock)
- What the camera shows: the loading dock; a parked van is often there
- Detected: person (detector confidence 0.87)
- First seen: 2026-11-26T02:14:05+00:00
- Local time at the site: Thursday 02:14
- Time in view: 135 seconds
- Movement: walked from the gate to the dock door, 2 people together
- Site notes: the site is closed 22:00-06:00
"""


@pytest.mark.parametrize(
    ("summary", "unsupported"),
    [
        ("A person was at the loading dock at 02:14 for 135 seconds.", []),
        ("Two people walked from the gate to the dock door at 2:14 am.", []),
        ("A man stayed about 2 minutes at the dock (87% confidence).", []),
        ("Someone was seen near the parked van after closing time (22:00).", []),
        ("No one should be on site; one of the people went to the door.", []),
        ("A truck stopped at the dock.", [("label", "truck")]),
        ("A person and a dog were seen.", [("label", "dog")]),
        ("A person stayed for 10 minutes.", [("number", "10")]),
        ("A person arrived at 03:40.", [("time", "03:40")]),
        ("A person arrived at 4 pm.", [("time", "4 pm")]),
        ("Three people walked to the door.", [("number", "three")]),
        ("A vehicle is parked at the dock.", []),  # "van" is in the context
        ("A person was seen at 2026-11-26T02:14:05+00:00.", []),  # the timestamp, copied
        ("A person was seen on 26 November (month 11).", []),
        ("A person was seen on 2026-12-26.", [("number", "12")]),
        ("A person was seen at 02:14:05.", []),  # a time with seconds states no number "05"
        ("A person was seen at 02:14:59.123456 on 2026-11-26.", []),
        ("A person was seen at 2026-11-26 02:14:05.", []),
        ("A person was seen at 03:14:05.", [("time", "03:14:05")]),
        (
            "Five men with a weapon at 11:30.",
            [("time", "11:30"), ("number", "five"), ("label", "weapon")],
        ),
    ],
)
def test_unsupported_claims(summary: str, unsupported: list[tuple[str, str]]) -> None:
    assert [(u.kind, u.text) for u in unsupported_claims(summary, CONTEXT)] == unsupported


def test_animal_words_need_an_animal_label() -> None:
    context = "Detected: cat (detector confidence 0.61) at 23:10"
    assert unsupported_claims("An animal crossed the yard at 23:10.", context) == []
    assert [str(u) for u in unsupported_claims("A dog crossed the yard.", context)] == [
        "label 'dog'"
    ]
