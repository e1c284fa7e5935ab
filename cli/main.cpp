// vdisk: convert, inspect and mount virtual-disk images.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "cli/cli.h"
#include "formats/core/error.h"

namespace {

void on_signal(int) {
  vdisk::cli::cancel_flag().store(true);
}

void print_usage(FILE* out) {
  std::fprintf(out, "usage: vdisk <command> [options] ...\n\ncommands:\n");
  for (const auto& c : vdisk::cli::commands()) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
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
  if (name == "-h" || name == "--help" || name == "help") {
    print_usage(stdout);
    return kExitOk;
  }
  if (name == "--version" || name == "-V") {
    std::printf("vdisk %s\n", VDISK_VERSION);
    return kExitOk;
  }
  const Command* cmd = nullptr;
  for (const auto& c : commands()) {
    if (name == c.name) cmd = &c;
  }
  if (!cmd) {
    std::fprintf(stderr, "vdisk: unknown command '%s'\n", name.c_str());
    print_usage(stderr);
    return kExitError;
  }

  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::vector<std::string> args(argv + 2, argv + argc);
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
