#include "cli/tree_open.h"

#include <cstdio>

#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/foreign.h"
#include "formats/registry.h"
#include "views/partition/partition_table.h"

namespace vdisk::cli {

namespace {

// Splits "IMAGE@pN" / "IMAGE@pN:PATH"; false when `arg` has no such suffix.
bool split_partition_spec(const std::string& arg, std::string& image, uint32_t& number,
                          std::string& path) {
  size_t at = arg.rfind("@p");
  if (at == std::string::npos || at == 0) return false;
  size_t digits = at + 2, end = digits;
  while (end < arg.size() && arg[end] >= '0' && arg[end] <= '9') ++end;
  if (end == digits || end - digits > 6) return false;
  if (end != arg.size() && arg[end] != ':') return false;
  image = arg.substr(0, at);
  number = static_cast<uint32_t>(std::stoul(arg.substr(digits, end - digits)));
  path = end == arg.size() ? std::string() : arg.substr(end + 1);
  if (path.empty() && end != arg.size()) path = "/";
  return true;
}

std::string partition_list(const partition::PartitionTable& table) {
  std::string s;
  for (const partition::Partition& p : table.partitions) {
    if (!p.has_data()) continue;
    s += (s.empty() ? "p" : ", p") + std::to_string(p.number);
  }
  return s;
}

}  // namespace

void add_tree_options(po::options_description& desc) {
  desc.add_options()("partition", po::value<std::string>()->value_name("N"),
                     "read the file system of partition N (Linux numbering: MBR 1-4 primary, "
                     "5+ logical; GPT entry order); same as IMAGE@pN")(
      "raw-names",
      "names exactly as recorded (ISO 9660 without Rock Ridge or Joliet: 'DOCS/F1.TXT;1' "
      "instead of 'docs/f1.txt', which is how Linux shows them)");
}

OpenedTree open_tree_from_args(const po::variables_map& vm, const std::string& image_key,
                               Env* env) {
  OpenedTree t;
  t.image = vm[image_key].as<std::string>();
  po::variables_map args = vm;
  std::string base, path;
  uint32_t number = 0;
  // A file literally named "x@p1" wins over the partition syntax.
  if (!Env::posix().exists(t.image) && split_partition_spec(t.image, base, number, path)) {
    t.image = base;
    t.partition = number;
    t.spec_path = path;
    args.at(image_key).value() = base;
  }
  if (vm.count("partition")) {
    const auto opt = static_cast<uint32_t>(
        parse_count_arg(vm["partition"].as<std::string>(), "--partition", UINT32_MAX));
    if (t.partition != 0 && t.partition != opt) {
      throw UsageError("--partition " + std::to_string(opt) + " and @p" +
                       std::to_string(t.partition) + " name different partitions");
    }
    t.partition = opt;
  }
  BlockDevicePtr disk =
      open_image(t.image, args.count("format") ? args["format"].as<std::string>() : "",
                 open_options_from(args, env));
  t.device = disk;
  std::string label = t.image;
  if (t.partition != 0) {
    partition::PartitionTable table = partition::read_partition_table(*disk, t.image);
    const partition::Partition* found = nullptr;
    for (const partition::Partition& p : table.partitions) {
      if (p.number == t.partition && p.has_data()) found = &p;
    }
    if (!found) {
      std::string have = partition_list(table);
      throw Error(ErrorKind::kNotFound, t.image, std::nullopt,
                  "no partition " + std::to_string(t.partition) + " (" +
                      (table.scheme == partition::Scheme::kNone
                           ? std::string("the disk has no partition table")
                           : std::string(partition::scheme_name(table.scheme)) +
                                 " partitions: " + (have.empty() ? "none" : have)) +
                      ")");
    }
    t.device = partition::open_partition(disk, *found, t.image);
    label = t.image + "@p" + std::to_string(t.partition);
  }
  TreeOptions topts;
  topts.raw_names = vm.count("raw-names") != 0;
  t.tree = open_file_tree(t.device, label, topts);
  if (!t.tree) {
    if (auto foreign = identify_foreign(*t.device)) {
      throw Error(ErrorKind::kUnsupported, label, std::nullopt, foreign_message(*foreign, ""));
    }
    std::string names;
    for (const FileSystemDescriptor* fs : builtin_filesystems())
      names += (names.empty() ? "" : ", ") + fs->name;
    std::string hint;
    if (t.partition == 0) {
      // A whole disk with a partition table: say which partitions to try.
      try {
        partition::PartitionTable table = partition::read_partition_table(*disk, t.image);
        std::string have = partition_list(table);
        if (!have.empty()) {
          hint = "; the disk has " + std::string(partition::scheme_name(table.scheme)) +
                 " partitions " + have + ": choose one with IMAGE@pN[:PATH] or --partition N";
        }
      } catch (const Error&) {
      }
    }
    throw Error(ErrorKind::kUnsupported, label, std::nullopt,
                "no file system recognised in this " + t.device->info().format +
                    (t.partition ? " partition" : " image") + " (known: " + names + ")" + hint);
  }
  return t;
}

std::string command_path(const OpenedTree& t, const po::variables_map& vm,
                         const std::string& path_key, const std::string& fallback) {
  bool given = vm.count(path_key) && !vm[path_key].defaulted();
  if (!t.spec_path.empty()) {
    if (given) {
      throw UsageError("the path is given twice: as IMAGE@pN:PATH and as " +
                       vm[path_key].as<std::string>());
    }
    return t.spec_path;
  }
  if (vm.count(path_key)) return vm[path_key].as<std::string>();
  return fallback;
}

NodeId tree_path(const OpenedTree& t, const std::string& path) {
  return resolve_tree_path(*t.tree, path, t.image);
}

uint64_t report_skipped(const OpenedTree& t, NodeId dir, const std::string& dir_path) {
  std::vector<SkippedEntry> skipped = t.tree->skipped(dir);
  const std::string shown_dir = dir_path.empty() ? "/" : escape_name(dir_path);
  // A crafted directory can hold thousands: the first few tell the story.
  constexpr size_t kShown = 20;
  if (skipped.size() > kShown) {
    std::fprintf(stderr, "vdisk: warning: %s: %zu entries skipped in %s; the first %zu:\n",
                 t.image.c_str(), skipped.size(), shown_dir.c_str(), kShown);
  }
  for (size_t i = 0; i < skipped.size() && i < kShown; ++i) {
    const SkippedEntry& s = skipped[i];
    const std::string name = escape_name(s.name);
    std::string where = s.offset ? " (byte " + std::to_string(*s.offset) + ")" : "";
    std::fprintf(stderr, "vdisk: warning: %s: skipped '%s' in %s%s: %s\n", t.image.c_str(),
                 name.c_str(), shown_dir.c_str(), where.c_str(), s.reason.c_str());
  }
  return skipped.size();
}

std::string mode_string(NodeType type, uint32_t mode) {
  char c = '-';
  switch (type) {
    case NodeType::kDirectory:
      c = 'd';
      break;
    case NodeType::kSymlink:
      c = 'l';
      break;
    case NodeType::kCharDevice:
      c = 'c';
      break;
    case NodeType::kBlockDevice:
      c = 'b';
      break;
    case NodeType::kFifo:
      c = 'p';
      break;
    case NodeType::kSocket:
      c = 's';
      break;
    default:
      break;
  }
  std::string s(1, c);
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) s += (mode & (0400u >> i)) ? rwx[i] : '-';
  if (mode & 04000) s[3] = (mode & 0100) ? 's' : 'S';
  if (mode & 02000) s[6] = (mode & 0010) ? 's' : 'S';
  if (mode & 01000) s[9] = (mode & 0001) ? 't' : 'T';
  return s;
}

}  // namespace vdisk::cli
