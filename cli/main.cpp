// vdisk: convert, inspect and mount virtual-disk images.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <thread>

#include "cli/cli.h"
#include "cli/exit_deferral.h"
#include "cli/man.h"
#include "formats/core/error.h"
#include "formats/core/file.h"

namespace {

// A signal sets the cancel flag, which long loops poll to stop cleanly, and
// wakes the watchdog through this pipe (write(2) is async-signal-safe).
int g_wake[2] = {-1, -1};
// The first signal that stopped vdisk (0: none).
std::atomic<int> g_signal{0};

// SIGPIPE means the reader is gone (`vdisk ls | head`): how a pipe ends,
// not news for the terminal. vdisk still stops (exit 130) but says nothing.
bool stopped_by_closed_pipe() {
  return g_signal.load() == SIGPIPE;
}

void on_signal(int sig) {
  int none = 0;
  g_signal.compare_exchange_strong(none, sig);
  vdisk::cli::cancel_flag().store(true);
  const int saved = errno;
  const char c = static_cast<char>(sig);
  [[maybe_unused]] ssize_t n = ::write(g_wake[1], &c, 1);
  errno = saved;
}

// Whatever a command is doing (a crafted tree, a read stuck in a slow
// device), vdisk exits 130 within a second of a signal: a command that has
// not returned kWatchdogGrace after it removes its partial outputs and
// _exits. The loops that poll the flag usually finish first, cleanly.
constexpr auto kWatchdogGrace = std::chrono::milliseconds(400);

void watchdog() {
  char c;
  while (::read(g_wake[0], &c, 1) != 1) {
    if (errno != EINTR) return;
  }
  std::this_thread::sleep_for(kWatchdogGrace);
  // A save that must not be cut (acquire's mapfile) is let finish.
  const auto limit =
      std::chrono::steady_clock::now() + std::chrono::seconds(vdisk::cli::kMaxExitDeferralSeconds);
  while (vdisk::cli::ExitDeferral::active() > 0 && std::chrono::steady_clock::now() < limit) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  vdisk::remove_partial_outputs();
  if (!stopped_by_closed_pipe()) {
    static const char kMsg[] = "vdisk: interrupted\n";
    [[maybe_unused]] ssize_t n = ::write(2, kMsg, sizeof kMsg - 1);
  }
  ::_exit(vdisk::cli::kExitInterrupted);
}

// SIGHUP (terminal closed), SIGQUIT and SIGPIPE (reader gone) stop vdisk
// like SIGINT and SIGTERM: partial outputs removed, exit 130.
void install_signal_handlers() {
  if (::pipe2(g_wake, O_CLOEXEC) != 0) return;
  // A storm of signals (SIGPIPE on every write) must never block the handler.
  ::fcntl(g_wake[1], F_SETFL, ::fcntl(g_wake[1], F_GETFL) | O_NONBLOCK);
  std::thread(watchdog).detach();
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) sigaction(sig, &sa, nullptr);
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

  install_signal_handlers();

  try {
    const int status = cmd->run(args);
    // A signal that arrived as the command finished still means "stopped".
    if (cancel_flag().load() && status != kExitInterrupted) {
      if (!stopped_by_closed_pipe()) std::fprintf(stderr, "vdisk: interrupted\n");
      return kExitInterrupted;
    }
    return status;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "vdisk %s: %s (see 'vdisk %s -h')\n", cmd->name, e.what(), cmd->name);
    return kExitError;
  } catch (const vdisk::Error& e) {
    if (!(cancel_flag().load() && stopped_by_closed_pipe()))
      std::fprintf(stderr, "vdisk: %s\n", e.what());
    // An error caused by the signal (EPIPE after SIGPIPE, EINTR) is the stop.
    return e.kind() == vdisk::ErrorKind::kInterrupted || cancel_flag().load() ? kExitInterrupted
                                                                              : kExitError;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "vdisk: out of memory\n");
    return kExitError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vdisk: %s\n", e.what());
    return kExitError;
  }
}
