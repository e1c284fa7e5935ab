// Writing compressed raw images: `-O raw -o compression=gzip|xz|zstd[,level=N]`.
// The output is a stream plain gunzip / xz -d / zstd -d decode, laid out for
// random access: independent pieces of kChunk bytes of disk, compressed on
// every core (formats/core/ordered_pool.h):
//   gzip: one member per 1 MiB (BGZF-style; still one valid gzip file)
//   xz:   one stream, a block per 4 MiB, the index listing them
//   zstd: a frame per 4 MiB and the zstd seekable format's seek table
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "formats/core/format.h"
#include "formats/core/writer.h"

namespace vdisk::compressed {

// The options the raw writer gains: compression=none|gzip|xz|zstd, level=N.
std::vector<OptionSpec> compression_options();

// A copy of `raw` (the raw format's descriptor) with compression_options()
// added to its create options; its writer compresses when compression= is not
// none, and is raw's own writer otherwise. Built once, on the first call.
const FormatDescriptor& with_compression(const FormatDescriptor& raw);

// The compressed writer for `codec` ("gzip", "xz", "zstd") at `level`
// (negative: the codec's default).
std::unique_ptr<ImageWriter> create_compressed(const CreateRequest& req, const std::string& codec,
                                               int level);

}  // namespace vdisk::compressed
