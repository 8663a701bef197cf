// cached_attention.h: attention of a few new queries over a sequence's cached keys and values.
#pragma once

namespace llm::stage01 {

/// Causal grouped-query attention of n new queries against a cache.
///   q:   [n, n_heads, head_dim], the queries of positions start .. start + n - 1 (rotated)
///   k,v: [start + n, n_kv_heads, head_dim], the cache, this step's rows already appended
///   out: [n, n_heads, head_dim]
/// Query i (position start + i) sees keys 0 .. start + i. Query head h reads kv head
/// h / (n_heads / n_kv_heads); scores are scaled by 1/sqrt(head_dim).
/// Prefill is n = prompt length, start = 0; decode is n = 1, start = tokens already cached.
void cached_attention(float* out, const float* q, const float* k, const float* v, int n, int start, int n_heads,
                      int n_kv_heads, int head_dim);

}  // namespace llm::stage01
