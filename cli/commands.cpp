// The explicit list of `vdisk` subcommands, in the order `vdisk --help` shows
// them. Adding a subcommand is one cmd_<name>.cpp and one line here.
#include "cli/cli.h"

namespace vdisk::cli {

int cmd_formats(const std::vector<std::string>& args);
int cmd_info(const std::vector<std::string>& args);
int cmd_convert(const std::vector<std::string>& args);
int cmd_hash(const std::vector<std::string>& args);
int cmd_compare(const std::vector<std::string>& args);
int cmd_map(const std::vector<std::string>& args);
int cmd_verify(const std::vector<std::string>& args);

const std::vector<Command>& commands() {
  static const std::vector<Command> list = {
      {"formats", "list the image formats, their abilities and -o options", cmd_formats},
      {"info", "show an image's format, sizes, parent and format details", cmd_info},
      {"convert", "copy an image into another format, keeping holes, hashing the content", cmd_convert},
      {"hash", "hash the guest-visible content of an image", cmd_hash},
      {"compare", "compare the guest content of two images", cmd_compare},
      {"map", "list an image's extents: data, zero, unallocated", cmd_map},
      {"verify", "re-hash an image and check it against --expect or a --hash-file report", cmd_verify},
  };
  return list;
}

}  // namespace vdisk::cli
