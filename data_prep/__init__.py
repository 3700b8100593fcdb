"""data_prep: medical sources in their original formats -> Axolotl-ready JSON lines.

Public pieces other modules reuse (documented in data_prep/README.md):
- data_prep.sources: SOURCES (the registry of formats), SourceContext, mcqa_record, qa_record
- data_prep.readers: iter_rows, decode, SourceFile (the one reader)
- data_prep.records: Record, Reject, output_row, record_id, OUTPUT_KEYS
- data_prep.text: normalise, detect_language
- data_prep.dedup: canonical_words, word_hashes, MinHasher, NgramIndex
- data_prep.build: build_variant; data_prep.decontam: load_eval_index; data_prep.tokens: render, load_tokenizer
"""
