// kernel_harness: checks every CUDA kernel version against its CPU twin and times it.
//
//   kernel_harness check [FAMILY|all] [--version N] [--quick] [--seed S]
//   kernel_harness bench [FAMILY|all] [--version N] [--quick] [--json FILE]
//   kernel_harness list
//
// Exit codes: 0 passed, 1 a check failed, 2 bad arguments, 77 no CUDA device (ctest: skipped).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "kernels/cuda/device.h"
#include "kernels/harness/families/families.h"

namespace {

int usage(const char* why) {
  std::fprintf(stderr,
               "error: %s\n"
               "usage: kernel_harness check|bench [FAMILY|all] [--version N] [--quick] [--seed S] [--json FILE]\n"
               "       kernel_harness list\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace llm::harness;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage("missing command");
  const std::string cmd = args[0];
  if (cmd == "list") {
    for (const Family& f : kFamilies) std::printf("%-18s %s\n", f.name, f.what);
    return 0;
  }
  if (cmd != "check" && cmd != "bench") return usage(("unknown command '" + cmd + "'").c_str());
  std::string family = "all";
  FamilyOptions o;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= args.size()) throw std::invalid_argument(std::string(flag) + " needs a value");
      return args[++i];
    };
    try {
      if (a == "--version") {
        o.version = std::stoi(value("--version"));
        if (o.version < 1) throw std::invalid_argument("--version must be >= 1");
      } else if (a == "--quick") {
        o.quick = true;
      } else if (a == "--seed") {
        o.seed = std::stoull(value("--seed"));
      } else if (a == "--json") {
        set_json_output(value("--json"));
      } else if (!a.empty() && a[0] != '-') {
        family = a;
      } else {
        return usage(("unknown flag '" + a + "'").c_str());
      }
    } catch (const std::exception& e) {
      return usage((a + ": " + e.what()).c_str());
    }
  }
  bool known = family == "all";
  for (const Family& f : kFamilies) known = known || family == f.name;
  if (!known) return usage(("unknown family '" + family + "' (kernel_harness list)").c_str());

  if (llm::cuda::device_count() == 0) {
    std::printf("kernel_harness: no CUDA device: skipped\n");
    return 77;
  }
  std::printf("device: %s\n", llm::cuda::device_name().c_str());
  bool ok = true;
  for (const Family& f : kFamilies) {
    if (family != "all" && family != f.name) continue;
    std::printf("== %s %s%s\n", cmd.c_str(), f.name, o.quick ? " (quick)" : "");
    try {
      if (cmd == "check")
        ok = f.check(o) && ok;
      else
        f.bench(o);
    } catch (const std::exception& e) {
      std::printf("  FAIL %s: %s\n", f.name, e.what());
      ok = false;
    }
  }
  std::printf("%s\n", ok ? "all passed" : "FAILED");
  return ok ? 0 : 1;
}
