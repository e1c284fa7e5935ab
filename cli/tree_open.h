// The one place where the file-tree commands (ls, cat, extract) turn IMAGE
// into a FileTree: open the image in any format (open_image), pick a
// partition when asked (IMAGE@pN[:PATH] or --partition N; MBR/GPT numbered
// as Linux does), and probe that device for a file system.
#pragma once

#include <memory>
#include <string>

#include "cli/cli.h"
#include "formats/core/file_tree.h"

namespace vdisk::cli {

struct OpenedTree {
  std::string image;      // the image file, as the user named it (without @pN:PATH)
  BlockDevicePtr device;  // the whole disk, or the chosen partition
  std::unique_ptr<FileTree> tree;
  uint32_t partition = 0;  // 0: the whole device
  std::string spec_path;   // PATH from IMAGE@pN:PATH (empty when not given)
};

// Adds --partition N and --raw-names to a file-tree command's options.
void add_tree_options(po::options_description& desc);

// Opens vm[image_key] with the open options of add_open_options. IMAGE may be
// IMAGE@pN or IMAGE@pN:PATH (when no file of that literal name exists).
// Throws Error(kUnsupported) naming the image when no file system is
// recognised (listing the partitions, when the disk has some), and
// Error(kNotFound) for a partition number the disk does not have. The
// image's files are read through `env` (null: Env::posix()).
OpenedTree open_tree_from_args(const po::variables_map& vm, const std::string& image_key,
                               Env* env = nullptr);

// The path a command works on: PATH from IMAGE@pN:PATH, else vm[path_key]
// (or `fallback` when that is absent). Throws UsageError when both are given.
std::string command_path(const OpenedTree& t, const po::variables_map& vm,
                         const std::string& path_key, const std::string& fallback);

// The node at `path` inside the tree ("" or "/" is the root).
NodeId tree_path(const OpenedTree& t, const std::string& path);

// Prints one warning line per entry the tree left out of `dir` (after
// listing it); returns how many. `dir_path` names the directory in messages.
uint64_t report_skipped(const OpenedTree& t, NodeId dir, const std::string& dir_path);

// "drwxr-xr-x"-style mode string.
std::string mode_string(NodeType type, uint32_t mode);

}  // namespace vdisk::cli
