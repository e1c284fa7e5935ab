// vdisk ls [-l] [-R] [-a] [--output json] IMAGE [PATH]: list a directory of the
// file system inside an image (any file system behind FileTree). Named data
// streams show in long listings as "file:stream"; entries the file system
// keeps for itself (FileTree::list_system) only with -a.
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
  // Names and link targets come from the image: escaped (escape_name).
  if (!lng) {
    std::printf("%s\n", escape_name(name).c_str());
    return;
  }
  std::string size =
      (st.type == NodeType::kCharDevice || st.type == NodeType::kBlockDevice)
          ? std::to_string(st.rdev >> 32) + ", " + std::to_string(st.rdev & 0xFFFFFFFF)
          : std::to_string(st.size);
  std::string link;
  if (st.type == NodeType::kSymlink) link = " -> " + escape_name(tree.readlink(st.id));
  std::printf("%s %3u %5u %5u %12s %s %s%s\n", mode_string(st.type, st.mode).c_str(), st.nlink,
              st.uid, st.gid, size.c_str(), time_string(st.mtime).c_str(),
              escape_name(name).c_str(), link.c_str());
}

const char* type_name(NodeType t) {
  switch (t) {
    case NodeType::kDirectory:
      return "directory";
    case NodeType::kSymlink:
      return "symlink";
    case NodeType::kCharDevice:
      return "char-device";
    case NodeType::kBlockDevice:
      return "block-device";
    case NodeType::kFifo:
      return "fifo";
    case NodeType::kSocket:
      return "socket";
    default:
      return "file";
  }
}

Json time_json(const Timestamp& t) {
  Json j = Json::object();
  j.set("seconds", static_cast<long long>(t.seconds));
  j.set("nanoseconds", t.nanoseconds);
  return j;
}

struct Listing {
  bool lng = false, recursive = false, all = false;
  Json* json = nullptr;  // when set, entries are collected here instead of printed
};

void emit(const FileTree& tree, const std::string& name, const NodeStat& st, const Listing& how) {
  if (!how.json) {
    print_entry(tree, name, st, how.lng);
    return;
  }
  Json j = Json::object();
  j.set("name", name);
  j.set("type", type_name(st.type));
  j.set("mode", st.mode);
  j.set("nlink", st.nlink);
  j.set("uid", st.uid);
  j.set("gid", st.gid);
  j.set("size", st.size);
  if (st.type == NodeType::kCharDevice || st.type == NodeType::kBlockDevice) {
    j.set("major", st.rdev >> 32);
    j.set("minor", st.rdev & 0xFFFFFFFF);
  }
  if (st.type == NodeType::kSymlink) j.set("target", tree.readlink(st.id));
  j.set("mtime", time_json(st.mtime));
  j.set("atime", time_json(st.atime));
  j.set("ctime", time_json(st.ctime));
  Json details = tree.details(st.id);
  if (details.is_object() && !details.as_object().empty()) j.set("details", details);
  how.json->push(std::move(j));
}

// One entry and, in long or JSON listings, its named streams as "name:stream".
void show(const FileTree& tree, const std::string& name, const NodeStat& st, const Listing& how) {
  emit(tree, name, st, how);
  if (!how.lng && !how.json) return;
  for (const DirEntry& s : tree.streams(st.id)) emit(tree, name + ":" + s.name, s.stat, how);
}

// Walks directories once each: a directory reached from two places (a loop,
// or a shared subtree whose walk doubles with every level) is listed once and
// counted as skipped.
struct Lister {
  const OpenedTree& t;
  const Listing& how;
  std::set<NodeId> seen;  // directories listed so far, anywhere in the tree
  uint64_t skipped = 0;

  void list_dir(NodeId dir, const std::string& prefix) {
    if (cancel_flag().load())
      throw Error(ErrorKind::kInterrupted, t.image, std::nullopt, "interrupted");
    std::vector<DirEntry> entries = t.tree->list(dir);
    skipped += report_skipped(t, dir, "/" + prefix);
    if (how.all) {
      std::vector<DirEntry> hidden = t.tree->list_system(dir);
      entries.insert(entries.end(), hidden.begin(), hidden.end());
    }
    std::sort(entries.begin(), entries.end(),
              [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
    for (const DirEntry& e : entries) {
      std::string path = prefix.empty() ? e.name : prefix + "/" + e.name;
      if (how.recursive && e.stat.type == NodeType::kDirectory && !seen.insert(e.stat.id).second) {
        std::fprintf(stderr,
                     "vdisk: warning: %s: skipped /%s: a directory already listed (corrupt file "
                     "system: one directory reached from two places)\n",
                     t.image.c_str(), escape_name(path).c_str());
        ++skipped;
        continue;
      }
      show(*t.tree, how.recursive ? path : e.name, e.stat, how);
      if (how.recursive && e.stat.type == NodeType::kDirectory) list_dir(e.stat.id, path);
    }
  }
};

}  // namespace

int cmd_ls(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_open_options(desc);
  add_tree_options(desc);
  desc.add_options()("long,l", "long listing: mode, links, owner, group, size, time, link target")(
      "recursive,R", "list subdirectories too, as paths")(
      "all,a", "also list entries the file system keeps for itself (NTFS $MFT, $Extend ...)")(
      "output", po::value<std::string>()->default_value("human"),
      "human or json (json: every field, times to the nanosecond, file-system details)");
  const std::vector<Positional> pos = {
      {"image", "IMAGE", "image", "the image (IMAGE@pN: its partition N; IMAGE@pN:PATH)"},
      {"path", "PATH", "path", "directory or file inside the image (default: /)", false, "/"},
  };
  po::variables_map vm;
  if (!parse_args("ls", "[-l] [-R] [-a] [--output json] [--partition N] IMAGE[@pN[:PATH]] [PATH]",
                  desc, pos, args, vm))
    return kExitOk;
  OpenedTree t = open_tree_from_args(vm, "image");
  std::string path = command_path(t, vm, "path", "/");
  NodeId node = tree_path(t, path);
  NodeStat st = t.tree->stat(node);
  Listing how;
  how.lng = vm.count("long") != 0;
  how.recursive = vm.count("recursive") != 0;
  how.all = vm.count("all") != 0;
  Json entries = Json::array();
  if (want_json(vm)) how.json = &entries;
  Lister lister{t, how, {node}, 0};
  try {
    if (st.type != NodeType::kDirectory) {
      std::string name =
          path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
      show(*t.tree, name, st, how);
    } else {
      lister.list_dir(node, "");
    }
  } catch (const Error& e) {
    if (!e.file().empty()) throw;
    throw Error(e.kind(), t.image, e.offset(), e.message());
  }
  if (how.json) std::printf("%s\n", entries.dump(2).c_str());
  // Something could not be shown: finished, but not everything is there.
  if (lister.skipped) return kExitDataLost;
  return kExitOk;
}

}  // namespace vdisk::cli
