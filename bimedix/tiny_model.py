"""Build the tiny bilingual Mixtral every test and the demo run against: offline and deterministic.

    python -m bimedix.tiny_model [--out models/tiny-bimedix-moe] [--force]

A real Mixture-of-Experts model of Mixtral's architecture (8 experts, top-2 routing, 2 layers,
hidden 64) with random weights, and a byte-level BPE tokenizer trained on the project's own
bilingual medical sample text (bimedix/assets/tiny_corpus.txt). The tokenizer carries the
project's chat template (templates/chat_template.jinja). It knows nothing: it exists so that
every stage (Axolotl, lm-eval, FastChat) runs for real in seconds on a CPU.

The output folder holds `bimedix_build.json`: the spec and the sha256 of every input. A re-run
whose inputs are unchanged does nothing; one whose inputs changed rebuilds.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from bimedix.chat import BOS, EOS, chat_template
from bimedix.files import sha256_file
from bimedix.paths import CHAT_TEMPLATE, TINY_CORPUS, TINY_MODEL_DIR

PAD = "<pad>"
UNK = "<unk>"
SPECIAL_TOKENS = [UNK, BOS, EOS, PAD]  # ids 0..3, in this order
BUILD_INFO = "bimedix_build.json"


@dataclass(frozen=True)
class TinySpec:
    vocab_size: int = 2048  # an upper bound: BPE stops earlier when the corpus has no more merges
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    num_local_experts: int = 8  # as Mixtral-8x7B
    num_experts_per_tok: int = 2  # top-2 routing, as Mixtral-8x7B
    max_position_embeddings: int = 4096
    router_aux_loss_coef: float = 0.02  # the released BiMediX config's value
    seed: int = 0


def build_info(spec: TinySpec) -> dict:
    from transformers import __version__ as transformers_version

    return {
        "spec": asdict(spec),
        "inputs": {
            "corpus": {"path": "bimedix/assets/tiny_corpus.txt", "sha256": sha256_file(TINY_CORPUS)},
            "chat_template": {"path": "templates/chat_template.jinja", "sha256": sha256_file(CHAT_TEMPLATE)},
            "builder": {"path": "bimedix/tiny_model.py", "sha256": sha256_file(Path(__file__))},
        },
        "transformers": transformers_version,
    }


def train_tokenizer(corpus: Path, vocab_size: int):
    """A byte-level BPE (as Mixtral's tokenizer falls back to bytes) that adds <s> like Llama's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train([str(corpus)], trainer)
    bos_id = tokenizer.token_to_id(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        model_max_length=4096,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    wrapped.chat_template = chat_template()
    return wrapped


def build_model(spec: TinySpec, tokenizer):
    import torch
    from transformers import GenerationConfig, MixtralConfig, MixtralForCausalLM

    config = MixtralConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        head_dim=spec.hidden_size // spec.num_attention_heads,
        num_local_experts=spec.num_local_experts,
        num_experts_per_tok=spec.num_experts_per_tok,
        max_position_embeddings=spec.max_position_embeddings,
        router_aux_loss_coef=spec.router_aux_loss_coef,
        output_router_logits=False,  # the recipes switch it on for training (aux loss)
        sliding_window=None,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(spec.seed)
    model = MixtralForCausalLM(config).to(torch.float32).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


def is_current(out_dir: Path, spec: TinySpec) -> bool:
    info = out_dir / BUILD_INFO
    if not info.exists():
        return False
    try:
        return json.loads(info.read_text()) == build_info(spec)
    except json.JSONDecodeError:
        return False


def build(out_dir: Path = TINY_MODEL_DIR, spec: TinySpec = TinySpec(), force: bool = False) -> Path:
    """Write the model and tokenizer to out_dir (atomically: a half-built folder never appears). One
    build at a time per folder (a file lock): parallel test processes wait for the first build."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(out_dir.parent / f".{out_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and is_current(out_dir, spec):
            print(f"tiny model up to date: {out_dir}")
            return out_dir
        return _build(out_dir, spec)


def _build(out_dir: Path, spec: TinySpec) -> Path:
    tokenizer = train_tokenizer(TINY_CORPUS, spec.vocab_size)
    model = build_model(spec, tokenizer)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}-") as scratch:
        staging = Path(scratch) / out_dir.name
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / BUILD_INFO).write_text(json.dumps(build_info(spec), indent=2, sort_keys=True) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"tiny model written to {out_dir}: Mixtral, {spec.num_local_experts} experts top-{spec.num_experts_per_tok}, "
        f"{spec.num_hidden_layers} layers, hidden {spec.hidden_size}, vocab {len(tokenizer)}, {params:,} parameters"
    )
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bimedix.tiny_model", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TINY_MODEL_DIR, help="output folder (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the inputs are unchanged")
    args = parser.parse_args(argv)
    build(args.out, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
