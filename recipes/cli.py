"""`python -m recipes <command>`: check the recipes, train a variant, merge its adapter.

    python -m recipes check                       # every recipe and overlay, offline
    python -m recipes check my.yaml --hardware 8x-h100-80gb
    python -m recipes train tiny                  # checks, then the real `axolotl train`
    python -m recipes merge tiny                  # `axolotl merge-lora --merge-method legacy`
    python -m recipes params bilingual            # what the adapter trains, counted by peft
    python -m recipes install-gpu                 # the GPU extras (requirements/gpu.txt)

The Makefile's targets (recipes/recipes.mk) call these; see recipes/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from recipes.checks import Problem, batch_problems, check_recipe, errors
from recipes.config import RecipeError, load, merge, rel
from recipes.launch import LAUNCHERS, LaunchError, RunOptions, merge_adapter, train
from recipes.registry import Registry, load_registry
from recipes.weights import WeightsError


@dataclass
class CheckTarget:
    label: str
    files: list[Path]
    hardware: str
    base_hardware: str = ""  # with an overlay: the hardware the recipe underneath is written for


@dataclass
class CheckReport:
    target: CheckTarget
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not errors(self.problems)


def shipped_targets(registry: Registry) -> list[CheckTarget]:
    """Every variant on its hardware, and every overlay over each variant it applies to."""
    targets = [CheckTarget(rel(v.recipe), [v.recipe], v.hardware) for v in registry.variants.values()]
    for overlay in registry.overlays.values():
        for name in overlay.applies_to:
            variant = registry.variants[name]
            targets.append(CheckTarget(f"{rel(variant.recipe)} + {rel(overlay.file)}", [variant.recipe, overlay.file], overlay.hardware, variant.hardware))  # fmt: skip
    return targets


def run_check(targets: list[CheckTarget], registry: Registry) -> list[CheckReport]:
    reports = []
    for target in targets:
        try:
            base = recipe = load(target.files[0])
            for extra in target.files[1:]:
                recipe = merge(recipe, load(extra))
            hardware = registry.hardware[target.hardware]
            problems = check_recipe(recipe, hardware, registry)
            if len(target.files) > 1 and target.base_hardware:
                problems += batch_problems(base, registry.hardware[target.base_hardware], recipe, hardware)
        except RecipeError as err:
            problems = [Problem(str(err).split(": ", 1)[0], "", str(err).split(": ", 1)[-1])]
        reports.append(CheckReport(target, problems))
    return reports


def cmd_check(args: argparse.Namespace, registry: Registry) -> int:
    if args.recipes:
        by_file = {v.recipe.resolve(): v.hardware for v in registry.variants.values()}
        targets = []
        for name in args.recipes:
            path = Path(name) if Path(name).is_absolute() else Path.cwd() / name
            hardware = args.hardware or by_file.get(path.resolve(), "1x-h100-80gb")
            if hardware not in registry.hardware:
                raise RecipeError(f"unknown hardware {hardware!r}: expected one of {', '.join(registry.hardware)}")
            if args.overlay:
                overlay = registry.overlay(args.overlay)
                base_hardware = by_file.get(path.resolve(), "1x-h100-80gb")
                files = [path, overlay.file]
                hardware = args.hardware or overlay.hardware
            else:
                files, base_hardware = [path], ""
            targets.append(CheckTarget(" + ".join(rel(f) for f in files), files, hardware, base_hardware))
    else:
        targets = shipped_targets(registry)
    reports = run_check(targets, registry)
    for report in reports:
        status = "ok  " if report.ok else "FAIL"
        print(f"{status}  {report.target.label}  [{report.target.hardware}]")
        for problem in report.problems:
            print(f"      {problem}")
    failed = sum(not r.ok for r in reports)
    print(f"{len(reports)} checked, {failed} failed")
    return 1 if failed else 0


def _run_options(args: argparse.Namespace) -> RunOptions:
    return RunOptions(
        variant=args.variant,
        base_model=args.base_model,
        data_dir=args.data_dir,
        output_root=args.output_root,
        overlay=args.overlay,
        sets=list(args.set or []),
        unsets=list(args.unset or []),
        allow_sample_data=bool(getattr(args, "allow_sample_data", False)),
        cpu_threads=getattr(args, "cpu_threads", 0),
    )


def cmd_train(args: argparse.Namespace, registry: Registry) -> int:
    train(_run_options(args), registry, launcher=args.launcher, launcher_args=args.launcher_args, dry_run=args.dry_run)
    return 0


def cmd_merge(args: argparse.Namespace, registry: Registry) -> int:
    merge_adapter(_run_options(args), registry, adapter_dir=args.adapter_dir)
    return 0


def cmd_params(args: argparse.Namespace, registry: Registry) -> int:
    from recipes.params import count

    recipe = load(registry.variant(args.variant).recipe)
    if args.base_model:
        recipe.data["base_model"] = args.base_model
    result = count(recipe.data)
    groups = ", ".join(f"{k} {v:,}" for k, v in result.by_group.items())
    print(
        f"{args.variant}: the adapter trains {result.trainable:,} parameters, {result.share:.2%} of the "
        f"{result.total:,} of the base ({groups}); dimensions from {result.source}"
    )
    print(
        f"  on transformers 4.36's unfused experts, which BiMediX was trained on (each expert's w1 and w3 "
        f"with a LoRA of its own), the same rank trains {result.unfused_trainable:,}, {result.unfused_share:.2%}"
    )
    for name, elements in sorted(result.delta_elements.items(), key=lambda kv: -kv[1]):
        print(
            f"  peft materialises the full delta weight of {name}: {elements:,} elements per layer "
            f"({elements * 2 / 1e9:.2f} GB in bf16, {elements * 4 / 1e9:.2f} GB in fp32), and its gradient"
        )
    return 0


def cmd_install_gpu(args: argparse.Namespace, registry: Registry) -> int:
    from recipes.gpu import install_gpu

    return install_gpu(print_only=args.print_only)


def _threads(value: str) -> int:
    if not value.strip().isdigit():
        raise argparse.ArgumentTypeError(f"CPU threads {value!r}: expected 0 (all cores) or a positive number")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recipes", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="validate recipes offline: Axolotl's schema and the project's rules")
    check.add_argument("recipes", nargs="*", help="recipe files (default: every shipped recipe and overlay)")
    check.add_argument("--hardware", default="", help="target of the given files (a key of recipes/registry.yaml)")
    check.add_argument("--overlay", default="", help="merge this overlay over the given files")
    check.set_defaults(func=cmd_check)

    def run_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("variant", help="bilingual, arabic, english or tiny")
        p.add_argument("--base-model", default="", help="a local folder or hub id (default: the recipe's)")
        p.add_argument("--data-dir", default="", help="the data root holding processed/<variant>/ (default: data)")
        p.add_argument("--output-root", default="", help="outputs go to <root>/<variant>/ (default: outputs)")
        p.add_argument("--overlay", default="", help="a multi-GPU overlay: zero2, fsdp2, zero2-2nodes, ray")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe key (checked like the rest)")  # fmt: skip
        p.add_argument("--unset", action="append", metavar="KEY", help="remove a recipe key")

    train_p = sub.add_parser("train", help="check the recipe, the weights and the data, then `axolotl train`")
    run_arguments(train_p)
    train_p.add_argument("--launcher", default="accelerate", choices=LAUNCHERS)
    train_p.add_argument("--launcher-args", default="", help='passed after `--`, e.g. "--nnodes 2 --nproc_per_node 8"')
    train_p.add_argument("--dry-run", action="store_true", help="check, write the resolved recipe, print the command; do not train")  # fmt: skip
    train_p.add_argument("--allow-sample-data", action="store_true", help="let a GPU recipe train on data built only from the embedded samples")  # fmt: skip
    train_p.add_argument("--cpu-threads", type=_threads, default=os.environ.get("CPU_THREADS") or "0", metavar="N", help="CPU threads per training process (default: $CPU_THREADS, else 0: on a CPU target, the usable cores shared out among the processes of this machine)")  # fmt: skip
    train_p.set_defaults(func=cmd_train)

    merge_p = sub.add_parser("merge", help="merge the adapter into the base, keeping the expert and router LoRA")
    run_arguments(merge_p)
    merge_p.add_argument("--adapter-dir", default="", help="the adapter folder (default: the recipe's output_dir)")
    merge_p.set_defaults(func=cmd_merge)

    params = sub.add_parser("params", help="count the parameters the adapter trains (meta device, no weights)")
    params.add_argument("variant")
    params.add_argument("--base-model", default="", help="read the dimensions from this model's config.json")
    params.set_defaults(func=cmd_params)

    gpu = sub.add_parser("install-gpu", help="install requirements/gpu.txt into this environment (GPU hosts: DeepSpeed, Ray)")  # fmt: skip
    gpu.add_argument("--print", dest="print_only", action="store_true", help="print the commands, run nothing")
    gpu.set_defaults(func=cmd_install_gpu)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args, load_registry())
    except (RecipeError, LaunchError, WeightsError) as err:
        for line in str(err).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2 if isinstance(err, WeightsError) else 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
