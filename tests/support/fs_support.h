// Helpers for the FAT and ext tests: open a filesystem image as a file tree
// and compare the tree, node by node, with a directory on the host (the
// source the image was made from, or an oracle tool's extraction of it).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/core/file_tree.h"

namespace vdisk::test {

// Opens `image` (any format) and the best-probing file tree in it; FAILs the
// test when no filesystem is found.
std::unique_ptr<FileTree> open_tree(const std::string& image);

// Every byte of a regular file, read in odd-sized pieces (unaligned reads).
std::vector<uint8_t> read_whole(const FileTree& tree, NodeId file);

struct TreeCompare {
  bool modes = false;   // permission bits equal the host's
  bool owners = false;  // uid/gid equal the host's
  bool mtimes = false;  // modification seconds equal the host's
  // Names in the tree's top directory that the host lacks by design
  // (lost+found, made by mke2fs).
  std::vector<std::string> extra_top_level;
};

// Compares the directory `node` of `tree` with host directory `dir`
// recursively: the same names, types, sizes, contents and link targets.
// Returns the number of entries compared (CHECK failures report each
// difference by path).
size_t compare_with_host(const FileTree& tree, NodeId node, const std::string& dir,
                         const TreeCompare& how, const std::string& where = "");

// Writes `len` pseudo-random bytes to `path` (creating it).
void write_random_file(const std::string& path, size_t len, uint32_t seed);

}  // namespace vdisk::test
