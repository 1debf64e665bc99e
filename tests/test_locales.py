"""Every message exists in every language with the same placeholders."""

import re
from pathlib import Path

from fluent.syntax import FluentParser, ast
from fluent.syntax.visitor import Visitor as FluentVisitor

from locales import LANGUAGES, LOCALES_DIR, normalize_language, tr


def _messages(lang: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in sorted((LOCALES_DIR / lang).glob("*.ftl")):
        resource = FluentParser().parse(path.read_text(encoding="utf-8"))
        junk = [e for e in resource.body if isinstance(e, ast.Junk)]
        assert not junk, f"{path}: syntax error near {junk[0].content[:80]!r}"
        for entry in resource.body:
            if isinstance(entry, ast.Message):
                assert entry.id.name not in out, f"{entry.id.name} is defined twice in {lang}"
                out[entry.id.name] = _placeholders(entry)
    return out


def _placeholders(node: object) -> set[str]:
    found: set[str] = set()

    class Visitor(FluentVisitor):
        def visit_VariableReference(self, n):  # noqa: N802
            found.add(n.id.name)
            self.generic_visit(n)

    Visitor().visit(node)
    return found


def test_every_language_has_every_key_with_the_same_placeholders():
    reference = _messages("en")
    assert reference
    for lang in LANGUAGES:
        other = _messages(lang)
        assert set(other) == set(reference), f"{lang}: missing {set(reference) - set(other)}, extra {set(other) - set(reference)}"
        for key, names in reference.items():
            assert other[key] == names, f"{lang}:{key} placeholders {other[key]} != {names}"


def test_chinese_catalog_is_really_chinese():
    cjk = re.compile(r"[\u4e00-\u9fff]")
    texts = [p.read_text(encoding="utf-8") for p in (LOCALES_DIR / "zh-CN").glob("*.ftl")]
    assert all(cjk.search(t) for t in texts)


def test_every_key_the_code_uses_exists():
    used: set[str] = set()
    pattern = re.compile(r"""["'](error-[a-z0-9-]+|status-[a-z-]+|job-[a-z-]+|press-[a-z-]+|cancel-[a-z-]+)["']""")
    root = Path(__file__).resolve().parent.parent
    for folder in ("bot", "handlers", "engine", "storage"):
        for path in (root / folder).rglob("*.py"):
            used |= set(pattern.findall(path.read_text(encoding="utf-8")))
    defined = set(_messages("en"))
    assert used - defined == set()


def test_client_languages_map_to_shipped_catalogs():
    assert normalize_language("zh-hans") == "zh-CN"
    assert normalize_language("zh_TW") == "zh-CN"
    assert normalize_language("en-US") == "en"
    assert normalize_language("xx") == "en"
    assert tr("de", "yes") == "yes"


def test_russian_users_get_russian():
    cyrillic = re.compile(r"[\u0400-\u04ff]")
    for code in ("ru", "ru-RU", "ru_RU", "RU"):
        assert normalize_language(code) == "ru"
    queued = tr("ru-RU", "status-queued", position=3)
    assert "3" in queued and cyrillic.search(queued) and queued != tr("en", "status-queued", position=3)
    texts = [p.read_text(encoding="utf-8") for p in (LOCALES_DIR / "ru").glob("*.ftl")]
    assert texts and all(cyrillic.search(t) for t in texts)


def test_russian_plurals_follow_the_number():
    assert tr("ru", "cancel-done", count=1) == "Отменена 1 задача."
    assert tr("ru", "cancel-done", count=3) == "Отменены 3 задачи."
    assert tr("ru", "cancel-done", count=5) == "Отменено 5 задач."
    assert tr("ru", "cancel-done", count=21) == "Отменена 21 задача."
    assert tr("ru", "job-cancelled", refunded=0) == "🚫 Отменено."
    assert tr("ru", "job-cancelled", refunded=2).endswith(" 2 картинки возвращены в ваш лимит.")
