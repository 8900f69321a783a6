"""The fast message builder writes what the email package wrote before it, byte for byte.

``messages.build_message`` used to assign every header through ``policy.default`` and call
``set_content`` / ``add_alternative``; it now folds headers once and sets parts directly (issue
13). This file keeps that earlier builder as the reference and compares both on many generated
drafts (non-ASCII names, long subjects, odd but valid addresses, bodies with long lines,
trailing spaces, ``=`` and CR/LF mixes): the serialised bytes must be equal but for the
multipart boundary (random before, derived from the key now), and parsing them back must give
the same headers and bodies. Refusals must be the same too.
"""

from __future__ import annotations

import email
import re
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sheets_bridge.messages import (
    FOR_HEADER,
    KEY_HEADER,
    _refuse_hazards,
    build_message,
    message_id_for,
    parse_address,
    smtp_bytes,
)
from sheets_bridge.model import DraftRequest

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=ZoneInfo("America/New_York"))
DOMAIN = "riverside.example"
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def reference_build(
    draft: DraftRequest, *, from_addr: str, from_name: str, now: datetime, domain: str
) -> EmailMessage:
    """``build_message`` as it was before issue 13 (the checks are shared, not copied)."""
    _refuse_hazards(
        {"To": draft.to, "Subject": draft.subject, "From": from_addr, "From name": from_name,
         "key": draft.key, "domain": domain}
    )
    if "\0" in draft.text or "\0" in draft.html:
        raise ValueError("the draft body contains a NUL character")
    to = parse_address(draft.to, field="To")
    sender = parse_address(from_addr, field="From")
    sender = Address(display_name=" ".join(from_name.split()), addr_spec=sender.addr_spec)
    message = EmailMessage(policy=policy.default)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = draft.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id_for(draft.key, domain)
    message[KEY_HEADER] = draft.key
    if draft.facets:
        message[FOR_HEADER] = " ".join(draft.facets)
    message.set_content(draft.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(draft.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message


def serialised(message: EmailMessage, use: policy.Policy) -> bytes:
    """The bytes with the multipart boundary replaced by a fixed word."""
    data = message.as_bytes(policy=use)
    boundary = message.get_boundary()
    assert boundary
    return data.replace(boundary.encode("ascii"), b"BOUNDARY")


def headers_of(message: EmailMessage) -> list[tuple[str, str]]:
    """Each header as read (``str`` of the header object), boundary replaced."""
    boundary = message.get_boundary() or "-"
    return [(k, str(v).replace(boundary, "BOUNDARY")) for k, v in message.items()]


def read_back(data: bytes) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    parsed = email.message_from_bytes(data, policy=policy.default)
    headers = [(k, str(v)) for k, v in parsed.items()]
    parts = [(p.get_content_type(), p.get_content()) for p in parsed.iter_parts()]
    return headers, parts


WORDS = st.text(
    alphabet=st.sampled_from(list("abcXYZ019 .,'\"()-=?_:;<>@!~") + ["é", "ñ", "张", "—", "ễ"]),
    min_size=0,
    max_size=40,
)
SUBJECTS = st.one_of(
    WORDS,
    st.builds(lambda a, n: (a + " ") * n, WORDS, st.integers(0, 6)),
    st.sampled_from(["=?utf-8?q?hi?=", "a  b", " lead", "trail ", "x" * 120, "Re: " + "y " * 50]),
)
NAMES = st.sampled_from(
    ["", "Dana", "Dr Nguyễn Văn An", "O'Brien", "Roe, Jane", "\"Quoted\" Name", "Jane (home)",
     "María-José 张", "A" * 90, "Dr. Smith", "Clínica Señora Ruiz", "x  y", "=?utf-8?q?a?="]
)
ADDRESSES = st.sampled_from(
    ["an@clinic.example", "a.b+c@sub.clinic.example", "o'brien@example.com",
     "x_y-z@münchen.example", "UPPER@Example.COM", "a" * 60 + "@example.com"]
)
BODIES = st.text(
    alphabet=st.sampled_from(list("ab =\t\r\n.") + ["é", "张", "\u2028"]), max_size=300
).map(lambda s: s.replace("\t", " ")) | st.sampled_from(["", "x" * 200 + "\n", "a \n", "=\n"])


@st.composite
def drafts(draw: st.DrawFn) -> tuple[DraftRequest, str]:
    name = draw(NAMES)
    address = draw(ADDRESSES)
    to = f'"{name}" <{address}>' if name and draw(st.booleans()) else (
        f"{name} <{address}>" if name else address
    )
    facets = tuple(draw(st.lists(st.sampled_from(["ab" * 16, "cd" * 16, "f1" * 8]), max_size=5)))
    key = draw(st.sampled_from(["R-00001.ack.2026", "R-12345.checkin.2026Q1", "digest.2026-W10"]))
    draft = DraftRequest(key, "R-00001", "ack", to, draw(SUBJECTS), draw(BODIES), draw(BODIES),
                         facets)
    return draft, draw(NAMES)


def outcome(build, draft: DraftRequest, from_name: str):  # type: ignore[no-untyped-def]
    try:
        return build(draft, from_addr="owner@riverside.example", from_name=from_name, now=NOW,
                     domain=DOMAIN)
    except ValueError as error:
        return type(error)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drafts())
def test_fast_builder_writes_what_the_email_package_wrote(case: tuple[DraftRequest, str]) -> None:
    draft, from_name = case
    old = outcome(reference_build, draft, from_name)
    new = outcome(build_message, draft, from_name)
    if not isinstance(old, EmailMessage):
        assert new is old
        return
    assert isinstance(new, EmailMessage)
    for use in (policy.SMTP, policy.default):
        old_bytes, new_bytes = serialised(old, use), serialised(new, use)
        assert new_bytes == old_bytes
        assert read_back(new_bytes) == read_back(old_bytes)
    written = smtp_bytes(new)
    assert written == new.as_bytes(policy=policy.SMTP)
    assert written.replace(new.get_boundary().encode(), b"BOUNDARY") == serialised(
        old, policy.SMTP
    )
    # In memory, the new message reads as a mail client reads the old one's bytes (the old
    # header objects kept a literal "=?...?=" or a double space in a name as typed, though
    # they wrote the same bytes as the new message); runs of white space aside.
    def spaced(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(k, " ".join(v.split())) for k, v in headers]

    assert spaced(headers_of(new)) == spaced(read_back(serialised(old, policy.SMTP))[0])
    assert new.get_body(("plain",)).get_content() == old.get_body(("plain",)).get_content()
    assert new.get_body(("html",)).get_content() == old.get_body(("html",)).get_content()


@pytest.mark.parametrize("subject", ["Thank you for referring María — " + "long " * 20, "ok"])
def test_lines_stay_within_rfc5322_limits(subject: str) -> None:
    draft = DraftRequest("R-00001.ack.2026", "R-00001", "ack", "Dr Nguyễn <an@clinic.example>",
                         subject, "x" * 500 + "\n", "<p>" + "é" * 300 + "</p>", ("ab" * 16,) * 6)
    data = build_message(draft, from_addr="owner@riverside.example", from_name="Clínica Ruiz",
                         now=NOW, domain=DOMAIN).as_bytes(policy=policy.SMTP)
    assert all(len(line) <= 78 for line in data.split(b"\r\n"))


def test_the_boundary_is_deterministic_and_absent_from_the_bodies() -> None:
    body = "--=_ not a boundary =_ " * 10
    draft = DraftRequest("R-00001.ack.2026", "R-00001", "ack", "an@clinic.example", "Hi", body,
                         body, ())
    first = build_message(draft, from_addr="owner@riverside.example", from_name="P", now=NOW,
                          domain=DOMAIN)
    second = build_message(draft, from_addr="owner@riverside.example", from_name="P", now=NOW,
                           domain=DOMAIN)
    assert first.as_bytes(policy=policy.SMTP) == second.as_bytes(policy=policy.SMTP)
    boundary = first.get_boundary()
    assert boundary
    parts = first.as_bytes(policy=policy.SMTP).split(b"--" + boundary.encode())
    assert len(parts) == 4  # preamble, plain, html, closing
    assert read_back(first.as_bytes(policy=policy.SMTP))[1][0][1].replace("\r\n", "\n") == body + "\n"


def test_a_message_changed_after_building_is_written_by_the_email_package() -> None:
    draft = DraftRequest("R-00001.ack.2026", "R-00001", "ack", "an@clinic.example", "Hi",
                         "text\n", "<p>html</p>\n", ())
    message = build_message(draft, from_addr="owner@riverside.example", from_name="P", now=NOW,
                            domain=DOMAIN)
    message["X-Unsent"] = "1"
    message.get_body(("plain",)).set_payload("changed\n")
    assert smtp_bytes(message) == message.as_bytes(policy=policy.SMTP)
    assert b"X-Unsent: 1" in smtp_bytes(message) and b"changed" in smtp_bytes(message)
    message.replace_header("Content-Type", 'multipart/alternative; boundary="other"')
    assert smtp_bytes(message) == message.as_bytes(policy=policy.SMTP)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
                        min_size=1, max_size=60), min_size=1, max_size=12))
def test_the_for_header_folds_as_the_email_package_folds_it(words: list[str]) -> None:
    """The For header's words are folded without the header parser (issue 13): the same text
    as the parser's own fold, whatever the words' lengths."""
    from sheets_bridge.messages import _folded

    value = " ".join(words)
    _folded.cache_clear()
    expected = policy.SMTP.header_factory(FOR_HEADER, value).fold(policy=policy.SMTP)
    prefix = FOR_HEADER + ": "
    ours = _folded(FOR_HEADER, value)
    if ours is None:
        assert not expected.startswith(prefix)
    else:
        assert prefix + ours + "\r\n" == expected
