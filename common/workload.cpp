#include "common/workload.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace llm {

namespace {

/// A JSON value as it appears in a message: short, one line.
std::string shown(const nlohmann::json& v) {
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

std::string type_of(const nlohmann::json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  return std::string("a ") + v.type_name();
}

WorkloadItem parse_line(std::string_view line, const std::string& where, std::size_t index) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line.begin(), line.end());
  } catch (const nlohmann::json::exception& e) {
    // Syntax, ill-formed UTF-8, or a number out of range (1e999): nlohmann says which.
    throw Error(where + "not valid JSON (" + printable(e.what()) + ")");
  }
  if (!j.is_object()) throw Error(where + "expected a JSON object per line, got " + type_of(j));
  for (const auto& [key, value] : j.items()) {
    if (key != "id" && key != "prompt" && key != "max_new_tokens" && key != "arrival_s")
      throw Error(where + "unknown field \"" + key + "\" (fields: id, prompt, max_new_tokens, arrival_s)");
  }
  WorkloadItem it;
  if (!j.contains("prompt")) throw Error(where + "\"prompt\" is missing");
  if (!j["prompt"].is_string()) throw Error(where + "\"prompt\" is " + shown(j["prompt"]) + ": not a string");
  it.prompt = j["prompt"].get<std::string>();
  if (it.prompt.empty()) throw Error(where + "\"prompt\" is empty");

  if (!j.contains("max_new_tokens")) throw Error(where + "\"max_new_tokens\" is missing");
  const auto& n = j["max_new_tokens"];
  if (!n.is_number_integer()) throw Error(where + "\"max_new_tokens\" is " + shown(n) + ": not an integer");
  // Above 2^63 nlohmann keeps it unsigned; reading that as signed would wrap, so compare each
  // kind in its own type.
  const bool in_range =
      n.is_number_unsigned()
          ? n.get<unsigned long long>() <= static_cast<unsigned long long>(WorkloadLimits::max_new_tokens) &&
                n.get<unsigned long long>() >= 1
          : n.get<long long>() >= 1 && n.get<long long>() <= WorkloadLimits::max_new_tokens;
  if (!in_range) {
    throw Error(where + "\"max_new_tokens\" is " + shown(n) + ": must be between 1 and " +
                std::to_string(WorkloadLimits::max_new_tokens));
  }
  it.max_new_tokens = static_cast<int>(n.get<long long>());

  if (j.contains("arrival_s")) {
    const auto& a = j["arrival_s"];
    if (!a.is_number()) throw Error(where + "\"arrival_s\" is " + shown(a) + ": not a number");
    const double t = a.get<double>();
    if (!std::isfinite(t) || t < 0.0 || t > WorkloadLimits::max_arrival_s) {
      char limit[64];
      std::snprintf(limit, sizeof limit, "%g", WorkloadLimits::max_arrival_s);
      throw Error(where + "\"arrival_s\" is " + shown(a) + ": must be between 0 and " + limit + " seconds");
    }
    it.arrival_s = t;
  }
  if (j.contains("id")) {
    const auto& id = j["id"];
    if (!id.is_string()) throw Error(where + "\"id\" is " + shown(id) + ": not a string");
    it.id = id.get<std::string>();
    if (it.id.empty()) throw Error(where + "\"id\" is empty");
    if (printable(it.id) != it.id)  // ids are printed in messages and in the output
      throw Error(where + "\"id\" is " + shown(id) + ": only printable ASCII is allowed");
    if (it.id.size() > WorkloadLimits::max_id_bytes)
      throw Error(where + "\"id\" is " + std::to_string(it.id.size()) + " bytes long (at most " +
                  std::to_string(WorkloadLimits::max_id_bytes) + ")");
  } else {
    char id[32];  // "r<index>"; snprintf sidesteps a GCC 12 -Wrestrict false positive on string +
    std::snprintf(id, sizeof(id), "r%zu", index);
    it.id = id;
  }
  return it;
}

}  // namespace

std::vector<WorkloadItem> parse_workload(std::string_view text, const std::string& name) {
  std::vector<WorkloadItem> items;
  std::map<std::string, int> line_of_id;
  int line_no = 0;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t nl = text.find('\n', at);
    const std::size_t end = nl == std::string_view::npos ? text.size() : nl;
    const std::string_view line = text.substr(at, end - at);
    at = end + 1;
    ++line_no;
    const std::string where = name + ":" + std::to_string(line_no) + ": ";
    if (line.size() > WorkloadLimits::max_line_bytes) {
      throw Error(where + "the line is " + std::to_string(line.size()) + " bytes long (at most " +
                  std::to_string(WorkloadLimits::max_line_bytes) + ")");
    }
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    WorkloadItem it = parse_line(line, where, items.size());
    it.line = line_no;
    const auto [seen, fresh] = line_of_id.emplace(it.id, line_no);
    if (!fresh) {
      throw Error(where + "\"id\" \"" + it.id + "\" is used twice (lines " + std::to_string(seen->second) + " and " +
                  std::to_string(line_no) + ")");
    }
    items.push_back(std::move(it));
  }
  if (items.empty()) throw Error(name + ": the workload has no requests");
  return items;
}

std::vector<WorkloadItem> read_workload(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(path + ": is a directory, not a workload file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open workload file");
  std::string text;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > WorkloadLimits::max_file_bytes) {
      throw Error(path + ": the workload is larger than " + std::to_string(WorkloadLimits::max_file_bytes >> 20) +
                  " MiB");
    }
  }
  if (in.bad()) throw Error(path + ": cannot read workload file");
  return parse_workload(text, path);
}

}  // namespace llm
