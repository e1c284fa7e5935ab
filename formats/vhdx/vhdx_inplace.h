// Changing a VHDX in place (vdisk rebase, vdisk commit), [MS-VHDX] 2.2.2,
// 2.3, 2.5, 2.6.2.6. Units are payload blocks. Every BAT and metadata change
// goes through the log (write_through_log, as resize's do), and only after
// the data it exposes was written and synced:
// - write(): before the first byte, a new DataWriteGuid (and FileWriteGuid)
//   by the header update procedure (2.2.2: the guest data is about to
//   change; children made over the old content no longer match it). A
//   block stored fully present is written where it is; a partially present
//   one (differencing) too, becoming fully present at flush() (whole units
//   are written, so every sector of it is this layer's: its sector bitmap
//   bits are no longer consulted); any other block is appended at the end of
//   the file, 1 MiB-aligned, becoming fully present at flush(). Fully
//   present is a valid state in a differencing disk (2.5.1.1) and the one
//   vdisk create -b stores.
// - flush(): sync, then the BAT entries through the log, as many log entries
//   as the log region needs (each entry's blocks are independent).
// - set_parent(): one log entry with the Parent Locator item (vhdx_writer's,
//   as create -b writes it; in place when it fits, else after the last
//   item), the metadata table entry and HasParent (a dynamic VHDX becomes
//   differencing: its BAT gains the trailing sector bitmap entry).
//   Onto nothing: the sectors a partially present block does not mark are
//   zeroed in the file, synced, and the block becomes fully present; the
//   sector bitmap entries are cleared; then HasParent and the locator go in
//   one log entry.
// A crash leaves an image that opens with each block old or new, and the
// parent named old or new; a committed parent's children name its old
// DataWriteGuid and must be relinked (vdisk rebase -u).
#pragma once

#include <memory>

#include "formats/core/file.h"
#include "formats/core/image_updater.h"

namespace vdisk {
class BlockDevice;
}

namespace vdisk::vhdx {

// FormatDescriptor::update over the VHDX `layer` (a VhdxDevice) opened from
// `file`. Refuses (Error kUnsupported) an image whose log holds entries not
// yet applied, and, in set_parent, a parent that is not a VHDX, a fixed
// VHDX made a child, a locator that does not fit the metadata region.
std::unique_ptr<ImageUpdater> update_vhdx(UpdateFile& file, const BlockDevice& layer);

}  // namespace vdisk::vhdx
