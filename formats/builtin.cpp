// The explicit lists of built-in image formats (in the order `vdisk formats`
// shows them) and file systems. Adding one is a folder under formats/, a
// vdisk_add_format line in CMakeLists.txt and a line here.
#include "formats/registry.h"

namespace vdisk {

namespace raw {
const FormatDescriptor& descriptor();
}
namespace iso9660 {
const FormatDescriptor& descriptor();
}
namespace vmdk {
const FormatDescriptor& descriptor();
}
namespace vhd {
const FormatDescriptor& descriptor();
}
namespace vhdx {
const FormatDescriptor& descriptor();
}
namespace vdi {
const FormatDescriptor& descriptor();
}

const std::vector<const FormatDescriptor*>& builtin_formats() {
  static const std::vector<const FormatDescriptor*> list = {
      &raw::descriptor(), &iso9660::descriptor(), &vmdk::descriptor(),
      &vhd::descriptor(), &vhdx::descriptor(),    &vdi::descriptor(),
  };
  return list;
}

namespace iso9660 {
const FileSystemDescriptor& filesystem();
}
namespace fat {
const FileSystemDescriptor& filesystem();
}
namespace ext {
const FileSystemDescriptor& filesystem();
}
namespace ntfs {
const FileSystemDescriptor& filesystem();
}

const std::vector<const FileSystemDescriptor*>& builtin_filesystems() {
  static const std::vector<const FileSystemDescriptor*> list = {
      &iso9660::filesystem(),
      &fat::filesystem(),
      &ext::filesystem(),
      &ntfs::filesystem(),
  };
  return list;
}

}  // namespace vdisk
