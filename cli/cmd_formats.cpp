#include <cstdio>

#include "cli/cli.h"

namespace vdisk::cli {

int cmd_formats(const std::vector<std::string>& args) {
  po::options_description desc("options");
  desc.add_options()("output", po::value<std::string>()->default_value("human"), "human or json");
  po::positional_options_description pos;
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
      list.push(std::move(j));
    }
    std::printf("%s\n", list.dump(2).c_str());
    return kExitOk;
  }

  std::printf("%-8s %-5s %-6s %-7s %s\n", "FORMAT", "READ", "WRITE", "STREAM", "DESCRIPTION");
  for (const FormatDescriptor* f : builtin_formats()) {
    std::printf("%-8s %-5s %-6s %-7s %s\n", f->name.c_str(), f->open ? "yes" : "no",
                f->create ? "yes" : "no", f->can_stream ? "yes" : "no", f->description.c_str());
  }
  for (const FormatDescriptor* f : builtin_formats()) {
    std::printf("\n%s", f->name.c_str());
    if (!f->aliases.empty()) {
      std::printf(" (alias:");
      for (auto& a : f->aliases) std::printf(" %s", a.c_str());
      std::printf(")");
    }
    std::printf("\n  extensions:");
    for (auto& e : f->extensions) std::printf(" .%s", e.c_str());
    std::printf("\n");
    if (!f->subformats.empty()) {
      std::printf("  subformats:");
      for (auto& s : f->subformats) std::printf(" %s", s.c_str());
      std::printf("\n");
    }
    if (f->create) {
      if (f->create_options.empty()) std::printf("  -o options: none\n");
      for (auto& o : f->create_options) {
        std::string type = option_type_name(o.type);
        if (!o.choices.empty()) {
          type.clear();
          for (auto& c : o.choices) type += (type.empty() ? "" : "|") + c;
        }
        std::printf("  -o %-20s %-28s %s%s\n", o.name.c_str(), type.c_str(), o.help.c_str(),
                    o.default_value.empty() ? "" : (" (default " + o.default_value + ")").c_str());
      }
    }
  }
  return kExitOk;
}

}  // namespace vdisk::cli
