// Helpers for tests that run the built `vdisk` binary and the oracle tools
// (qemu-img, sha256sum, xorriso, …). A missing oracle fails the test: only a
// missing /dev/fuse may skip (see fuse_unavailable_reason).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace vdisk::test {

// How long a test lets one small hostile input run before calling it a hang.
// Generous on purpose: these inputs take milliseconds, a hang takes forever,
// and the bound must hold under ASan on a loaded 2-core CI machine (speed is
// measured in bench/, never here).
inline constexpr std::chrono::seconds kHangLimit{30};
inline constexpr const char* kHangTimeout = "timeout 30 ";

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `cmdline` with /bin/sh -c, capturing stdout and stderr.
RunResult run(const std::string& cmdline);
// A shell snippet (ends with "; ") that waits, up to 20 s, until the process
// whose pid is in shell variable `pid_var` runs the vdisk binary and has a
// handler for signal `signo` (its SigCgt mask): a test that signals vdisk
// must not race its start-up, where the signal's default action would apply.
std::string wait_until_catches(const std::string& pid_var, int signo);
// Runs the built vdisk binary with `args` (a shell-quoted string).
RunResult run_vdisk(const std::string& args);
// Runs and requires exit 0, failing the test with stderr otherwise.
std::string run_ok(const std::string& cmdline);

// Quotes a string for /bin/sh.
std::string sh_quote(const std::string& s);

// A fresh directory under the build tree, removed at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Digests computed by the coreutils tools (md5sum, sha1sum, sha256sum), an
// oracle independent of vdisk's own hashing.
std::string coreutils_digest(const std::string& tool, const std::string& path);
// The hex digest in a vdisk line "SHA256 (...) = hex" for `tag` ("SHA256").
std::string parse_tagged_digest(const std::string& output, const std::string& tag);

// File helpers.
void write_file(const std::string& path, const std::vector<uint8_t>& bytes);
void write_at(const std::string& path, uint64_t offset, const std::vector<uint8_t>& bytes);
std::vector<uint8_t> read_file(const std::string& path);
bool file_exists(const std::string& path);
uint64_t file_size(const std::string& path);
uint64_t allocated_bytes_on_host(const std::string& path);  // st_blocks * 512
// Deterministic pseudo-random bytes.
std::vector<uint8_t> pattern_bytes(size_t len, uint32_t seed);

// Makes a sparse raw disk of `size` bytes with an MBR (sfdisk), two
// partitions, data in a few places, explicit zero runs and holes. Returns the
// list of (offset, length) data ranges written.
void make_sample_disk(const std::string& path, uint64_t size);

// One run of `map --output json`: its type as vdisk names it ("data",
// "zero", "unallocated") and the layer that answered.
struct MapRun {
  uint64_t start = 0, length = 0;
  std::string type;
  uint64_t depth = 0;
};
// `qemu-img map --output json IMAGE` (present/data flags turned into vdisk's
// types) or `vdisk map --output json IMAGE`, adjacent runs of one type and
// depth merged (the two tools split runs differently). `extra`: more
// arguments before the image; `cwd`: the folder qemu-img runs in.
std::vector<MapRun> qemu_map_runs(const std::string& image, const std::string& extra = "",
                                  const std::string& cwd = "");
std::vector<MapRun> vdisk_map_runs(const std::string& image, const std::string& extra = "");
// CHECKs that two maps are the same run for run.
void check_same_map(const std::vector<MapRun>& qemu, const std::vector<MapRun>& vdisk);

// Requires that `tool` is on PATH (FAILs the test with a message otherwise).
void require_tool(const std::string& tool);

// Empty when FUSE mounts can be tried; else the reason to print after SKIPPED:.
std::string fuse_unavailable_reason();

}  // namespace vdisk::test
