#include "formats/core/file_tree.h"
#include "formats/ext/ext_tree.h"

namespace vdisk::ext {

const FileSystemDescriptor& filesystem() {
  static const FileSystemDescriptor d{
      .name = "ext",
      .probe = probe,
      .open = open_ext_tree,
  };
  return d;
}

}  // namespace vdisk::ext
