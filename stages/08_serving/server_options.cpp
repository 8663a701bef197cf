#include "server_options.h"

#include <charconv>

#include "common/error.h"

namespace llm::stage08 {

namespace {
long long to_int(const std::string& flag, const std::string& v, long long lo, long long hi) {
  long long x = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || end != v.data() + v.size())
    throw Error(flag + " " + printable(v) + ": not an integer");
  if (x < lo || x > hi)
    throw Error(flag + " " + v + ": out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}
}  // namespace

ServerOptions take_server_options(std::vector<std::string>& args) {
  ServerOptions o;
  std::vector<std::string> rest;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i], value;
    const bool ours = flag == "--host" || flag == "--port" || flag == "--api-key" || flag == "--served-model-name" ||
                      flag == "--engine" || flag == "--max-body-bytes" || flag == "--http-threads";
    const std::size_t eq = flag.find('=');
    const std::string name = eq == std::string::npos ? flag : flag.substr(0, eq);
    const bool ours_eq = eq != std::string::npos &&
                         (name == "--host" || name == "--port" || name == "--api-key" || name == "--served-model-name" ||
                          name == "--engine" || name == "--max-body-bytes" || name == "--http-threads");
    if (i == 0 || (!ours && !ours_eq)) {
      rest.push_back(flag);
      continue;
    }
    if (ours_eq) {
      value = flag.substr(eq + 1);
      flag = name;
    } else {
      if (i + 1 >= args.size()) throw Error(flag + ": missing value");
      value = args[++i];
    }
    if (flag == "--host") {
      if (value.empty()) throw Error("--host: empty");
      o.host = value;
    } else if (flag == "--port") {
      o.port = static_cast<int>(to_int(flag, value, 0, 65535));
    } else if (flag == "--api-key") {
      if (value.empty()) throw Error("--api-key: empty (leave the flag out for no key)");
      o.api_key = value;
    } else if (flag == "--served-model-name") {
      if (value.empty()) throw Error("--served-model-name: empty");
      o.model_name = value;
    } else if (flag == "--engine") {
      if (value != "03" && value != "04" && value != "05" && value != "06")
        throw Error("--engine " + printable(value) + ": expected 03, 04, 05 or 06");
      o.engine = value;
    } else if (flag == "--max-body-bytes") {
      o.max_body_bytes = static_cast<std::size_t>(to_int(flag, value, 1024, std::int64_t{1} << 30));
    } else {
      o.http_threads = static_cast<int>(to_int(flag, value, 1, 1024));
    }
  }
  args = std::move(rest);
  return o;
}

std::string engine_for(const std::vector<std::string>& args) {
  std::string five, six;  // the first flag of each stage given
  for (const std::string& a : args) {
    const std::string name = a.substr(0, a.find('='));
    if (five.empty() && (name == "--weights" || name == "--kv-cache" || name == "--matmul")) five = name;
    if (six.empty() && (name == "--speculate" || name == "--spec-k" || name == "--draft-model" || name == "--draft-layers"))
      six = name;
  }
  if (!five.empty() && !six.empty())
    throw Error(five + " and " + six + ": stage 05's and stage 06's flags together (no engine has both)");
  return !five.empty() ? "05" : !six.empty() ? "06" : "03";
}

std::string server_options_help() {
  return "Server flags (the others are the engine's, below):\n"
         "  --host ADDR               address to listen on (default 127.0.0.1: this machine only)\n"
         "  --port N                  port, 0 = any free one (default 8000); the address is printed\n"
         "  --api-key KEY             require 'Authorization: Bearer KEY' (else 401)\n"
         "  --served-model-name NAME  the model name clients send (default: the model file's stem)\n"
         "  --engine 03|04|05|06      the engine served: stage 03's fp32 CPU engine, 04's (--backend),\n"
         "                            05's (--weights, --kv-cache, --matmul) or 06's (--speculate, --spec-k,\n"
         "                            --draft-model, --draft-layers); default: 05 or 06 when their flags\n"
         "                            are given, else 03\n"
         "  --max-body-bytes N        larger request bodies get 413 (default 1048576)\n"
         "  --http-threads N          connections served at once (default 64)\n";
}

}  // namespace llm::stage08
