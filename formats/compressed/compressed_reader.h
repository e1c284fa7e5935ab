// A compressed raw image as a block device. The index (compressed_index.h)
// splits the disk into units: the span between two access points, or 1 MiB
// pieces of a span longer than kMaxUnit (a single-block xz, a single-frame
// zstd, which can only be decoded from their start). A read decodes the units
// it touches, starting from their access point or from a decoder left at the
// unit's start by the previous read (sequential reads never restart), and
// keeps recently decoded units in a bounded cache. Sequential reads decode the
// next units ahead on every core. Zero runs found while decoding answer
// block_status as kZero and are read without decoding.
#pragma once

#include <memory>
#include <string>

#include "formats/compressed/codec.h"
#include "formats/core/format.h"

namespace vdisk::compressed {

// Builds (or loads from opts.index_path, or saves there) the index of `file`
// with `codec`, and returns the device. Thread-safe device.
BlockDevicePtr open_compressed(std::shared_ptr<const File> file, const OpenOptions& opts,
                               std::unique_ptr<Codec> codec);

}  // namespace vdisk::compressed
