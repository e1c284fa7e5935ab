// `vdisk measure`: the bytes an output would take, found by running the
// format's own writer into an Env that keeps only the length of what it
// writes. The writer's layout code is the one computation, so the answer is
// exact for our writers by construction (tests/test_measure.cpp compares it
// with real conversions) and never drifts from them.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "formats/core/block_device.h"
#include "formats/core/format.h"

namespace vdisk {

struct Measurement {
  // The output of converting the content given (or of an empty image): the
  // sum of the lengths of every file the writer makes.
  uint64_t required = 0;
  // The output when every guest byte holds data (incompressible data for
  // the writers that compress).
  uint64_t fully_allocated = 0;
  uint64_t virtual_size = 0;  // what the writer makes of the size asked for
};

// Measures `format`'s writer with `req` (its path names the output as the
// writer will see it: relative names, such as a qcow2 backing file, resolve
// from its folder; nothing is written there, files are only read through
// req.env or Env::posix()). `content` is the source to measure (null: an
// empty image of req.virtual_size). Throws what the writer throws (an
// option it refuses, a size it cannot make), and Error(kInterrupted) when
// *cancel becomes true. Time: one pass of the writer over the content, and
// one over a fully allocated guest (no disk output, but the writer's work
// is done: compression is done for real).
Measurement measure_output(const FormatDescriptor& format, const CreateRequest& req,
                           const BlockDevice* content, const std::atomic<bool>* cancel);

}  // namespace vdisk
