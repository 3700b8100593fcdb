"""The reworded-repeat audit on real files: where to cut, what it finds, and how fast (issue 25).

    python benchmarks/bench_neardup.py [--realdata ../shared/realdata] [--out results/neardup.json]

Reads the Arabic MMLU files (mmlu_ar/{dev,test}/*.csv, AceGPT's machine translation) through the
format layer, when ../shared/realdata is present (it says which files it read; without them it stops
and says so: the point is the real files). It reports:

1. The similarity distribution: the Jaccard similarity of the canonical words of question and options
   (bimedix.dedup.word_sets, what the audit compares) of every pair of rows within one file, split
   by an independent label: both rows mention an IP address ("IP", "آي بي", "بروتوكول الإنترنت"...;
   the off-topic filler these files carry is a question about IP-address spoofing) or not.
2. What the audit finds (bimedix.formats.read_file, as convert / check-data / eval read a file):
   reworded copies and off-topic clusters per file, against the rows the label marks, with every
   joined pair the label does not mark printed for a reader to judge.
3. The speed of the project's MinHash LSH (bimedix.dedup.similar_pairs) against datasketch's
   MinHashLSH on the same texts, and both recalls against the exact all-pairs answer.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bimedix import formats  # noqa: E402
from bimedix.audit import near_text  # noqa: E402
from bimedix.dedup import AUDIT_MINHASHER, REWORDED, canonical_words, clusters, jaccard, number_key, word_sets  # noqa: E402

IP = re.compile(r"\bIP\b|آي ?بي|أي بي|الاي بي|الإب\b|بروتوكول الإنترنت|بروتوكول الانترنت")


def read(path: Path):
    return formats.read_file(path, "mmlu_csv", formats.Context(subject=formats.mmlu_subject(path)))


def all_rows(path: Path):
    """Every usable row of the file, repeats included (the audit's view drops later copies)."""
    layout = formats.get_format("mmlu_csv")
    out = []
    for line, row in formats.read_rows(path, layout):
        item = layout.convert(row, formats.Context(), line)
        if not isinstance(item, formats.Reject):
            out.append((line, near_text(item)))
    return out


def distribution(files: list[Path]) -> dict:
    buckets: dict[str, Counter] = {"both_ip": Counter(), "other": Counter()}
    highest_other = []
    for path in files:
        rows = all_rows(path)
        sets = word_sets([t for _, t in rows])
        for x, y in itertools.combinations(range(len(rows)), 2):
            similarity = jaccard(sets[x], sets[y])
            label = "both_ip" if IP.search(rows[x][1]) and IP.search(rows[y][1]) else "other"
            buckets[label][min(int(similarity * 20) / 20, 0.95)] += 1
            if label == "other" and similarity >= 0.3:
                highest_other.append((round(similarity, 3), f"{path.name}:{rows[x][0]}", f"{path.name}:{rows[y][0]}"))
    return {
        "buckets": {k: {f"{b:.2f}": v[b] for b in sorted(v)} for k, v in buckets.items()},
        "other_pairs_at_or_above_0.3": sorted(highest_other, reverse=True),
    }


def audit(files: list[Path], root: Path) -> dict:
    per_file, false_pairs = {}, []
    for path in files:
        result = read(path)
        rows = dict(all_rows(path))
        clusters = result.audit.reworded()
        in_clusters = {line for lines, _, _ in clusters for line in lines}
        labelled = {line for line, text in rows.items() if IP.search(text)}
        per_file[str(path.relative_to(root))] = {
            "rows": result.audit.rows,
            "reworded_copies_dropped": result.audit.reworded_count,
            "clusters": [len(lines) for lines, _, _ in clusters],
            "off_topic_clusters": [f.count for f in result.audit.findings() if f.code == "off_topic_cluster"],
            "rows_in_clusters": len(in_clusters),
            "rows_labelled_ip": len(labelled),
            "labelled_not_in_a_cluster": sorted(labelled - in_clusters - {line for line, _ in result.rejects}),
            "in_a_cluster_not_labelled": sorted(in_clusters - labelled),
        }
        for lines, _, _ in clusters:
            for a, b in itertools.combinations(lines, 2):
                if not (a in labelled and b in labelled):
                    similarity = jaccard(*word_sets([rows[a], rows[b]]))
                    if similarity >= REWORDED and number_key(rows[a]) == number_key(rows[b]):
                        false_pairs.append(
                            {"at": f"{path.name}:{a},{b}", "similarity": round(similarity, 3),
                             "texts": [" ".join(rows[a].split())[:120], " ".join(rows[b].split())[:120]]}
                        )  # fmt: skip
    return {"files": per_file, "pairs_not_both_labelled": false_pairs}


def _partition(groups, n: int) -> list[int]:
    """Cluster label of every text (its own index when it is in no cluster)."""
    label = list(range(n))
    for members in groups:
        for i in members:
            label[i] = min(members)
    return label


def _recall(found: list[int], exact: list[int]) -> float:
    """Share of the texts the exact answer puts in a cluster that land in the same cluster here."""
    clustered = [i for i in range(len(exact)) if exact.count(exact[i]) > 1] if len(exact) < 5000 else []
    if not clustered:
        return 1.0
    by_exact: dict[int, set] = {}
    for i in clustered:
        by_exact.setdefault(exact[i], set()).add(found[i])
    ok = sum(1 for i in clustered if found[i] == min(found[j] for j in clustered if exact[j] == exact[i]))
    return round(ok / len(clustered), 4)


def speed(files: list[Path], repeat: int) -> dict:
    one = [t for path in files for _, t in all_rows(path)]
    many = one * repeat
    sets = word_sets(one)
    forest = list(range(len(one)))  # the exact answer: every pair, a union-find

    def root(i):
        while forest[i] != i:
            i = forest[i]
        return i

    for x, y in itertools.combinations(range(len(one)), 2):
        if jaccard(sets[x], sets[y]) >= REWORDED and number_key(one[x]) == number_key(one[y]):
            a, b = root(x), root(y)
            if a != b:
                forest[max(a, b)] = min(a, b)
    exact = [root(i) for i in range(len(one))]
    start = time.perf_counter()
    ours = _partition([c.members for c in clusters(one)], len(one))
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    clusters(many)
    ours_many_s = time.perf_counter() - start
    out = {
        "texts": len(one),
        f"texts_x{repeat}": len(many),
        "bimedix.dedup.clusters": {"seconds": round(ours_s, 3), "recall": _recall(ours, exact),
                                   f"seconds_x{repeat}": round(ours_many_s, 3), "params": AUDIT_MINHASHER},
    }  # fmt: skip
    try:
        from datasketch import MinHash, MinHashLSH
    except ImportError:
        out["datasketch"] = "not installed"
        return out

    def datasketch_clusters(batch: list[str]) -> tuple[list[int], float]:
        """datasketch's MinHashLSH for the candidates, the same exact check and union-find after."""
        start = time.perf_counter()
        lsh = MinHashLSH(threshold=REWORDED, num_perm=AUDIT_MINHASHER["num_perm"])
        signatures = []
        for i, text in enumerate(batch):
            m = MinHash(num_perm=AUDIT_MINHASHER["num_perm"])
            m.update_batch([w.encode() for w in set(canonical_words(text))])
            lsh.insert(i, m)
            signatures.append(m)
        batch_sets = word_sets(batch)
        label = list(range(len(batch)))

        def find(i):
            while label[i] != i:
                i = label[i]
            return i

        for i, m in enumerate(signatures):
            for j in lsh.query(m):
                joined = i < j and find(i) != find(j) and jaccard(batch_sets[i], batch_sets[j]) >= REWORDED
                if joined and number_key(batch[i]) == number_key(batch[j]):
                    a, b = find(i), find(j)
                    label[max(a, b)] = min(a, b)
        return [find(i) for i in range(len(batch))], time.perf_counter() - start

    theirs, ds_s = datasketch_clusters(one)
    _, ds_many_s = datasketch_clusters(many)
    out["datasketch.MinHashLSH"] = {"seconds": round(ds_s, 3), "recall": _recall(theirs, exact),
                                    f"seconds_x{repeat}": round(ds_many_s, 3)}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdata", default=str(ROOT.parent / "shared" / "realdata"))
    parser.add_argument("--out", default=None)
    parser.add_argument("--repeat", type=int, default=20, help="copies of the texts for the speed figure")
    args = parser.parse_args(argv)
    root = Path(args.realdata)
    files = sorted((root / "mmlu_ar").glob("*/*.csv"))
    if not files:
        print(f"{root}/mmlu_ar: no files; this benchmark needs the real Arabic MMLU files", file=sys.stderr)
        return 2
    result = {
        "read": [str(f.relative_to(root)) for f in files],
        "cut": REWORDED,
        "distribution": distribution(files),
        "audit": audit(files, root),
        "speed": speed(files, args.repeat),
    }
    text = json.dumps(result, ensure_ascii=False, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
