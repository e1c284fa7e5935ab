// Shared pieces of the `vdisk` subcommands: the command table, exit codes,
// the options every command that opens an image takes, and the files a
// command writes besides its output (reports, error maps). Parsing is in
// cli/args.h, text helpers in cli/text.h, progress in cli/progress.h, the
// whole-source read of convert/hash/verify in cli/source.h.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/text.h"
#include "converters/progress.h"
#include "converters/report.h"
#include "formats/core/block_device.h"
#include "formats/registry.h"
#include "views/ddrescue/rescued_device.h"

namespace vdisk::cli {

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

// Adds the options every command that opens an image takes: -f, --parent,
// --allow-outside-paths.
void add_open_options(po::options_description& desc, const char* format_flag = "format,f");
// Builds OpenOptions from those, reading through `env` (null: Env::posix();
// a command that writes passes its GuardedEnv).
OpenOptions open_options_from(const po::variables_map& vm, Env* env = nullptr);
// Opens IMAGE with the format from `format_key` in vm (empty: probe).
BlockDevicePtr open_from_args(const po::variables_map& vm, const std::string& image_key,
                              const std::string& format_key = "format");

// Adds -p / --progress[=bar|json] (parse_args also accepts "--progress json").
void add_progress_option(po::options_description& desc);
// The renderer the user asked for with add_progress_option's flag (or null).
// Throws UsageError for another mode.
std::unique_ptr<ProgressSink> progress_from(const po::variables_map& vm);

// Adds --mapfile (a GNU ddrescue mapfile of the image).
void add_mapfile_option(po::options_description& desc);
// With --mapfile, or when `dev` lists ranges its acquisition could not read
// (BlockDevice::unreadable_ranges, an E01's error2; painted over the
// mapfile's areas as bad sectors): `dev` seen through the map (unrescued
// areas unallocated, reading as zeros, or failing with EIO in kEio mode,
// for `vdisk mount --bad-areas eio|zeros`: see
// ddrescue::parse_bad_area_mode); null with neither. Also lists the
// unrescued areas on stderr under the label `image`. The mapfile is read
// through `env`.
std::shared_ptr<const ddrescue::RescuedDevice> rescued_from(
    const po::variables_map& vm, BlockDevicePtr dev, const std::string& image,
    ddrescue::BadAreaMode mode = ddrescue::BadAreaMode::kZeros, Env& env = Env::posix());

// The -o options a writer declares, one per line ("  -o name=TYPE  help
// (default X)"), wrapped to `width` (vdisk formats, convert -o help).
std::string describe_create_options(const FormatDescriptor& f, unsigned width);

// Adds -O FMT (default `default_format`) and -o key=value (repeatable, "-o
// help" lists the -O format's options): the output format of convert,
// create and measure.
void add_output_format_options(po::options_description& desc, const char* default_format);
// The EarlyAnswer for those: `-o help` (or `-o ?`, as qemu-img takes it)
// prints the -O format's -o options and answers the command line.
bool answer_options_help(const po::variables_map& vm);
// The -O format `name`, which must be writable; a container vdisk only
// recognises (formats/foreign.h) is named as such. UsageError otherwise.
const FormatDescriptor& require_writable_format(const std::string& name);
// The -O format (writable, else UsageError) and its -o options parsed
// against it; `text` receives them joined ("k=v,k2=v2").
const FormatDescriptor& output_format_from(const po::variables_map& vm, Options& options,
                                           std::string& text);

// "human" or "json" from --output; throws UsageError otherwise.
bool want_json(const po::variables_map& vm);

// Checks, before long work starts, that an output file (report, error map)
// can be made at `path`: its folder exists, it is not a directory, and it
// does not exist unless `overwrite`. Throws Error naming the path otherwise.
void check_report_path(const std::string& path, bool overwrite);
// Writes `text` through Env::create_output (temporary file, renamed into
// place). Refuses an existing file unless `overwrite`.
void write_text_output(const std::string& path, const std::string& text, bool overwrite);
// Writes a report (Report::to_json, indented) the same way.
void write_report(const std::string& path, const Report& report, bool overwrite);

}  // namespace vdisk::cli
