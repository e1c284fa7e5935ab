// The explicit list of file systems vdisk can read as a file tree. Adding one
// is a folder under formats/ and a line here.
#include "formats/core/file_tree.h"

namespace vdisk {

namespace iso9660 {
const FileSystemDescriptor& filesystem();
}
namespace fat {
const FileSystemDescriptor& filesystem();
}
namespace ext {
const FileSystemDescriptor& filesystem();
}

const std::vector<const FileSystemDescriptor*>& builtin_filesystems() {
  static const std::vector<const FileSystemDescriptor*> list = {
      &iso9660::filesystem(),
      &fat::filesystem(),
      &ext::filesystem(),
  };
  return list;
}

}  // namespace vdisk
