// vdisk ls [-l] [-R] IMAGE [PATH]: list a directory of the file system inside
// an image (any file system behind FileTree).
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <set>

#include "cli/cli.h"
#include "cli/tree_open.h"
#include "formats/core/error.h"

namespace vdisk::cli {

namespace {

std::string time_string(const Timestamp& t) {
  std::time_t s = static_cast<std::time_t>(t.seconds);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
  return buf;
}

void print_entry(const FileTree& tree, const std::string& name, const NodeStat& st, bool lng) {
  if (!lng) {
    std::printf("%s\n", name.c_str());
    return;
  }
  std::string size =
      (st.type == NodeType::kCharDevice || st.type == NodeType::kBlockDevice)
          ? std::to_string(st.rdev >> 32) + ", " + std::to_string(st.rdev & 0xFFFFFFFF)
          : std::to_string(st.size);
  std::string link;
  if (st.type == NodeType::kSymlink) link = " -> " + tree.readlink(st.id);
  std::printf("%s %3u %5u %5u %12s %s %s%s\n", mode_string(st.type, st.mode).c_str(), st.nlink,
              st.uid, st.gid, size.c_str(), time_string(st.mtime).c_str(), name.c_str(),
              link.c_str());
}

void list_dir(const FileTree& tree, NodeId dir, const std::string& prefix, bool lng, bool recursive,
              std::set<NodeId>& on_path) {
  std::vector<DirEntry> entries = tree.list(dir);
  std::sort(entries.begin(), entries.end(),
            [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
  for (const DirEntry& e : entries) {
    std::string path = prefix.empty() ? e.name : prefix + "/" + e.name;
    print_entry(tree, recursive ? path : e.name, e.stat, lng);
    if (recursive && e.stat.type == NodeType::kDirectory) {
      // A directory reached again below itself would recurse for ever.
      if (!on_path.insert(e.stat.id).second) {
        throw Error(ErrorKind::kCorrupt, "", std::nullopt, "directory loop at " + path);
      }
      list_dir(tree, e.stat.id, path, lng, recursive, on_path);
      on_path.erase(e.stat.id);
    }
  }
}

}  // namespace

int cmd_ls(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_open_options(desc);
  add_tree_options(desc);
  desc.add_options()("long,l", "long listing: mode, links, owner, group, size, time, link target")(
      "recursive,R", "list subdirectories too, as paths");
  const std::vector<Positional> pos = {
      {"image", "IMAGE", "image", "the image (IMAGE@pN: its partition N; IMAGE@pN:PATH)"},
      {"path", "PATH", "path", "directory or file inside the image (default: /)", false, "/"},
  };
  po::variables_map vm;
  if (!parse_args("ls", "[-l] [-R] [--partition N] IMAGE[@pN[:PATH]] [PATH]", desc, pos, args, vm))
    return kExitOk;
  OpenedTree t = open_tree_from_args(vm, "image");
  std::string path = command_path(t, vm, "path", "/");
  NodeId node = tree_path(t, path);
  NodeStat st = t.tree->stat(node);
  bool lng = vm.count("long") != 0;
  if (st.type != NodeType::kDirectory) {
    std::string name =
        path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
    print_entry(*t.tree, name, st, lng);
    return kExitOk;
  }
  std::set<NodeId> on_path{node};
  try {
    list_dir(*t.tree, node, "", lng, vm.count("recursive") != 0, on_path);
  } catch (const Error& e) {
    if (!e.file().empty()) throw;
    throw Error(e.kind(), t.image, e.offset(), e.message());
  }
  return kExitOk;
}

}  // namespace vdisk::cli
