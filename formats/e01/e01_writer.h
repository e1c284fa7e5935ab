// Writing EWF-E01 images laid out as EnCase 6 (and libewf's encase6 writer)
// lay them out:
//   segment 1:  file header, header2, header2, header, volume,
//               {sectors, table, table2}..., next
//   segment k:  file header, data, {sectors, table, table2}..., next
//   last:       ... {sectors, table, table2}..., [data (single segment)],
//               [error2], digest, hash, done
// Tables hold at most 16 375 entries (FTK's limit) with offsets relative to
// the table base (the sectors section), so no sectors section passes 2 GiB.
// Chunks are compressed on every core and written in guest order; the MD5
// and SHA-1 of the media are computed in the same pass, zeros included, on
// threads of their own.
#pragma once

#include <memory>
#include <vector>

#include "formats/core/options.h"
#include "formats/core/writer.h"

namespace vdisk::e01 {

// The -o options: compression=none|fast|best (default fast),
// segment_size (default 1.4 GiB), sectors_per_chunk (16..32768, a power of
// two, default 64), media_type, and the case metadata case_number,
// evidence_number, examiner, description, notes.
std::vector<OptionSpec> create_options();

// Refuses, before creating anything: an output not named *.E01 (or .e01;
// the segments after it are named from it), standard output, a size that is
// not a whole number of sectors (unless req.allow_resize), case metadata
// beyond EnCase's limits, a segment size outside 1 MiB..2^63 or too small
// for two chunks. Every segment is created under a temporary name and takes
// its final name in finish(); abort() or a failure removes them all.
std::unique_ptr<ImageWriter> create_e01(const CreateRequest& req);

}  // namespace vdisk::e01
