#include "prompt_lookup_proposer.h"

#include <algorithm>
#include <string>

#include "common/error.h"

namespace llm::stage06 {

std::vector<int> lookup_continuation(std::span<const int> context, int max_ngram, int k) {
  const int len = static_cast<int>(context.size());
  // BEGIN EXERCISE(ngram-lookup): for n = max_ngram down to 1, find the latest earlier occurrence of the last n tokens and return up to k tokens after it
  for (int n = std::min(max_ngram, len - 1); n >= 1; --n) {
    const auto suffix = context.subspan(static_cast<std::size_t>(len - n));
    // Latest start first: recent text predicts the next tokens better than old text.
    for (int start = len - n - 1; start >= 0; --start) {
      if (!std::equal(suffix.begin(), suffix.end(), context.begin() + start)) continue;
      const int from = start + n, count = std::min(k, len - from);
      return {context.begin() + from, context.begin() + from + count};
    }
  }
  return {};
  // END EXERCISE
}

PromptLookupProposer::PromptLookupProposer(int max_ngram) : max_ngram_(max_ngram) {
  if (max_ngram < 1) throw Error("prompt lookup: n-gram length " + std::to_string(max_ngram) + " must be at least 1");
}

std::vector<Proposal> PromptLookupProposer::propose(std::span<const ProposalRequest> requests) {
  std::vector<Proposal> out(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i)
    out[i].tokens = lookup_continuation(requests[i].context, max_ngram_, requests[i].k);
  return out;
}

}  // namespace llm::stage06
