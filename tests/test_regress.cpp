// Replays every file under testdata/regress/<target>/ through the same code
// the fuzz targets run (fuzz/fuzz_exercise.h). Each file is an input that once
// broke something, named after what broke; it must now be accepted or
// rejected with a vdisk::Error, never crash.
#include <dirent.h>

#include <catch2/catch.hpp>

#include "fuzz/fuzz_exercise.h"
#include "fuzz/fuzz_text_targets.h"
#include "tests/support/test_support.h"

using namespace vdisk::test;

namespace {
std::vector<std::string> list(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

TEST_CASE("regression inputs under testdata/regress replay without crashing", "[regress]") {
  std::string root = std::string(VDISK_SOURCE_DIR) + "/testdata/regress";
  size_t replayed = 0;
  for (const std::string& target : list(root)) {
    for (const std::string& name : list(root + "/" + target)) {
      if (name == "README.md") continue;
      INFO("replaying " << target << "/" << name);
      std::vector<uint8_t> bytes = read_file(root + "/" + target + "/" + name);
      if (target == "vmdk_descriptor") {
        CHECK(vdisk::fuzz::run_vmdk_descriptor_input(bytes.data(), bytes.size()) == 0);
      } else if (target == "ddrescue_map") {
        CHECK(vdisk::fuzz::run_ddrescue_map_input(bytes.data(), bytes.size()) == 0);
      } else if (target == "dmg_plist") {
        CHECK(vdisk::fuzz::run_dmg_plist_input(bytes.data(), bytes.size()) == 0);
      } else {
        CHECK(vdisk::fuzz::run_fuzz_input(target, bytes.data(), bytes.size()) == 0);
      }
      ++replayed;
    }
  }
  // The folder ships with at least the seed regressions below; an empty
  // replay would mean the path is wrong, not that all is well.
  CHECK(replayed > 0);
}
