"""The canonical-word hashes behind dedup and decontamination (normalisation and language detection:
tests/test_formats_arabic.py)."""

from __future__ import annotations

import random

import numpy as np

from bimedix.dedup import MinHasher, NgramIndex, canonical_words, sequence_hashes, word_hash, word_hashes

TRICKY = [
    "Hello, World! The pH is 7.4",
    "الكُلى تُصفّي الدم؛ أحمد إبراهيم آمنة ٱلحمد",
    "",
    "  ...  ",
    "x\u00a0y «quote» 39.2 °C — dash “curly” ‘single’ …",
    "مستشفىً ـــ مدرسة",
    "ABC\u200bdef zero\u200dwidth",
    "a" * 100,
    "é É ü 中文 ×÷ 😀 emoji",
    "\ufeffbom here",
    "mixed عربي English ٣ words",
]


def test_batch_hashes_equal_the_reference_definition():
    rng = random.Random(0)
    pool = (
        list("abcXYZ019 .,;-_()\n")
        + list("ابتثجحخدذةىأإآٱء")
        + ["\u064b", "\u0650", "\u0640", "\u00a0", "«", "—", "\u200f", "é", "中", "😀"]
    )
    fuzz = ["".join(rng.choice(pool) for _ in range(rng.randint(0, 60))) for _ in range(300)]
    texts = TRICKY + fuzz
    words = word_hashes(texts)
    assert words.count == len(texts)
    for i, text in enumerate(texts):
        got = words.hashes[words.bounds[i] : words.bounds[i + 1]].tolist()
        assert got == [word_hash(w) for w in canonical_words(text)], repr(text)
        assert (words.owner[words.bounds[i] : words.bounds[i + 1]] == i).all()


def test_batches_larger_than_one_group_agree_with_small_batches():
    rng = random.Random(1)
    texts = [
        " ".join(rng.choice(["alpha", "بيتا", "gamma", "دلتا"]) for _ in range(rng.randint(0, 400)))
        for _ in range(2000)
    ]
    big = word_hashes(texts)  # several 1 MiB groups
    for i in range(0, len(texts), 97):
        one = word_hashes([texts[i]])
        assert big.hashes[big.bounds[i] : big.bounds[i + 1]].tolist() == one.hashes.tolist()


def test_canonical_words_fold_what_does_not_change_meaning():
    assert canonical_words("Graves' disease, TSH-receptor antibodies!") == canonical_words(
        "graves disease tsh receptor antibodies"
    )
    assert canonical_words("الكُلى") == canonical_words("الكلى") == canonical_words("الكلي")  # harakat, ى/ي
    assert canonical_words("أحمد إبراهيم آمنة") == canonical_words("احمد ابراهيم امنه")  # alef forms, ة/ه
    assert canonical_words("الســـكري") == canonical_words("السكري")
    assert canonical_words("kidney") != canonical_words("kidneys")


def _words(text):
    return word_hashes([text])


def test_minhash_finds_near_duplicates_and_not_unrelated_texts():
    rng = random.Random(2)
    vocabulary = [f"w{i}" for i in range(5000)]
    base = [rng.choice(vocabulary) for _ in range(120)]
    edited = list(base)
    edited[60] = "changed"
    other = [rng.choice(vocabulary) for _ in range(120)]
    texts = [" ".join(base), " ".join(edited), " ".join(other), " ".join(base)]
    words = word_hashes(texts)
    hasher = MinHasher(64, 8, 5)
    bands = hasher.band_keys(hasher.signatures(words, sequence_hashes(words)))
    assert (bands[0] == bands[3]).all()
    assert (bands[0] == bands[1]).any()
    assert not (bands[0] == bands[2]).any()


def test_minhash_signatures_estimate_jaccard():
    rng = random.Random(3)
    hasher = MinHasher(64, 8, 1)  # one-word shingles: Jaccard of the word sets
    errors = []
    for target in (0.2, 0.5, 0.8):
        for _ in range(10):
            shared = [f"s{rng.random()}" for _ in range(int(200 * target))]
            a = shared + [f"a{rng.random()}" for _ in range((200 - len(shared)) // 2)]
            b = shared + [f"b{rng.random()}" for _ in range((200 - len(shared)) // 2)]
            true = len(set(a) & set(b)) / len(set(a) | set(b))
            words = word_hashes([" ".join(a), " ".join(b)])
            sig = hasher.signatures(words, sequence_hashes(words))
            errors.append(abs(float(np.mean(sig[0] == sig[1])) - true))
    assert np.mean(errors) < 0.06


def test_minhash_short_texts_do_not_collide():
    texts = ["scurvy", "rickets", "beriberi", "scurvy"]
    words = word_hashes(texts)
    hasher = MinHasher(64, 8, 5)
    bands = hasher.band_keys(hasher.signatures(words, sequence_hashes(words)))
    assert (bands[0] == bands[3]).all()
    assert not (bands[0] == bands[1]).any() and not (bands[1] == bands[2]).any()


def test_ngram_index_hits_and_coverage():
    item = (
        "which cranial nerve innervates the lateral rectus muscle oculomotor trochlear abducens facial or optic nerve"
    )
    short = "koplik spots are seen in measles"
    index = NgramIndex([item, short], n=13)
    assert index.lengths == [6, 13]
    inside = _words(f"Question: {item.upper()}. Explain.")
    assert index.hits(inside).tolist() == [True]
    assert index.coverage(inside, 0) == (1.0, 0)
    partial = _words(
        "which cranial nerve innervates the lateral rectus muscle oculomotor trochlear abducens facial or more"
    )
    assert index.hits(partial).tolist() == [True]
    assert index.coverage(partial, 0) == (1 / 3, 0)  # the item has 15 words: 3 13-grams, the first one shared
    assert index.hits(_words("Koplik spots are seen in measles, a viral illness.")).tolist() == [True]
    assert index.hits(_words("koplik spots are seen in mumps")).tolist() == [False]
