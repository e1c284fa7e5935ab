#include "formats/core/format.h"
#include "formats/qcow2/qcow2_check.h"
#include "formats/qcow2/qcow2_inplace.h"
#include "formats/qcow2/qcow2_reader.h"
#include "formats/qcow2/qcow2_writer.h"

namespace vdisk::qcow2 {

const FormatDescriptor& descriptor() {
  static const FormatDescriptor d{
      .name = "qcow2",
      .aliases = {},
      .description =
          "QEMU copy-on-write v2/v3: compressed (zlib, zstd), extended L2, backing "
          "chains, internal snapshots (read), external data files (read)",
      .extensions = {"qcow2", "qcow"},
      .subformats = {},
      .probe = probe_qcow2,
      .open = open_qcow2,
      .create = create_qcow2,
      .create_options = create_options(),
      // create_qcow2 plans the whole layout first when the output is "-".
      .can_stream = true,
      .size_rules = {{.when = "",
                      .unit = 512,
                      .min_size = 0,
                      .pads = false,
                      .why = "qcow2 virtual sizes are whole 512-byte sectors (QEMU's block layer)"}},
      .has_snapshots = true,
      .check = check_qcow2,
      .resize = resize_qcow2,
      .update = update_qcow2,
  };
  return d;
}

}  // namespace vdisk::qcow2
