#include "formats/core/format.h"
#include "formats/vhd/vhd_reader.h"
#include "formats/vhd/vhd_writer.h"

namespace vdisk::vhd {

const FormatDescriptor& descriptor() {
  static const FormatDescriptor d{
      .name = "vhd",
      .aliases = {"vpc"},
      .description = "Microsoft Virtual PC / Hyper-V / Azure VHD: fixed, dynamic, differencing",
      .extensions = {"vhd"},
      .subformats = {"dynamic", "fixed"},
      .probe = probe_vhd,
      .open = open_vhd,
      .create = create_vhd,
      .create_options = vhd_create_options(),
      .can_stream = false,
  };
  return d;
}

}  // namespace vdisk::vhd
