// The explicit list of `vdisk` subcommands, in the order `vdisk --help` shows
// them. Adding a subcommand is one cmd_<name>.cpp and one line here.
#include "cli/cli.h"

namespace vdisk::cli {

int cmd_formats(const std::vector<std::string>& args);
int cmd_info(const std::vector<std::string>& args);
int cmd_convert(const std::vector<std::string>& args);
int cmd_acquire(const std::vector<std::string>& args);
int cmd_hash(const std::vector<std::string>& args);
int cmd_compare(const std::vector<std::string>& args);
int cmd_map(const std::vector<std::string>& args);
int cmd_verify(const std::vector<std::string>& args);
int cmd_ls(const std::vector<std::string>& args);
int cmd_cat(const std::vector<std::string>& args);
int cmd_extract(const std::vector<std::string>& args);
int cmd_mkiso(const std::vector<std::string>& args);
int cmd_mount(const std::vector<std::string>& args);
int cmd_unmount(const std::vector<std::string>& args);
int cmd_check(const std::vector<std::string>& args);
int cmd_create(const std::vector<std::string>& args);
int cmd_measure(const std::vector<std::string>& args);
int cmd_resize(const std::vector<std::string>& args);
int cmd_rebase(const std::vector<std::string>& args);
int cmd_commit(const std::vector<std::string>& args);

const std::vector<Command>& commands() {
  static const std::vector<Command> list = {
      {"formats", "list the image formats, their abilities and -o options", cmd_formats},
      {"info", "show an image's format, sizes, parent and format details", cmd_info},
      {"convert", "copy an image into another format, keeping holes, hashing the content",
       cmd_convert},
      {"acquire",
       "image a failing disk as GNU ddrescue does (passes, resumable mapfile) into raw, E01, ...",
       cmd_acquire},
      {"hash", "hash the guest-visible content of an image", cmd_hash},
      {"compare", "compare the guest content of two images", cmd_compare},
      {"map", "list an image's extents: data, zero, unallocated", cmd_map},
      {"verify", "re-hash an image and check it against --expect or a --hash-file report",
       cmd_verify},
      {"ls", "list files of the file system inside an image (ISO 9660, ...)", cmd_ls},
      {"cat", "write a file of the file system inside an image to stdout", cmd_cat},
      {"extract", "copy files out of an image's file system, keeping modes, times, symlinks",
       cmd_extract},
      {"mkiso", "make an ISO 9660 image (Rock Ridge, Joliet, El Torito) from a directory",
       cmd_mkiso},
      {"mount", "mount an image read-only: disk.raw and partitions, or its files", cmd_mount},
      {"unmount", "unmount what 'vdisk mount' mounted", cmd_unmount},
      {"check", "check an image's container: tables in range, no shared storage, checksums",
       cmd_check},
      {"create", "make an empty image, or a child over an existing one (-b)", cmd_create},
      {"measure", "the size a conversion or a new image needs, exact for our writers", cmd_measure},
      {"resize", "change an image's virtual size in place (partitions are not touched)",
       cmd_resize},
      {"rebase", "make a differencing image name another parent, keeping its content", cmd_rebase},
      {"commit", "write a differencing image's data into its parent, then compare", cmd_commit},
  };
  return list;
}

}  // namespace vdisk::cli
