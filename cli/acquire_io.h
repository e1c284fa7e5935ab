// The two files `vdisk acquire` touches directly: the source (a block device
// or a regular file, only ever read) and the rescue file (a raw image
// written in place at the source's offsets, as GNU ddrescue writes its
// outfile, so either tool can continue the other's run).
#pragma once

#include <memory>
#include <string>

#include "converters/acquire.h"
#include "formats/core/block_device.h"

namespace vdisk::cli {

// Opens `path` read-only. A block device is opened with O_DIRECT when the
// device allows it (the page cache would otherwise read ahead into bad
// areas and retry there on its own), its size read with BLKGETSIZE64 and its
// logical sector size with BLKSSZGET; a regular file is read through the
// page cache. Reads failing with EIO (or any errno of a failing disk) throw
// Error(kIo) naming the offset; a read past the end (a device that shrank)
// also throws kIo. Throws Error for anything else (a directory, a FIFO).
BlockDevicePtr open_acquire_source(const std::string& path);

// The rescue file at `path`, opened for writing in place: created (sparse,
// extended to `size`) when `create`, else opened as it is (a resumed run;
// Error unless it exists as a regular file or block device). Never
// truncated. sync() is fdatasync when `durable`, else nothing (`-t unsafe`:
// as GNU ddrescue without --synchronous, a power loss may then leave the
// mapfile claiming bytes the file lost; a killed process loses nothing).
std::unique_ptr<RescueSink> open_rescue_file(const std::string& path, uint64_t size, bool create,
                                             bool durable);

}  // namespace vdisk::cli
