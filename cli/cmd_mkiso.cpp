#include "cli/cli.h"
namespace vdisk::cli {
int cmd_mkiso(const std::vector<std::string>&) { throw UsageError("not yet"); }
}
