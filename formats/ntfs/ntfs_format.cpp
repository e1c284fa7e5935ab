#include "formats/core/file_tree.h"
#include "formats/ntfs/ntfs_tree.h"

namespace vdisk::ntfs {

const FileSystemDescriptor& filesystem() {
  static const FileSystemDescriptor d{
      .name = "ntfs",
      .probe = probe,
      .open = open_ntfs_tree,
  };
  return d;
}

}  // namespace vdisk::ntfs
