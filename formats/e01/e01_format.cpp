#include "formats/core/format.h"
#include "formats/e01/e01_reader.h"
#include "formats/e01/e01_writer.h"

namespace vdisk::e01 {

const FormatDescriptor& descriptor() {
  static const FormatDescriptor d{
      .name = "e01",
      .aliases = {"ewf"},
      .description =
          "Expert Witness (EnCase E01, SMART s01): segmented, compressed forensic images with "
          "case metadata and stored MD5/SHA-1",
      .extensions = {"e01", "s01"},
      .subformats = {},
      .probe = probe_e01,
      .open = open_e01,
      .create = create_e01,
      .create_options = create_options(),
      .can_stream = false,
      .size_rules = {{.when = "",
                      .unit = 512,
                      .min_size = 0,
                      .pads = false,
                      .why = "EWF media are whole sectors (bytes_per_sector, 512 by default)"}},
  };
  return d;
}

}  // namespace vdisk::e01
