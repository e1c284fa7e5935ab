#include "formats/core/format.h"
#include "formats/raw/raw_reader.h"
#include "formats/raw/raw_writer.h"

namespace vdisk::raw {

namespace {
// Anything can be read as raw; every other format outranks it.
int probe(const ProbeInput&) {
  return kProbeFallback;
}
}  // namespace

const FormatDescriptor& descriptor() {
  static const FormatDescriptor d{
      .name = "raw",
      .aliases = {"img", "dd"},
      .description = "plain sector-by-sector image; split sets (.001, .002, …) read as one disk",
      .extensions = {"raw", "img", "dd", "bin", "001"},
      .subformats = {},
      .probe = probe,
      .open = open_raw,
      .create = create_raw,
      .create_options = {},
      .can_stream = true,
      .size_rules = {},
      .roundtrip_options = {},
      .resize = resize_raw,
      .update = update_raw,
  };
  return d;
}

}  // namespace vdisk::raw
