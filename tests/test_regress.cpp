// Replays every file under testdata/regress/<target>/ through the same code
// the fuzz targets run (fuzz/fuzz_exercise.h, fuzz/fuzz_text_targets.h). Each
// file is an input that once broke something, named after what broke. Its
// expected outcome is written in testdata/regress/outcomes.txt: read
// ("accepted") or refused with a vdisk::Error of a given kind; a broken
// promise of the device contract is always a failure, and so is a file the
// list does not mention.
#include <dirent.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <sstream>

#include "fuzz/fuzz_exercise.h"
#include "fuzz/fuzz_text_targets.h"
#include "tests/support/test_support.h"

using namespace vdisk;
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

bool is_dir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d) ::closedir(d);
  return d != nullptr;
}

// outcomes.txt: "TARGET/NAME accepted" or "TARGET/NAME refused KIND" (KIND
// as error_kind_name spells it); '#' starts a comment.
std::map<std::string, std::string> read_outcomes(const std::string& path) {
  std::map<std::string, std::string> out;
  std::ifstream in(path);
  REQUIRE(in);
  std::string line;
  while (std::getline(in, line)) {
    line = line.substr(0, line.find('#'));
    std::istringstream words(line);
    std::string file, verdict, kind;
    if (!(words >> file)) continue;
    words >> verdict >> kind;
    INFO("outcomes.txt: " << line);
    REQUIRE((verdict == "accepted" || (verdict == "refused" && !kind.empty())));
    out[file] = verdict == "accepted" ? verdict : verdict + " " + kind;
  }
  return out;
}

fuzz::Outcome replay(const std::string& target, const std::vector<uint8_t>& bytes) {
  if (target == "vmdk_descriptor")
    return fuzz::exercise_vmdk_descriptor_input(bytes.data(), bytes.size());
  if (target == "ddrescue_map")
    return fuzz::exercise_ddrescue_map_input(bytes.data(), bytes.size());
  if (target == "dmg_plist") return fuzz::exercise_dmg_plist_input(bytes.data(), bytes.size());
  return fuzz::exercise_input(target, bytes.data(), bytes.size());
}

}  // namespace

TEST_CASE("regression inputs under testdata/regress replay with their recorded outcome",
          "[regress]") {
  const std::string root = std::string(VDISK_SOURCE_DIR) + "/testdata/regress";
  std::map<std::string, std::string> expected = read_outcomes(root + "/outcomes.txt");
  size_t replayed = 0;
  for (const std::string& target : list(root)) {
    if (!is_dir(root + "/" + target)) continue;
    for (const std::string& name : list(root + "/" + target)) {
      const std::string file = target + "/" + name;
      INFO("replaying " << file);
      const fuzz::Outcome o = replay(target, read_file(root + "/" + file));
      INFO("outcome: " << o.describe());
      CHECK_FALSE(o.violation());
      auto it = expected.find(file);
      if (it == expected.end()) {
        FAIL_CHECK(
            "not in testdata/regress/outcomes.txt: add whether it must be accepted or "
            "refused (and with which error kind)");
        continue;
      }
      const std::string got =
          o.accepted() ? "accepted" : std::string("refused ") + error_kind_name(o.error_kind);
      CHECK(got == it->second);
      expected.erase(it);
      ++replayed;
    }
  }
  // Every line names a file that exists, and the folder is where we think:
  // an empty replay would mean the path is wrong, not that all is well.
  for (const auto& [file, verdict] : expected)
    FAIL_CHECK("outcomes.txt names a missing file: " << file);
  CHECK(replayed > 0);
}
