#include "formats/core/file_tree.h"
#include "formats/fat/fat_tree.h"

namespace vdisk::fat {

const FileSystemDescriptor& filesystem() {
  static const FileSystemDescriptor d{
      .name = "fat",
      .probe = probe,
      .open = open_fat_tree,
  };
  return d;
}

}  // namespace vdisk::fat
