#include "cli/exit_deferral.h"

#include <atomic>

namespace vdisk::cli {

namespace {
std::atomic<int> g_exit_deferrals{0};
}  // namespace

ExitDeferral::ExitDeferral() {
  g_exit_deferrals.fetch_add(1);
}
ExitDeferral::~ExitDeferral() {
  g_exit_deferrals.fetch_sub(1);
}
int ExitDeferral::active() {
  return g_exit_deferrals.load();
}

}  // namespace vdisk::cli
