// Renders the engine's progress on stderr: a bar on a terminal, one summary
// line a phase otherwise, or JSON lines (one a second) for scripts.
#pragma once

#include <memory>
#include <string>

#include "converters/progress.h"

namespace vdisk::cli {

// A renderer, or null when neither `enabled` nor `json`. The bar is redrawn
// at most ten times a second, in place (the line cleared to its end, the
// rate field of fixed width); units are binary (MiB, MiB/s), as in sizes.
// JSON lines: {"phase", "state" (start|running|done), "bytes_done",
// "bytes_total", "rate_bytes_per_s", "eta_s" (null when unknown),
// "elapsed_s"}.
std::unique_ptr<ProgressSink> make_progress(bool enabled, bool json);

// "   12.3 MiB/s": right-aligned, 13 columns up to 9.5 TiB/s.
std::string format_rate(double bytes_per_s);

}  // namespace vdisk::cli
