"""English prompts, choices and targets equal lm-eval's built-in tasks for the same documents, offline.

The built-in tasks (mmlu_*, medqa_4options, medmcqa, pubmedqa) are built from the installed lm_eval
package's own YAML files and utils functions; only their dataset is swapped for the embedded sample
rows, converted here into each hub dataset's schema (independently of eval_tasks/data.py). Both
tasks then build their requests for every document and the requests must be identical.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from eval_tasks import registry

SAMPLE = registry.SAMPLE_INDEX.parent
LM_EVAL_TASKS = Path(__import__("lm_eval").__file__).parent / "tasks"
BUILTIN_YAML = {
    "mmlu": "mmlu/default/mmlu_{subject}.yaml",
    "medqa": "medqa/medqa.yaml",
    "medmcqa": "medmcqa/medmcqa.yaml",
    "pubmedqa": "pubmedqa/pubmedqa.yaml",
}


def hub_docs(bench: registry.Benchmark, folder: Path) -> list[dict]:
    """A folder's English rows in the schema of the hub dataset the built-in task reads."""
    entry = next(e for e in _index(folder) if e["task"] == registry.task_name("en", bench.benchmark))
    path = folder / entry["path"]
    if bench.layout == "mmlu":  # cais/mmlu
        rows = list(csv.reader(path.open(encoding="utf-8")))
        return [
            {"question": r[0], "subject": bench.benchmark[5:], "choices": r[1:5], "answer": "ABCD".index(r[5])}
            for r in rows
        ]
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if bench.layout == "medqa":  # GBaker/MedQA-USMLE-4-options-hf
        return [
            {
                "id": str(i),
                "sent1": r["question"],
                "sent2": "",
                **{f"ending{j}": r["options"][k] for j, k in enumerate("ABCD")},
                "label": "ABCD".index(r["answer_idx"]),
            }
            for i, r in enumerate(lines)
        ]
    if bench.layout == "medmcqa":  # openlifescienceai/medmcqa: cop 0-based
        return [{**r, "cop": r["cop"] - 1} for r in lines]
    raise AssertionError(bench.layout)


def pubmedqa_docs(
    folder: Path,
) -> list[dict]:  # bigbio/pubmed_qa, pubmed_qa_labeled_fold0_source: ori_pqal.json's fields
    entry = next(e for e in _index(folder) if e["task"] == "bimedix_en_pubmedqa")
    data = json.loads((folder / entry["path"]).read_text(encoding="utf-8"))
    return [{"pubid": pmid, **item} for pmid, item in data.items()]


def _index(folder: Path) -> list[dict]:
    import yaml

    return yaml.safe_load((folder / "index.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def padded(tmp_path_factory) -> Path:
    """The sample's English files with stray whitespace around questions and options (MMLU strips only the question)."""
    import yaml

    folder = tmp_path_factory.mktemp("padded")
    entries = [e for e in _index(SAMPLE) if e["language"] == "en"]
    for entry in entries:
        source, target = SAMPLE / entry["path"], folder / entry["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry["format"] == "mmlu_csv":
            rows = [
                [f"  {r[0]} \n", *(f"{o} " for o in r[1:5]), r[5]] for r in csv.reader(source.open(encoding="utf-8"))
            ]
            with target.open("w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows(rows)
        elif entry["format"] == "pubmedqa":
            items = json.loads(source.read_text(encoding="utf-8"))
            target.write_text(
                json.dumps({k: {**v, "QUESTION": f" {v['QUESTION']}  "} for k, v in items.items()}), encoding="utf-8"
            )
        else:
            rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
            target.write_text(
                "".join(json.dumps({**r, "question": f"\t{r['question']} "}) + "\n" for r in rows), encoding="utf-8"
            )
    (folder / "index.yaml").write_text(yaml.safe_dump(entries), encoding="utf-8")
    return folder


def build_task(yaml_path: Path, docs: list[dict] | None, eval_data: Path = SAMPLE):
    """A real ConfigurableTask from a task YAML; `docs` replace its dataset in every split it names."""
    import datasets
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.utils import load_yaml_config

    config = load_yaml_config(str(yaml_path), mode="full")
    if docs is not None:
        splits = {config.get(k) for k in ("training_split", "validation_split", "test_split", "fewshot_split")} - {None}
        config["custom_dataset"] = lambda **_: datasets.DatasetDict(
            {s: datasets.Dataset.from_list(docs) for s in splits}
        )
    config.setdefault("metadata", {})["eval_data"] = str(eval_data)
    return ConfigurableTask(config=config)


def requests(task) -> list[tuple]:
    out = []
    for doc in task.eval_docs:
        ctx = task.fewshot_context(doc, 0)
        out.append(
            (
                ctx,
                task.doc_to_choice(doc),
                task.doc_to_target(doc),
                [inst.arguments for inst in task.construct_requests(doc, ctx, metadata=("x", 0, 1))],
            )
        )
    return out


@pytest.mark.parametrize("variant", ["sample", "padded"])
@pytest.mark.parametrize("bench", registry.paper_benchmarks(), ids=lambda b: b.benchmark)
def test_english_prompts_equal_the_builtin_task(bench: registry.Benchmark, variant: str, padded: Path):
    folder = SAMPLE if variant == "sample" else padded
    ours = build_task(Path(registry.HERE) / f"{registry.task_name('en', bench.benchmark)}.yaml", None, folder)
    builtin_yaml = LM_EVAL_TASKS / BUILTIN_YAML[bench.layout].format(subject=bench.benchmark[5:])
    theirs = build_task(builtin_yaml, pubmedqa_docs(folder) if bench.kind == "pubmedqa" else hub_docs(bench, folder))
    assert theirs.config.task == bench.builtin
    mine, builtin = requests(ours), requests(theirs)
    assert len(mine) == len(builtin) == 6
    for got, want in zip(mine, builtin, strict=True):
        assert got[0] == want[0], "prompt"
        assert got[1] == want[1], "choices"
        # the built-in pubmedqa target is the label text; ours the index of that label
        target = got[1][got[2]] if isinstance(want[2], str) else got[2]
        assert target == want[2], "target"
        assert got[3] == want[3], "request arguments (context, continuation)"
