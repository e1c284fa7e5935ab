// Renders the engine's progress on stderr: a bar on a terminal, one summary
// line a phase otherwise, or JSON lines (one a second) for scripts.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "converters/acquire.h"
#include "converters/progress.h"

namespace vdisk::cli {

// A renderer, or null when neither `enabled` nor `json`. The bar is redrawn
// at most ten times a second, in place (the line cleared to its end, the
// rate field of fixed width); units are binary (MiB, MiB/s), as in sizes.
// JSON lines: {"phase", "state" (start|running|done), "bytes_done",
// "bytes_total", "rate_bytes_per_s", "eta_s" (null when unknown),
// "elapsed_s"}.
std::unique_ptr<ProgressSink> make_progress(bool enabled, bool json);

// The status of `vdisk acquire` (ddrescue's status screen), or an empty
// function when neither `enabled` nor `json`. On a terminal one line redrawn
// in place; otherwise one line when a phase or pass starts and at the end;
// JSON lines: {"phase", "pass", "state" (running|done), "position",
// "size", "rescued", "non_tried", "non_trimmed", "non_scraped",
// "bad_sector", "bad_areas", "read_errors", "current_rate_bytes_per_s",
// "average_rate_bytes_per_s", "pct_rescued", "run_time_s",
// "remaining_s" (null when unknown), "since_good_read_s"}.
std::function<void(const AcquireStatus&)> make_acquire_status(bool enabled, bool json);

// "   12.3 MiB/s": right-aligned, 13 columns up to 9.5 TiB/s.
std::string format_rate(double bytes_per_s);

}  // namespace vdisk::cli
