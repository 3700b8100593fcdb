"""A check shared by the tests of the tiny and the small MoE: does each token go through exactly its top-2 experts?"""

from __future__ import annotations

import torch

TEXT = "The patient reports fever, cough and fatigue; يشكو المريض من الحمى والسعال"


def zero_one_expert(model, tokenizer, layer_index: int):
    """Zero the busiest expert of one layer and compare that layer's output per token, before and after.

    Returns (top2, counts, uses, changed): each token's top-2 experts, how many tokens each expert gets,
    which tokens route to the zeroed expert, and which tokens' outputs changed. Under sparse routing
    `changed` equals `uses`. The model is restored before returning.
    """
    inputs = tokenizer(TEXT, return_tensors="pt")
    layer = model.model.layers[layer_index].mlp
    captured = {}
    handle = layer.register_forward_hook(lambda _m, _i, output: captured.__setitem__("out", output))
    try:
        with torch.no_grad():
            router_logits = model(**inputs, output_router_logits=True).router_logits[layer_index]
            before = captured["out"].clone()
            top2 = router_logits.topk(2, dim=-1).indices  # (tokens, 2)
            counts = torch.bincount(top2.flatten(), minlength=model.config.num_local_experts)
            expert = int(counts.argmax())  # an expert some tokens use
            uses = (top2 == expert).any(dim=-1)
            assert uses.any() and not uses.all(), "the test needs tokens routed both to and away from the expert"
            saved = layer.experts.down_proj.data[expert].clone()
            layer.experts.down_proj.data[expert].zero_()
            try:
                model(**inputs)
            finally:
                layer.experts.down_proj.data[expert] = saved
            after = captured["out"]
    finally:
        handle.remove()
    changed = (before - after).abs().amax(dim=-1)[0] > 0
    return top2, counts, uses, changed
