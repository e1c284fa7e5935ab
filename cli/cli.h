// Shared pieces of the `vdisk` subcommands: the command table, option parsing
// on top of Boost.Program_options, opening images, output helpers.
#pragma once

#include <atomic>
#include <boost/program_options.hpp>
#include <memory>
#include <string>
#include <vector>

#include "converters/convert.h"
#include "converters/hasher.h"
#include "converters/progress.h"
#include "formats/core/block_device.h"
#include "formats/registry.h"
#include "views/ddrescue/rescued_device.h"

namespace vdisk::cli {

namespace po = boost::program_options;

// Exit codes: 0 success, 1 "different"/"mismatch", 2 any error, 3 completed
// but source bytes could not be read (--on-read-error continue: the output or
// hash is there, with zeros where the read errors were), 130 interrupted.
inline constexpr int kExitOk = 0;
inline constexpr int kExitDifferent = 1;
inline constexpr int kExitError = 2;
inline constexpr int kExitDataLost = 3;
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
// With --mapfile, or when `dev` lists ranges its acquisition could not read
// (BlockDevice::unreadable_ranges, an E01's error2; painted over the
// mapfile's areas as bad sectors): `dev` seen through the map (unrescued
// areas unallocated, reading as zeros, or failing with EIO in kEio mode,
// for `vdisk mount --bad-areas eio|zeros`: see
// ddrescue::parse_bad_area_mode); null with neither. Also lists the
// unrescued areas on stderr under the label `image`.
std::shared_ptr<const ddrescue::RescuedDevice> rescued_from(
    const po::variables_map& vm, BlockDevicePtr dev, const std::string& image,
    ddrescue::BadAreaMode mode = ddrescue::BadAreaMode::kZeros);
// The unrescued areas as JSON: {"path", "bad_area_count", "bad_bytes",
// "bad_areas": [{"start", "length", "end", "status", "status_name"}]}.
Json bad_areas_json(const ddrescue::RescuedDevice& dev);

// Adds --on-read-error stop|continue and --error-map OUT.map (convert, hash,
// verify: every command that reads a whole source through copy_device).
void add_read_error_options(po::options_description& desc);
// The policy --on-read-error asks for. Throws UsageError for another value,
// for continue on standard input (a pipe cannot be read again in pieces) and
// for --error-map without continue. Checks the --error-map path like
// check_report_path.
OnReadError read_error_policy_from(const po::variables_map& vm, bool source_is_stdin, bool force);
// For CopyOptions::read_error_hint: how to continue past a read error, or
// empty when the policy already continues or the source is standard input.
std::string read_error_hint(OnReadError policy, bool source_is_stdin);
// After a copy with read errors: one stderr line per merged range
// ("vdisk: LABEL: read error at offset X, N bytes WHAT"; at most 20, then
// "... and K more"), a total, and the --error-map file (a GNU ddrescue
// mapfile: '+' where the copy read the source, '*' non-trimmed at each read
// error, and `rescued`'s own unrescued areas with their statuses). Returns
// kExitDataLost when there were read errors, kExitOk otherwise.
int finish_read_errors(const po::variables_map& vm, const std::string& label, const CopyResult& r,
                       const char* what, const ddrescue::RescuedDevice* rescued, bool force);
// [{"offset", "length"}...] of CopyResult::read_errors.
Json read_errors_json(const CopyResult& r);
// What CopyResult::hashes_zero_filled holds, for labels: "unrescued areas as
// zeros", "read errors as zeros" or both.
std::string zero_filled_scope(const CopyResult& r);

// The --hash-file report of convert and hash, keys in this order:
// vdisk_version, command, start_time, end_time, source {path, format,
// [subformat], virtual_size, allocated_bytes}, the members of `extra` (the
// destination of a conversion), virtual_size, hash_scope, [hashes],
// [hashes_zero_filled], [mapfile], [on_read_error, read_errors,
// read_error_bytes], seconds.
struct ReportSource {
  std::string path;
  const ImageInfo* info = nullptr;
  uint64_t virtual_size = 0;
  uint64_t allocated_bytes = 0;
};
Json make_report(const std::string& command, const std::string& start_time,
                 const ReportSource& source, const CopyResult& r,
                 const ddrescue::RescuedDevice* rescued, OnReadError policy, Json extra);

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
// Writes `text` the same way (the --error-map mapfile).
void write_text_output(const std::string& path, const std::string& text, bool overwrite);
// Checks, before long work starts, that an output file (report, error map)
// can be made at `path`: its folder exists, it is not a directory, and it
// does not exist unless `overwrite`. Throws Error naming the path otherwise.
void check_report_path(const std::string& path, bool overwrite);

// "human" or "json" from --output; throws UsageError otherwise.
bool want_json(const po::variables_map& vm);

// A progress renderer: a bar on a terminal, a summary line otherwise, or JSON
// lines (one a second) when `json` is set. Writes to stderr.
std::unique_ptr<ProgressSink> make_progress(bool enabled, bool json);

std::string hex_offset(uint64_t v);
// "SHA256" for "sha256": the hash names in human output.
std::string upper_case(std::string s);

}  // namespace vdisk::cli
