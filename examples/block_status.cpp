// A libvdisk example: open any image vdisk reads (its parent chain
// attached) and print its block status, one extent a line:
//   OFFSET LENGTH data|zero|unallocated
// Build: c++ block_status.cpp $(pkg-config --cflags --libs vdisk)
#include <cinttypes>
#include <cstdio>

#include "formats/core/error.h"
#include "formats/registry.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s IMAGE\n", argv[0]);
    return 2;
  }
  try {
    vdisk::OpenOptions opts;
    vdisk::BlockDevicePtr dev = vdisk::open_image(argv[1], "", opts);
    for (uint64_t at = 0; at < dev->size();) {
      const vdisk::Extent e = dev->block_status(at, dev->size() - at);
      const char* type = e.type == vdisk::ExtentType::kData   ? "data"
                         : e.type == vdisk::ExtentType::kZero ? "zero"
                                                              : "unallocated";
      std::printf("%" PRIu64 " %" PRIu64 " %s\n", at, e.length, type);
      at += e.length;
    }
  } catch (const vdisk::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  return 0;
}
