// tokenizer_special.cpp: the Aho-Corasick matcher of special pieces (see tokenizer_special.h).
//
// Why reversed: Aho-Corasick reports, at each position, the patterns that END there. Pieces that
// START at position i of the text are the pieces that end at i when both are read backwards, and
// the longest of them is the first piece on the failure chain of the automaton's state there.
#include "common/tokenizer_special.h"

#include <climits>
#include <string>

#include "common/error.h"

namespace llm {

int SpecialTokenMatcher::child(int node, unsigned char byte) const {
  auto it = edges_.find(edge_key(node, byte));
  return it == edges_.end() ? -1 : it->second;
}

void SpecialTokenMatcher::add(std::string_view piece, int id) {
  if (piece.empty()) return;
  int node = 0;
  for (std::size_t k = piece.size(); k-- > 0;) {
    const auto b = static_cast<unsigned char>(piece[k]);
    int next = child(node, b);
    if (next < 0) {
      if (nodes_.size() >= static_cast<std::size_t>(INT_MAX))
        throw Error("special tokens: more than " + std::to_string(INT_MAX) + " bytes of special pieces");
      next = static_cast<int>(nodes_.size());
      Node n;
      n.len = nodes_[static_cast<std::size_t>(node)].len + 1;
      nodes_.push_back(n);
      edges_.emplace(edge_key(node, b), next);
      parents_.push_back({node, b});
    }
    node = next;
  }
  Node& end = nodes_[static_cast<std::size_t>(node)];
  if (end.id < 0) {
    end.id = id;
    ++piece_count_;
  }
}

void SpecialTokenMatcher::build() {
  // A node's failure link points to a shorter node, so visiting nodes by increasing depth finds
  // every link it needs already computed (a breadth-first order without a queue).
  std::vector<std::vector<int>> by_depth;
  for (std::size_t v = 1; v < nodes_.size(); ++v) {
    const auto d = static_cast<std::size_t>(nodes_[v].len);
    if (by_depth.size() <= d) by_depth.resize(d + 1);
    by_depth[d].push_back(static_cast<int>(v));
  }
  for (const auto& level : by_depth) {
    for (int v : level) {
      const auto [parent, byte] = parents_[static_cast<std::size_t>(v) - 1];
      int fail = 0;
      if (parent != 0) {
        for (int f = nodes_[static_cast<std::size_t>(parent)].fail;; f = nodes_[static_cast<std::size_t>(f)].fail) {
          const int c = child(f, byte);
          if (c >= 0) {
            fail = c;
            break;
          }
          if (f == 0) break;
        }
      }
      Node& n = nodes_[static_cast<std::size_t>(v)];
      n.fail = fail;
      n.best_below = n.id >= 0 ? v : nodes_[static_cast<std::size_t>(fail)].best_below;
    }
  }
  parents_.clear();
  parents_.shrink_to_fit();
}

std::vector<TextSegment> SpecialTokenMatcher::split(std::string_view text) const {
  std::vector<TextSegment> out;
  if (piece_count_ == 0) {
    if (!text.empty()) out.push_back({-1, text});
    return out;
  }
  // longest[i]: the node of the longest piece starting at byte i (0 = none).
  std::vector<int> longest(text.size(), 0);
  int state = 0;
  for (std::size_t i = text.size(); i-- > 0;) {
    const auto b = static_cast<unsigned char>(text[i]);
    int c = child(state, b);
    while (c < 0 && state != 0) {
      state = nodes_[static_cast<std::size_t>(state)].fail;
      c = child(state, b);
    }
    state = c < 0 ? 0 : c;
    longest[i] = nodes_[static_cast<std::size_t>(state)].best_below;
  }
  std::size_t start = 0, i = 0;
  while (i < text.size()) {
    const int m = longest[i];
    if (m == 0) {
      ++i;
      continue;
    }
    const Node& hit = nodes_[static_cast<std::size_t>(m)];
    if (i > start) out.push_back({-1, text.substr(start, i - start)});
    out.push_back({hit.id, text.substr(i, static_cast<std::size_t>(hit.len))});
    i += static_cast<std::size_t>(hit.len);
    start = i;
  }
  if (start < text.size()) out.push_back({-1, text.substr(start)});
  return out;
}

}  // namespace llm
