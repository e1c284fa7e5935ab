#include "formats/core/format.h"
#include "formats/vhd/vhd_check.h"
#include "formats/vhd/vhd_inplace.h"
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
      .size_rules = {{.when = "",
                      .unit = 512,
                      .min_size = 0,
                      .pads = false,
                      .why = "the VHD footer's Current Size is whole 512-byte sectors"},
                     {.when = "target=azure",
                      .unit = 1 << 20,
                      .min_size = 20 << 20,
                      .pads = true,
                      .why = "Azure takes fixed VHDs of a whole number of MiB from 20 MiB; "
                             "target=azure pads to it (its help says so)"}},
      .roundtrip_options = {"block_size=64K", "subformat=fixed,creator=qemu"},
      .check = check_vhd,
      .resize = resize_vhd,
      .update = update_vhd,
  };
  return d;
}

}  // namespace vdisk::vhd
