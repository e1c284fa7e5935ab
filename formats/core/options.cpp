#include "formats/core/options.h"

#include <algorithm>
#include <cctype>

#include "formats/core/error.h"

namespace vdisk {

const char* option_type_name(OptionType t) {
  switch (t) {
    case OptionType::kString:
      return "string";
    case OptionType::kBool:
      return "bool";
    case OptionType::kSize:
      return "size";
    case OptionType::kInt:
      return "int";
    case OptionType::kEnum:
      return "enum";
  }
  return "?";
}

uint64_t parse_size(const std::string& text, const std::string& what) {
  if (text.empty()) throw_invalid("", what + ": empty size");
  size_t i = 0;
  uint64_t v = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    uint64_t d = static_cast<uint64_t>(text[i] - '0');
    if (v > (UINT64_MAX - d) / 10) throw_invalid("", what + ": size '" + text + "' is too large");
    v = v * 10 + d;
    ++i;
  }
  if (i == 0) throw_invalid("", what + ": '" + text + "' is not a size");
  std::string suffix = text.substr(i);
  std::transform(suffix.begin(), suffix.end(), suffix.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  uint64_t mult = 1;
  if (suffix.empty() || suffix == "b")
    mult = 1;
  else if (suffix == "k" || suffix == "kib" || suffix == "kb")
    mult = 1ull << 10;
  else if (suffix == "m" || suffix == "mib" || suffix == "mb")
    mult = 1ull << 20;
  else if (suffix == "g" || suffix == "gib" || suffix == "gb")
    mult = 1ull << 30;
  else if (suffix == "t" || suffix == "tib" || suffix == "tb")
    mult = 1ull << 40;
  else if (suffix == "s")
    mult = 512;  // sectors
  else
    throw_invalid("", what + ": unknown size suffix '" + suffix + "' in '" + text + "'");
  if (v > UINT64_MAX / mult) throw_invalid("", what + ": size '" + text + "' is too large");
  return v * mult;
}

bool parse_bool(const std::string& text, const std::string& what) {
  std::string t = text;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "on" || t == "true" || t == "yes" || t == "1") return true;
  if (t == "off" || t == "false" || t == "no" || t == "0") return false;
  throw_invalid("", what + ": '" + text + "' is not on/off");
}

Options::Options(std::vector<OptionSpec> specs, std::map<std::string, std::string> values)
    : specs_(std::move(specs)), values_(std::move(values)) {}

const OptionSpec& Options::spec(const std::string& name) const {
  for (auto& s : specs_) {
    if (s.name == name) return s;
  }
  throw Error(ErrorKind::kInvalidArgument, "", std::nullopt,
              "internal: option '" + name + "' is not declared");
}

bool Options::is_set(const std::string& name) const {
  return values_.count(name) != 0;
}

std::string Options::get_string(const std::string& name) const {
  auto it = values_.find(name);
  if (it != values_.end()) return it->second;
  return spec(name).default_value;
}

bool Options::get_bool(const std::string& name) const {
  std::string v = get_string(name);
  return v.empty() ? false : parse_bool(v, "option " + name);
}

uint64_t Options::get_size(const std::string& name) const {
  std::string v = get_string(name);
  return v.empty() ? 0 : parse_size(v, "option " + name);
}

int64_t Options::get_int(const std::string& name) const {
  std::string v = get_string(name);
  if (v.empty()) return 0;
  try {
    size_t used = 0;
    long long r = std::stoll(v, &used, 0);
    if (used != v.size()) throw std::invalid_argument("x");
    return r;
  } catch (const std::exception&) {
    throw_invalid("", "option " + name + ": '" + v + "' is not an integer");
  }
}

Options parse_options(const std::string& text, const std::vector<OptionSpec>& specs,
                      const std::string& format_name) {
  std::map<std::string, std::string> values;
  size_t start = 0;
  while (start <= text.size() && !text.empty()) {
    size_t comma = text.find(',', start);
    std::string item =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? text.size() + 1 : comma + 1;
    if (item.empty()) continue;
    auto eq = item.find('=');
    std::string key = item.substr(0, eq);
    std::string value = eq == std::string::npos ? "on" : item.substr(eq + 1);
    const OptionSpec* spec = nullptr;
    for (auto& s : specs) {
      if (s.name == key) spec = &s;
    }
    if (!spec) {
      std::string known;
      for (auto& s : specs) known += (known.empty() ? "" : ", ") + s.name;
      throw_invalid("", "format " + format_name + " has no option '" + key + "'" +
                            (known.empty() ? " (it takes no options)" : " (known: " + known + ")"));
    }
    std::string what = "option " + key + " of format " + format_name;
    switch (spec->type) {
      case OptionType::kBool:
        parse_bool(value, what);
        break;
      case OptionType::kSize:
        parse_size(value, what);
        break;
      case OptionType::kInt: {
        Options probe({*spec}, {{key, value}});
        probe.get_int(key);
        break;
      }
      case OptionType::kEnum:
        if (std::find(spec->choices.begin(), spec->choices.end(), value) == spec->choices.end()) {
          std::string choices;
          for (auto& c : spec->choices) choices += (choices.empty() ? "" : ", ") + c;
          throw_invalid("", what + ": '" + value + "' is not one of " + choices);
        }
        break;
      case OptionType::kString:
        break;
    }
    values[key] = value;
  }
  return Options(specs, values);
}

}  // namespace vdisk
