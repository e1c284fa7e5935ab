// vdisk: convert, inspect and mount virtual-disk images.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "cli/cli.h"
#include "cli/man.h"
#include "formats/core/error.h"

namespace {

void on_signal(int) {
  vdisk::cli::cancel_flag().store(true);
}

void print_usage(FILE* out) {
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& c : vdisk::cli::commands()) rows.emplace_back(c.name, c.summary);
  std::fprintf(out, "usage: vdisk <command> [options] ...\n\ncommands:\n%s",
               vdisk::cli::two_columns(rows, vdisk::cli::terminal_width()).c_str());
  std::fprintf(out, "\n'vdisk <command> -h' shows a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace vdisk::cli;
  if (argc < 2) {
    print_usage(stderr);
    return kExitError;
  }
  std::string name = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (name == "-h" || name == "--help" || (name == "help" && args.empty())) {
    print_usage(stdout);
    return kExitOk;
  }
  if (name == "--version" || name == "-V") {
    std::printf("vdisk %s\n", VDISK_VERSION);
    return kExitOk;
  }
  // Hidden: the manual page and the completion words, made from the option
  // tables of the commands (cli/man.h; the build and completion/ use them).
  if (name == "--man") {
    std::fputs(man_page().c_str(), stdout);
    return kExitOk;
  }
  if (name == "--complete") {
    std::fputs(completion_words(args.empty() ? "" : args[0]).c_str(), stdout);
    return kExitOk;
  }
  // `vdisk help convert`: the command's page.
  if (name == "help" && print_command_page(args[0])) return kExitOk;
  if (name == "help") name = args[0];
  const Command* cmd = nullptr;
  std::vector<std::string> names;
  for (const auto& c : commands()) {
    if (name == c.name) cmd = &c;
    names.push_back(c.name);
  }
  if (!cmd) {
    const std::string hint = did_you_mean(name, names);
    std::fprintf(stderr, "vdisk: unknown command '%s'%s\n", name.c_str(),
                 hint.empty() ? " ('vdisk -h' lists the commands)" : hint.c_str());
    return kExitError;
  }

  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  try {
    return cmd->run(args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "vdisk %s: %s (see 'vdisk %s -h')\n", cmd->name, e.what(), cmd->name);
    return kExitError;
  } catch (const vdisk::Error& e) {
    std::fprintf(stderr, "vdisk: %s\n", e.what());
    return e.kind() == vdisk::ErrorKind::kInterrupted ? kExitInterrupted : kExitError;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "vdisk: out of memory\n");
    return kExitError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vdisk: %s\n", e.what());
    return kExitError;
  }
}
