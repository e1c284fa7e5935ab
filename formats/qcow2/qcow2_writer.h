// Writing qcow2: version 3 (compat 1.1) or 2 (compat 0.10), any cluster size
// from 512 B to 2 MiB, compressed clusters (deflate or zstd, on every core),
// preallocation, extended L2 entries, and a child over a backing image that
// stores only the clusters that differ from it.
#pragma once

#include <memory>
#include <vector>

#include "formats/core/options.h"
#include "formats/core/writer.h"

namespace vdisk::qcow2 {

// The -o options (compat, cluster_size, compression, preallocation,
// backing_file, backing_fmt, extended_l2, refcount_bits).
std::vector<OptionSpec> create_options();

// A file: one pass over the guest stream; metadata is placed as it is
// needed (L1 after the header, each L2 table before its first data cluster,
// a refcount block at the start of each span it covers, the refcount table at
// the end) and the header is written last. "-" (standard output): the
// layout is planned from CreateRequest::source before the first byte
// (header, refcount table and blocks, L1, L2 tables, then data), so the
// output only appends; that needs a source that can be read twice and no
// compression. Every image is clean for `qemu-img check`: exact refcounts,
// OFLAG_COPIED wherever the refcount is 1, nothing allocated past the end.
std::unique_ptr<ImageWriter> create_qcow2(const CreateRequest& req);

}  // namespace vdisk::qcow2
