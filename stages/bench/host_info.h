// host_info.h: what a result must name: the machine, the date and the commit it was measured at.
#pragma once

#include <cstddef>
#include <string>

#include "common/model_config.h"

namespace llm::bench {

struct HostInfo {
  std::string cpu_name;      ///< /proc/cpuinfo "model name", e.g. "AMD EPYC"
  int threads = 0;           ///< threads the stages use (kernels/cpu/parallel.h)
  std::string device_id;     ///< folder name under docs/results, e.g. "cpu-amd-epyc-2c"
  std::string date;          ///< UTC, ISO 8601
  std::string commit;        ///< git describe of the source tree ("+dirty" when modified), or "unknown"
  std::size_t l3_bytes = 0;  ///< last-level cache of cpu0 (sysfs), 0 when unknown
};

HostInfo host_info();
/// This process's resident memory now (VmRSS), in bytes; 0 when /proc is unreadable.
std::size_t current_rss_bytes();
/// This executable's path (to start workers).
std::string self_path();
/// 2 x layers x kv_dim x 4 bytes: one token's K and V in fp32.
std::size_t kv_bytes_per_token(const ModelConfig& c);

}  // namespace llm::bench
