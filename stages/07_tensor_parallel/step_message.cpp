#include "step_message.h"

#include "common/error.h"

namespace llm::stage07 {

std::vector<int> encode_step(const stage03::StepBatch& step) {
  std::vector<int> m = {kStep, static_cast<int>(step.tokens.size()), static_cast<int>(step.logit_rows.size()),
                        static_cast<int>(step.chunks.size())};
  m.insert(m.end(), step.tokens.begin(), step.tokens.end());
  m.insert(m.end(), step.positions.begin(), step.positions.end());
  m.insert(m.end(), step.logit_rows.begin(), step.logit_rows.end());
  for (const stage03::StepRows& c : step.chunks) {
    m.push_back(c.start);
    m.push_back(c.count);
    m.push_back(static_cast<int>(c.table.size()));
    m.insert(m.end(), c.table.begin(), c.table.end());
  }
  return m;
}

namespace {

/// Reads ints off a message, refusing to run past its end.
struct Reader {
  const std::vector<int>& m;
  std::size_t at = 0;
  int next() {
    if (at >= m.size()) throw Error("tensor parallel: step message of " + std::to_string(m.size()) + " ints is short");
    return m[at++];
  }
  std::vector<int> take(int n) {
    if (n < 0 || static_cast<std::size_t>(n) > m.size() - at)
      throw Error("tensor parallel: step message asks for " + std::to_string(n) + " ints with " +
                  std::to_string(m.size() - at) + " left");
    std::vector<int> v(m.begin() + static_cast<std::ptrdiff_t>(at), m.begin() + static_cast<std::ptrdiff_t>(at) + n);
    at += static_cast<std::size_t>(n);
    return v;
  }
};

}  // namespace

DecodedStep decode_step(const std::vector<int>& msg) {
  Reader r{msg};
  if (r.next() != kStep) throw Error("tensor parallel: not a step message");
  const int n = r.next(), rows = r.next(), chunks = r.next();
  DecodedStep d;
  d.tokens = r.take(n);
  d.positions = r.take(n);
  d.logit_rows = r.take(rows);
  if (chunks < 0) throw Error("tensor parallel: step message with " + std::to_string(chunks) + " chunks");
  struct Span {
    int start, count;
  };
  std::vector<Span> spans;
  for (int c = 0; c < chunks; ++c) {
    const int start = r.next(), count = r.next();
    spans.push_back({start, count});
    d.tables.push_back(r.take(r.next()));
  }
  if (r.at != msg.size()) throw Error("tensor parallel: step message has " + std::to_string(msg.size() - r.at) + " ints too many");
  for (std::size_t c = 0; c < spans.size(); ++c)
    d.chunks.push_back({std::span<const int>(d.tables[c]), spans[c].start, spans[c].count});
  return d;
}

stage03::StepBatch DecodedStep::batch() const {
  return {std::span<const int>(tokens), std::span<const int>(positions), std::span<const int>(logit_rows),
          std::span<const stage03::StepRows>(chunks)};
}

std::vector<int> encode_load(const std::vector<std::string>& strings) {
  std::vector<int> m = {kLoad};
  for (const std::string& str : strings) {
    for (unsigned char ch : str) m.push_back(ch);
    m.push_back(0);
  }
  return m;
}

std::vector<std::string> decode_load(const std::vector<int>& msg) {
  std::vector<std::string> out;
  std::string cur;
  for (std::size_t i = 1; i < msg.size(); ++i) {
    if (msg[i] == 0) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(static_cast<char>(msg[i]));
    }
  }
  return out;
}

}  // namespace llm::stage07
