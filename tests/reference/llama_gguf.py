"""Shared by the scripts that write Llama GGUF files with a SentencePiece vocabulary
(tests/reference/make_tiny_models.py, scripts/export_tiny.py): the config and tokenizer keys,
named as llama.cpp names them, and the closing write."""
from pathlib import Path

import gguf


def start(path, name, c, tokens, scores, types):
    """A GGUFWriter with general.*, llama.* (from config dict c: ctx, dim, n_layers, hidden,
    n_heads, n_kv_heads, theta, eps) and tokenizer.ggml.* (model "llama") already added."""
    wr = gguf.GGUFWriter(path, "llama")  # writes general.architecture, GGUF v3
    wr.add_name(name)
    wr.add_context_length(c["ctx"])
    wr.add_embedding_length(c["dim"])
    wr.add_block_count(c["n_layers"])
    wr.add_feed_forward_length(c["hidden"])
    wr.add_head_count(c["n_heads"])
    wr.add_head_count_kv(c["n_kv_heads"])
    wr.add_rope_freq_base(c["theta"])
    wr.add_layer_norm_rms_eps(c["eps"])
    wr.add_rope_dimension_count(c["dim"] // c["n_heads"])
    wr.add_vocab_size(len(tokens))
    wr.add_tokenizer_model("llama")
    wr.add_token_list([str(t) for t in tokens])
    wr.add_token_scores([float(s) for s in scores])
    wr.add_token_types([int(t) for t in types])
    wr.add_bos_token_id(1)
    wr.add_eos_token_id(2)
    wr.add_unk_token_id(0)
    wr.add_add_bos_token(True)
    wr.add_add_eos_token(False)
    wr.add_add_space_prefix(True)
    return wr


def finish(wr, path):
    """Writes header, metadata and tensors, closes, and prints the file size."""
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    print(path, Path(path).stat().st_size, "bytes")
