// The one place where the file-tree commands (ls, cat, extract) turn IMAGE
// into a FileTree. Today: open the image in any format (open_image) and probe
// the whole device for a file system. Partition selection (IMAGE@p2:/path,
// --partition N) belongs here later: it wraps the device in a SliceDevice
// before open_file_tree, and no command changes.
#pragma once

#include <memory>
#include <string>

#include "cli/cli.h"
#include "formats/core/file_tree.h"

namespace vdisk::cli {

struct OpenedTree {
  std::string image;  // as the user named it
  BlockDevicePtr device;
  std::unique_ptr<FileTree> tree;
};

// Opens vm[image_key] with the open options of add_open_options. Throws
// Error(kUnsupported) naming the image when no file system is recognised.
OpenedTree open_tree_from_args(const po::variables_map& vm, const std::string& image_key);

// The node at `path` inside the tree ("" or "/" is the root).
NodeId tree_path(const OpenedTree& t, const std::string& path);

// "drwxr-xr-x"-style mode string.
std::string mode_string(NodeType type, uint32_t mode);

}  // namespace vdisk::cli
