#include <cstdio>

#include "cli/cli.h"
#include "formats/foreign.h"

namespace vdisk::cli {

std::string describe_create_options(const FormatDescriptor& f, unsigned width) {
  std::vector<std::pair<std::string, std::string>> rows;
  for (const OptionSpec& o : f.create_options) {
    std::string name = "-o " + o.name + "=" + option_type_name(o.type);
    std::string help = o.help;
    if (!o.choices.empty()) {
      std::string choices;
      for (auto& c : o.choices) choices += (choices.empty() ? "" : "|") + c;
      name = "-o " + o.name + "=" + choices;
      // A long list goes into the text, where it can wrap.
      if (name.size() + 4 > width / 2) {
        name = "-o " + o.name + "=...";
        help += "; one of:";
        for (auto& c : o.choices) help += " " + c + (&c == &o.choices.back() ? "" : ",");
      }
    }
    if (!o.default_value.empty()) help += " (default " + o.default_value + ")";
    rows.emplace_back(name, help);
  }
  return two_columns(rows, width);
}

namespace {

const char* foreign_kind_name(ForeignKind k) {
  switch (k) {
    case ForeignKind::kDiskImage:
      return "disk image";
    case ForeignKind::kForensic:
      return "forensic container";
    case ForeignKind::kCompressed:
      return "compressed stream";
    case ForeignKind::kArchive:
      return "archive";
    case ForeignKind::kEncrypted:
      return "encrypted volume";
    case ForeignKind::kNotADisk:
      return "not a disk";
  }
  return "other";
}

}  // namespace

int cmd_formats(const std::vector<std::string>& args) {
  po::options_description desc("options");
  desc.add_options()("output", po::value<std::string>()->default_value("human"), "human or json");
  const std::vector<Positional> pos;
  po::variables_map vm;
  if (!parse_args("formats", "[--output human|json]", desc, pos, args, vm)) return kExitOk;

  if (want_json(vm)) {
    Json list = Json::array();
    for (const FormatDescriptor* f : builtin_formats()) {
      Json j = Json::object();
      j.set("name", f->name);
      Json aliases = Json::array();
      for (auto& a : f->aliases) aliases.push(a);
      j.set("aliases", std::move(aliases));
      j.set("description", f->description);
      j.set("read", f->open != nullptr);
      j.set("write", f->create != nullptr);
      j.set("stream_output", f->can_stream);
      j.set("resize", f->resize != nullptr);
      Json exts = Json::array();
      for (auto& e : f->extensions) exts.push(e);
      j.set("extensions", std::move(exts));
      Json subs = Json::array();
      for (auto& s : f->subformats) subs.push(s);
      j.set("subformats", std::move(subs));
      Json opts = Json::array();
      for (auto& o : f->create_options) {
        Json oj = Json::object();
        oj.set("name", o.name);
        oj.set("type", option_type_name(o.type));
        oj.set("default", o.default_value);
        oj.set("help", o.help);
        if (!o.choices.empty()) {
          Json c = Json::array();
          for (auto& ch : o.choices) c.push(ch);
          oj.set("choices", std::move(c));
        }
        opts.push(std::move(oj));
      }
      j.set("create_options", std::move(opts));
      j.set("recognised_only", false);
      list.push(std::move(j));
    }
    // The containers the registry names and refuses (formats/foreign.h), in
    // the same list so a script sees every name vdisk knows.
    for (const ForeignFormat& f : foreign_formats()) {
      Json j = Json::object();
      j.set("name", f.name);
      j.set("description", f.article);
      j.set("read", false);
      j.set("write", false);
      j.set("recognised_only", true);
      j.set("kind", foreign_kind_name(f.kind));
      j.set("advice", f.advice);
      list.push(std::move(j));
    }
    std::printf("%s\n", list.dump(2).c_str());
    return kExitOk;
  }

  const unsigned width = terminal_width();
  // The description column wraps under itself.
  std::printf("%-8s %-5s %-6s %-7s %s\n", "FORMAT", "READ", "WRITE", "STREAM", "DESCRIPTION");
  for (const FormatDescriptor* f : builtin_formats()) {
    std::printf("%-8s %-5s %-6s %-7s %s\n", f->name.c_str(), f->open ? "yes" : "no",
                f->create ? "yes" : "no", f->can_stream ? "yes" : "no",
                wrap(f->description, width, 30, 30).c_str());
  }
  // What vdisk recognises only to refuse it by name (never read as raw).
  std::printf("\nRecognised but not read (refused by name; -f raw reads the bytes as they are):\n");
  std::vector<std::pair<std::string, std::string>> rows;
  for (const ForeignFormat& f : foreign_formats())
    rows.emplace_back(f.name, f.article + ": " + f.advice);
  std::printf("%s", two_columns(rows, width).c_str());
  for (const FormatDescriptor* f : builtin_formats()) {
    std::printf("\n%s", f->name.c_str());
    if (!f->aliases.empty()) {
      std::printf(" (alias:");
      for (auto& a : f->aliases) std::printf(" %s", a.c_str());
      std::printf(")");
    }
    std::string exts = "extensions:";
    for (auto& e : f->extensions) exts += " ." + e;
    std::printf("\n  %s\n", wrap(exts, width, 2, 4).c_str());
    if (!f->subformats.empty()) {
      std::string subs = "subformats:";
      for (auto& sub : f->subformats) subs += " " + sub;
      std::printf("  %s\n", wrap(subs, width, 2, 4).c_str());
    }
    if (f->create) {
      if (f->create_options.empty()) std::printf("  -o options: none\n");
      std::printf("%s", describe_create_options(*f, width).c_str());
    }
  }
  return kExitOk;
}

}  // namespace vdisk::cli
