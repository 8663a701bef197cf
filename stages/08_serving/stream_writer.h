// stream_writer.h: one thread writes every streamed response's new tokens, once per engine step.
//
// With one HTTP thread per connection (cpp-httplib's model) and each thread woken for each of its
// tokens, a step of 16 sequences costs 16 thread wake-ups and 32 context switches. On the tiny
// default model a token costs the engine about 190 microseconds of one core; the wake-ups cost 25
// per token, about 13% of the engine's core when the server shares it (measured on 2 cores,
// server pinned to one: scripts/bench_serving --pin). vLLM's front end does the same as this:
// the engine hands over one step's outputs at once, and one event loop writes them all.
//
//   engine thread ──push_token (no wake-up)──> RequestStream ... ──wake(), once per step──> writer
//   writer thread ──for every stream: take its tokens, format SSE, write──> the client's socket
//   HTTP thread (one per connection) waits inside cpp-httplib's content provider until its
//   stream is over, so the writer may use that connection's DataSink meanwhile
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace llm::stage08 {

class StreamWriter {
 public:
  /// One streamed response, as the writer sees it.
  class Stream {
   public:
    virtual ~Stream() = default;
    /// Writer thread: writes what has come since the last call, if it can now. Returns false once
    /// the stream needs the writer no more (over, failed, or its connection gone); it is then
    /// dropped. Must not block for long: a client that does not read is skipped, not waited for.
    virtual bool pump() = 0;
  };

  /// How often the writer looks at every stream even when no step has run: keep-alive comments
  /// for a stream that waits in the queue, and a client gone while nothing is sampled for it.
  static constexpr int kTickMs = 100;

  /// Starts the writer thread; `tick`: how often it pumps every stream without a wake-up (tests
  /// set it long, to tell a wake-up from a tick).
  explicit StreamWriter(std::chrono::milliseconds tick = std::chrono::milliseconds(kTickMs));
  /// Stops it; streams still registered are dropped (their connections are gone by then).
  ~StreamWriter();
  StreamWriter(const StreamWriter&) = delete;
  StreamWriter& operator=(const StreamWriter&) = delete;

  /// Any thread: pump `stream` from the next round on, until its pump() returns false.
  void add(std::shared_ptr<Stream> stream);
  /// Any thread (the engine thread, once per step that sampled or finished something): there is
  /// something to write; the writer runs a round now instead of at its next tick.
  void wake();

 private:
  void loop();

  const std::chrono::milliseconds tick_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool woken_ = false, stopping_ = false;
  std::vector<std::shared_ptr<Stream>> added_;  ///< under mutex_: taken into the round's list
  std::thread thread_;                          // last: started when the rest is ready
};

}  // namespace llm::stage08
