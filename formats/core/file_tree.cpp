#include "formats/core/file_tree.h"

#include "formats/core/error.h"

namespace vdisk {

std::vector<SkippedEntry> FileTree::skipped(NodeId) const {
  return {};
}

NodeId FileTree::lookup(NodeId dir, const std::string& name) const {
  for (const DirEntry& e : list(dir)) {
    if (e.name == name) return e.stat.id;
  }
  throw Error(ErrorKind::kNotFound, "", std::nullopt, "no entry named '" + name + "'");
}

std::vector<DirEntry> FileTree::list_system(NodeId) const {
  return {};
}

std::vector<DirEntry> FileTree::streams(NodeId) const {
  return {};
}

Extent FileTree::file_extent(NodeId file, uint64_t offset) const {
  uint64_t size = stat(file).size;
  return Extent{size > offset ? size - offset : 0, ExtentType::kData, 0};
}

Json FileTree::details(NodeId) const {
  return Json::object();
}

NodeId resolve_tree_path(const FileTree& tree, const std::string& path, const std::string& image) {
  NodeId node = tree.root();
  std::string walked;
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    std::string comp =
        path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    start = slash == std::string::npos ? path.size() : slash + 1;
    if (comp.empty() || comp == ".") continue;
    if (tree.stat(node).type != NodeType::kDirectory) {
      throw Error(ErrorKind::kNotFound, image, std::nullopt, "'" + walked + "' is not a directory");
    }
    walked += "/" + comp;
    try {
      node = tree.lookup(node, comp);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kNotFound) throw;
      throw Error(ErrorKind::kNotFound, image, std::nullopt,
                  "no such file in the image: " + walked);
    }
  }
  return node;
}

}  // namespace vdisk
