"""Greetings over the name shapes front desks really type (titles, credentials, "Last, First",
particles, hyphens, one word, all caps) and the cells that are no name at all."""

from __future__ import annotations

import pytest

from sheets_bridge.greetings import first_name, formal_greeting, informal_greeting

FORMAL: list[tuple[str, str]] = [
    ("Jordan Lee, PA-C", "Dear Jordan Lee"),
    ("Dr. Kim", "Dear Dr. Kim"),
    ("Dr Priya Raman", "Dear Dr. Raman"),
    ("DR. PRIYA RAMAN", "Dear Dr. Raman"),
    ("dr ann lee", "Dear Dr. Lee"),
    ("Prof. Dr. Hans Müller", "Dear Prof. Müller"),
    ("Doctor Maria Gomez", "Dear Dr. Gomez"),
    ("Dr. Samuel Okonkwo, DPT", "Dear Dr. Okonkwo"),
    ("Jane Smith MD", "Dear Jane Smith"),
    ("Jane Smith, M.D.", "Dear Jane Smith"),
    ("Smith, Jane", "Dear Jane Smith"),
    ("O'BRIEN, MARY", "Dear Mary O'Brien"),
    ("Maria-José D'Angelo", "Dear Maria-José D'Angelo"),
    ("Sean van der Berg", "Dear Sean van der Berg"),
    ("Dr. Ludwig van Beethoven", "Dear Dr. van Beethoven"),
    ("Tomás McAllister", "Dear Tomás McAllister"),
    ("Cher", "Dear Cher"),
    ("Ms. Olivia Brandt", "Dear Ms. Brandt"),
    ("伟 王", "Dear 伟 王"),
    ("  Jordan   Lee  ", "Dear Jordan Lee"),
    # no name to be sure of: a neutral greeting, never a fragment
    ("", "Hello"),
    ("PA-C", "Hello"),
    ("MD", "Hello"),
    ("jlee.pa@example.com", "Hello"),
    ("Northside Internal Medicine", "Hello"),
    ("Riverside Family Medicine", "Hello"),
    ("555-0147", "Hello"),
    ("=HYPERLINK(1)", "Hello"),
    ("?", "Hello"),
]


@pytest.mark.parametrize(("name", "greeting"), FORMAL, ids=[n or "empty" for n, _ in FORMAL])
def test_providers_are_greeted_formally(name: str, greeting: str) -> None:
    assert formal_greeting(name) == greeting


INFORMAL: list[tuple[str, str]] = [
    ("Sam", "Hi Sam"),
    ("SAM", "Hi Sam"),
    ("mei", "Hi Mei"),
    ("Maria-José", "Hi Maria-José"),
    ("Smith, Jane", "Hi Jane"),
    ("Jordan Lee, PA-C", "Hi Jordan"),
    ("DeShawn", "Hi DeShawn"),
    ("伟", "Hi 伟"),
    ("Dr. Kim", "Hello"),  # no given name: not "Hi Kim", not "Hi Dr."
    ("PA-C", "Hello"),
    ("", "Hello"),
    ("n/a", "Hello"),
    ("kwame@example.org", "Hello"),
]


@pytest.mark.parametrize(("name", "greeting"), INFORMAL, ids=[n or "empty" for n, _ in INFORMAL])
def test_patients_are_greeted_by_first_name(name: str, greeting: str) -> None:
    assert informal_greeting(name) == greeting


def test_first_name_is_never_a_credential_or_a_surname() -> None:
    assert first_name("Jordan Lee, PA-C") == "Jordan"
    assert first_name("Dr. Smith") == ""
    assert first_name("Smith, Jane") == "Jane"
