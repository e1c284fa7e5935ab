#include "cli/args.h"

#include <algorithm>
#include <iostream>

#include "cli/text.h"
#include "formats/core/error.h"
#include "formats/core/options.h"

namespace vdisk::cli {

namespace {

namespace style = po::command_line_style;

// The option of `desc` a command-line token names ("--hash=x", "--ha",
// "-Oraw"), or null. Long names may be abbreviated, as Boost allows.
const po::option_description* option_of_token(const po::options_description& desc,
                                              const std::string& tok) {
  if (tok.size() < 2 || tok[0] != '-' || tok == "--") return nullptr;
  if (tok[1] == '-') {
    const std::string name = tok.substr(2, tok.find('=') - 2);
    try {
      return desc.find_nothrow(name, /*approx=*/true);
    } catch (const po::error&) {
      return nullptr;  // ambiguous
    }
  }
  for (const auto& o : desc.options()) {
    if (o->canonical_display_name(style::allow_dash_for_short) == tok.substr(0, 2)) return o.get();
  }
  return nullptr;
}

// How the user wrote option `o` on this command line, or its usual form
// (the short one when it has one) when it is not there.
std::string typed_name(const po::option_description& o, const po::options_description& desc,
                       const std::vector<std::string>& args) {
  for (const std::string& tok : args) {
    if (tok == "--") break;
    if (option_of_token(desc, tok) != &o) continue;
    return tok[1] == '-' ? tok.substr(0, tok.find('=')) : tok.substr(0, 2);
  }
  const std::string shown = o.canonical_display_name(style::allow_dash_for_short);
  return shown.size() == 2 && shown[0] == '-' ? shown : "--" + o.long_name();
}

// The first token that is an option `desc` does not have.
std::string unknown_token(const po::options_description& desc,
                          const std::vector<std::string>& args) {
  for (const std::string& tok : args) {
    if (tok == "--") break;
    if (tok.size() < 2 || tok[0] != '-') continue;
    if (tok[1] != '-') {
      if (!option_of_token(desc, tok)) return tok.substr(0, 2);
      continue;
    }
    const std::string name = tok.substr(2, tok.find('=') - 2);
    bool ambiguous = false;
    try {
      if (desc.find_nothrow(name, true)) continue;
    } catch (const po::error&) {
      ambiguous = true;
    }
    if (!ambiguous) return "--" + name;
  }
  return "";
}

std::string usage_hint(const std::string& name, const std::string& usage) {
  return "vdisk " + name + " " + synopsis(usage);
}

// The default of option `o`, when it has a string one.
bool has_empty_default(const po::option_description& o) {
  boost::any value;
  if (!o.semantic()->apply_default(value)) return false;
  const std::string* s = boost::any_cast<std::string>(&value);
  return s && s->empty();
}

bool is_empty_value(const boost::any& v) {
  if (const auto* s = boost::any_cast<std::string>(&v)) return s->empty();
  if (const auto* list = boost::any_cast<std::vector<std::string>>(&v)) {
    for (const std::string& s : *list) {
      if (s.empty()) return true;
    }
  }
  return false;
}

// The usage line wrapped between its top-level groups ("[-t writeback|unsafe]"
// stays on one line) when every group fits on a line, else between words.
std::string wrap_usage(const std::string& usage, unsigned width, unsigned indent) {
  const char kKeep = '\x01';  // a space inside brackets, kept while wrapping
  std::string glued = usage;
  int depth = 0;
  size_t group = 0, longest = 0;
  for (char& c : glued) {
    if (c == '[' || c == '(') ++depth;
    if ((c == ']' || c == ')') && depth > 0) --depth;
    if (c == ' ' && depth > 0) c = kKeep;
    group = c == ' ' ? 0 : group + 1;
    longest = std::max(longest, group);
  }
  if (indent + longest > width) return wrap(usage, width, indent, indent);
  std::string out = wrap(glued, width, indent, indent);
  std::replace(out.begin(), out.end(), kKeep, ' ');
  return out;
}

void print_help(const std::string& name, const std::string& usage,
                const po::options_description& desc, const std::vector<Positional>& positionals) {
  const unsigned width = terminal_width();
  const std::string lead = "usage: vdisk " + name + " ";
  std::cout << lead << wrap_usage(usage, width, static_cast<unsigned>(lead.size())) << "\n\n";
  if (!positionals.empty()) {
    std::vector<std::pair<std::string, std::string>> rows;
    for (const Positional& p : positionals) rows.emplace_back(p.metavar, p.help);
    std::cout << "arguments:\n" << two_columns(rows, width) << "\n";
  }
  po::options_description shown("options", width, width / 2);
  for (const auto& o : desc.options()) shown.add(o);
  std::cout << shown << "\n";
}

}  // namespace

std::string synopsis(const std::string& usage) {
  std::string out;
  int depth = 0;
  for (size_t i = 0; i < usage.size(); ++i) {
    const char c = usage[i];
    const bool word_start = i == 0 || usage[i - 1] == ' ';
    if (c == '[' && (depth > 0 || word_start)) {
      ++depth;
      continue;
    }
    if (c == ']' && depth > 0) {
      --depth;
      continue;
    }
    if (depth == 0) out += c;
  }
  // Collapse the spaces the dropped groups leave.
  std::string tidy;
  for (char c : out) {
    if (c == ' ' && (tidy.empty() || tidy.back() == ' ')) continue;
    tidy += c;
  }
  while (!tidy.empty() && tidy.back() == ' ') tidy.pop_back();
  return tidy;
}

namespace {
CommandHelp* g_capture = nullptr;

void describe(const std::string& name, const std::string& usage,
              const po::options_description& desc, const std::vector<Positional>& positionals,
              CommandHelp& out) {
  out.name = name;
  out.usage = usage;
  out.positionals = positionals;
  for (const auto& o : desc.options()) {
    HelpOption h;
    const std::string shown = o->canonical_display_name(style::allow_dash_for_short);
    if (shown.size() == 2 && shown[0] == '-') h.short_name = shown;
    h.long_name = "--" + o->long_name();
    if (o->semantic()->max_tokens() > 0) h.value = o->format_parameter();
    h.help = o->description();
    out.options.push_back(std::move(h));
  }
}
}  // namespace

void capture_help(CommandHelp* into) {
  g_capture = into;
}

bool parse_args(const std::string& name, const std::string& usage, po::options_description& desc,
                const std::vector<Positional>& positionals, const std::vector<std::string>& args,
                po::variables_map& vm, const EarlyAnswer& early) {
  desc.add_options()("help,h", "show this help");
  if (g_capture) {
    describe(name, usage, desc, positionals, *g_capture);
    return false;
  }
  // -p / --progress / --progress json / --progress=json: Program_options
  // binds an optional value only with '=' and would take the next word as the
  // value of "-p", so the forms are normalised here for commands whose
  // --progress takes a value (add_progress_option).
  std::vector<std::string> joined;
  const po::option_description* prog = desc.find_nothrow("progress", false);
  const bool prog_value = prog && prog->semantic()->max_tokens() > 0;
  for (size_t i = 0; i < args.size(); ++i) {
    if (prog_value && (args[i] == "--progress" || args[i] == "-p")) {
      if (i + 1 < args.size() &&
          (args[i + 1] == "json" || args[i + 1] == "bar" || args[i + 1] == "human")) {
        joined.push_back("--progress=" + args[++i]);
      } else {
        joined.push_back("--progress=bar");
      }
    } else {
      joined.push_back(args[i]);
    }
  }
  // The positional arguments are options Boost fills from bare words; they
  // stay out of `desc`, so -h and the suggestions never show their keys.
  po::options_description hidden;
  po::positional_options_description pos;
  for (const Positional& p : positionals) {
    auto* v = po::value<std::string>();
    if (!p.required && !p.default_value.empty()) v->default_value(p.default_value);
    hidden.add_options()(p.key.c_str(), v, p.help.c_str());
    pos.add(p.key.c_str(), 1);
  }
  po::options_description all;
  all.add(desc).add(hidden);

  try {
    po::store(po::command_line_parser(joined).options(all).positional(pos).run(), vm);
  } catch (const po::unknown_option&) {
    const std::string tok = unknown_token(desc, joined);
    std::vector<std::string> names;
    if (tok.size() > 2) {
      for (const auto& o : desc.options()) names.push_back("--" + o->long_name());
    }
    throw UsageError("unknown option " + (tok.empty() ? std::string("given") : tok) +
                     did_you_mean(tok, names));
  } catch (const po::too_many_positional_options_error&) {
    throw UsageError("too many arguments: " + usage_hint(name, usage));
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  if (vm.count("help")) {
    print_help(name, usage, desc, positionals);
    return false;
  }
  if (early && early(vm)) return false;

  for (const Positional& p : positionals) {
    auto it = vm.find(p.key);
    if (it == vm.end()) {
      if (p.required) throw UsageError("missing " + p.noun + ": " + usage_hint(name, usage));
      continue;
    }
    if (!it->second.defaulted() && is_empty_value(it->second.value()))
      throw UsageError("the " + p.noun + " (" + p.metavar + ") is empty");
  }
  for (const auto& o : desc.options()) {
    const std::string& key = o->long_name();
    auto it = vm.find(key);
    if (it == vm.end()) {
      if (o->semantic()->is_required())
        throw UsageError("missing " + typed_name(*o, desc, joined) + ": " +
                         usage_hint(name, usage));
      continue;
    }
    if (!it->second.defaulted() && o->semantic()->max_tokens() > 0 &&
        is_empty_value(it->second.value()) && !has_empty_default(*o))
      throw UsageError("empty value for " + typed_name(*o, desc, joined));
  }
  try {
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  return true;
}

uint64_t parse_size_arg(const std::string& text, const std::string& option) {
  try {
    return parse_size(text, option);
  } catch (const Error& e) {
    throw UsageError(e.message() + " (a byte count, or with K, M, G, T: 64M, 1G)");
  }
}

uint64_t parse_count_arg(const std::string& text, const std::string& option, uint64_t max) {
  uint64_t v = 0;
  bool ok = !text.empty() && text.size() <= 20;
  for (char c : text) {
    if (c < '0' || c > '9') {
      ok = false;
      break;
    }
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (d > max || v > (max - d) / 10) {
      ok = false;
      break;
    }
    v = v * 10 + d;
  }
  if (!ok) {
    throw UsageError(option + ": '" + text + "' is not a number from 0 to " + std::to_string(max));
  }
  return v;
}

}  // namespace vdisk::cli
