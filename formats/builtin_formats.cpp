// The explicit list of built-in image formats, in the order `vdisk formats`
// shows them. Adding a format is a folder under formats/ and a line here.
#include "formats/core/registry.h"

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

}  // namespace vdisk
