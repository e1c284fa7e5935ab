// Changing a monolithicSparse VMDK in place (vdisk rebase, commit): VDF
// "Hosted Sparse Extents". Grains not yet stored are appended at the end of
// the file (a grain table too, in both directories, where a directory entry
// is 0); flush() syncs the grains, then writes the grain tables (primary and
// redundant copies alike), syncs, then the directory entries of new tables.
// set_parent() rewrites the embedded descriptor's parentCID and
// parentFileNameHint within the sectors reserved for it.
#pragma once

#include <memory>

#include "formats/core/file.h"
#include "formats/core/image_updater.h"

namespace vdisk {
class BlockDevice;
}

namespace vdisk::vmdk {

// FormatDescriptor::update. Refuses (kUnsupported, naming the reason) all
// but a single-file hosted sparse VMDK with an embedded descriptor and
// uncompressed grains (monolithicSparse): descriptor files with separate
// extents, flat, streamOptimized and seSparse layouts.
std::unique_ptr<ImageUpdater> update_vmdk(UpdateFile& file, const BlockDevice& layer);

}  // namespace vdisk::vmdk
