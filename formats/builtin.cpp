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
namespace qcow2 {
const FormatDescriptor& descriptor();
}
namespace compressed {
const FormatDescriptor& with_compression(const FormatDescriptor& raw);
const FormatDescriptor& gzip_descriptor();
const FormatDescriptor& xz_descriptor();
const FormatDescriptor& zstd_descriptor();
const FormatDescriptor& bzip2_descriptor();
}  // namespace compressed
namespace dmg {
const FormatDescriptor& descriptor();
}
namespace e01 {
const FormatDescriptor& descriptor();
}

const std::vector<const FormatDescriptor*>& builtin_formats() {
  static const std::vector<const FormatDescriptor*> list = {
      &compressed::with_compression(raw::descriptor()),
      &iso9660::descriptor(),
      &vmdk::descriptor(),
      &vhd::descriptor(),
      &vhdx::descriptor(),
      &vdi::descriptor(),
      &qcow2::descriptor(),
      &e01::descriptor(),
      // Before the compressed formats: a DMG's data fork often starts with
      // a bzip2 stream; its koly trailer wins the tie (first listed wins).
      &dmg::descriptor(),
      &compressed::gzip_descriptor(),
      &compressed::xz_descriptor(),
      &compressed::zstd_descriptor(),
      &compressed::bzip2_descriptor(),
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
