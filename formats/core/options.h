// Options are data. Each writer declares the `-o key=value` options it accepts
// (name, type, default, help); the CLI lists, parses and validates them
// generically, with no format-specific code.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace vdisk {

enum class OptionType {
  kString,
  kBool,  // on/off, true/false, yes/no, 1/0
  kSize,  // bytes, with an optional K/M/G/T suffix (powers of 1024)
  kInt,
  kEnum,  // one of `choices`
};
const char* option_type_name(OptionType t);

struct OptionSpec {
  std::string name;
  OptionType type = OptionType::kString;
  std::string default_value;  // empty: no default (unset)
  std::string help;
  std::vector<std::string> choices;  // for kEnum
};

// Parsed, validated option values. Unset options answer their default.
class Options {
 public:
  Options() = default;
  Options(std::vector<OptionSpec> specs, std::map<std::string, std::string> values);

  // Whether the user gave this option explicitly.
  bool is_set(const std::string& name) const;
  std::string get_string(const std::string& name) const;
  bool get_bool(const std::string& name) const;
  uint64_t get_size(const std::string& name) const;
  int64_t get_int(const std::string& name) const;
  const std::vector<OptionSpec>& specs() const { return specs_; }
  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  const OptionSpec& spec(const std::string& name) const;
  std::vector<OptionSpec> specs_;
  std::map<std::string, std::string> values_;
};

// Parses "key=value,key2=value2" (a bare "key" means key=on) against `specs`.
// Throws Error(kInvalidArgument) naming `format_name` for an unknown key, a
// value of the wrong type or a choice not in the list.
Options parse_options(const std::string& text, const std::vector<OptionSpec>& specs,
                      const std::string& format_name);

// Value parsers shared with the CLI (throw kInvalidArgument naming `what`).
uint64_t parse_size(const std::string& text, const std::string& what);
bool parse_bool(const std::string& text, const std::string& what);

}  // namespace vdisk
