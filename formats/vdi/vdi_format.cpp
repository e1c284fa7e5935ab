#include "formats/core/format.h"
#include "formats/vdi/vdi_check.h"
#include "formats/vdi/vdi_reader.h"
#include "formats/vdi/vdi_writer.h"

namespace vdisk::vdi {

namespace {
// The signature at 0x40 is the mark; the pre-header text differs between
// VirtualBox releases and qemu.
int probe(const ProbeInput& in) {
  return has_vdi_signature(in.head) ? kProbeSignature : 0;
}
}  // namespace

const FormatDescriptor& descriptor() {
  static const FormatDescriptor d{
      .name = "vdi",
      .aliases = {},
      .description = "VirtualBox Disk Image: dynamic, static (fixed) and differencing",
      .extensions = {"vdi"},
      .subformats = {"dynamic", "static"},
      .probe = probe,
      .open = open_vdi,
      .create = create_vdi,
      .create_options = create_options(),
      .can_stream = false,
      .size_rules = {{.when = "",
                      .unit = 512,
                      .min_size = 0,
                      .pads = false,
                      .why = "VDI disk sizes are whole 512-byte sectors"}},
      .roundtrip_options = {},
      .check = check_vdi,
      .resize = resize_vdi,
      .update = update_vdi,
  };
  return d;
}

}  // namespace vdisk::vdi
