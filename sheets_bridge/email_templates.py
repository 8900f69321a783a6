"""The email templates: the defaults, a practice's overrides, and the checks that keep them honest.

Rendering is sandboxed with undefined names failing and HTML alone autoescaped; a value typed in
a cell is data and never compiled as a template, so ``{{ 7*7 }}`` in a name shows literally
(B20). :meth:`TemplateSet.check` fails a template that reaches for a field its kind may not show
(B21, minimum necessary), at config time rather than in a referrer's inbox. The digest renders
its own two templates through :func:`sandboxed` too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from sheets_bridge.email_context import sample_context
from sheets_bridge.email_kinds import (
    APPOINTMENT_FIELDS,
    CONTEXT_FIELDS,
    EXTRA_FIELDS,
    KIND_LABELS,
    KINDS,
    RECIPIENTS,
    REFERRER_KINDS,
    ROW_FIELDS,
    SCALAR,
    template_names,
)
from sheets_bridge.settings import DraftsSettings

__all__ = ["TemplateSet", "allowed_context", "package_sources", "sandboxed"]


def _nl2br(value: Any) -> Markup:
    """Escape, then keep line breaks: for multi-line signatures and addresses in HTML."""
    return Markup("<br>\n").join(escape(str(value)).split("\n"))


class _SourceLoader(BaseLoader):
    """Serves the already-read template sources; ``label`` is what messages call the file."""

    def __init__(self, sources: Mapping[str, tuple[str, str]]) -> None:
        self._sources = sources

    def get_source(
        self, environment: Any, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        from jinja2 import TemplateNotFound

        if template not in self._sources:
            raise TemplateNotFound(template)
        source, label = self._sources[template]
        return source, label, lambda: True


def package_sources(names: Iterable[str]) -> dict[str, tuple[str, str]]:
    """The bridge's own templates ``names`` from the package: name -> (source, label)."""
    package = resources.files("sheets_bridge") / "templates"
    return {name: ((package / name).read_text(encoding="utf-8"), f"templates/{name}")
            for name in sorted(names)}


def sandboxed(sources: Mapping[str, tuple[str, str]], **options: Any) -> SandboxedEnvironment:
    """The one way the bridge renders templates: sandboxed, undefined names failing, HTML alone
    autoescaped, cell text always data (B20)."""
    env = SandboxedEnvironment(
        loader=_SourceLoader(sources),
        undefined=StrictUndefined,
        autoescape=lambda name: bool(name and name.endswith(".html")),
        auto_reload=False,
        **options,
    )
    env.filters["nl2br"] = _nl2br
    return env


class TemplateSet:
    """The default templates, with any practice overrides from ``drafts.templates_dir`` on top.

    Each kind has ``<kind>.subject.txt``, ``<kind>.txt`` and ``<kind>.html``; an override folder
    holds files with the same names, and only the ones it holds replace the defaults. Rendering
    is sandboxed with undefined names failing, and HTML alone is autoescaped. Problems reading
    the folder do not raise: :meth:`check` reports them with everything else.
    """

    def __init__(self, templates_dir: Path | None = None) -> None:
        self.templates_dir = templates_dir
        self._problems: list[str] = []
        known = {name for kind in KINDS for name in template_names(kind).values()}
        sources = package_sources(known)
        self.overridden: set[str] = set()
        if templates_dir is not None:
            self._read_overrides(templates_dir, known, sources)
        self._sources = sources
        self.env = sandboxed(sources)

    @classmethod
    def from_settings(cls, settings: DraftsSettings) -> TemplateSet:
        return cls(settings.templates_dir)

    @property
    def sources(self) -> Mapping[str, tuple[str, str]]:
        """Every template's text as loaded: two sets with equal sources render alike (the
        drafting memo compares them, as a daemon loads the set afresh every cycle)."""
        return self._sources

    def _read_overrides(
        self, folder: Path, known: set[str], sources: dict[str, tuple[str, str]]
    ) -> None:
        try:
            entries = sorted(folder.iterdir())
        except FileNotFoundError:
            self._problems.append(f"drafts.templates_dir: there is no folder at {folder}")
            return
        except OSError as error:
            self._problems.append(f"drafts.templates_dir: cannot read {folder} ({error.strerror})")
            return
        for entry in entries:
            if entry.name.startswith(".") or entry.is_dir():
                continue
            if entry.name not in known:
                self._problems.append(
                    f"{entry} is not a template the bridge knows: name it <kind>.subject.txt, "
                    f"<kind>.txt or <kind>.html, with kind one of {', '.join(KINDS)}"
                )
                continue
            try:
                text = entry.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                self._problems.append(f"{entry} is not UTF-8 text: save it as UTF-8")
                continue
            except OSError as error:
                self._problems.append(f"cannot read {entry} ({error.strerror})")
                continue
            sources[entry.name] = (text, str(entry))
            self.overridden.add(entry.name)

    def label(self, name: str) -> str:
        """How messages name a template file: its override path, or ``templates/<name>``."""
        return self._sources[name][1]

    def render(self, kind: str, part: str, context: Mapping[str, Any]) -> str:
        """Render one part (``subject``, ``text``, ``html``) of ``kind`` with ``context``.

        Raises ``jinja2.TemplateError`` (syntax, undefined name, sandbox violation); the
        caller turns that into a problem, never a crash of the cycle.
        """
        return self.env.get_template(template_names(kind)[part]).render(context)

    # -- check ----------------------------------------------------------------------------

    def check(self, settings: DraftsSettings) -> list[str]:
        """Every problem with the templates, one plain line each; empty when all is well.

        Static first: syntax, ``include``/``extends`` (which would hide what a template uses),
        and every name and field a template reaches for, against what its kind may use. Then
        each template is rendered once with sample values, to catch what only shows at render
        time (an unknown filter, a typo in a field of ``practice``).
        """
        problems = list(self._problems)
        for kind in KINDS:
            allowed = allowed_context(kind, settings)
            for part, name in template_names(kind).items():
                label = self.label(name)
                source = self._sources[name][0]
                try:
                    ast = self.env.parse(source, name, label)
                except TemplateSyntaxError as error:
                    problems.append(f"{label} line {error.lineno}: {error.message}")
                    continue
                try:
                    found = _check_ast(self.env, ast, kind, label, allowed)
                except TemplateError as error:  # an unknown filter or test, found on compile
                    lineno = getattr(error, "lineno", None)
                    where = f" line {lineno}" if lineno else ""
                    problems.append(f"{label}{where}: {error.message or error}")
                    continue
                if found:
                    problems.extend(found)
                    continue
                try:
                    self.render(kind, part, sample_context(kind, settings))
                except TemplateError as error:
                    lineno = getattr(error, "lineno", None)
                    where = f" line {lineno}" if lineno else ""
                    problems.append(f"{label}{where}: {error.message or error}")
                except Exception as error:  # noqa: BLE001 - a template may fail in any way
                    # The sandbox stops runaway loops (range(100000000)) with OverflowError and
                    # the like: a template the bridge cannot render, said in one line.
                    problems.append(
                        f"{label}: it fails when rendered ({type(error).__name__}: {error}); "
                        "simplify it"
                    )
        return problems


def allowed_context(kind: str, settings: DraftsSettings) -> dict[str, frozenset[str] | None]:
    """What ``kind``'s templates may use under ``settings``: the base allowlist plus extras."""
    allowed = dict(CONTEXT_FIELDS[kind])
    extras = settings.allowed_extras(kind)
    if extras:
        for extra in extras:
            allowed[extra] = APPOINTMENT_FIELDS if extra == "appointment" else SCALAR
        allowed["referral"] = frozenset(extras)
        patient = allowed.get("patient")
        if "last_name" in extras and patient is not None:
            allowed["patient"] = patient | {"last_name"}
    return allowed


_DYNAMIC = "[...]"


def _check_ast(
    env: SandboxedEnvironment,
    ast: nodes.Template,
    kind: str,
    label: str,
    allowed: Mapping[str, frozenset[str] | None],
) -> list[str]:
    """Problems with the names and fields one parsed template uses (B21)."""
    problems: list[str] = []
    if any(True for _ in meta.find_referenced_templates(ast)):
        problems.append(
            f"{label} uses include, import or extends: a template must stand alone so the "
            "bridge can check what it shows"
        )
    free = meta.find_undeclared_variables(ast) - set(env.globals)
    used: dict[str, set[str]] = defaultdict(set)
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if not isinstance(target, nodes.Name) or target.name not in free:
            continue
        if isinstance(node, nodes.Getattr):
            used[target.name].add(node.attr)
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            used[target.name].add(node.arg.value)
        else:
            used[target.name].add(_DYNAMIC)
    recipient = RECIPIENTS[kind]
    usable = ", ".join(sorted(allowed))

    def breach(name: str, path: str) -> str:
        if name in ROW_FIELDS:
            text = (
                f"{label} uses {name}, which a {recipient} email may not contain "
                "(minimum necessary): remove it"
            )
            if name in EXTRA_FIELDS and kind not in REFERRER_KINDS:
                text += f", or allow it on purpose with drafts.allow_fields.{kind}: [{name}]"
            return text
        return f"{label} uses {path}, which a {KIND_LABELS[kind]} cannot show: it may use {usable}"

    for name in sorted(free):
        fields = sorted(used.get(name, ()))
        if name in allowed:
            spec = allowed[name]
            if spec is None:
                continue  # a plain string: .upper() and the like are fine
            for attr in fields:
                if attr == _DYNAMIC:
                    problems.append(
                        f"{label} looks up {name}[...] with a computed name: write "
                        f"{name}.<field> so the bridge can check it"
                    )
                elif attr not in spec:
                    problems.append(breach(attr, f"{name}.{attr}"))
        elif name == "referral" and fields:
            problems.extend(breach(attr, f"referral.{attr}") for attr in fields)
        else:
            problems.append(breach(name, name))
    return problems
