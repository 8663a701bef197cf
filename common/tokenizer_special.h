// tokenizer_special.h: finds the special pieces (added tokens such as "<|im_start|>") written in a
// text, so that the tokenizers keep them whole. At each byte the longest piece that starts there
// wins, as a left-to-right scan that tries every piece would find, but in time linear in the text
// whatever the pieces: an Aho-Corasick automaton over the reversed pieces, run from the end of the
// text, gives for every position the longest piece starting there in O(1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace llm {

/// A run of a text: one special token (special_id >= 0) or ordinary text (special_id == -1).
struct TextSegment {
  int special_id;
  std::string_view text;
};

class SpecialTokenMatcher {
 public:
  /// Adds a piece with its token id. Empty pieces are ignored; a piece added twice keeps its first
  /// id. Call build() after the last add().
  void add(std::string_view piece, int id);
  /// Computes the failure links (linear in the total length of the pieces).
  void build();
  bool empty() const { return piece_count_ == 0; }

  /// Cuts `text` into segments: each leftmost-longest special piece is its own segment, the text
  /// between them is ordinary. Linear in text.size() (plus the pieces' total length).
  std::vector<TextSegment> split(std::string_view text) const;

 private:
  struct Node {
    int fail = 0;        // the longest proper suffix of this node's string that is also a node
    int id = -1;         // token id if this node's string is a (reversed) piece
    int len = 0;         // depth = byte length of the node's string
    int best_below = 0;  // the nearest node on the fail chain (itself included) with id >= 0, or 0
  };
  int child(int node, unsigned char byte) const;
  static std::uint64_t edge_key(int node, unsigned char byte) { return (static_cast<std::uint64_t>(node) << 8) | byte; }

  std::vector<Node> nodes_{Node{}};                     // node 0 is the root (the empty string)
  std::unordered_map<std::uint64_t, int> edges_;        // (node, byte) -> child
  std::vector<std::pair<int, unsigned char>> parents_;  // node v's (parent, byte) at [v - 1], until build()
  std::size_t piece_count_ = 0;
};

}  // namespace llm
