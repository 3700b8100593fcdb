"""LLM data stages of BiMediX: English->Arabic translation with automatic QA and human review, and
doctor-patient chat synthesis from MCQA, over any OpenAI-compatible endpoint.

    python -m data_prep.llm translate   --input F --format mcq_json --out DIR
    python -m data_prep.llm synthesize  --input F --format mcq_json --out DIR
    python -m data_prep.llm review-export --run DIR
    python -m data_prep.llm review-import --run DIR FILE...

Settings live in data files beside this package: settings.yaml (thresholds, sampling, limits),
prompts/*.yaml (the prompts), glossary.tsv (EN->AR terms), protect.yaml (what is never translated).
See data_prep/llm/README.md.
"""
