#include "stream_writer.h"

#include <algorithm>
#include <chrono>

namespace llm::stage08 {

StreamWriter::StreamWriter(std::chrono::milliseconds tick) : tick_(tick), thread_([this] { loop(); }) {}

StreamWriter::~StreamWriter() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void StreamWriter::add(std::shared_ptr<Stream> stream) {
  {
    std::lock_guard lock(mutex_);
    added_.push_back(std::move(stream));
  }
  wake_.notify_one();
}

void StreamWriter::wake() {
  {
    std::lock_guard lock(mutex_);
    if (woken_) return;  // a round is already due
    woken_ = true;
  }
  wake_.notify_one();
}

void StreamWriter::loop() {
  std::vector<std::shared_ptr<Stream>> live;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, tick_,
                     [&] { return woken_ || stopping_ || !added_.empty(); });
      if (stopping_) return;
      woken_ = false;
      for (auto& s : added_) live.push_back(std::move(s));
      added_.clear();
    }
    live.erase(std::remove_if(live.begin(), live.end(), [](const std::shared_ptr<Stream>& s) { return !s->pump(); }),
               live.end());
  }
}

}  // namespace llm::stage08
