"""The English->Arabic medical glossary (glossary.tsv): find its terms in a source, check a translation.

Found terms go into the translation prompt ("use these Arabic terms"); the check then requires,
for each term found in the source, one of its accepted Arabic forms in the translation.

English: whole words, any case, with a plural -s/-es; the longest term wins at each place, so a
sense listed as a longer term ("stroke volume", "thyroid cartilage") shadows the shorter one
("stroke", "thyroid"). A term whose Arabic is `-` is such a sense with nothing to check.

Arabic: every word of a form must appear in the translation (any order), compared in
`text.match_form` (no diacritics, tatweel or bidi marks, one alef, ى as ي, ة as ه), without its
article: a word of three letters or more anywhere, also inside a longer word (clitics, endings,
verb forms: بالحمى, ينزف), a word ending in ة also with ت or ات (جرعته, جرعات), a nisba ية also as
ي (الدرقية, الدرقي); a shorter word (الدم, السل) as a whole word with its clitics in front (و ف ب ك
ل ال لل) and an ending behind (للسل, نقل دم) rather than inside any word (عدم, سلسلة). Broken
plurals and synonyms are listed as forms of their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import regex

from data_prep.llm.config import HERE, ConfigError
from data_prep.llm.text import is_mostly_arabic, match_form

GLOSSARY_FILE = HERE / "glossary.tsv"
NOT_CHECKED = "-"  # the Arabic column of a sense that shadows a shorter term and is not checked

_MARKS = regex.compile(r"[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
# Clitics in front of a word: a conjunction, then a preposition with or without the article, or the
# article alone (ل + ال is written لل).
_PREFIX = r"(?:[وف])?(?:[بك](?:ال)?|لل|ل|ال)?"
# Endings behind a word (in match_form: ة is ه): pronouns, dual and plural endings, the nisba.
_SUFFIX = r"(?:ه|ها|هم|هن|هما|ك|كم|ي|نا|ا|ان|ين|ون|ات|يه|يا|يين|يون)?"


@dataclass(frozen=True)
class Term:
    english: str
    arabic: tuple[str, ...]  # the first is preferred; empty: a sense that is not checked

    @property
    def preferred(self) -> str:
        return self.arabic[0]

    @property
    def checked(self) -> bool:
        return bool(self.arabic)


@lru_cache(maxsize=4096)
def _word_pattern(raw: str) -> regex.Pattern:
    """A word of a form, in match_form. A core of three letters or more (the article removed) may
    sit inside a longer word, so clitics, endings and verb forms match (بالحمى, ينزف); a word
    ending in ة also matches with ت or ات (جرعته, جرعات), a nisba ية also as ي (الدرقي). A shorter
    core (دم, سل) must be a whole word, with clitics in front and endings behind (للسل, نقل دم)."""
    ta_marbuta = _MARKS.sub("", raw).endswith("ة")
    word = match_form(raw)
    core = word[2:] if word.startswith("ال") and len(word) > 3 else word
    if ta_marbuta and len(core) > 2:
        stem = regex.escape(core[:-1])
        body = rf"{stem}(?:ه|ت|ات)" if not core.endswith("يه") else rf"{stem}"
    else:
        body = regex.escape(core)
    if len(core) >= 3:
        return regex.compile(body)
    return regex.compile(rf"(?<!\p{{L}}){_PREFIX}{body}{_SUFFIX}(?!\p{{L}})")


def _form_present(form: str, text: str) -> bool:
    return all(_word_pattern(raw).search(text) for raw in form.split())


class Glossary:
    def __init__(self, terms: list[Term]):
        self.terms = sorted(terms, key=lambda t: len(t.english), reverse=True)
        self._by_key = {t.english.lower(): t for t in self.terms}
        # One alternation, longest term first, a named group per term: a match names its term at once.
        if self.terms:
            alternatives = "|".join(f"(?P<t{i}>{self._pattern(t.english)})" for i, t in enumerate(self.terms))
            self._regex = re.compile(rf"(?<![\w-])(?:{alternatives})(?:e?s)?(?![\w-])", re.IGNORECASE)
        else:
            self._regex = None

    @staticmethod
    def _pattern(english: str) -> str:
        words = [re.escape(w) for w in re.split(r"[\s-]+", english.strip())]
        return r"[\s-]+".join(words)

    @classmethod
    def from_file(cls, path: Path = GLOSSARY_FILE) -> Glossary:
        terms: dict[str, Term] = {}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise ConfigError(f"{path}:{number}: expected english<TAB>arabic, got {len(parts)} column(s)")
            english = parts[0].strip()
            if parts[1].strip() == NOT_CHECKED:
                forms: tuple[str, ...] = ()
            else:
                forms = tuple(f.strip() for f in parts[1].split("|") if f.strip())
                if not forms:
                    raise ConfigError(
                        f"{path}:{number}: empty Arabic form (write {NOT_CHECKED} for a sense not checked)"
                    )
            if not english:
                raise ConfigError(f"{path}:{number}: empty English term")
            bad = [f for f in forms if not is_mostly_arabic(f)]
            if bad:
                raise ConfigError(f"{path}:{number}: Arabic form {bad[0]!r} is not in Arabic script")
            if english.lower() in terms:
                raise ConfigError(f"{path}:{number}: {english!r} is listed twice")
            terms[english.lower()] = Term(english, forms)
        return cls(list(terms.values()))

    def find(self, english_text: str) -> list[Term]:
        """Glossary terms in `english_text`, longest match first at each place, each term once."""
        return list(self._find_cached(english_text))

    @lru_cache(maxsize=8192)  # noqa: B019 - one long-lived glossary; the prompt and the check ask for the same text
    def _find_cached(self, english_text: str) -> tuple[Term, ...]:
        if self._regex is None:
            return ()
        found: dict[str, Term] = {}
        for match in self._regex.finditer(english_text):
            term = self.terms[int(match.lastgroup[1:])]
            found.setdefault(term.english, term)
        return tuple(found.values())

    @staticmethod
    def present(term: Term, arabic_text: str) -> bool:
        """Whether one of the term's forms is in `arabic_text` (always, for a sense that is not checked)."""
        if not term.checked:
            return True
        text = match_form(arabic_text)
        return any(_form_present(form, text) for form in term.arabic)

    def prompt_terms(self, english_text: str) -> list[Term]:
        """The checked terms of `english_text`: what the prompt asks for."""
        return [t for t in self.find(english_text) if t.checked]

    def missing(self, english_text: str, arabic_text: str) -> list[Term]:
        return [t for t in self.find(english_text) if not self.present(t, arabic_text)]


@lru_cache(maxsize=1)
def default_glossary() -> Glossary:
    return Glossary.from_file()
