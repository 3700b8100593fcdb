"""Benchmark the data build at BiMed1.3M size against a tokenizer-only pass over the same text.

    python benchmarks/bench_data.py [--records 1300000] [--tokenizer bpe32k|tiny|PATH] [--keep]

1. Generates BiMed1.3M-shaped input in a temporary folder (never in the repository): 1.3M
   records in the source formats (MedQA/MedMCQA/normalised-MCQ JSON lines, open QA, multi-turn
   chats), English and Arabic at about 2:1, with BiMed1.3M-like lengths (~480 Mixtral tokens
   a record on average), a share of exact and near duplicates, malformed rows, and records that
   copy evaluation items; plus an evaluation index of ~12k items to decontaminate against.
2. Trains a 32k-vocabulary byte-level BPE on a sample of that text (the default; a realistic
   stand-in for Mixtral's 32k tokenizer, which needs the network), unless --tokenizer says otherwise.
3. Runs the full build (`python -m data_prep build`: convert, dedup, decontaminate, mix, count
   tokens exactly, write) and samples the memory of its whole process tree.
4. Runs a tokenizer-only pass over the rendered texts the build wrote, with the same tokenizer
   and the same number of cores, in the faster of two ways (tokenizers' own threads, or one
   process per core), and reports the ratio of the two wall times.

Figures depend on the machine and on what else runs on it: the script records `uptime`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# BiMed1.3M-like composition: share of records per (source, format, language)
COMPOSITION = [
    ("medqa_en", "medqa", "en", 0.21),
    ("medmcqa_en", "medmcqa", "en", 0.18),
    ("qa_en", "qa_jsonl", "en", 0.14),
    ("chat_en", "chat_jsonl", "en", 0.12),
    ("medqa_ar", "medqa", "ar", 0.11),
    ("mcq_ar", "mcq_json", "ar", 0.09),
    ("qa_ar", "qa_jsonl", "ar", 0.08),
    ("chat_ar", "chat_jsonl", "ar", 0.07),
]
DUPLICATES, NEAR_DUPLICATES, MALFORMED, CONTAMINATED = 0.015, 0.01, 0.0005, 0.002

EN_TERMS = str.split(
    """patient presents with pain fever cough dyspnea chest abdominal history examination reveals blood
pressure heart rate temperature laboratory studies show serum sodium potassium creatinine glucose
hemoglobin platelet count which of the following is the most likely diagnosis appropriate next step in
management treatment mechanism of action adverse effect drug therapy infection acute chronic disease
syndrome deficiency enzyme receptor antibody vaccine tumor carcinoma lymphoma leukemia anemia diabetes
hypertension asthma pneumonia tuberculosis hepatitis cirrhosis pancreatitis appendicitis fracture
artery vein nerve muscle bone kidney liver lung brain spinal cord thyroid adrenal pituitary insulin
cortisol aldosterone estrogen testosterone antibiotic amoxicillin metformin warfarin heparin aspirin
ibuprofen paracetamol lisinopril atorvastatin omelazole prednisolone dose daily weeks months years
year-old man woman child infant pregnant smoker alcohol weight loss fatigue nausea vomiting diarrhea
headache dizziness rash swelling tenderness murmur wheeze crackles jaundice edema bleeding"""
)
AR_TERMS = str.split(
    """المريض يعاني من ألم حمى سعال ضيق تنفس الصدر البطن التاريخ الفحص يظهر ضغط الدم معدل القلب
درجة الحرارة الفحوص المخبرية الصوديوم البوتاسيوم الكرياتينين الغلوكوز الهيموغلوبين الصفيحات أي مما يلي
هو التشخيص الأكثر احتمالا الخطوة التالية المناسبة في التدبير العلاج آلية التأثير الجانبي الدواء عدوى
حاد مزمن مرض متلازمة نقص إنزيم مستقبل جسم مضاد لقاح ورم سرطان لمفوما ابيضاض فقر الدم السكري ارتفاع
الربو ذات الرئة السل التهاب الكبد تشمع البنكرياس الزائدة كسر شريان وريد عصب عضلة عظم الكلية الكبد
الرئة الدماغ النخاع الشوكي الغدة الدرقية الكظرية النخامية الإنسولين الكورتيزول مضاد حيوي الميتفورمين
الوارفارين الأسبرين الباراسيتامول جرعة يوميا أسابيع أشهر سنوات عاما رجل امرأة طفل رضيع حامل مدخن
فقدان الوزن التعب الغثيان القيء الإسهال الصداع الدوار طفح تورم إيلام نفخة أزيز يرقان وذمة نزف"""
)


def vocabulary(language: str, size: int, rng: random.Random) -> list[str]:
    """Real words first (the frequent ones), then made-up words for a realistic long tail."""
    corpus = (ROOT / "bimedix" / "assets" / "tiny_corpus.txt").read_text(encoding="utf-8").split()
    arabic = [w for w in corpus if any("\u0600" <= ch <= "\u06ff" for ch in w)]
    english = [w for w in corpus if w.isascii()]
    words = list(dict.fromkeys((EN_TERMS + english) if language == "en" else (AR_TERMS + arabic)))
    if language == "en":
        syllables = [a + b for a in "bcdfglmnprstv" for b in "aeiou"] + ["ia", "io", "ul", "um", "us", "in", "is"]
    else:
        syllables = [a + b for a in "ابتثجحخدذرزسشصضطظعغفقكلمنهوي" for b in "اوي"] + list(
            "ابتثجحخدذرزسشصضطظعغفقكلمنهوية"
        )
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 5)))
        if language == "ar" and rng.random() < 0.3:
            word = "ال" + word
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


class TextMaker:
    """Zipf-distributed words in sentences: realistic for a BPE tokenizer (long-tailed vocabulary)."""

    def __init__(self, language: str, seed: int):
        self.np_rng = np.random.default_rng(seed)
        self.rng = random.Random(seed)
        self.words = np.array(vocabulary(language, 60_000, random.Random(seed)), dtype=object)
        ranks = np.arange(1, len(self.words) + 1)
        weights = 1 / ranks**1.07
        self.cdf = np.cumsum(weights / weights.sum())
        self.buffer: list[str] = []
        self.comma = "،" if language == "ar" else ","
        self.stop = "؟" if language == "ar" else "?"
        self.age = "year-old" if language == "en" else "عاما"

    def words_(self, n: int) -> list[str]:
        if len(self.buffer) < n:
            picks = np.searchsorted(self.cdf, self.np_rng.random(max(1 << 18, n)))
            self.buffer += self.words[np.minimum(picks, len(self.words) - 1)].tolist()
        out = self.buffer[-n:]
        del self.buffer[-n:]
        return out

    def text(self, n: int, question: bool = False) -> str:
        words = self.words_(max(1, n))
        random_ = self.rng.random
        sentences, i = [], 0
        while i < len(words):
            k = 8 + int(random_() * 14)
            chunk = words[i : i + k]
            if len(chunk) > 6 and random_() < 0.4:
                chunk[len(chunk) // 2] += self.comma
            chunk[0] = chunk[0].capitalize()
            sentences.append(" ".join(chunk) + ".")
            i += k
        if question:
            sentences[-1] = sentences[-1][:-1] + self.stop
        if random_() < 0.3:  # numbers: ages, doses, lab values
            sentences.insert(0, f"{1 + int(random_() * 94)}-{self.age}")
        return " ".join(sentences)

    def length(self, mean: float, low: int, high: int) -> int:
        return int(min(max(self.rng.lognormvariate(np.log(mean), 0.5), low), high))


def make_record(fmt: str, t: TextMaker, ids: int) -> dict:
    if fmt in ("medqa", "mcq_json", "medmcqa"):
        long = fmt != "medmcqa"
        question = t.text(t.length(95 if long else 22, 8, 400), question=True)
        options = [t.text(t.length(3, 1, 10)).rstrip(".") for _ in range(4)]
        if len(set(options)) < 4:
            options = [f"{o} {i}" for i, o in enumerate(options)]
        answer = t.rng.randrange(4)
        if fmt == "medqa":
            return {"question": question, "answer": options[answer], "options": dict(zip("ABCD", options, strict=True)),
                    "meta_info": "step1", "answer_idx": "ABCD"[answer]}  # fmt: skip
        if fmt == "medmcqa":
            exp = t.text(t.length(70, 10, 300)) if t.rng.random() < 0.7 else ""
            return {"id": f"gen-{ids}", "question": question, "opa": options[0], "opb": options[1], "opc": options[2],
                    "opd": options[3], "cop": answer + 1, "exp": exp, "subject_name": "Medicine", "choice_type": "single"}  # fmt: skip
        context = t.text(t.length(120, 30, 400)) if t.rng.random() < 0.2 else ""
        return {"question": question, "options": "\n".join(f"({'ABCD'[i]}) {o}" for i, o in enumerate(options)),
                "answer": f"({'ABCD'[answer]})", "context": context}  # fmt: skip
    if fmt == "qa_jsonl":
        return {
            "id": f"gen-{ids}",
            "question": t.text(t.length(22, 6, 80), question=True),
            "answer": t.text(t.length(190, 40, 700)),
        }
    turns = []
    for _ in range(t.rng.randint(2, 4)):
        turns.append({"role": "user", "content": t.text(t.length(32, 6, 150), question=True)})
        turns.append({"role": "assistant", "content": t.text(t.length(95, 20, 300))})
    return {"messages": turns}


def _near(row: dict, t: TextMaker) -> dict:
    """The same record with one word changed somewhere in its main text."""
    row = json.loads(json.dumps(row))
    if "question" in row:
        words = row["question"].split(" ")
        words[len(words) // 2] = t.words_(1)[0]
        row["question"] = " ".join(words)
    else:
        words = row["messages"][1]["content"].split(" ")
        words[len(words) // 2] = t.words_(1)[0]
        row["messages"][1]["content"] = " ".join(words)
    return row


def generate(workdir: Path, records: int, seed: int) -> dict:
    """Write the input files, the evaluation index and the mix; return what was made."""
    rng = random.Random(seed)
    makers = {"en": TextMaker("en", seed), "ar": TextMaker("ar", seed + 1)}
    eval_dir = workdir / "eval"
    eval_dir.mkdir(parents=True, exist_ok=True)
    evals = {}
    for language, count in (("en", 6545), ("ar", 5870)):  # MedQA + MedMCQA dev + MMLU medical sizes
        items = [make_record("mcq_json", makers[language], i) for i in range(count)]
        evals[language] = items
        with open(eval_dir / f"eval_{language}.jsonl", "wb") as fh:
            fh.writelines(orjson.dumps(item) + b"\n" for item in items)
    (eval_dir / "index.yaml").write_text(
        "- {task: bimedix_en_medqa, language: en, path: eval_en.jsonl, format: mcq_json}\n"
        "- {task: bimedix_ar_medqa, language: ar, path: eval_ar.jsonl, format: mcq_json}\n"
    )
    made = {"files": {}, "planted": {"duplicates": 0, "near_duplicates": 0, "malformed": 0, "contaminated": 0}}
    sources = []
    ids = 0
    for name, fmt, language, share in COMPOSITION:
        n = round(records * share)
        t = makers[language]
        path = workdir / f"{name}.jsonl"
        recent: list[dict] = []
        with open(path, "wb") as fh:
            for _ in range(n):
                ids += 1
                draw = rng.random()
                if draw < DUPLICATES and recent:
                    row = rng.choice(recent)
                    made["planted"]["duplicates"] += 1
                elif draw < DUPLICATES + NEAR_DUPLICATES and recent:
                    row = _near(rng.choice(recent), t)
                    made["planted"]["near_duplicates"] += 1
                elif draw < DUPLICATES + NEAR_DUPLICATES + MALFORMED:
                    fh.write(b'{"question": "truncated row\n')
                    made["planted"]["malformed"] += 1
                    continue
                elif draw < DUPLICATES + NEAR_DUPLICATES + MALFORMED + CONTAMINATED and fmt in ("medqa", "mcq_json"):
                    item = rng.choice(evals[language])
                    row = make_record(fmt, t, ids)
                    row["question"] = item["question"]
                    options = [line[4:] for line in item["options"].split("\n")]
                    if fmt == "medqa":
                        row["options"] = dict(zip("ABCD", options, strict=True))
                        row["answer"] = row["options"][row["answer_idx"]]
                    else:
                        row["options"] = item["options"]
                    made["planted"]["contaminated"] += 1
                else:
                    row = make_record(fmt, t, ids)
                    if len(recent) < 2000:
                        recent.append(row)
                    elif rng.random() < 0.01:
                        recent[rng.randrange(len(recent))] = row
                fh.write(orjson.dumps(row) + b"\n")
        made["files"][name] = {"rows": n, "bytes": path.stat().st_size}
        sources.append(f"  - {{name: {name}, format: {fmt}, path: {path.name}, language: {language}}}")
    (workdir / "mix.yaml").write_text(
        "name: bench\ndescription: generated BiMed1.3M-sized input\nseed: 1\nval_fraction: 0.01\n"
        "language_ratio: {ar: 1, en: 2}\nsources:\n" + "\n".join(sources) + "\n"
    )
    return made


def train_bpe(workdir: Path, vocab_size: int = 32000, sample_bytes: int = 40 << 20) -> Path:
    """A byte-level BPE like Mixtral's (32k vocabulary), trained on a sample of the generated text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    sample = workdir / "bpe_sample.txt"
    with open(sample, "w", encoding="utf-8") as out:
        for path in sorted(workdir.glob("*.jsonl")):
            with open(path, "rb") as fh:
                out.write(fh.read(sample_bytes // 8).decode("utf-8", "ignore"))
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train([str(sample)], trainer)
    path = workdir / "bpe32k" / "tokenizer.json"
    path.parent.mkdir(exist_ok=True)
    tokenizer.save(str(path))
    (path.parent / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))
    sample.unlink()
    return path.parent


class TreeMemory(threading.Thread):
    """Peak memory of a process and its children: the sum of RSS (counts shared pages once per
    process: an upper bound) and the sum of PSS (shares them out: the honest total)."""

    def __init__(self, pid: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.every = every
        self.peak_rss = self.peak_pss = self.peak_main_rss = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                processes = [self.root, *self.root.children(recursive=True)]
                rss = pss = 0
                for p in processes:
                    try:
                        info = p.memory_full_info()
                        rss += info.rss
                        pss += getattr(info, "pss", info.rss)
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        pass
                self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
                self.peak_main_rss = max(self.peak_main_rss, self.root.memory_info().rss)
            except psutil.NoSuchProcess:
                return
            self.done.wait(self.every)


def timed(command: list[str], env: dict) -> tuple[float, TreeMemory, subprocess.CompletedProcess]:
    """Run a command; wall seconds, its memory, and (in .cpu_seconds) the CPU time of its whole tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    memory = TreeMemory(process.pid)
    memory.start()
    stdout, stderr = process.communicate()
    elapsed = time.perf_counter() - start
    memory.done.set()
    memory.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    memory.cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if process.returncode != 0:
        raise SystemExit(f"failed ({process.returncode}): {' '.join(command)}\n{stderr[-3000:]}")
    return elapsed, memory, result


# ---------------------------------------------------------------------------------------------
# The tokenizer-only pass: same text, same tokenizer, same cores


def prepare_texts(directory: Path, texts_path: Path, tokenizer_dir: Path) -> int:
    """The rendered chat template of every written line (copies included), one JSON string a line."""
    from data_prep.tokens import load_tokenizer, render

    info = load_tokenizer(str(tokenizer_dir))
    count = 0
    with open(texts_path, "wb") as out:
        for name in ("train.jsonl", "val.jsonl"):
            with open(directory / name, "rb") as fh:
                for line in fh:
                    out.write(orjson.dumps(render(orjson.loads(line)["messages"], info.bos, info.eos)) + b"\n")
                    count += 1
    return count


def _count_batch(args) -> tuple[int, int]:
    serialised, lines = args
    from tokenizers import Tokenizer

    global _TOKENIZER
    if "_TOKENIZER" not in globals():
        _TOKENIZER = Tokenizer.from_str(serialised)
    texts = [orjson.loads(line) for line in lines]
    encodings = _TOKENIZER.encode_batch(texts, add_special_tokens=False)
    return sum(len(e.ids) for e in encodings), sum(map(len, texts))


def tokenize_only(texts_path: Path, tokenizer_json: str, mode: str, workers: int, limit: int | None = None) -> dict:
    """Read the texts and tokenise them: 'threads' = one process, tokenizers' Rayon threads;
    'processes' = `workers` processes, one thread each (as the build does)."""
    from itertools import islice

    def batches():
        with open(texts_path, "rb") as fh:
            lines = islice(fh, limit) if limit else fh
            while batch := list(islice(lines, 2000)):
                yield tokenizer_json, batch

    start = time.perf_counter()
    tokens = chars = 0
    if mode == "threads":
        os.environ["TOKENIZERS_PARALLELISM"] = "true"
        for t, c in map(_count_batch, batches()):
            tokens, chars = tokens + t, chars + c
    else:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for t, c in pool.imap(_count_batch, batches(), chunksize=1):
                tokens, chars = tokens + t, chars + c
    return {"mode": mode, "seconds": time.perf_counter() - start, "tokens": tokens, "chars": chars}


def _tokenize_only_main(argv: list[str]) -> None:
    """Entry point for the timed child process: prints the result as JSON."""
    texts, tokenizer_dir, mode, workers, limit = argv
    serialised = (Path(tokenizer_dir) / "tokenizer.json").read_text(encoding="utf-8")
    print(json.dumps(tokenize_only(Path(texts), serialised, mode, int(workers), int(limit) or None)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_300_000, help="records to generate (default: %(default)s)")
    parser.add_argument(
        "--tokenizer", default="bpe32k", help="bpe32k (train one), tiny (the tiny model's), or a folder"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="worker processes (default: all cores)")
    parser.add_argument("--workdir", type=Path, help="where to generate (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "build" / "bench-data.json", help="result JSON (default: %(default)s)"
    )
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bimedix-bench-data-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    result: dict = {"records": args.records, "workers": args.workers, "machine": {
        "cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
        "load_before": os.getloadavg()}}  # fmt: skip
    try:
        start = time.perf_counter()
        made = generate(workdir, args.records, args.seed)
        result["generated"] = {**made, "seconds": round(time.perf_counter() - start, 1)}
        print(f"generated {args.records:,} records in {result['generated']['seconds']} s: {workdir}", flush=True)

        if args.tokenizer == "bpe32k":
            start = time.perf_counter()
            tokenizer_dir = train_bpe(workdir)
            print(f"trained a 32k byte-level BPE in {time.perf_counter() - start:.0f} s", flush=True)
        elif args.tokenizer == "tiny":
            tokenizer_dir = ROOT / "models" / "tiny-bimedix-moe"
        else:
            tokenizer_dir = Path(args.tokenizer)
        result["tokenizer"] = args.tokenizer

        out = workdir / "out"
        build = [sys.executable, "-m", "data_prep", "build", "--mix", str(workdir / "mix.yaml"), "--out", str(out),
                 "--tokenizer", str(tokenizer_dir), "--eval-data", str(workdir / "eval" / "index.yaml"),
                 "--workers", str(args.workers)]  # fmt: skip
        seconds, memory, _ = timed(build, env)
        manifest = json.loads((out / "bench" / "manifest.json").read_text())
        read = sum(s["counts"]["read"] for s in manifest["sources"])
        result["build"] = {
            "seconds": round(seconds, 1),
            "records_read": read,
            "records_per_s": round(read / seconds),
            "tokens": manifest["tokens"]["total"],
            "tokens_per_s": round(manifest["tokens"]["total"] / seconds),
            "chars": manifest["tokens"]["characters"],
            "peak_pss_mb": round(memory.peak_pss / 2**20),
            "peak_rss_sum_mb": round(memory.peak_rss / 2**20),
            "peak_main_rss_mb": round(memory.peak_main_rss / 2**20),
            "cpu_seconds": round(memory.cpu_seconds, 1),
            "counts": {
                k: sum(s["counts"][k] for s in manifest["sources"])
                for k in ("written", "rejected", "duplicates_exact", "duplicates_near", "decontaminated", "sampled_out")
            },
        }
        print(f"build: {result['build']}", flush=True)

        texts = workdir / "texts.jsonl"
        lines = prepare_texts(out / "bench", texts, tokenizer_dir)
        probe = max(2000, lines // 50)
        modes = {}
        for mode in ("threads", "processes"):
            command = [
                sys.executable,
                __file__,
                "--tokenize-only",
                str(texts),
                str(tokenizer_dir),
                mode,
                str(args.workers),
                str(probe),
            ]
            modes[mode] = json.loads(timed(command, env)[2].stdout)["seconds"]
        fastest = min(modes, key=modes.get)
        command = [
            sys.executable,
            __file__,
            "--tokenize-only",
            str(texts),
            str(tokenizer_dir),
            fastest,
            str(args.workers),
            "0",
        ]
        seconds, baseline_memory, completed = timed(command, env)
        baseline = json.loads(completed.stdout)
        if baseline["tokens"] != manifest["tokens"]["total"]:
            raise SystemExit(
                f"token totals differ: build {manifest['tokens']['total']}, tokenizer-only {baseline['tokens']}"
            )
        result["tokenizer_only"] = {
            "mode": fastest,
            "probe_seconds": {k: round(v, 2) for k, v in modes.items()},
            "seconds": round(seconds, 1),
            "chars_per_s": round(baseline["chars"] / seconds),
            "tokens_per_s": round(baseline["tokens"] / seconds),
            "cpu_seconds": round(baseline_memory.cpu_seconds, 1),
        }
        result["ratio"] = round(result["build"]["seconds"] / seconds, 3)
        result["cpu_ratio"] = round(result["build"]["cpu_seconds"] / baseline_memory.cpu_seconds, 3)
        result["machine"]["load_after"] = os.getloadavg()
        result["machine"]["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    b, t = result["build"], result["tokenizer_only"]
    print(
        "\n| records | build (s) | records/s | tokens/s | peak PSS (MB) | tokenizer-only (s) | ratio | load |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---|\n"
        f"| {b['records_read']:,} | {b['seconds']} | {b['records_per_s']:,} | {b['tokens_per_s']:,} | {b['peak_pss_mb']:,} "
        f"| {t['seconds']} ({t['mode']}) | {result['ratio']} | {result['machine']['uptime'].split('load average:')[-1].strip()} |"
    )
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--tokenize-only":
        _tokenize_only_main(sys.argv[2:])
    else:
        sys.exit(main())
