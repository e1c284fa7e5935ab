#include "mount/partition_tree.h"

#include "formats/core/error.h"
#include "formats/foreign.h"
#include "formats/registry.h"
#include "views/partition/partition_table.h"

namespace vdisk::mount {

namespace {

constexpr NodeId kRoot = 1;
constexpr int kTagShift = 56;
constexpr NodeId kInnerMask = (NodeId{1} << kTagShift) - 1;

class PartitionTree final : public FileTree {
 public:
  struct Part {
    std::string name;
    std::unique_ptr<FileTree> tree;
  };
  PartitionTree(std::vector<Part> parts, Timestamp mtime)
      : parts_(std::move(parts)), mtime_(mtime) {}

  NodeId root() const override { return kRoot; }

  NodeStat stat(NodeId node) const override {
    if (node == kRoot) {
      NodeStat st;
      st.id = kRoot;
      st.type = NodeType::kDirectory;
      st.mode = 0755;
      st.nlink = 2 + static_cast<uint32_t>(parts_.size());
      st.mtime = st.atime = st.ctime = mtime_;
      return st;
    }
    auto [i, inner] = split(node);
    NodeStat st = parts_[i].tree->stat(inner);
    st.id = node;
    return st;
  }

  std::vector<DirEntry> list(NodeId dir) const override {
    std::vector<DirEntry> out;
    if (dir == kRoot) {
      for (size_t i = 0; i < parts_.size(); ++i) {
        NodeStat st = stat(join(i, parts_[i].tree->root()));
        out.push_back(DirEntry{parts_[i].name, st});
      }
      return out;
    }
    auto [i, inner] = split(dir);
    out = parts_[i].tree->list(inner);
    for (DirEntry& e : out) e.stat.id = join(i, e.stat.id);
    return out;
  }

  NodeId lookup(NodeId dir, const std::string& name) const override {
    if (dir == kRoot) {
      for (size_t i = 0; i < parts_.size(); ++i) {
        if (parts_[i].name == name) return join(i, parts_[i].tree->root());
      }
      throw Error(ErrorKind::kNotFound, "", std::nullopt, "no entry named '" + name + "'");
    }
    auto [i, inner] = split(dir);
    return join(i, parts_[i].tree->lookup(inner, name));
  }

  size_t read(NodeId file, uint64_t offset, void* buf, size_t len) const override {
    auto [i, inner] = split(file);
    return parts_[i].tree->read(inner, offset, buf, len);
  }

  std::string readlink(NodeId link) const override {
    auto [i, inner] = split(link);
    return parts_[i].tree->readlink(inner);
  }

  Json info() const override {
    Json j = Json::object();
    for (const Part& p : parts_) j.set(p.name, p.tree->info());
    return j;
  }

 private:
  NodeId join(size_t i, NodeId inner) const {
    if (inner > kInnerMask) {
      throw Error(ErrorKind::kUnsupported, "", std::nullopt,
                  "node id " + std::to_string(inner) + " of " + parts_[i].name +
                      " does not fit the partition tree");
    }
    return (NodeId{i + 1} << kTagShift) | inner;
  }

  std::pair<size_t, NodeId> split(NodeId node) const {
    size_t tag = static_cast<size_t>(node >> kTagShift);
    if (tag == 0 || tag > parts_.size()) {
      throw Error(ErrorKind::kNotFound, "", std::nullopt, "no node " + std::to_string(node));
    }
    return {tag - 1, node & kInnerMask};
  }

  std::vector<Part> parts_;
  Timestamp mtime_;
};

}  // namespace

std::unique_ptr<FileTree> make_partition_tree(BlockDevicePtr disk, const std::string& image,
                                              Timestamp mtime,
                                              const std::function<void(const std::string&)>& warn) {
  partition::PartitionTable table;
  try {
    table = partition::read_partition_table(*disk, image);
  } catch (const Error& e) {
    if (warn) warn(std::string(e.what()) + " (no partition folders)");
    return nullptr;
  }
  std::vector<PartitionTree::Part> parts;
  for (const partition::Partition& p : table.partitions) {
    if (!p.has_data() || parts.size() >= 255) continue;
    std::string name = "p";
    name += std::to_string(p.number);
    try {
      BlockDevicePtr part = partition::open_partition(disk, p, image);
      auto tree = open_file_tree(part, image + "@" + name);
      if (tree) {
        parts.push_back({name, std::move(tree)});
      } else if (auto foreign = identify_foreign(*part)) {
        if (warn)
          warn(image + "@" + name + ": " + foreign_message(*foreign, "") + " (no folder " + name +
               ")");
      }
    } catch (const Error& e) {
      if (warn) warn(std::string(e.what()) + " (no folder " + name + ")");
    }
  }
  if (parts.empty()) return nullptr;
  return std::make_unique<PartitionTree>(std::move(parts), mtime);
}

}  // namespace vdisk::mount
