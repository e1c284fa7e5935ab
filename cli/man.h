// The manual page vdisk(1), the words shell completion offers, and `vdisk
// help COMMAND`, all made from the option tables the commands parse with
// (capture_help in cli/args.h): they cannot drift from the CLI.
#pragma once

#include <string>

#include "cli/args.h"

namespace vdisk::cli {

struct Command;

// The description of `command`, as its parse_args call declares it.
CommandHelp command_help(const Command& command);

// vdisk(1) in roff (man(7) macros): every command with its synopsis,
// arguments and options, the exit status, and the files made.
std::string man_page();

// For the completion scripts (completion/): with no command, the command
// names, one a line; else the options of `command` (long and short names),
// one a line. Empty for an unknown command.
std::string completion_words(const std::string& command);

// `vdisk help COMMAND`: the command's page as text (summary, usage,
// arguments, options). False for an unknown command.
bool print_command_page(const std::string& command);

}  // namespace vdisk::cli
