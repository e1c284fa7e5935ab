// The block view (disk.raw, pN, info.json) as a FileTree, and the choice
// between it and the image's own file tree.
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "formats/core/error.h"
#include "formats/registry.h"
#include "mount/mount.h"
#include "mount/partition_tree.h"
#include "views/partition/partition_table.h"

namespace vdisk::mount {

Mode parse_mode(const std::string& text) {
  if (text == "auto") return Mode::kAuto;
  if (text == "block") return Mode::kBlock;
  if (text == "tree") return Mode::kTree;
  throw Error(ErrorKind::kInvalidArgument, "", std::nullopt,
              "--mode must be auto, block or tree, not '" + text + "'");
}

namespace {

// Node ids: the root is 1, its entries 2, 3, … in listing order.
constexpr NodeId kRoot = 1;

class BlockView final : public FileTree {
 public:
  struct Node {
    std::string name;
    BlockDevicePtr dev;  // null for info.json
    std::string text;    // info.json contents
  };

  BlockView(std::vector<Node> nodes, Timestamp mtime)
      : nodes_(std::move(nodes)), mtime_(mtime), uid_(::getuid()), gid_(::getgid()) {}

  NodeId root() const override { return kRoot; }

  NodeStat stat(NodeId id) const override {
    NodeStat st;
    st.id = id;
    st.uid = uid_;
    st.gid = gid_;
    st.mtime = st.atime = st.ctime = mtime_;
    if (id == kRoot) {
      st.type = NodeType::kDirectory;
      st.mode = 0555;
      st.nlink = 2;
      return st;
    }
    const Node& n = node(id);
    st.type = NodeType::kRegular;
    st.mode = 0444;
    st.size = n.dev ? n.dev->size() : n.text.size();
    return st;
  }

  std::vector<DirEntry> list(NodeId dir) const override {
    if (dir != kRoot) throw Error(ErrorKind::kInvalidArgument, "", std::nullopt, "not a directory");
    std::vector<DirEntry> out;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      out.push_back(DirEntry{nodes_[i].name, stat(kRoot + 1 + i)});
    }
    return out;
  }

  size_t read(NodeId id, uint64_t offset, void* buf, size_t len) const override {
    const Node& n = node(id);
    const uint64_t size = n.dev ? n.dev->size() : n.text.size();
    if (offset >= size) return 0;
    len = static_cast<size_t>(std::min<uint64_t>(len, size - offset));
    if (n.dev) {
      n.dev->read(offset, buf, len);
    } else {
      std::memcpy(buf, n.text.data() + offset, len);
    }
    return len;
  }

  std::string readlink(NodeId) const override {
    throw Error(ErrorKind::kInvalidArgument, "", std::nullopt, "not a symbolic link");
  }

  Json info() const override {
    Json j = Json::object();
    j.set("view", "block");
    return j;
  }

 private:
  const Node& node(NodeId id) const {
    if (id <= kRoot || id - kRoot > nodes_.size()) {
      throw Error(ErrorKind::kNotFound, "", std::nullopt, "no such node " + std::to_string(id));
    }
    return nodes_[id - kRoot - 1];
  }

  std::vector<Node> nodes_;
  Timestamp mtime_;
  uint32_t uid_, gid_;
};

void warn_to(const ViewRequest& req, const std::string& msg) {
  if (req.warn) req.warn(msg);
}

}  // namespace

std::unique_ptr<FileTree> make_block_view(const ViewRequest& req) {
  std::vector<BlockView::Node> nodes;
  nodes.push_back({"disk.raw", req.disk, ""});
  ImageInfo info = full_info(*req.disk);
  // A damaged table costs the partition files, never the whole disk.
  try {
    partition::PartitionTable table = partition::read_partition_table(*req.disk, req.image);
    if (table.scheme != partition::Scheme::kNone) {
      info.partition_table = table.to_json([&](const partition::Partition& p) {
        return describe_contents(partition::open_partition(req.disk, p, req.image));
      });
    }
    for (const std::string& w : table.warnings) warn_to(req, w);
    for (const partition::Partition& p : table.partitions) {
      if (!p.has_data()) continue;  // an extended container: its logicals are listed
      BlockView::Node n;
      char name[16];
      std::snprintf(name, sizeof name, "p%u", p.number);
      n.name = name;
      n.dev = partition::open_partition(req.disk, p, req.image);
      nodes.push_back(std::move(n));
    }
  } catch (const Error& e) {
    warn_to(req, std::string(e.what()) + " (no partition files)");
  }
  nodes.push_back({"info.json", nullptr, info_to_json(info).dump(2) + "\n"});
  return std::make_unique<BlockView>(std::move(nodes), req.mtime);
}

std::unique_ptr<FileTree> make_view(const ViewRequest& req) {
  if (req.mode == Mode::kBlock) return make_block_view(req);
  std::unique_ptr<FileTree> tree;
  try {
    tree = open_file_tree(req.disk, req.image);
  } catch (const Error& e) {
    if (req.mode == Mode::kTree) throw;
    warn_to(req, std::string(e.what()) + " (showing the block view)");
  }
  if (tree) return tree;
  if (req.mode == Mode::kTree) {
    // A partitioned disk: one folder per partition with a readable file system.
    if (auto parts = make_partition_tree(req.disk, req.image, req.mtime, req.warn)) return parts;
    std::string known;
    for (const FileSystemDescriptor* fs : builtin_filesystems())
      known += (known.empty() ? "" : ", ") + fs->name;
    throw Error(ErrorKind::kUnsupported, req.image, std::nullopt,
                "no file system vdisk can read as a tree (known: " +
                    (known.empty() ? std::string("none") : known) + "); use --mode block");
  }
  return make_block_view(req);
}

}  // namespace vdisk::mount
