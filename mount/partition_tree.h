// The tree of a partitioned disk: a root holding one folder per partition
// whose file system vdisk reads (`p1/`, `p5/`, … in Linux numbering), each
// the root of that partition's FileTree. `vdisk mount --mode tree` shows it
// when the whole disk holds no file system itself.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "formats/core/block_device.h"
#include "formats/core/file_tree.h"

namespace vdisk::mount {

// Null when the disk has no partition table or no partition with a readable
// file system. Partitions that fail to open are skipped with a warning
// through `warn` (when set). `mtime` dates the root directory.
// Node ids: the root is 1; a node of partition folder i (0-based) is
// (i + 1) << 56 | its id in that partition's tree. Thread-safe.
std::unique_ptr<FileTree> make_partition_tree(BlockDevicePtr disk, const std::string& image,
                                              Timestamp mtime,
                                              const std::function<void(const std::string&)>& warn);

}  // namespace vdisk::mount
