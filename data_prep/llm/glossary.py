"""The English->Arabic medical glossary (glossary.tsv): find its terms in a source, check a translation.

Found terms go into the translation prompt ("use these Arabic terms"); the check then requires,
for each term found in the source, one of its accepted Arabic forms in the translation. Arabic
forms are compared word by word in `text.match_form` (no diacritics, tatweel or bidi marks, one
alef), each word as a substring of the translation (so clitics such as و/ب/ل attach freely), with
a leading article al- ignored where at least three letters remain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from data_prep.llm.config import HERE, ConfigError
from data_prep.llm.text import is_mostly_arabic, match_form

GLOSSARY_FILE = HERE / "glossary.tsv"


@dataclass(frozen=True)
class Term:
    english: str
    arabic: tuple[str, ...]  # the first is preferred

    @property
    def preferred(self) -> str:
        return self.arabic[0]


def _arabic_words(form: str) -> list[str]:
    words = []
    for word in match_form(form).split():
        if word.startswith("ال") and len(word) - 2 >= 3:
            word = word[2:]
        words.append(word)
    return words


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
            forms = tuple(f.strip() for f in parts[1].split("|") if f.strip())
            if not english or not forms:
                raise ConfigError(f"{path}:{number}: empty English term or Arabic form")
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
        text = match_form(arabic_text)
        return any(all(word in text for word in _arabic_words(form)) for form in term.arabic)

    def missing(self, english_text: str, arabic_text: str) -> list[Term]:
        return [t for t in self.find(english_text) if not self.present(t, arabic_text)]


@lru_cache(maxsize=1)
def default_glossary() -> Glossary:
    return Glossary.from_file()
