// host_memory.h: how much memory this machine has, to refuse a buffer sized from flags (a KV
// pool from --kv-blocks x --block-size) with the flags' names before allocating it, instead of
// failing later with a bare "out of memory".
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <string>

namespace llm {

/// Physical memory in bytes (0 when the system does not say).
inline std::size_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return 0;
  return static_cast<std::size_t>(pages) * static_cast<std::size_t>(page);
}

/// "1.50 GiB", for messages about sizes.
inline std::string format_gib(std::size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

}  // namespace llm
