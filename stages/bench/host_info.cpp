#include "host_info.h"

#include "kernels/cpu/parallel.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <regex>
#include <stdexcept>
#include <string>

namespace llm::bench {

namespace {

std::string run_command(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    if (pclose(p) != 0) return "";
  }
  while (!out.empty() && std::isspace(static_cast<unsigned char>(out.back()))) out.pop_back();
  return out;
}

}  // namespace

HostInfo host_info() {
  HostInfo h;
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      h.cpu_name = line.substr(line.find(':') + 2);
      break;
    }
  }
  if (h.cpu_name.empty()) h.cpu_name = "unknown cpu";
  h.threads = cpu::thread_count();  // the engine's threads (kernels/cpu/parallel.h)
  // "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz" -> "intel-xeon-gold-6338": the marks, the clock and
  // the filler words dropped (as scripts/plot_stage00.py names its folder).
  std::string name;
  for (char c : h.cpu_name) name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  name = std::regex_replace(name, std::regex(R"(\((r|tm)\))"), " ");
  name = std::regex_replace(name, std::regex("@.*$"), " ");
  name = std::regex_replace(name, std::regex(R"(\b(cpu|processor|[0-9]+-core)\b)"), " ");
  std::string slug;
  for (char c : name) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      slug += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!slug.empty() && slug.back() != '-') {
      slug += '-';
    }
  }
  while (!slug.empty() && slug.back() == '-') slug.pop_back();
  h.device_id = "cpu-" + slug + "-" + std::to_string(h.threads) + "c";
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  h.date = date;
  h.commit = run_command("git -C '" LLM_SOURCE_DIR "' describe --always --dirty=+dirty 2>/dev/null");
  if (h.commit.empty()) h.commit = "unknown";
  // "32768K": the size of the largest cache level that sysfs lists for cpu0.
  for (int index = 0; index < 8; ++index) {
    std::ifstream size_file("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size");
    std::string size;
    if (!(size_file >> size) || size.empty()) continue;
    std::size_t mult = 1;
    if (size.back() == 'K') mult = std::size_t{1} << 10;
    if (size.back() == 'M') mult = std::size_t{1} << 20;
    try {
      h.l3_bytes = std::max(h.l3_bytes, static_cast<std::size_t>(std::stoul(size)) * mult);
    } catch (const std::exception&) {
    }
  }
  return h;
}

std::size_t current_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    try {
      return static_cast<std::size_t>(std::stoul(line.substr(6))) * 1024;  // "VmRSS:   1234 kB"
    } catch (const std::exception&) {
      return 0;
    }
  }
  return 0;
}

std::string self_path() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "bench";
  return std::string(buf, static_cast<std::size_t>(n));
}

std::size_t kv_bytes_per_token(const ModelConfig& c) {
  return 2 * static_cast<std::size_t>(c.n_layers) * static_cast<std::size_t>(c.kv_dim()) * sizeof(float);
}

}  // namespace llm::bench
