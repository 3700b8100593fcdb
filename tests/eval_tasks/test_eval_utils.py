"""eval_tasks/utils.py (the tasks' prompt and scoring functions) and the answer keys of bimedix/mcq.py, with Arabic edge cases."""

from __future__ import annotations

import pytest

from bimedix.arabic import fold as normalise
from bimedix.mcq import answer_index as parse_answer_key
from eval_tasks import utils

RLM, LRM, TATWEEL = "\u200f", "\u200e", "\u0640"


def doc(
    benchmark="medqa",
    language="ar",
    choices=("الكلى", "الكبد", "القلب", "الرئة"),
    answer=1,
    question="ما العضو؟",
    context="",
):
    return {
        "id": "x",
        "question": question,
        "choices": list(choices),
        "answer": answer,
        "context": context,
        "benchmark": benchmark,
        "language": language,
    }


def test_arabic_prompts_use_arabic_letters_and_labels():
    assert utils.doc_to_text(doc()) == "السؤال: ما العضو؟\nأ. الكلى\nب. الكبد\nج. القلب\nد. الرئة\nالإجابة:"
    assert utils.doc_to_choice(doc()) == ["أ", "ب", "ج", "د"]
    medmcqa = doc(benchmark="medmcqa", choices=("a", "b", "c"))
    assert utils.doc_to_text(medmcqa) == "السؤال: ما العضو؟\nالخيارات:\nأ. a\nب. b\nج. c\nالإجابة:"
    pubmedqa = doc(benchmark="pubmedqa", choices=("نعم", "لا", "ربما"), context="فقرة ١\nفقرة ٢")
    assert utils.doc_to_text(pubmedqa) == "الملخص: فقرة ١\nفقرة ٢\nالسؤال: ما العضو؟\nالإجابة:"
    assert utils.doc_to_choice(pubmedqa) == ["نعم", "لا", "ربما"]


def test_benchmark_text_is_not_rewritten():
    """Diacritics, tatweel, direction marks and Arabic-Indic digits reach the prompt unchanged; MMLU strips the question."""
    question = f"  {RLM}كم زوجًا من الأضلـــاع؟ (١٢ أم ١٠)  "
    text = utils.doc_to_text(doc(benchmark="mmlu_anatomy", question=question, choices=("١٠", "١٢")))
    assert text == f"{question.strip()}\nأ. ١٠\nب. ١٢\nالإجابة:"
    assert utils.doc_to_text(doc(question=question)).startswith(f"السؤال: {question}\n")


def test_five_options_get_five_letters():
    assert utils.doc_to_choice(doc(language="en", choices="abcde")) == ["A", "B", "C", "D", "E"]
    assert utils.doc_to_choice(doc(choices="abcde")) == ["أ", "ب", "ج", "د", "ه"]


def test_generative_prompt_and_target():
    english = doc(language="en", choices=("Kidney", "Liver"), question="Which organ?")
    assert utils.doc_to_text_generative(english) == (
        "Answer with the letter of the correct option only.\n\nQuestion: Which organ?\nA. Kidney\nB. Liver\nAnswer:"
    )
    assert utils.doc_to_target_generative(english) == "B"
    assert utils.doc_to_target_generative(doc()) == "ب"
    assert utils.doc_to_text_generative(doc(benchmark="pubmedqa", choices=("نعم", "لا", "ربما"))).startswith(
        "أجب بنعم أو لا أو ربما فقط.\n\n"
    )


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("B", 1),
        ("B. Liver", 1),
        ("(C) Heart", 2),
        ("The answer is (D).", 3),
        ("Answer: A", 0),
        ("option 2", 1),
        ("A patient with these symptoms needs more tests", None),  # an article, not option A
        ("I think it is the Liver.", 1),  # the one option named
        ("Kidney or Liver", None),  # two options named
        ("", None),
        ("ب", None),  # Arabic letters count only in Arabic tasks
    ],
)
def test_extract_answer_english(reply, expected):
    assert utils.extract_answer(reply, doc(language="en", choices=("Kidney", "Liver", "Heart", "Lung"))) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("ب", 1),
        ("ب. الكبد", 1),
        ("ب، الكبد", 1),
        ("(ج)", 2),
        ("أ", 0),
        ("إ)", 0),  # hamza below for hamza above
        ("ا.", 0),  # bare alef
        ("دـ", 3),  # tatweel
        (f"{RLM}ب{LRM}", 1),  # direction marks
        ("الإجابة: (ج)", 2),
        ("الإجـــابة الصحيحة هي د", 3),  # tatweel inside the cue
        ("الجَوابُ: بَ", 1),  # diacritics
        ("الخيار ٢", 1),  # Arabic-Indic digit
        ("الإجابة: C", 2),  # Latin letter in an Arabic reply
        ("B", 1),
        ("الكبد", 1),  # the option text
        ("لا أعرف", None),
    ],
)
def test_extract_answer_arabic(reply, expected):
    assert utils.extract_answer(reply, doc()) == expected


@pytest.mark.parametrize(
    ("reply", "language", "expected"),
    [
        ("Yes.", "en", 0),
        ("No, the evidence does not support it; maybe later trials will.", "en", 1),  # the first label
        ("Maybe", "en", 2),
        ("eyes and knowledge", "en", None),  # labels only as whole words
        ("نعم، فقد انخفضت الأخطاء.", "ar", 0),
        ("لا يوجد دليل كافٍ.", "ar", 1),
        ("ربما؟", "ar", 2),
        ("رُبَّما", "ar", 2),  # diacritics
        ("yes", "ar", 0),  # English label in an Arabic task
    ],
)
def test_extract_answer_pubmedqa(reply, language, expected):
    labels = ("yes", "no", "maybe") if language == "en" else ("نعم", "لا", "ربما")
    assert utils.extract_answer(reply, doc(benchmark="pubmedqa", language=language, choices=labels)) == expected


def test_process_results_generative():
    assert utils.process_results_generative(doc(), ["ب"]) == {"acc": 1, "answered": 1}
    assert utils.process_results_generative(doc(), ["ج"]) == {"acc": 0, "answered": 1}
    assert utils.process_results_generative(doc(), ["؟"]) == {"acc": 0, "answered": 0}


@pytest.mark.parametrize(
    ("key", "n", "base", "expected"),
    [
        ("B", 4, 0, 1),
        ("(b)", 4, 0, 1),
        (" (C) ", 4, 0, 2),
        ("ب", 4, 0, 1),
        (f"{RLM}(ج{TATWEEL})", 4, 0, 2),
        ("أ", 4, 0, 0),
        ("إ", 4, 0, 0),
        ("ه", 5, 0, 4),
        ("هـ", 5, 0, 4),
        (2, 4, 1, 1),
        ("٣", 4, 1, 2),
        (3, 4, 0, 3),
        (4, 4, 0, None),  # out of range
        ("E", 4, 0, None),
        ("", 4, 0, None),
        (True, 4, 0, None),
        (None, 4, 0, None),
        ("maybe", 4, 0, None),
    ],
)
def test_parse_answer_key(key, n, base, expected):
    assert parse_answer_key(key, n, number_base=base) == expected


def test_normalise():
    assert normalise(f"{RLM}الإجـــابةُ ١٢  A") == "الاجابه 12 a"
    assert normalise("Ab", casefold=False) == "Ab"
