// Shared pieces of the `vdisk` subcommands: the command table, option parsing
// on top of Boost.Program_options, opening images, output helpers.
#pragma once

#include <atomic>
#include <boost/program_options.hpp>
#include <memory>
#include <string>
#include <vector>

#include "converters/hasher.h"
#include "converters/progress.h"
#include "formats/core/block_device.h"
#include "formats/core/registry.h"
#include "formats/ddrescue/rescued_device.h"

namespace vdisk::cli {

namespace po = boost::program_options;

// Exit codes: 0 success, 1 "different"/"mismatch", 2 any error, 130 interrupted.
inline constexpr int kExitOk = 0;
inline constexpr int kExitDifferent = 1;
inline constexpr int kExitError = 2;
inline constexpr int kExitInterrupted = 130;

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>& args);
};

// The explicit list of subcommands (cli/commands.cpp).
const std::vector<Command>& commands();

// Set by SIGINT/SIGTERM; long operations poll it and stop cleanly.
std::atomic<bool>& cancel_flag();

// A usage error: printed as "vdisk <cmd>: MESSAGE" with a hint, exit 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses `args` for subcommand `name`. Positionals are named in `positional`
// (each must also be declared in `desc`). Returns false when -h/--help was
// given (usage already printed to stdout). Throws UsageError.
bool parse_args(const std::string& name, const std::string& usage, po::options_description& desc,
                const po::positional_options_description& positional,
                const std::vector<std::string>& args, po::variables_map& vm);

// Adds the options every command that opens an image takes: -f, --parent,
// --allow-outside-paths.
void add_open_options(po::options_description& desc, const char* format_flag = "format,f");
// Builds OpenOptions from those.
OpenOptions open_options_from(const po::variables_map& vm);
// Opens IMAGE with the format from `format_key` in vm (empty: probe).
BlockDevicePtr open_from_args(const po::variables_map& vm, const std::string& image_key,
                              const std::string& format_key = "format");

// Adds -p / --progress[=bar|json] (parse_args also accepts "--progress json").
void add_progress_option(po::options_description& desc);
// The renderer the user asked for with add_progress_option's flag (or null).
std::unique_ptr<ProgressSink> progress_from(const po::variables_map& vm);

// Adds --mapfile (a GNU ddrescue mapfile of the image).
void add_mapfile_option(po::options_description& desc);
// With --mapfile: `dev` seen through the mapfile (unrescued areas
// unallocated, reading as zeros, or failing with EIO in kEio mode, for
// `vdisk mount --mapfile MAP --bad-areas eio|zeros`: see
// ddrescue::parse_bad_area_mode); null without it. Also lists the unrescued
// areas on stderr under the label `image`.
std::shared_ptr<const ddrescue::RescuedDevice> rescued_from(
    const po::variables_map& vm, BlockDevicePtr dev, const std::string& image,
    ddrescue::BadAreaMode mode = ddrescue::BadAreaMode::kZeros);
// The unrescued areas as JSON: {"path", "bad_area_count", "bad_bytes",
// "bad_areas": [{"start", "length", "end", "status", "status_name"}]}.
Json bad_areas_json(const ddrescue::RescuedDevice& dev);

// Adds --size (the byte count of a raw image read from standard input, '-').
void add_stdin_size_option(po::options_description& desc);
// Opens IMAGE like open_from_args, or standard input as a raw stream when
// IMAGE is '-' (requires --size). `*is_stream` tells which.
BlockDevicePtr open_source(const po::variables_map& vm, const std::string& image_key,
                           bool* is_stream);

// "2026-11-21T00:38:17Z": the current time, UTC, ISO 8601.
std::string utc_now_iso8601();
// {"md5": "...", "sha256": "..."}.
Json hashes_json(const std::vector<HashValue>& hashes);
// Writes a report through Env::create_output (temporary file, renamed into
// place). Refuses an existing file unless `overwrite`.
void write_report(const std::string& path, const Json& report, bool overwrite);
// Throws Error(kInvalidArgument) when `path` exists and !overwrite (checked
// before long work starts).
void check_report_path(const std::string& path, bool overwrite);

// "human" or "json" from --output; throws UsageError otherwise.
bool want_json(const po::variables_map& vm);

// A progress renderer: a bar on a terminal, a summary line otherwise, or JSON
// lines (one a second) when `json` is set. Writes to stderr.
std::unique_ptr<ProgressSink> make_progress(bool enabled, bool json);

// Info of a device with allocated_bytes filled in from block status.
ImageInfo full_info(const BlockDevice& dev);
Json info_to_json(const ImageInfo& info);

std::string hex_offset(uint64_t v);

}  // namespace vdisk::cli
