// Holding off the CLI's signal watchdog for a write that must not be cut.
#pragma once

namespace vdisk::cli {

// While one is alive, the signal watchdog (cli/main.cpp), which otherwise
// _exits kWatchdogGrace after a signal, waits for it to end (at most
// kMaxExitDeferralSeconds): for a short write that must not be cut, such as
// acquire's mapfile save (the rescue file's sync, then the mapfile).
class ExitDeferral {
 public:
  ExitDeferral();
  ~ExitDeferral();
  ExitDeferral(const ExitDeferral&) = delete;
  ExitDeferral& operator=(const ExitDeferral&) = delete;
  // How many are alive (the watchdog polls it).
  static int active();
};
inline constexpr int kMaxExitDeferralSeconds = 60;

}  // namespace vdisk::cli
