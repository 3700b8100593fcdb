"""The learning proof: fine-tune the small MoE through the project's own data, recipe and eval path and
report what moved and what did not.

    python benchmarks/bench_learn.py [--realdata ../shared/realdata] [--model models/small-bimedix-moe]   (make bench-learn)

1. Data. When the real benchmark copies are present (--realdata; `make bench-learn` passes REALDATA,
   default ../shared/realdata): MedMCQA's validation split (the hub copy) is split by question hash
   (sha256 of the lower-cased, whitespace-folded question): the smallest hashes are scored, the next
   ones are training data, so no training question shares a hash with a scored one. The two halves are
   written under data/bench-learn/ (git-ignored; never committed), an eval_tasks index names the scored
   half, and `python -m data_prep build --eval-data` decontaminates the training half against it (the
   project's n-gram check, stricter than the hash split). Otherwise: the embedded samples, labelled as
   such (data_prep/samples for training, eval_tasks/sample_data for scoring).
2. Training: `python -m recipes train small` and `merge` (attention, every expert, the router; the
   router aux loss), with the overrides of benchmarks/bench_learn.yaml.
3. Before and after (the base MoE and the merged one):
   - loss on held-out assistant tokens: the recipe's validation records as Axolotl tokenised and
     labelled them (its prepared test set), mean cross-entropy per assistant token; and Axolotl's own
     eval_loss at the first and last step (which adds 0.02 x the router aux loss);
   - accuracy on the scored questions through `python -m eval_tasks run` (lm-eval, 0-shot
     log-likelihood, the leaderboard prompt), with a Wilson 95% interval, and an exact McNemar test of
     the paired change;
   - the experts' load: the share of (token, top-2 slot) assignments each expert receives, per layer,
     over the held-out records.
Settings: benchmarks/bench_learn.yaml. Results: logs/bench/learn.json and a Markdown summary.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bimedix.paths import SMALL_MODEL_DIR  # noqa: E402

SETTINGS = ROOT / "benchmarks" / "bench_learn.yaml"
LETTERS = ("A", "B", "C", "D")  # MedMCQA and the embedded MCQs have four options


class BenchError(RuntimeError):
    """A step failed; the message is one line naming it and its log."""


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def rel(path: Path) -> str:
    try:
        return str(Path(os.path.abspath(path)).relative_to(ROOT))
    except ValueError:
        return str(path)


def question_hash(question: str) -> str:
    return hashlib.sha256(" ".join(question.lower().split()).encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------------ statistics
def wilson(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (scipy)."""
    from scipy.stats import binomtest

    if n == 0:
        return (0.0, 1.0)
    interval = binomtest(correct, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(interval.low), float(interval.high))


def mcnemar_exact(gained: int, lost: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of the discordant pairs (right only after vs only before)."""
    from scipy.stats import binomtest

    return 1.0 if gained + lost == 0 else float(binomtest(gained, gained + lost, 0.5).pvalue)


# ------------------------------------------------------------------------------------------ steps
class Bench:
    def __init__(self, settings: dict, model: Path, realdata: Path | None, log: Path):
        self.settings = settings
        self.model = model
        self.realdata = realdata
        self.work = ROOT / settings["work"]
        self.outputs = ROOT / settings["outputs"]
        self.results = ROOT / settings["results"]
        self.log = log
        self.timings: dict[str, float] = {}

    def run(self, name: str, command: list[str]) -> None:
        """A project command line from the repository root, its output appended to the bench's log."""
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        env.update(TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", AXOLOTL_DO_NOT_TRACK="1")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        print(f"  [{name}] {' '.join(command[1:] if command[0] == sys.executable else command)}", flush=True)
        start = time.monotonic()
        with open(self.log, "a", encoding="utf-8") as out:
            out.write(f"\n$ {' '.join(command)}\n")
            out.flush()
            code = subprocess.run(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT).returncode  # fmt: skip
        self.timings[name] = self.timings.get(name, 0.0) + time.monotonic() - start
        if code != 0:
            raise BenchError(
                f"{name}: `{' '.join(command[1:])}` exited with status {code}; its output: {rel(self.log)}"
            )

    # ---- 1. data
    def split_real(self) -> dict:
        cfg = self.settings["real"]
        source = self.realdata / cfg["file"]
        rows = []
        with open(source, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        rows.append((question_hash(json.loads(line)["question"]), line))
                    except (ValueError, KeyError, TypeError):
                        raise BenchError(f"{source}:{number}: not a MedMCQA JSON line with a question") from None
        by_hash: dict[str, list[str]] = {}
        for digest, line in rows:
            by_hash.setdefault(digest, []).append(line)
        scored, train = [], []
        for digest in sorted(by_hash):
            if len(scored) < cfg["scored"]:
                scored += by_hash[digest]
            elif len(train) < cfg["train"]:
                train += by_hash[digest]
        data = self.work / "source"
        data.mkdir(parents=True, exist_ok=True)
        (data / "scored.jsonl").write_text("".join(scored), encoding="utf-8")
        (data / "train.jsonl").write_text("".join(train), encoding="utf-8")
        shared = {question_hash(json.loads(line)["question"]) for line in scored} & {
            question_hash(json.loads(line)["question"]) for line in train
        }
        entry = {"task": cfg["task"], "language": "en", "path": "source/scored.jsonl", "format": cfg["format"]}
        entry["cop_base"] = cfg["cop_base"]
        self.write_yaml(self.work / "index.yaml", [entry])
        mix = {
            "name": "bilingual",  # the folder the small recipe reads (processed/bilingual/); English only here
            "description": f"bench-learn: MedMCQA validation ({rel(source)}), the training half of a split by question hash.",
            "seed": 1234,
            "val_fraction": cfg["val_fraction"],
            "sources": [
                {"name": "medmcqa_train", "format": cfg["format"], "path": "source/train.jsonl", "language": "en",
                 "cop_base": cfg["cop_base"]}
            ],
        }  # fmt: skip
        self.write_yaml(self.work / "mix.yaml", mix)
        return {
            "kind": "real",
            "source": rel(source) if source.is_relative_to(ROOT) else str(source),
            "rows_read": len(rows),
            "distinct_questions": len(by_hash),
            "scored_questions": len(scored),
            "train_questions": len(train),
            "shared_question_hashes": len(shared),
            "task": cfg["task"],
            "eval_data": rel(self.work / "index.yaml"),
        }

    def split_embedded(self) -> dict:
        cfg = self.settings["embedded"]
        sources = [
            {"name": s["name"], "format": s["format"], "language": "en",
             "path": os.path.relpath(ROOT / s["path"], self.work)}
            for s in cfg["sources"]
        ]  # fmt: skip
        mix = {
            "name": "bilingual",  # the folder the small recipe reads (processed/bilingual/); English only here
            "description": "bench-learn on the embedded samples (synthetic; a few dozen questions).",
            "seed": 1234,
            "val_fraction": cfg["val_fraction"],
            "sources": sources,
        }
        self.write_yaml(self.work / "mix.yaml", mix)
        return {"kind": "embedded samples", "task": cfg["task"], "eval_data": "sample"}

    @staticmethod
    def write_yaml(path: Path, value) -> None:
        import yaml

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(value, allow_unicode=True, sort_keys=False), encoding="utf-8")

    def build_data(self, data: dict) -> dict:
        command = [sys.executable, "-m", "data_prep", "build", "--mix", rel(self.work / "mix.yaml"), "--out"]
        command += [rel(self.work / "processed"), "--tokenizer", rel(self.model)]
        if data["kind"] == "real":
            command += ["--eval-data", rel(self.work / "index.yaml")]
        self.run("data", command)
        manifest = json.loads((self.work / "processed" / "bilingual" / "manifest.json").read_text(encoding="utf-8"))
        counts = manifest.get("counts", {})
        totals = {key: 0 for key in ("read", "rejected", "decontaminated", "duplicates_exact", "duplicates_near")}
        for source in manifest.get("sources", []):
            for key in totals:
                totals[key] += int(source.get("counts", {}).get(key, 0))
        index = (manifest.get("filters") or {}).get("decontamination") or {}
        return {
            "train_records": counts.get("train"),
            "val_records": counts.get("val"),
            "source_rows": totals,
            "decontaminated_against": {"eval_data": index.get("eval_data"), "items": index.get("items")},
        }

    # ---- 2. train
    def recipe_args(self) -> list[str]:
        args = [self.settings["recipe"], "--base-model", rel(self.model), "--data-dir", rel(self.work)]
        return [*args, "--output-root", rel(self.outputs)]

    def train(self) -> dict:
        sets = [arg for key, value in self.settings["train_set"].items() for arg in ("--set", f"{key}={value}")]
        self.run("train", [sys.executable, "-m", "recipes", "train", *self.recipe_args(), *sets])
        self.run("merge", [sys.executable, "-m", "recipes", "merge", *self.recipe_args()])
        return self.train_summary()

    def train_summary(self) -> dict:
        import re

        run_dir = self.outputs / self.settings["recipe"]
        text = (run_dir / "train.log").read_text(encoding="utf-8", errors="replace")
        losses = [float(x) for x in re.findall(r"\{'loss': '([\d.]+)'", text)]
        evals = [float(x) for x in re.findall(r"'eval_loss': '([\d.]+)'", text)]
        trainable = re.findall(r"trainable params: ([\d,]+) \|\| all params: ([\d,]+)", text)
        runtime = re.findall(r"'train_runtime': '([\d.]+)'", text)
        return {
            "steps": len(losses),
            "train_loss_first_10": round(sum(losses[:10]) / max(len(losses[:10]), 1), 4),
            "train_loss_last_10": round(sum(losses[-10:]) / max(len(losses[-10:]), 1), 4),
            "axolotl_eval_loss": {
                "before": evals[0] if evals else None,
                "after": evals[-1] if len(evals) > 1 else None,
            },
            "trainable_parameters": trainable[-1][0] if trainable else None,
            "all_parameters": trainable[-1][1] if trainable else None,
            "train_runtime_s": float(runtime[-1]) if runtime else None,
        }

    # ---- 3. held-out loss and the experts' load
    def held_out_set(self):
        import datasets

        prepared = sorted((self.outputs / self.settings["recipe"] / "prepared").glob("*/"))
        sets = sorted((datasets.load_from_disk(str(p)) for p in prepared if (p / "dataset_info.json").exists()), key=len)  # fmt: skip
        if len(sets) != 2 or len(sets[0]) >= len(sets[1]):
            where = rel(prepared[0].parent) if prepared else "prepared/"
            raise BenchError(f"expected the prepared training set and a smaller test set in {where}, found {len(sets)} sets")  # fmt: skip
        return sets[0]  # the validation records, tokenised and labelled as Axolotl evaluates them

    @staticmethod
    def letter_positions(held, tokenizer) -> list[int | None]:
        """Per held-out record, the position of the answer letter in "Answer: (B) ...": the first trained
        token that is a lone option letter right after a token ending in "(" (None if there is none)."""
        positions: list[int | None] = []
        for example in held:
            ids, labels = example["input_ids"], example["labels"]
            found = None
            for i in range(1, len(ids)):
                letter = labels[i] != -100 and tokenizer.decode([ids[i]]).strip() in LETTERS
                if letter and tokenizer.decode([ids[i - 1]]).endswith("("):
                    found = i
                    break
            positions.append(found)
        return positions

    def held_out(self, model_dir: Path, held) -> dict:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        letters = self.letter_positions(held, tokenizer)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        layers, experts, top_k = (
            model.config.num_hidden_layers,
            model.config.num_local_experts,
            model.config.num_experts_per_tok,
        )
        load = torch.zeros(layers, experts, dtype=torch.float64)
        loss_sum, tokens = 0.0, 0
        letter_loss, letter_right, letter_n = 0.0, 0, 0
        gold_letters: dict[str, int] = {}
        letter_ids = [tokenizer.convert_tokens_to_ids(t) for t in LETTERS]
        with torch.no_grad():
            for example, at in zip(held, letters, strict=True):
                ids = torch.tensor([example["input_ids"]])
                labels = torch.tensor(example["labels"])
                out = model(input_ids=ids, output_router_logits=True)
                logits = out.logits[0, :-1].float()
                target = labels[1:]
                keep = target != -100
                if keep.any():
                    loss_sum += float(torch.nn.functional.cross_entropy(logits[keep], target[keep], reduction="sum"))
                    tokens += int(keep.sum())
                if at is not None:  # the answer letter: the one token the question is about
                    step = logits[at - 1]
                    letter_loss += float(torch.nn.functional.cross_entropy(step[None], target[at - 1 : at]))
                    options = step[letter_ids]
                    letter_right += int(letter_ids[int(options.argmax())] == int(target[at - 1]))
                    letter_n += 1
                    gold = LETTERS[letter_ids.index(int(target[at - 1]))]
                    gold_letters[gold] = gold_letters.get(gold, 0) + 1
                for layer, router in enumerate(out.router_logits):
                    chosen = router.topk(top_k, dim=-1).indices.flatten()
                    load[layer] += torch.bincount(chosen, minlength=experts).double()
        share = load / load.sum(dim=1, keepdim=True)
        del model
        return {
            "loss": round(loss_sum / max(tokens, 1), 4),
            "assistant_tokens": tokens,
            "records": len(held),
            "letter_loss": round(letter_loss / max(letter_n, 1), 4),
            "letter_accuracy": round(letter_right / max(letter_n, 1), 4),
            "letter_ci": [round(x, 4) for x in wilson(letter_right, letter_n)],
            "letters": letter_n,
            "gold_letters": dict(sorted(gold_letters.items())),
            "expert_share": [[round(float(x), 4) for x in row] for row in share],
        }

    # ---- 4. accuracy
    def score(self, name: str, model_dir: Path, data: dict) -> dict:
        command = [sys.executable, "-m", "eval_tasks", "run", "--model", rel(model_dir), "--tasks", data["task"]]
        command += ["--data", data["eval_data"], "--results-dir", rel(self.results), "--run-name", name]
        command += ["--batch-size", str(self.settings["eval"]["batch_size"]), "--device", "cpu"]
        self.run(f"eval-{name}", command)
        outcomes: dict[tuple[str, int], dict] = {}
        for path in sorted((self.results / name / "samples").glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                scores = [float(r[0]) if isinstance(r, list) else float(r) for r in row["filtered_resps"]]
                outcomes[(path.stem, int(row["doc_id"]))] = {
                    "right": int(float(row["acc"]) > 0.5),
                    "chosen": max(range(len(scores)), key=scores.__getitem__),  # acc: the highest log-likelihood
                    "gold": int(row["target"]),
                }
        return outcomes


def summarize_accuracy(before: dict, after: dict, confidence: float) -> dict:
    """Accuracy before and after with intervals, the paired change, and what a model that always picks the
    commonest gold letter would score (position bias looks like knowledge on a skewed set)."""
    from collections import Counter

    if set(before) != set(after):
        raise BenchError("the two runs scored different questions")
    n = len(before)
    right = {"before": sum(v["right"] for v in before.values()), "after": sum(v["right"] for v in after.values())}
    gained = sum(1 for k in before if after[k]["right"] and not before[k]["right"])
    lost = sum(1 for k in before if before[k]["right"] and not after[k]["right"])
    gold = Counter("ABCDE"[v["gold"]] for v in before.values())
    out = {"questions": n, "gained": gained, "lost": lost, "mcnemar_p": round(mcnemar_exact(gained, lost), 4)}
    out["gold_letters"] = dict(sorted(gold.items()))
    out["majority_letter_baseline"] = round(max(gold.values()) / max(n, 1), 4) if gold else 0.0
    for when, runs in (("before", before), ("after", after)):
        out[f"chosen_letters_{when}"] = dict(sorted(Counter("ABCDE"[v["chosen"]] for v in runs.values()).items()))
    for when, correct in right.items():
        low, high = wilson(correct, n, confidence)
        out[when] = {
            "correct": correct,
            "accuracy": round(correct / max(n, 1), 4),
            "ci": [round(low, 4), round(high, 4)],
        }
    return out


def summarize_load(before: list[list[float]], after: list[list[float]]) -> dict:
    """Per layer: the busiest and the idlest expert's share, before and after; the largest change."""

    def spread(rows):
        return [round(max(r) - min(r), 4) for r in rows]

    change = [max(abs(a - b) for a, b in zip(ra, rb, strict=True)) for ra, rb in zip(before, after, strict=True)]
    return {
        "uniform_share": round(1 / len(before[0]), 4),
        "max_minus_min_before": spread(before),
        "max_minus_min_after": spread(after),
        "largest_change_per_layer": [round(c, 4) for c in change],
        "mean_spread_before": round(sum(spread(before)) / len(before), 4),
        "mean_spread_after": round(sum(spread(after)) / len(after), 4),
    }


def markdown(result: dict) -> str:
    data, held, acc, train = result["data"], result["held_out"], result["accuracy"], result["train"]
    load = result["expert_load"]
    lines = [
        f"data: {data['kind']} ({data.get('source', 'data_prep/samples + eval_tasks/sample_data')}); "
        f"{result['built']['train_records']} training records, {result['built']['val_records']} held out "
        f"({result['built']['source_rows']['decontaminated']} removed by decontamination against "
        f"{result['built']['decontaminated_against']['items']} scored items, "
        f"{result['built']['source_rows']['duplicates_exact'] + result['built']['source_rows']['duplicates_near']} as duplicates); "
        f"scored on {acc['questions']} questions ({data['task']})",
        "",
        "| measure | before | after |",
        "|---|---:|---:|",
        f"| loss on held-out assistant tokens ({held['before']['assistant_tokens']} tokens, {held['before']['records']} records) | {held['before']['loss']:.3f} | {held['after']['loss']:.3f} |",
        f"| of which: loss on the answer letter alone ({held['before']['letters']} records) | {held['before']['letter_loss']:.3f} | {held['after']['letter_loss']:.3f} |",
        f"| held-out answer letter right, in the trained format (the letter ranked first among A-D; 95% Wilson CI) | {100 * held['before']['letter_accuracy']:.1f}% ({100 * held['before']['letter_ci'][0]:.1f} to {100 * held['before']['letter_ci'][1]:.1f}) | {100 * held['after']['letter_accuracy']:.1f}% ({100 * held['after']['letter_ci'][0]:.1f} to {100 * held['after']['letter_ci'][1]:.1f}) |",
        f"| Axolotl eval_loss (adds 0.02 x router aux loss) | {train['axolotl_eval_loss']['before']} | {train['axolotl_eval_loss']['after']} |",
        f"| accuracy, {acc['questions']} questions (95% Wilson CI) | {100 * acc['before']['accuracy']:.1f}% ({100 * acc['before']['ci'][0]:.1f} to {100 * acc['before']['ci'][1]:.1f}) | {100 * acc['after']['accuracy']:.1f}% ({100 * acc['after']['ci'][0]:.1f} to {100 * acc['after']['ci'][1]:.1f}) |",
        f"| expert load: mean over layers of (busiest - idlest share), uniform = 0 | {load['mean_spread_before']:.3f} | {load['mean_spread_after']:.3f} |",
        "",
        f"letters: gold {acc['gold_letters']} (always answering the commonest scores {100 * acc['majority_letter_baseline']:.1f}%); "
        f"chosen before {acc['chosen_letters_before']}, after {acc['chosen_letters_after']}",
        f"paired change: {acc['gained']} questions gained, {acc['lost']} lost, exact McNemar p = {acc['mcnemar_p']}; "
        f"training: {train['steps']} steps, loss {train['train_loss_first_10']:.3f} (first 10) -> {train['train_loss_last_10']:.3f} (last 10)",
        f"wall: {result['wall_s'] / 60:.1f} min on {result['cpus']} CPUs, load average {result['load_before']} before, {result['load_after']} after",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import yaml

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(SMALL_MODEL_DIR), help="the small MoE (make: SMALL_MODEL)")
    parser.add_argument(
        "--realdata",
        default=os.environ.get("BIMEDIX_REALDATA", "../shared/realdata"),
        help="the real benchmark copies (default: ../shared/realdata); absent: the embedded samples",
    )
    parser.add_argument("--settings", default=str(SETTINGS))
    parser.add_argument(
        "--reuse-training",
        action="store_true",
        help="keep the split, the data and the trained model of the last run; measure and score again",
    )
    args = parser.parse_args(argv)
    settings = yaml.safe_load(Path(args.settings).read_text(encoding="utf-8"))
    model = Path(args.model) if Path(args.model).is_absolute() else ROOT / args.model
    if not (model / "config.json").exists():
        print(f"error: {args.model}: no model; run `make small-model`", file=sys.stderr)
        return 2
    realdata = Path(args.realdata) if Path(args.realdata).is_absolute() else ROOT / args.realdata
    use_real = (realdata / settings["real"]["file"]).is_file()
    bench = Bench(settings, model, realdata if use_real else None, ROOT / "logs" / "bench" / "learn.log")
    reuse = args.reuse_training and (bench.outputs / settings["recipe"] / "merged" / "config.json").exists()
    for folder in (bench.results,) if reuse else (bench.work, bench.outputs, bench.results):
        shutil.rmtree(folder, ignore_errors=True)
    bench.log.parent.mkdir(parents=True, exist_ok=True)
    bench.log.write_text(f"# bench-learn {time.strftime('%Y-%m-%d %H:%M')}\n", encoding="utf-8")
    load_before, start = load_average(), time.monotonic()
    try:
        print(f"bench-learn: {'real files under ' + str(realdata) if use_real else 'the EMBEDDED SAMPLES (no real files found at ' + str(realdata) + ')'}")  # fmt: skip
        if reuse:
            print("  reusing the split, the data and the trained model of the last run (--reuse-training)")
            data = json.loads((ROOT / settings["report"]).read_text(encoding="utf-8"))["data"]
            last = json.loads((ROOT / settings["report"]).read_text(encoding="utf-8"))
            built, train = last["built"], last["train"]
        else:
            data = bench.split_real() if use_real else bench.split_embedded()
            built = bench.build_data(data)
            train = bench.train()
            partial = {"data": data, "built": built, "train": train, "timings_s": bench.timings}
            (ROOT / settings["report"]).parent.mkdir(parents=True, exist_ok=True)
            (ROOT / settings["report"]).write_text(json.dumps(partial, indent=2) + "\n", encoding="utf-8")
        held = bench.held_out_set()
        print("  [held-out] loss and expert load, base and fine-tuned ...", flush=True)
        t0 = time.monotonic()
        merged = bench.outputs / settings["recipe"] / "merged"
        held_out = {"before": bench.held_out(model, held), "after": bench.held_out(merged, held)}
        bench.timings["held-out"] = time.monotonic() - t0
        before, after = bench.score("base", model, data), bench.score("tuned", merged, data)
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    accuracy = summarize_accuracy(before, after, settings["eval"]["confidence"])
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "model": rel(model),
        "data": data,
        "built": built,
        "train": train,
        "held_out": {k: {kk: vv for kk, vv in v.items() if kk != "expert_share"} for k, v in held_out.items()},
        "accuracy": accuracy,
        "expert_load": summarize_load(held_out["before"]["expert_share"], held_out["after"]["expert_share"]),
        "expert_share": {k: v["expert_share"] for k, v in held_out.items()},
        "reused_training": reuse,
        "timings_s": {k: round(v, 1) for k, v in bench.timings.items()},
        "wall_s": round(time.monotonic() - start, 1),
        "load_before": load_before,
        "load_after": load_average(),
    }
    report = ROOT / settings["report"]
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print()
    print(markdown(result))
    print(f"\nwrote {rel(report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
