#include "cli/cli.h"
#include "mount/mount.h"

namespace vdisk::cli {

int cmd_unmount(const std::vector<std::string>& args) {
  po::options_description desc("options");
  const std::vector<Positional> pos = {
      {"mountpoint", "MOUNTPOINT", "mount point", "where vdisk mounted an image"},
  };
  po::variables_map vm;
  if (!parse_args("unmount", "MOUNTPOINT", desc, pos, args, vm)) return kExitOk;
  mount::unmount(vm["mountpoint"].as<std::string>());
  return kExitOk;
}

}  // namespace vdisk::cli
