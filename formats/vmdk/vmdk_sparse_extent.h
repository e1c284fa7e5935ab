// Sparse extents: hosted KDMV (monolithicSparse, twoGbMaxExtentSparse,
// streamOptimized) and ESXi seSparse. Both become one in-memory grain map
// (grain -> unallocated | zero | file offset), loaded and validated at open.
#pragma once

#include <memory>

#include "formats/core/file.h"
#include "formats/core/format.h"
#include "formats/vmdk/vmdk_layout.h"
#include "formats/vmdk/vmdk_reader.h"

namespace vdisk::vmdk {

// Opens the hosted sparse extent in `file` whose header is `h` (from sector
// 0). Validates every directory and table entry against the file size; a
// damaged primary grain directory falls back to the redundant one with a
// warning through opts.warn. A streamOptimized header with gdOffset = -1 is
// completed from the footer.
std::unique_ptr<ExtentReader> open_hosted_sparse(std::shared_ptr<const File> file,
                                                 const SparseHeader& h, const OpenOptions& opts);

// Compressed grains inflated so far by this process (all extents). Lets
// tests check that the grain cache keeps sequential readers from inflating a
// grain twice.
uint64_t grains_inflated();

// Opens an seSparse extent (read only).
std::unique_ptr<ExtentReader> open_sesparse(std::shared_ptr<const File> file,
                                            const OpenOptions& opts);

}  // namespace vdisk::vmdk
