// Writes the crafted ISO 9660 layouts of tests/support/iso_craft (small
// versions) into DIR, for scripts/fuzz-seeds: a Rock Ridge name continued
// through a CE chain, a directory DAG, files sharing one extent, plain names.
// Usage: iso_craft_seeds DIR
#include <cstdio>
#include <string>
#include <vector>

#include "tests/support/iso_craft.h"

namespace {

bool write(const std::string& path, const std::vector<uint8_t>& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: iso_craft_seeds DIR\n");
    return 2;
  }
  using namespace vdisk::test::isocraft;
  std::string dir = argv[1];
  bool ok = write(dir + "/rr-name-ce-chain.iso", name_bomb(40, 6, 2048)) &&
            write(dir + "/rr-name-big-ce.iso", name_bomb(8, 2, 65536)) &&
            write(dir + "/dag.iso", dag(8)) && write(dir + "/overlap.iso", overlap(6, 4096)) &&
            write(dir + "/plain-level1.iso", plain());
  if (!ok) std::perror(dir.c_str());
  return ok ? 0 : 1;
}
