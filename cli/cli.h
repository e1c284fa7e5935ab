// Shared pieces of the `vdisk` subcommands: the command table, option parsing
// on top of Boost.Program_options, opening images, output helpers.
#pragma once

#include <atomic>
#include <boost/program_options.hpp>
#include <memory>
#include <string>
#include <vector>

#include "converters/progress.h"
#include "formats/core/block_device.h"
#include "formats/core/registry.h"

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
