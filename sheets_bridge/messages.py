"""Turning a planned draft into a standard MIME message, refusing anything that could inject.

Built for the standard library's ``email`` package under ``policy.default``, which encodes
non-ASCII display names and subjects (María-José, 张伟) as RFC 2047 words and folds long
headers. The policy's own newline checks came late and in pieces (CVE-2024-6923,
CVE-2026-1299), so every header-bound value is checked here first, before any header object
exists (RELIABILITY.md, Injection). Addresses are parsed strictly: one address, no group, no
parser defects; ``parseaddr`` is avoided because this Python's lacks ``strict=``
(CVE-2023-27043).

The draft's key travels in the message twice (R2): a deterministic ``Message-ID`` and an
``X-Sheets-Bridge-Key`` header, so a draft created just before a crash can be found again.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy, quoprimime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email

from sheets_bridge.model import DraftRequest
from sheets_bridge.values import has_control_chars

__all__ = [
    "FOR_HEADER",
    "KEY_HEADER",
    "HeaderInjectionError",
    "InlineImage",
    "InvalidAddressError",
    "build_message",
    "message_id_for",
    "parse_address",
    "smtp_bytes",
]

#: The header that carries the draft key, for reconciling after a crash (R2).
KEY_HEADER = "X-Sheets-Bridge-Key"
#: Keyed digests of who a draft is about: a state rebuilt from the drafts still knows them.
FOR_HEADER = "X-Sheets-Bridge-For"

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*")


class HeaderInjectionError(ValueError):
    """A value bound for a header holds CR, LF, NUL, a bidi control or an encoded line break.

    ``field`` names the header (``To``, ``Subject``, ``From name``...) so the caller can say
    which column to fix; the value itself is never in the message (it may be patient data).
    """

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} contains a line break or control character: refused")
        self.field = field


class InvalidAddressError(ValueError):
    """A ``To`` or ``From`` value is not exactly one valid address."""

    def __init__(self, field: str, why: str = "is not one valid email address") -> None:
        super().__init__(f"{field} {why}")
        self.field = field


def _refuse_hazards(values: dict[str, str]) -> None:
    for field, value in values.items():
        if has_control_chars(value) or "\t" in value:
            raise HeaderInjectionError(field)


def parse_address(value: str, *, field: str) -> Address:
    """Parse ``value`` as exactly one address (with an optional display name), strictly.

    The domain is converted to its ASCII form (IDNA) so the message needs no SMTPUTF8; an
    address whose local part is not ASCII is refused for the same reason.
    """
    _refuse_hazards({field: value})
    header = policy.default.header_factory(field, value)
    groups: tuple[Any, ...] = getattr(header, "groups", ())
    if header.defects or len(groups) != 1 or groups[0].display_name is not None:
        raise InvalidAddressError(field)
    addresses = groups[0].addresses
    if len(addresses) != 1 or not addresses[0].username or not addresses[0].domain:
        raise InvalidAddressError(field)
    address = addresses[0]
    try:
        checked = validate_email(address.addr_spec, check_deliverability=False)
    except EmailNotValidError:
        raise InvalidAddressError(field) from None
    ascii_address = checked.ascii_email
    if not ascii_address:
        raise InvalidAddressError(
            field, "has a non-ASCII name before the @, which mail may not carry"
        )
    return Address(display_name=address.display_name, addr_spec=ascii_address)


@functools.lru_cache(maxsize=4096)
def _parse_address_cached(value: str, field: str) -> Address:
    """:func:`parse_address`, remembered: the From address is the same in every draft and a
    referrer's address recurs, and strict parsing plus validation was a third of a first
    sync's message cost. An ``Address`` is immutable, so sharing one is safe; a refused value
    raises every time (``lru_cache`` keeps no exceptions)."""
    return parse_address(value, field=field)


def message_id_for(key: str, domain: str) -> str:
    """The deterministic Message-ID of the draft with ``key``: ``<key@domain>``."""
    return f"<{_KEY_UNSAFE.sub('-', key)}@{domain}>"


@dataclass(frozen=True)
class InlineImage:
    """A picture shown inside the HTML body (``<img src="cid:...">``), not as an attachment."""

    data: bytes
    cid: str
    """The Content-ID without angle brackets, as the HTML refers to it after ``cid:``."""
    filename: str
    subtype: str = "png"


def build_message(
    draft: DraftRequest,
    *,
    from_addr: str,
    from_name: str,
    now: datetime,
    domain: str,
    image: InlineImage | None = None,
) -> EmailMessage:
    """The ``multipart/alternative`` message (plain text, then HTML) for ``draft``.

    With ``image``, the HTML part becomes ``multipart/related`` holding the picture inline by
    Content-ID (the digest's chart). Raises :class:`HeaderInjectionError` or
    :class:`InvalidAddressError` (both ``ValueError``) before building anything when a
    header-bound value is unsafe. ``now`` stamps the Date header; ``domain`` is the right side
    of the Message-ID (the practice's mail domain).
    """
    _refuse_hazards(
        {
            "To": draft.to,
            "Subject": draft.subject,
            "From": from_addr,
            "From name": from_name,
            "key": draft.key,
            "domain": domain,
        }
    )
    if not draft.key or _KEY_UNSAFE.search(draft.key):
        raise ValueError("the draft key may hold only letters, digits, '.', '-' and '_'")
    if not _DOMAIN.fullmatch(domain):
        raise ValueError("the Message-ID domain must be a plain host name like example.com")
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if "\0" in draft.text or "\0" in draft.html:
        raise ValueError("the draft body contains a NUL character")
    to = _parse_address_cached(draft.to, "To")
    sender = _parse_address_cached(from_addr, "From")
    sender = Address(display_name=" ".join(from_name.split()), addr_spec=sender.addr_spec)
    if image is not None:
        return _build_with_email_package(draft, sender, to, now, domain, image)

    message = EmailMessage(policy=policy.default)
    for name, value in _top_headers(draft, sender, to, now, domain):
        folded = _folded(name, value)
        if folded is not None:
            message.set_raw(name, folded)
        else:
            message[name] = value  # a fold that starts on the next line: the slow, exact way
    message.set_raw("MIME-Version", "1.0")
    message.set_raw(
        "Content-Type", f'multipart/alternative;\r\n boundary="{_boundary_for(draft.key)}"'
    )
    message.set_payload(
        [_text_part("plain", draft.text, ()), _text_part("html", draft.html, _MIME_VERSION)]
    )
    return message


def _top_headers(
    draft: DraftRequest, sender: Address, to: Address, now: datetime, domain: str
) -> list[tuple[str, str]]:
    """The top-level headers in today's order, as the text each header object would hold."""
    headers = [
        ("From", str(sender)),
        ("To", str(to)),
        ("Subject", draft.subject),
        ("Date", format_datetime(now)),
        ("Message-ID", message_id_for(draft.key, domain)),
        (KEY_HEADER, draft.key),
    ]
    if draft.facets:
        headers.append((FOR_HEADER, " ".join(draft.facets)))
    return headers


#: A header value the standard folder writes back unchanged: printable ASCII words separated by
#: single spaces, no encoded-word opener. Anything else (a non-ASCII name, a long subject) is
#: folded by the email package itself, so its encoded words and line breaks are its own.
_PLAIN = re.compile(r"[!-~]+(?: [!-~]+)*")
_MAX_LINE: int = policy.SMTP.max_line_length or 78
_MIME_VERSION = (("MIME-Version", "1.0"),)


@functools.lru_cache(maxsize=4096)
def _folded(name: str, value: str) -> str | None:
    """``value`` as it is written after ``name: ``, folded to RFC 5322 lines (CRLF + space).

    Why not ``message[name] = value``: that parses every value into a header object and the
    generator refolds it through the full header parser, which was most of a first sync's
    message cost (issue 13). A plain short value is written as it is, which is exactly what
    that parser would write; any other is folded by the very same parser once, here (cached:
    the From line and the Subjects of one kind repeat). ``set_raw`` keeps the folded text,
    the generator's fast path writes it back unchanged, and reading a header (``msg["To"]``)
    still parses it to the same header object as before. ``None`` when the fold does not
    start with ``name: `` (an empty value, or a first word too long for the name's line),
    which the generator's fast path cannot write: such a header is assigned as before.
    """
    if "=?" not in value and len(name) + 2 + len(value) <= _MAX_LINE and _PLAIN.fullmatch(value):
        return value
    if name == FOR_HEADER and len(value) + 1 > _MAX_LINE and _DIGEST_WORDS.fullmatch(value):
        greedy = _fold_words(name, value)
        if greedy is not None:
            return greedy
    folded = policy.SMTP.header_factory(name, value).fold(policy=policy.SMTP)
    prefix = name + ": "
    if not folded.startswith(prefix):
        return None
    return folded[len(prefix) :].removesuffix("\r\n")


#: The facet digests of the For header: plain words the header parser treats as plain text.
_DIGEST_WORDS = re.compile(r"[A-Za-z0-9._-]+(?: [A-Za-z0-9._-]+)*")


def _fold_words(name: str, value: str) -> str | None:
    """``value`` folded as the email package folds an unstructured header of plain words
    (issue 13: the For header, different in every draft, was a third of a message's cost):
    as many words per line as fit in 78 characters, each further line starting with a space.

    Only for what that parser folds this way, which ``test_messages`` checks on generated
    word lists: words of letters, digits and ``._-`` that do not fit on one line together
    (else the parser moves them whole to the next line), none too long for the first line.
    ``None`` when a word is too long: the caller asks the email package.
    """
    words = value.split(" ")
    if any(len(name) + 2 + len(word) > _MAX_LINE for word in words):
        return None
    lines: list[str] = []
    line = words[0]
    used = len(name) + 2 + len(line)
    for word in words[1:]:
        if used + 1 + len(word) <= _MAX_LINE:
            line += " " + word
            used += 1 + len(word)
        else:
            lines.append(line)
            line = " " + word
            used = len(line)
    lines.append(line)
    return "\r\n".join(lines)


def _boundary_for(key: str) -> str:
    """A deterministic multipart boundary that cannot occur in a quoted-printable body.

    Quoted-printable writes ``=`` only as ``=3D`` or as a soft line break at a line's end, so
    ``=_`` never appears in an encoded part: the generator's search of the bodies for a free
    boundary (a random one today) is not needed. Same length as the generator's own.
    """
    return "=_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:34]


def _text_part(subtype: str, body: str, extra: tuple[tuple[str, str], ...]) -> EmailMessage:
    """One ``text/<subtype>`` part, UTF-8, quoted-printable, as ``set_content`` makes it."""
    part = EmailMessage(policy=policy.default)
    part.set_raw("Content-Type", f'text/{subtype}; charset="utf-8"')
    part.set_raw("Content-Transfer-Encoding", "quoted-printable")
    for name, value in extra:
        part.set_raw(name, value)
    part.set_payload(_quoted_printable(body))
    return part


def _quoted_printable(body: str) -> str:
    """The body encoded exactly as ``set_content(..., cte="quoted-printable")`` encodes it."""
    lines = body.encode("utf-8").splitlines()
    return quoprimime.body_encode((b"\n".join(lines) + b"\n").decode("latin-1"), _MAX_LINE)


_PART_TYPES = frozenset({'text/plain; charset="utf-8"', 'text/html; charset="utf-8"'})
_LINE_ENDS = re.compile(r"\r\n|\r|\n")


def smtp_bytes(message: EmailMessage) -> bytes:
    """``message.as_bytes(policy=policy.SMTP)``, written directly for the shape we build.

    The generator parses each part's Content-Type again (six header parses per draft) only to
    learn what we already know; for a message still exactly as :func:`build_message` made it
    (checked on its present headers and parts, so a changed message is never mis-written), the
    same bytes are assembled here: each header through the policy's own ``fold_binary``, the
    quoted-printable bodies line by line, the boundary lines as the generator writes them.
    Anything else (the digest with its picture, a message changed since) goes through
    ``as_bytes``. ``test_messages_equivalence`` holds the two to the same bytes.
    """
    fast = _render(message)
    return fast if fast is not None else message.as_bytes(policy=policy.SMTP)


def _render(message: EmailMessage) -> bytes | None:
    if type(message) is not EmailMessage or message.preamble is not None:
        return None
    if message.epilogue is not None or message.get_unixfrom() is not None:
        return None
    top = list(message.raw_items())
    raw = dict(top)
    key = raw.get(KEY_HEADER)
    if not isinstance(key, str) or len(raw) != len(top):
        return None
    boundary = _boundary_for(key)
    if raw.get("Content-Type") != f'multipart/alternative;\r\n boundary="{boundary}"':
        return None
    parts = message.get_payload()
    if not isinstance(parts, list) or len(parts) != 2:
        return None
    texts: list[bytes] = []
    for part in parts:
        if type(part) is not EmailMessage or part.preamble is not None:
            return None
        if part.epilogue is not None or part.get_unixfrom() is not None:
            return None
        headers = list(part.raw_items())
        # The payload as set, not get_payload(): that parses Content-Transfer-Encoding again
        # only to hand back the same string (it differs only for text with surrogates, which
        # isascii() below refuses to the slow path either way).
        payload = part._payload  # type: ignore[attr-defined]
        if headers[0][0] != "Content-Type" or headers[0][1] not in _PART_TYPES:
            return None
        if not isinstance(payload, str) or not payload.isascii():
            return None
        texts.append(_headers_bytes(headers) + _lines_bytes(payload))
    mark = f"--{boundary}".encode("ascii")
    return b"".join(
        (
            _headers_bytes(top),
            mark, b"\r\n", texts[0],
            b"\r\n", mark, b"\r\n", texts[1],
            b"\r\n", mark, b"--\r\n",
        )
    )


def _headers_bytes(headers: list[tuple[str, Any]]) -> bytes:
    fold = policy.SMTP.fold_binary
    return b"".join([fold(name, value) for name, value in headers]) + b"\r\n"


def _lines_bytes(payload: str) -> bytes:
    """A body as the generator's ``_write_lines`` writes it: every line end made CRLF."""
    if not payload:
        return b""
    return "\r\n".join(_LINE_ENDS.split(payload)).encode("ascii")


def _build_with_email_package(
    draft: DraftRequest,
    sender: Address,
    to: Address,
    now: datetime,
    domain: str,
    image: InlineImage,
) -> EmailMessage:
    """The digest's shape (HTML with an inline picture), built by the email package itself."""
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
    html_part = list(message.iter_parts())[1]
    html_part.add_related(
        image.data,
        maintype="image",
        subtype=image.subtype,
        cid=f"<{image.cid}>",
        disposition="inline",
        filename=image.filename,
    )
    return message
