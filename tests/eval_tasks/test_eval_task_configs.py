"""Every task and group file loads in lm-eval 0.4.11 from --include_path eval_tasks, and builds on the sample."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from eval_tasks import registry

HERE = Path(registry.HERE)


@pytest.fixture(scope="module")
def manager():
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(HERE), include_defaults=False, metadata={"eval_data": "sample"})


def test_the_task_index_holds_exactly_our_tasks_and_groups(manager):
    expected = set(registry.all_tasks(generative=None)) | set(registry.groups())
    assert set(manager.all_tasks) == expected
    assert len(registry.all_tasks(generative=None)) == 38 and len(registry.groups()) == 6
    assert "bimedix_ar_medarabiq" not in registry.groups()["bimedix_ar"], "MedArabiQ is beside the paper's nine"
    assert all(name.startswith("bimedix_") for name in manager.all_tasks)


def test_task_files_are_small_includes_of_the_templates():
    for name in registry.all_tasks(generative=None):
        config = yaml.safe_load((HERE / f"{name}.yaml").read_text(encoding="utf-8"))
        task = registry.parse_task(name)
        template = "_default_bimedix_gen_template_yaml" if task.generative else "_default_bimedix_template_yaml"
        assert config["include"] == template and config["task"] == name
        assert config["dataset_kwargs"] == {"benchmark": task.benchmark, "language": task.language}
        assert set(config) <= {"include", "task", "task_alias", "description", "dataset_kwargs"}
    for template in ("_default_bimedix_template_yaml", "_default_bimedix_gen_template_yaml"):
        text = (HERE / template).read_text(encoding="utf-8")
        assert "metadata:\n  version: 1.0" in text


def test_groups_average_plainly(manager):
    for group, members in registry.groups().items():
        config = yaml.safe_load(Path(manager.task_index[group]["yaml_path"]).read_text(encoding="utf-8"))
        assert config["task"] == members
        assert config["aggregate_metric_list"] == [{"metric": "acc", "aggregation": "mean", "weight_by_size": False}]


def test_all_38_tasks_build_on_the_sample(manager):
    from lm_eval.evaluator_utils import get_subtask_list
    from lm_eval.tasks import get_task_dict

    task_dict = get_task_dict(
        ["bimedix_bilingual", "bimedix_bilingual_gen", "bimedix_ar_medarabiq", "bimedix_ar_medarabiq_gen"], manager
    )
    built = {}

    def walk(d):
        for value in d.values():
            if isinstance(value, dict):
                walk(value)
            else:
                built[value.config.task] = value

    walk(task_dict)
    assert sorted(built) == sorted(registry.all_tasks(generative=None))
    assert get_subtask_list(task_dict)
    for name, task in built.items():
        docs = list(task.eval_docs)
        assert len(docs) == 6, name
        assert task.VERSION == 1.0
        generative = name.endswith("_gen")
        letters = [task.doc_to_target(d) for d in docs] if generative else task.doc_to_choice(docs[0])
        if generative:
            allowed = (
                {"نعم", "لا", "ربما", "أ", "ب", "ج", "د", "ه"}
                if "_ar_" in name
                else {"yes", "no", "maybe", "A", "B", "C", "D"}
            )
            assert set(letters) <= allowed, name
        elif "pubmedqa" in name:
            assert letters == (["نعم", "لا", "ربما"] if "_ar_" in name else ["yes", "no", "maybe"])
        elif "medarabiq" in name:
            assert [len(task.doc_to_choice(d)) for d in docs] == [4, 4, 5, 4, 4, 5]
        else:
            assert letters == (["أ", "ب", "ج", "د"] if "_ar_" in name else ["A", "B", "C", "D"])
        output_type = "generate_until" if generative else "multiple_choice"
        assert output_type == task.OUTPUT_TYPE
