#include "formats/core/format.h"
#include "formats/vmdk/vmdk_check.h"
#include "formats/vmdk/vmdk_inplace.h"
#include "formats/vmdk/vmdk_reader.h"
#include "formats/vmdk/vmdk_writer.h"

namespace vdisk::vmdk {

const FormatDescriptor& descriptor() {
  static const FormatDescriptor d{
      .name = "vmdk",
      .aliases = {},
      .description =
          "VMware virtual disk: sparse, flat, split, streamOptimized, seSparse (read), snapshot "
          "chains",
      .extensions = {"vmdk"},
      .subformats = {"monolithicSparse", "twoGbMaxExtentSparse", "monolithicFlat",
                     "twoGbMaxExtentFlat", "streamOptimized"},
      .probe = probe_vmdk,
      .open = open_vmdk,
      .create = create_vmdk,
      .create_options = create_options(),
      // Only streamOptimized accepts "-"; create_vmdk refuses it for the others.
      .can_stream = true,
      .size_rules = {{.when = "",
                      .unit = 512,
                      .min_size = 512,
                      .pads = false,
                      .why = "VMDK capacities are whole 512-byte sectors, and at least one"}},
      .roundtrip_options = {"grain_size=4K", "subformat=streamOptimized,grain_size=4K",
                            "subformat=twoGbMaxExtentSparse,grain_size=1M"},
      .check = check_vmdk,
      .resize = resize_vmdk,
      .update = update_vmdk,
  };
  return d;
}

}  // namespace vdisk::vmdk
