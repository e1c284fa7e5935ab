#include <cstring>

#include "formats/core/format.h"
#include "formats/vhdx/vhdx_check.h"
#include "formats/vhdx/vhdx_inplace.h"
#include "formats/vhdx/vhdx_layout.h"
#include "formats/vhdx/vhdx_reader.h"
#include "formats/vhdx/vhdx_writer.h"

namespace vdisk::vhdx {

namespace {
// 2.2.1: every VHDX starts with the file type identifier "vhdxfile".
int probe(const ProbeInput& in) {
  return in.head.size() >= 8 && std::memcmp(in.head.data(), kFileSignature, 8) == 0
             ? kProbeSignature
             : 0;
}
}  // namespace

const FormatDescriptor& descriptor() {
  static const FormatDescriptor d{
      .name = "vhdx",
      .aliases = {"avhdx"},
      .description = "Hyper-V VHDX: fixed, dynamic and differencing; dirty logs replayed in memory",
      .extensions = {"vhdx", "avhdx"},
      .subformats = {"dynamic", "fixed"},
      .probe = probe,
      .open = open_vhdx,
      .create = create_vhdx,
      .create_options = create_options(),
      .can_stream = false,
      .size_rules = {{.when = "",
                      .unit = 512,
                      .min_size = 0,
                      .pads = false,
                      .why = "VHDX virtual sizes are whole logical sectors"},
                     {.when = "logical_sector_size=4096",
                      .unit = 4096,
                      .min_size = 0,
                      .pads = false,
                      .why = "VHDX virtual sizes are whole logical sectors"}},
      .roundtrip_options = {"block_size=1M", "subformat=fixed,block_size=1M",
                            "subformat=fixed,preallocation=full",
                            "logical_sector_size=4096,block_size=1M"},
      .check = check_vhdx,
      .resize = resize_vhdx,
      .update = update_vhdx,
  };
  return d;
}

}  // namespace vdisk::vhdx
