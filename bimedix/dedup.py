"""Hashes that decide what is a duplicate and what is contaminated, vectorised over a batch.

Everything works on *canonical words*: ASCII folded to lower case, punctuation and symbols as
separators, Arabic diacritics and tatweel deleted, and the letters bimedix.arabic folds (alef
forms أ إ آ ٱ to ا, ى to ي, ة to ه, ؤ to و, ئ to ي) folded; every other character is kept as
written. The Arabic tables are bimedix.arabic's, the one definition every stage uses. `canonical_words` is the plain-Python
definition; `word_hashes` computes the same words' hashes for a whole batch with numpy on the
UTF-8 bytes (a test keeps the two identical), because per-word Python costs more than the
tokenizer on BiMed1.3M-sized input.

- exact duplicates: one 64-bit hash of the whole canonical word sequence (so case, punctuation,
  diacritics, tatweel and alef forms do not hide a copy);
- near duplicates: MinHash (one-permutation hashing) over word shingles with LSH banding
  (`MinHasher`); two records whose shingle sets have Jaccard similarity above about
  (1/bands)^(1/rows) share a band key;
- decontamination: `NgramIndex` holds the n-grams (13 by default) of every evaluation item and
  flags a training record that shares any of them, then measures how much of the evaluation
  item is covered;
- reworded repeats (the audit's): `clusters` / `similar_pairs`, MinHash LSH over word sets, every
  candidate checked exactly.

Only 64-bit hashes are kept in memory, never text. The random tables come from xxhash of fixed
labels, so every process and every run computes the same hashes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import xxhash

from bimedix.arabic import DIACRITICS, FOLDED_LETTERS, TATWEEL, numbers

_SEED = 0xB1ED1C5
_P = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the rolling n-gram hash (golden ratio)


def _random_u64(label: str, count: int, odd: bool = False) -> np.ndarray:
    values = np.fromiter(
        (xxhash.xxh64_intdigest(f"{label}:{i}".encode(), seed=_SEED) for i in range(count)), np.uint64, count
    )
    return values | np.uint64(1) if odd else values


# ---------------------------------------------------------------------------------------------
# Canonical words: the definition (Python) and the batch hashing (numpy) must agree exactly.

_ASCII_MAP = np.arange(256, dtype=np.uint8)
for _b in range(128):
    _ch = chr(_b)
    if "A" <= _ch <= "Z":
        _ASCII_MAP[_b] = _b + 32
    elif not ("a" <= _ch <= "z" or "0" <= _ch <= "9"):
        _ASCII_MAP[_b] = 0x20

# Non-ASCII code points with a rule; every other character is kept as it is.
SEPARATORS = frozenset(
    [*range(0x00A0, 0x00C0), 0x00D7, 0x00F7]  # Latin-1 punctuation and symbols (NBSP, «», °, ±, ×, ÷)
    + [0x060C, 0x061B, 0x061F, 0x066A, 0x066B, 0x066C, 0x066D, 0x06D4]  # Arabic punctuation ، ؛ ؟ ٪ ...
    + [cp for cp in range(0x2000, 0x2070) if not (0x200B <= cp <= 0x200F or 0x202A <= cp <= 0x202E or cp >= 0x2060)]
)
DELETED = frozenset(
    [
        ord(TATWEEL), *DIACRITICS,  # tatweel, harakat, Quranic marks, superscript alef
        *(*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2070), 0xFEFF),  # zero-width, bidi marks
    ]
)  # fmt: skip
REPLACED = dict(FOLDED_LETTERS)


def canonical_words(text: str) -> list[str]:
    """The canonical words of `text` (the reference definition; see the module docstring)."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp < 0x80:
            out.append(chr(_ASCII_MAP[cp]))
        elif cp in DELETED:
            continue
        elif cp in SEPARATORS:
            out.append(" ")
        else:
            out.append(chr(REPLACED.get(cp, cp)))
    return [w for w in "".join(out).split(" ") if w]


_R = 0x5851F42D4C957F2D  # odd: invertible modulo 2^64
_R_INV = pow(_R, -1, 1 << 64)
_MASK = (1 << 64) - 1


def _splitmix(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: spreads every input bit over the whole word (vectorised)."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def word_hash(word: str) -> int:
    """Hash of one canonical word (the reference for `word_hashes`): splitmix64 of the
    polynomial sum((byte + 1) * R^i) mod 2^64 over its UTF-8 bytes."""
    value = 0
    for i, byte in enumerate(word.encode("utf-8")):
        value = (value + (byte + 1) * pow(_R, i, 1 << 64)) & _MASK
    return int(_splitmix(np.array([value], dtype=np.uint64))[0])


class _Powers:
    """R^i and R^-i modulo 2^64 for i < size, grown on demand (one copy per process)."""

    def __init__(self):
        self.pow = np.ones(0, dtype=np.uint64)
        self.inv = np.ones(0, dtype=np.uint64)

    def upto(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.pow) < size:
            size = max(size, 2 * len(self.pow), 1 << 16)
            with np.errstate(over="ignore"):
                self.pow = np.cumprod(np.full(size, _R, dtype=np.uint64)) * np.uint64(_R_INV)
                self.inv = np.cumprod(np.full(size, _R_INV, dtype=np.uint64)) * np.uint64(_R)
        return self.pow[:size], self.inv[:size]


_POWERS = _Powers()
_GROUP_BYTES = 1 << 20  # texts are hashed in groups of about 1 MiB (tables stay in cache)
_LEAD = np.zeros(256, dtype=bool)
_LEAD[0xC2:0xDC] = True  # the lead bytes of the two-byte forms with rules (U+0080..U+06FF)
# Byte-level rules for the two- and three-byte UTF-8 forms of the code points above.
_KEEP, _SEP, _DEL, _REPL = 0, 1, 2, 3
_PAIR_BASE = 0xC200
_PAIR_ACTION = np.zeros(0xDC00 - _PAIR_BASE, dtype=np.uint8)
_PAIR_REPLACEMENT = np.zeros((0xDC00 - _PAIR_BASE, 2), dtype=np.uint8)
_TRIPLE_ACTION = np.zeros(0x80, dtype=np.uint8)  # U+2000..U+207F (E2 80 xx, E2 81 xx)
for _cp in range(0x80, 0x800):  # every two-byte code point
    _enc = chr(_cp).encode("utf-8")
    _pair = (_enc[0] << 8 | _enc[1]) - _PAIR_BASE
    if not 0 <= _pair < len(_PAIR_ACTION):
        if _cp in SEPARATORS or _cp in DELETED or _cp in REPLACED:
            raise AssertionError(f"U+{_cp:04X} outside the byte tables")
        continue
    if _cp in SEPARATORS:
        _PAIR_ACTION[_pair] = _SEP
    elif _cp in DELETED:
        _PAIR_ACTION[_pair] = _DEL
    elif _cp in REPLACED:
        _PAIR_ACTION[_pair] = _REPL
        _PAIR_REPLACEMENT[_pair] = list(chr(REPLACED[_cp]).encode("utf-8"))
for _cp in range(0x2000, 0x2080):
    _TRIPLE_ACTION[_cp - 0x2000] = _SEP if _cp in SEPARATORS else _DEL if _cp in DELETED else _KEEP
if any(cp >= 0x800 and not (0x2000 <= cp < 0x2080 or cp == 0xFEFF) for cp in SEPARATORS | DELETED):
    raise AssertionError("a three-byte rule outside U+2000..U+207F needs a byte table")


@dataclass(frozen=True)
class Words:
    """The canonical word hashes of a batch of texts, in order, with the text each belongs to."""

    hashes: np.ndarray  # uint64[W]
    owner: np.ndarray  # int64[W]: index of the text
    bounds: np.ndarray  # int64[n + 1]: text i owns hashes[bounds[i]:bounds[i + 1]]

    @property
    def count(self) -> int:
        return len(self.bounds) - 1


def word_hashes(texts: list[str]) -> Words:
    """`[word_hash(w) for w in canonical_words(t)]` for every text, vectorised over the UTF-8 bytes."""
    groups, size, start = [], 0, 0
    for i, text in enumerate(texts):
        size += len(text) + 1
        if size >= _GROUP_BYTES:
            groups.append((start, i + 1))
            start, size = i + 1, 0
    if start < len(texts) or not groups:
        groups.append((start, len(texts)))
    parts = [_word_hashes(texts[a:b]) for a, b in groups]
    if len(parts) == 1:
        return parts[0]
    offsets = np.cumsum([0, *(b - a for a, b in groups)])
    word_offsets = np.cumsum([0, *(len(p.hashes) for p in parts)])
    return Words(
        np.concatenate([p.hashes for p in parts]),
        np.concatenate([p.owner + o for p, o in zip(parts, offsets, strict=False)]),
        np.concatenate([parts[0].bounds[:1], *(p.bounds[1:] + w for p, w in zip(parts, word_offsets, strict=False))]),
    )


def _word_hashes(texts: list[str]) -> Words:
    n = len(texts)
    parts = [t.encode("utf-8", "surrogatepass") for t in texts]
    lengths = np.fromiter(map(len, parts), np.int64, n)
    starts = np.cumsum(lengths + 1) - lengths  # byte offset of each text (after the leading space)
    raw = np.frombuffer(b" " + b" ".join(parts) + b"   ", dtype=np.uint8)
    c = _ASCII_MAP[raw]
    keep = None
    if raw.max(initial=0) >= 0x80:
        leads = np.flatnonzero(_LEAD[raw])
        if len(leads):
            pair = ((raw[leads].astype(np.int64) << 8) | raw[leads + 1]) - _PAIR_BASE
            action = _PAIR_ACTION[pair]
            sep = leads[action == _SEP]
            c[sep] = 0x20
            c[sep + 1] = 0x20
            gone = leads[action == _DEL]
            if len(gone):
                keep = np.ones(len(c), dtype=bool)
                keep[gone] = False
                keep[gone + 1] = False
            repl = action == _REPL
            c[leads[repl]] = _PAIR_REPLACEMENT[pair[repl], 0]
            c[leads[repl] + 1] = _PAIR_REPLACEMENT[pair[repl], 1]
        e2 = np.flatnonzero(raw == 0xE2)
        if len(e2):
            second, third = raw[e2 + 1], raw[e2 + 2]
            inside = (second == 0x80) | (second == 0x81)
            e2, second, third = e2[inside], second[inside], third[inside]
            action = _TRIPLE_ACTION[((second.astype(np.int64) & 0x3F) << 6) | (third & 0x3F)]
            gone = e2[action == _DEL]
            if len(gone):
                keep = np.ones(len(c), dtype=bool) if keep is None else keep
            for offset in range(3):
                c[e2[action == _SEP] + offset] = 0x20
                if len(gone):
                    keep[gone + offset] = False
        ef = np.flatnonzero(raw == 0xEF)
        bom = ef[(raw[ef + 1] == 0xBB) & (raw[ef + 2] == 0xBF)]
        if len(bom):
            keep = np.ones(len(c), dtype=bool) if keep is None else keep
            for offset in range(3):
                keep[bom + offset] = False
    position = None
    if keep is not None:
        position = np.flatnonzero(keep)  # original offset of every kept byte
        c = c[position]
    sep = c == 0x20
    word_start = np.flatnonzero(sep[:-1] & ~sep[1:]) + 1
    word_end = np.flatnonzero(~sep[:-1] & sep[1:]) + 1
    if not len(word_start):
        empty = np.zeros(0, dtype=np.uint64)
        return Words(empty, np.zeros(0, dtype=np.int64), np.zeros(n + 1, dtype=np.int64))
    powers, inverse = _POWERS.upto(len(c) + 1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(len(c) + 1, dtype=np.uint64)
        np.cumsum((c.astype(np.uint64) + np.uint64(1)) * powers[: len(c)], out=prefix[1:])
        hashes = _splitmix((prefix[word_end] - prefix[word_start]) * inverse[word_start])
    origin = word_start if position is None else position[word_start]
    owner = np.searchsorted(starts, origin, side="right") - 1
    bounds = np.searchsorted(owner, np.arange(n + 1), side="left")
    return Words(hashes, owner.astype(np.int64), bounds.astype(np.int64))


_LENGTH_SALT = _random_u64("ngram-length", 4096)


def ngram_hashes(words: Words, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every run of `length` consecutive words inside one text, and the text's index."""
    count = len(words.hashes) - length + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    value = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(length):
            value = value * _P + words.hashes[j : j + count]
    valid = words.owner[:count] == words.owner[length - 1 : length - 1 + count]
    return value[valid] ^ _LENGTH_SALT[length], words.owner[:count][valid]


def sequence_hashes(words: Words, salts: np.ndarray | None = None) -> np.ndarray:
    """One hash of each text's whole canonical word sequence (what "exact duplicate" compares)."""
    out = np.empty(words.count, dtype=np.uint64)
    data, bounds = words.hashes, words.bounds
    for i in range(words.count):
        out[i] = xxhash.xxh64_intdigest(data[bounds[i] : bounds[i + 1]].tobytes(), seed=_SEED)
    return out if salts is None else out ^ salts


class MinHasher:
    """MinHash signatures over word shingles, cut into LSH band keys.

    One-permutation hashing (Li, Owen, Zhang 2012) with densification by rotation (Shrivastava
    and Li 2014): every shingle hash goes to one of `num_perm` bins by its top bits and each bin
    keeps its minimum; an empty bin borrows the next non-empty bin's value (plus an offset per
    step). Bin j of two texts agrees with probability about their Jaccard similarity J, as with
    `num_perm` independent permutations, for one hash per shingle instead of `num_perm`. With
    `bands` bands of `num_perm / bands` bins, two texts share a band key with probability
    1 - (1 - J^rows)^bands.
    """

    def __init__(self, num_perm: int = 64, bands: int = 8, shingle: int = 5):
        if num_perm % bands:
            raise ValueError(f"num_perm {num_perm} is not a multiple of bands {bands}")
        self.num_perm, self.bands, self.rows, self.shingle = num_perm, bands, num_perm // bands, shingle
        self._row_mix = _random_u64("minhash-row", self.rows, odd=True)
        self._band_salt = _random_u64("minhash-band", bands)
        self._step = np.uint64(_random_u64("minhash-step", 1, odd=True)[0])

    @property
    def threshold(self) -> float:
        """The Jaccard similarity at which a pair is caught with probability about one half."""
        return (1 / self.bands) ** (1 / self.rows)

    def signatures(self, words: Words, whole: np.ndarray) -> np.ndarray:
        """uint64[n, num_perm]; a text shorter than one shingle uses its whole-sequence hash."""
        n, k = words.count, self.num_perm
        shingles, owner = ngram_hashes(words, self.shingle)
        counts = np.bincount(owner, minlength=n)
        short = np.flatnonzero(counts == 0)
        if len(short):
            shingles = np.concatenate([shingles, whole[short]])
            owner = np.concatenate([owner, short])
        shingles = _splitmix(shingles)
        with np.errstate(over="ignore"):
            bins = (((shingles >> np.uint64(32)) * np.uint64(k)) >> np.uint64(32)).astype(np.int64)
        empty = np.iinfo(np.uint64).max
        flat = np.full(n * k, empty, dtype=np.uint64)
        np.minimum.at(flat, owner * k + bins, shingles)
        sig = flat.reshape(n, k)
        filled = sig != empty
        if filled.all():
            return sig
        # densify: an empty bin takes the next filled bin (circularly) plus `step` per bin moved
        position = np.arange(2 * k)
        candidate = np.where(np.concatenate([filled, filled], axis=1), position, 4 * k)
        following = np.minimum.accumulate(candidate[:, ::-1], axis=1)[:, ::-1][:, :k]
        rows = np.arange(n)[:, None]
        with np.errstate(over="ignore"):
            dense = sig[rows, following % k] + (following - position[:k]).astype(np.uint64) * self._step
        return dense

    def band_keys(self, signatures: np.ndarray, salts: np.ndarray | None = None) -> np.ndarray:
        """uint64[n, bands]: equal keys in the same band column mean a near-duplicate candidate."""
        grouped = signatures.reshape(len(signatures), self.bands, self.rows)
        with np.errstate(over="ignore"):
            keys = (grouped * self._row_mix[None, None, :]).sum(axis=2, dtype=np.uint64) ^ self._band_salt[None, :]
        return keys if salts is None else keys ^ salts[:, None]


def estimate_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


class NgramIndex:
    """The n-grams of a set of evaluation items, for decontamination.

    An item shorter than `n` words contributes its whole word sequence (as a shorter n-gram), so
    a short question is still found inside a longer training text.
    """

    def __init__(self, items: list[str], n: int = 13):
        self.n = n
        words = word_hashes(items)
        hashes, owners = [], []
        lengths = np.diff(words.bounds)
        self.lengths = sorted({int(min(n, k)) for k in lengths if k > 0})
        for length in self.lengths:
            h, owner = ngram_hashes(words, length)
            # an item contributes n-grams of its own length class only
            mine = np.minimum(lengths[owner], n) == length
            hashes.append(h[mine])
            owners.append(owner[mine])
        all_hashes = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)
        all_owners = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
        # (hash, item) pairs, unique and sorted by hash: the coverage lookup
        order = np.lexsort((all_owners, all_hashes))
        all_hashes, all_owners = all_hashes[order], all_owners[order]
        new = np.ones(len(order), dtype=bool)
        new[1:] = (all_hashes[1:] != all_hashes[:-1]) | (all_owners[1:] != all_owners[:-1])
        self._pair_hash, self._pair_item = all_hashes[new], all_owners[new]
        first = np.ones(len(self._pair_hash), dtype=bool)
        first[1:] = self._pair_hash[1:] != self._pair_hash[:-1]
        self.unique = self._pair_hash[first]
        self.item_ngrams = np.bincount(self._pair_item, minlength=len(items))
        self.items = len(items)
        # a bitmap of the top bits of every n-gram (about 64 bits per n-gram, so ~1.5% false
        # positives) answers most lookups with one memory access before the binary search
        self._bits = int(min(max(16, np.ceil(np.log2(max(len(self.unique), 1) * 64))), 34))
        top = self.unique >> np.uint64(64 - self._bits)
        self._bitmap = np.zeros(1 << (self._bits - 3), dtype=np.uint8)
        np.bitwise_or.at(
            self._bitmap, (top >> np.uint64(3)).astype(np.int64), (1 << (top & np.uint64(7))).astype(np.uint8)
        )

    def __len__(self) -> int:
        return len(self.unique)

    def hits(self, words: Words) -> np.ndarray:
        """bool[n]: the text shares at least one n-gram with an evaluation item."""
        flagged = np.zeros(words.count, dtype=bool)
        if not len(self.unique):
            return flagged
        for length in self.lengths:
            h, owner = ngram_hashes(words, length)
            if not len(h):
                continue
            top = h >> np.uint64(64 - self._bits)
            maybe = (
                (self._bitmap[(top >> np.uint64(3)).astype(np.int64)] >> (top & np.uint64(7)).astype(np.uint8)) & 1
            ) == 1
            h, owner = h[maybe], owner[maybe]
            at = np.minimum(np.searchsorted(self.unique, h), len(self.unique) - 1)
            flagged[owner[self.unique[at] == h]] = True
        return flagged

    def coverage(self, words: Words, text: int) -> tuple[float, int]:
        """(largest share of one evaluation item's n-grams found in text `text`, that item)."""
        one = Words(
            words.hashes[words.bounds[text] : words.bounds[text + 1]],
            np.zeros(int(words.bounds[text + 1] - words.bounds[text]), dtype=np.int64),
            np.array([0, words.bounds[text + 1] - words.bounds[text]], dtype=np.int64),
        )
        found = np.unique(np.concatenate([ngram_hashes(one, length)[0] for length in self.lengths]))
        lo = np.searchsorted(self._pair_hash, found, side="left")
        hi = np.searchsorted(self._pair_hash, found, side="right")
        items = np.concatenate(
            [self._pair_item[a:b] for a, b in zip(lo, hi, strict=True) if b > a] or [np.zeros(0, np.int64)]
        )
        if not len(items):
            return 0.0, -1
        matched = np.bincount(items, minlength=self.items)
        share = matched / np.maximum(self.item_ngrams, 1)
        best = int(np.argmax(share))
        return float(share[best]), best


# ---------------------------------------------------------------------------------------------
# Reworded repeats: clusters of questions whose canonical words mostly agree (the audit's, and
# benchmarks/bench_qa's). Measured on the Arabic MMLU files of ../shared/realdata (bimedix/README.md):
# rewordings of one question share 0.30-0.89 of their words (question and options), unrelated
# questions of one file at most 0.35; the cut is REWORDED = 0.4, and clusters join every pair above it.

REWORDED = 0.4
# LSH for the candidates, then the exact Jaccard similarity of each candidate pair: 32 bands of 3
# minima over word sets (shingle 1) catch a pair at Jaccard 0.4 with probability 0.88, at 0.5 with
# 0.99 (and a cluster, joined through any of its pairs, almost surely), while a pair at 0.1 becomes a
# candidate with probability 0.03. Common words make most pairs of short questions share SOME
# band, though (0.3 to 0.5 of all pairs of the real files): the checks grow with the square of
# the rows, hence PAIR_LIMIT.
AUDIT_MINHASHER = {"num_perm": 96, "bands": 32, "shingle": 1}


@dataclass(frozen=True)
class Cluster:
    """Texts (their indices, first first) that reword one another, and the closest pair's similarity."""

    members: tuple[int, ...]
    similarity: float  # the smallest similarity among the pairs that joined the cluster


def word_sets(texts: list[str]) -> list[frozenset[int]]:
    """The set of canonical word hashes of every text (what `jaccard` compares)."""
    words = word_hashes(texts)
    data, bounds = words.hashes.tolist(), words.bounds.tolist()
    return [frozenset(data[bounds[i] : bounds[i + 1]]) for i in range(words.count)]


def jaccard(a: frozenset, b: frozenset) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def number_key(text: str) -> tuple:
    """The numbers of a text, as a sorted multiset: a rewording keeps them, a templated sibling
    ("muscle number 3", "a dose of 20 mg") changes them, and is another question."""
    return tuple(sorted(numbers(text).items()))


class _Forest:
    """Union-find over text indices (the clusters)."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def root(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(self, i: int, j: int) -> None:
        a, b = self.root(i), self.root(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


# The exact checks run on slices of this many candidate pairs (memory stays bounded).
_SLICE = 1 << 22
# A search whose band buckets hold more candidate pairs than this is refused (`SearchTooLarge`)
# rather than run for an hour: at REWORDED the candidates grow with the square of the rows (common
# words fill whole bands), about 15 million pairs a second here (bimedix/README.md has the figures).
PAIR_LIMIT = 600_000_000


def _distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values: np.unique, by a sort (numpy 2.3's np.unique hashes integers,
    ten times slower here on 10^7 codes)."""
    values = np.sort(values)
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if len(values) else values


class SearchTooLarge(ValueError):
    """The LSH search would check more than PAIR_LIMIT candidate pairs."""


def _band_pairs(order: np.ndarray, starts: np.ndarray, ends: np.ndarray):
    """Every pair (i, j), i < j, of members of the same bucket (order[starts[b]:ends[b]]), in slices
    of about _SLICE pairs (a bucket larger than that is split by its first member)."""
    sizes = ends - starts
    first_member = np.cumsum(sizes) - sizes
    position = np.repeat(starts, sizes) + (np.arange(int(sizes.sum())) - np.repeat(first_member, sizes))
    after = np.repeat(ends, sizes) - position - 1  # members after each one in its bucket
    total = np.cumsum(after)
    if not len(total) or not total[-1]:
        return
    cuts = np.unique(np.searchsorted(total, np.arange(_SLICE, int(total[-1]), _SLICE), side="right"))
    for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(after)], strict=True):
        counts = after[lo:hi]
        left = np.repeat(position[lo:hi], counts)
        first = np.cumsum(counts) - counts
        right = left + 1 + (np.arange(int(counts.sum())) - np.repeat(first, counts))
        a, b = order[left], order[right]
        yield np.minimum(a, b), np.maximum(a, b)


class _WordSets:
    """The word sets of a batch of texts as sorted (text, word) codes, for exact Jaccard
    similarities of many pairs at once (the same values as `jaccard` on `word_sets`)."""

    def __init__(self, words: Words):
        vocabulary, ids = np.unique(words.hashes, return_inverse=True)
        self.words = max(len(vocabulary), 1)
        self.codes = _distinct(words.owner.astype(np.int64) * self.words + ids.astype(np.int64))
        self.sizes = np.bincount(self.codes // self.words, minlength=words.count)
        self.starts = np.cumsum(self.sizes) - self.sizes

    def jaccard(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Each word of the smaller set of every pair is looked up in the other's."""
        codes, sizes = self.codes, self.sizes
        out = np.empty(len(i), dtype=np.float64)
        for a in range(0, len(i), 1 << 16):  # in slices: the lookups stay small
            x, y = i[a : a + (1 << 16)], j[a : a + (1 << 16)]
            small, other = np.where(sizes[x] <= sizes[y], x, y), np.where(sizes[x] <= sizes[y], y, x)
            lengths = sizes[small]
            pair = np.repeat(np.arange(len(x)), lengths)
            first = np.cumsum(lengths) - lengths
            position = np.repeat(self.starts[small], lengths) + (
                np.arange(int(lengths.sum())) - np.repeat(first, lengths)
            )
            probe = other[pair] * self.words + codes[position] % self.words
            at = np.minimum(np.searchsorted(codes, probe), len(codes) - 1)
            shared = np.bincount(pair, weights=codes[at] == probe, minlength=len(x))
            union = sizes[x] + sizes[y] - shared
            out[a : a + len(x)] = np.where(union > 0, shared / np.maximum(union, 1), 1.0)
        return out


def _links(
    texts: list[str], threshold: float, same_numbers: bool, expand: bool
) -> tuple[list[tuple[int, int, float]], _Forest]:
    """The pairs at or above `threshold` and the clusters they join. Texts of the same word set (and
    numbers) are searched once: their copies join it at similarity 1, and with `expand` every pair
    of the copies is listed too (m copies of a question cost m, not m^2 / 2 checks)."""
    forest = _Forest(len(texts))
    keys = [(words, number_key(t) if same_numbers else ()) for words, t in zip(word_sets(texts), texts, strict=True)]
    first: dict[tuple, int] = {}
    copies: dict[int, list[int]] = {}  # the first text of each word set -> every text of it
    for i, key in enumerate(keys):
        copies.setdefault(first.setdefault(key, i), []).append(i)
    distinct = sorted(copies)
    out = []
    for a, b, similarity in _search([texts[i] for i in distinct], threshold, same_numbers):
        a, b = distinct[a], distinct[b]
        forest.join(a, b)
        out += (
            [(min(x, y), max(x, y), similarity) for x in copies[a] for y in copies[b]]
            if expand
            else [(a, b, similarity)]
        )
    for members in copies.values():
        for x, y in itertools.combinations(members, 2) if expand else ((members[0], m) for m in members[1:]):
            forest.join(x, y)
            out.append((x, y, 1.0))
    return sorted(out), forest


def _search(texts: list[str], threshold: float, same_numbers: bool) -> list[tuple[int, int, float]]:
    """The LSH search: every pair of texts that share a band key, checked exactly, in numpy.

    A pair is checked once, however many bands it shares, and only when it can reach the threshold:
    the same numbers (same_numbers), and sizes close enough (the Jaccard similarity is at most the
    smaller set's size over the larger's). Raises SearchTooLarge above PAIR_LIMIT candidates."""
    n = len(texts)
    if n < 2:
        return []
    minhasher = MinHasher(**AUDIT_MINHASHER)
    words = word_hashes(texts)
    # one shingle = one word: the signature is a MinHash of the word SET (repeats do not count)
    keys = minhasher.band_keys(minhasher.signatures(words, sequence_hashes(words)))
    buckets = []
    for band in range(minhasher.bands):
        order = np.argsort(keys[:, band], kind="stable")
        ordered = keys[order, band]
        starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
        ends = np.concatenate([starts[1:], [n]])
        shared = ends - starts >= 2
        buckets.append((order, starts[shared], ends[shared]))
    candidates = sum(int(((e - s) * (e - s - 1) // 2).sum()) for _, s, e in buckets)
    if candidates > PAIR_LIMIT:
        raise SearchTooLarge(
            f"{n} texts: the near-duplicate search would check {candidates:,} candidate pairs "
            f"(limit {PAIR_LIMIT:,}; common words put most pairs in one bucket)"
        )
    if same_numbers:
        ids: dict[tuple, int] = {}
        number_ids = np.fromiter((ids.setdefault(number_key(t), len(ids)) for t in texts), np.int64, n)
    word_sets_ = _WordSets(words)
    sizes = word_sets_.sizes
    codes = []
    for order, starts, ends in buckets:
        for i, j in _band_pairs(order, starts, ends):
            keep = np.minimum(sizes[i], sizes[j]) >= threshold * np.maximum(sizes[i], sizes[j])
            if same_numbers:
                keep &= number_ids[i] == number_ids[j]
            codes.append(i[keep] * n + j[keep])
    code = _distinct(np.concatenate(codes)) if codes else np.zeros(0, dtype=np.int64)  # a pair of many bands once
    out = []
    for a in range(0, len(code), _SLICE):
        i, j = code[a : a + _SLICE] // n, code[a : a + _SLICE] % n
        similarity = word_sets_.jaccard(i, j)
        close = similarity >= threshold
        out += zip(i[close].tolist(), j[close].tolist(), similarity[close].tolist(), strict=True)
    return out


def similar_pairs(
    texts: list[str], threshold: float = REWORDED, *, same_numbers: bool = True
) -> list[tuple[int, int, float]]:
    """(i, j, Jaccard) for every pair of texts whose canonical word sets agree at least `threshold`,
    i < j, found through MinHash LSH and checked exactly (a pair LSH misses is not reported).
    same_numbers: a pair whose numbers differ (`number_key`) is not similar, however many words agree.
    Raises SearchTooLarge when LSH would check more than PAIR_LIMIT candidate pairs."""
    return _links(texts, threshold, same_numbers, expand=True)[0]


def clusters(texts: list[str], threshold: float = REWORDED, *, same_numbers: bool = True) -> list[Cluster]:
    """Groups of two or more texts joined by pairs at or above `threshold` (single linkage), each in
    text order, the clusters in order of their first text."""
    pairs, forest = _links(texts, threshold, same_numbers, expand=False)
    groups: dict[int, list[int]] = {}
    for i in range(len(texts)):
        groups.setdefault(forest.root(i), []).append(i)
    weakest: dict[int, float] = {}
    for i, _, similarity in pairs:
        r = forest.root(i)
        weakest[r] = min(weakest.get(r, 1.0), similarity)
    return [Cluster(tuple(m), weakest[r]) for r, m in sorted(groups.items()) if len(m) > 1]
