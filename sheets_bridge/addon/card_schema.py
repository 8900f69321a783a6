"""The subset of Google's card JSON (add-ons, card v1) the bridge emits, as a checker.

Google renders what it understands and drops or refuses the rest, often silently; this checker
is stricter than Google on purpose: every key must be one the card reference documents for that
object, every required key present, every widget exactly one documented kind. A test walks every
card the bridge can answer and runs it through :func:`check_response`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Spec = dict[str, tuple[Any, bool]]
"""field -> (what it must be, required)."""


def _url(value: Any, path: str) -> list[str]:
    if not isinstance(value, str) or not value.startswith("https://"):
        return [f"{path}: must be an https:// URL (an HTTP add-on's action function)"]
    return []


PARAMETER: Spec = {"key": (str, True), "value": (str, True)}
ACTION: Spec = {"function": (_url, True), "parameters": ([PARAMETER], False)}
ON_CLICK: Spec = {"action": (ACTION, True)}
BUTTON: Spec = {"text": (str, True), "onClick": (ON_CLICK, True), "disabled": (bool, False)}
WIDGETS: dict[str, Spec] = {
    "textParagraph": {"text": (str, True)},
    "decoratedText": {
        "topLabel": (str, False), "text": (str, True), "bottomLabel": (str, False),
        "wrapText": (bool, False), "button": (BUTTON, False),
    },
    "buttonList": {"buttons": ([BUTTON], True)},
    "textInput": {"name": (str, True), "label": (str, False), "hintText": (str, False),
                  "value": (str, False)},
    "divider": {},
}
SECTION: Spec = {"header": (str, False), "collapsible": (bool, False), "widgets": (["widget"], True)}
HEADER: Spec = {"title": (str, True), "subtitle": (str, False)}
CARD: Spec = {"header": (HEADER, False), "sections": ([SECTION], True), "name": (str, False)}
NAVIGATION_KINDS = ("pushCard", "updateCard")


def _check(value: Any, spec: Any, path: str) -> list[str]:
    if spec == "widget":
        return check_widget(value, path)
    if callable(spec) and not isinstance(spec, type):
        checker: Callable[[Any, str], list[str]] = spec
        return checker(value, path)
    if isinstance(spec, type):
        return [] if isinstance(value, spec) else [f"{path}: must be {spec.__name__}"]
    if isinstance(spec, list):
        if not isinstance(value, list) or not value:
            return [f"{path}: must be a non-empty list"]
        out: list[str] = []
        for i, item in enumerate(value):
            out.extend(_check(item, spec[0], f"{path}[{i}]"))
        return out
    return _check_object(value, spec, path)


def _check_object(value: Any, spec: Spec, path: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: must be an object"]
    out = [f"{path}.{key}: not a documented field here" for key in value if key not in spec]
    for key, (inner, required) in spec.items():
        if key in value:
            out.extend(_check(value[key], inner, f"{path}.{key}"))
        elif required:
            out.append(f"{path}.{key}: required")
    return out


def check_widget(value: Any, path: str) -> list[str]:
    if not isinstance(value, dict) or len(value) != 1:
        return [f"{path}: a widget is an object with exactly one widget kind"]
    (kind, body), = value.items()
    if kind not in WIDGETS:
        return [f"{path}.{kind}: not a widget the bridge may use"]
    return _check_object(body, WIDGETS[kind], f"{path}.{kind}")


def check_card(card: Any, path: str = "card") -> list[str]:
    return _check_object(card, CARD, path)


def check_response(response: Any) -> list[str]:
    """Problems with a whole answer (empty when it is one Google documents)."""
    if not isinstance(response, dict) or len(response) != 1:
        return ["response: must be an object with one of action or renderActions"]
    (top, body), = response.items()
    if top == "renderActions":
        if isinstance(body, dict) and set(body) == {"hostAppAction"}:
            expected: dict[str, Any] = {"editorAction": {"requestFileScopeForActiveDocument": {}}}
            return [] if body["hostAppAction"] == expected else ["hostAppAction: not documented"]
        if not isinstance(body, dict) or set(body) != {"action"}:
            return ["renderActions: must hold one action"]
        body = body["action"]
    elif top != "action":
        return [f"response.{top}: not a documented response"]
    if not isinstance(body, dict) or set(body) != {"navigations"}:
        return ["action: must hold navigations"]
    navigations = body["navigations"]
    if not isinstance(navigations, list) or not navigations:
        return ["action.navigations: must be a non-empty list"]
    out: list[str] = []
    for i, nav in enumerate(navigations):
        if not isinstance(nav, dict) or len(nav) != 1 or next(iter(nav)) not in NAVIGATION_KINDS:
            out.append(f"navigations[{i}]: must be one of {NAVIGATION_KINDS}")
            continue
        (kind, card), = nav.items()
        out.extend(check_card(card, f"navigations[{i}].{kind}"))
    return out
