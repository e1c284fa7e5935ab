// Command-line parsing for the subcommands, on top of Boost.Program_options,
// speaking to users in their own words: errors name options as they were
// typed (-O, --hash) and arguments as the usage line writes them (SRC, DST),
// never the internal keys; a mistyped option gets "did you mean"; -h lists
// the options and arguments wrapped to the terminal.
#pragma once

#include <boost/program_options.hpp>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace vdisk::cli {

namespace po = boost::program_options;

// A usage error: printed as "vdisk <cmd>: MESSAGE (see 'vdisk <cmd> -h')",
// exit 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One positional argument. `key` is the variables_map key; `metavar` its
// name in the usage line ("SRC"); `noun` what it is in messages ("missing
// source"); `help` its line under "arguments:" in -h. An optional argument
// takes `default_value` (required ones leave it empty).
struct Positional {
  Positional(std::string k, std::string m, std::string n, std::string h, bool req = true,
             std::string def = "")
      : key(std::move(k)),
        metavar(std::move(m)),
        noun(std::move(n)),
        help(std::move(h)),
        required(req),
        default_value(std::move(def)) {}
  std::string key;
  std::string metavar;
  std::string noun;
  std::string help;
  bool required = true;
  std::string default_value;
};

// Answers the command line by itself (like -h: `convert -O vmdk -o help`)
// before the required arguments are checked; true when it did.
using EarlyAnswer = std::function<bool(const po::variables_map&)>;

// A command's help as data (the man page and the shell completion are made
// from it): what parse_args saw when called under capture_help().
struct HelpOption {
  std::string short_name;  // "-f", or empty
  std::string long_name;   // "--format"
  std::string value;       // "FMT", "arg (=human)"; empty for a flag
  std::string help;
};
struct CommandHelp {
  std::string name, usage;
  std::vector<Positional> positionals;
  std::vector<HelpOption> options;
};
// While `into` is set (not null), parse_args records the command's usage,
// arguments and options into it and returns false without parsing: running a
// command with it set describes the command. Not thread-safe.
void capture_help(CommandHelp* into);

// Parses `args` for subcommand `name` with the options in `desc` and the
// positional arguments in `positionals` (which are not in `desc` and do not
// appear among the options in -h). Returns false when the command line was
// answered without running the command (-h/--help: usage printed to stdout;
// or `early` returned true). Throws UsageError, naming the option as typed,
// for: an unknown option (with "did you mean"), a missing required argument
// or option ("missing destination: vdisk convert -O FMT SRC DST"), too many
// arguments, a value of the wrong type, and an empty value (an option or
// argument given as "" — except options whose default is empty, where ""
// means that default).
bool parse_args(const std::string& name, const std::string& usage, po::options_description& desc,
                const std::vector<Positional>& positionals, const std::vector<std::string>& args,
                po::variables_map& vm, const EarlyAnswer& early = {});

// A size argument (a byte count with an optional K/M/G/T suffix, powers of
// 1024, or S for 512-byte sectors: "64M", "1G", "2T", "1048576"), the same
// syntax as the size options of -o. Throws UsageError naming `option`.
uint64_t parse_size_arg(const std::string& text, const std::string& option);
// A non-negative decimal count ("--partition 2"). Throws UsageError naming
// `option` for a sign, a suffix, or a value above `max`.
uint64_t parse_count_arg(const std::string& text, const std::string& option, uint64_t max);

// The usage line of a command reduced to what is required: every top-level
// "[...]" group dropped ("-O FMT SRC DST" for convert's).
std::string synopsis(const std::string& usage);

}  // namespace vdisk::cli
