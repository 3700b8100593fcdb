"""data_prep: medical sources in their original formats -> Axolotl-ready JSON lines.

Files are parsed by bimedix.formats (the one reader every stage uses); this stage turns its items
into training records. Public pieces other modules reuse (documented in data_prep/README.md):
- data_prep.sources: SOURCES (the formats as record converters), SourceContext, record_of
- data_prep.records: Record, Reject, output_row, record_id, OUTPUT_KEYS
- (the hashing, MinHash LSH and n-gram index live at the ground floor: bimedix.dedup)
- data_prep.build: build_variant; data_prep.decontam: load_eval_index; data_prep.tokens: render, load_tokenizer
"""
