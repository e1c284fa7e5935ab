#include "cli/tree_open.h"

#include "formats/core/error.h"

namespace vdisk::cli {

OpenedTree open_tree_from_args(const po::variables_map& vm, const std::string& image_key) {
  OpenedTree t;
  t.image = vm[image_key].as<std::string>();
  t.device = open_from_args(vm, image_key);
  t.tree = open_file_tree(t.device, t.image);
  if (!t.tree) {
    std::string names;
    for (const FileSystemDescriptor* fs : builtin_filesystems())
      names += (names.empty() ? "" : ", ") + fs->name;
    throw Error(ErrorKind::kUnsupported, t.image, std::nullopt,
                "no file system recognised in this " + t.device->info().format +
                    " image (known: " + names + ")");
  }
  return t;
}

NodeId tree_path(const OpenedTree& t, const std::string& path) {
  return resolve_tree_path(*t.tree, path, t.image);
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
