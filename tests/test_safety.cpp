// Nothing is lost: sources are never written, outputs are atomic, failures
// name the offset. Uses a fault-injecting Env (LevelDB-style) for read errors
// and real signals and a full tmpfs for the rest.
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "converters/convert.h"
#include "formats/core/error.h"
#include "formats/registry.h"
#include "tests/support/fault_support.h"
#include "tests/support/iso_craft.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

struct Fingerprint {
  uint64_t size;
  int64_t mtime_ns;
  std::string sha256;
  bool operator==(const Fingerprint&) const = default;
};

Fingerprint fingerprint(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return {static_cast<uint64_t>(st.st_size), st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec,
          coreutils_digest("sha256sum", path)};
}

// No file in `dir` other than `keep` (partial files included).
std::string listing(const std::string& dir) {
  return run_ok("ls -A " + sh_quote(dir));
}

}  // namespace

TEST_CASE("no command writes to its source image", "[safety]") {
  TempDir dir;
  std::string src = dir / "src.img";
  make_sample_disk(src, 24 << 20);
  std::vector<std::string> images = {src};
  // One image per writable format, made once, then used as a source.
  for (const FormatDescriptor* f : builtin_formats()) {
    if (!f->create || f->name == "raw") continue;
    std::string img = dir / ("src." + f->name);
    run_ok(std::string(VDISK_BIN) + " convert --hash none -O " + f->name + " " + sh_quote(src) +
           " " + sh_quote(img));
    images.push_back(img);
  }
  for (const std::string& img : images) {
    auto before = fingerprint(img);
    // Let the clock move so an mtime change would show.
    ::usleep(20000);
    for (std::string cmd : {"info", "info --output json", "map", "hash --algo md5,sha1,sha256"}) {
      run_ok(std::string(VDISK_BIN) + " " + cmd + " " + sh_quote(img));
    }
    run_ok(std::string(VDISK_BIN) + " compare " + sh_quote(img) + " " + sh_quote(src));
    for (const FormatDescriptor* f : builtin_formats()) {
      if (!f->create) continue;
      std::string out = dir / ("copy." + f->name);
      run_ok(std::string(VDISK_BIN) + " convert --force --verify -O " + f->name + " " +
             sh_quote(img) + " " + sh_quote(out));
    }
    INFO(img);
    CHECK(fingerprint(img) == before);
  }
}

TEST_CASE("SIGKILL during convert leaves nothing under the destination name", "[safety]") {
  TempDir dir;
  std::string src = dir / "src.img";
  write_file(src, pattern_bytes(96 << 20, 7));
  for (int delay_ms : {0, 20, 60, 150, 400}) {
    std::string dst = dir / "dst.img";
    std::string cmd = std::string(VDISK_BIN) + " convert --hash sha256,md5 " + sh_quote(src) + " " +
                      sh_quote(dst) + " & pid=$!; sleep " + std::to_string(delay_ms / 1000.0) +
                      "; kill -9 $pid; wait $pid";
    RunResult r = run(cmd);
    INFO("killed after " << delay_ms << " ms, exit " << r.exit_code);
    CHECK((r.exit_code == 0 || r.exit_code == 137));
    // The invariant, whenever the kill lands (even after the rename, before
    // exit, which is legitimate): either nothing under the final name, or
    // the complete output with the source's content.
    if (file_exists(dst)) {
      CHECK(coreutils_digest("sha256sum", dst) == coreutils_digest("sha256sum", src));
      ::unlink(dst.c_str());
    } else {
      CHECK(r.exit_code == 137);
    }
    // And no partial file is left beside it: it had no name (O_TMPFILE), or
    // a hidden one that a killed process cannot remove; only the source may
    // remain in the folder apart from such a hidden partial.
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
      const std::string name = e.path().filename();
      if (name == "src.img") continue;
      CHECK_THAT(name, Catch::StartsWith(".dst.img.vdisk-"));
      std::filesystem::remove(e.path());
    }
  }
}

TEST_CASE("SIGINT, SIGTERM, SIGHUP and SIGQUIT stop convert, remove the partial file, exit 130",
          "[safety]") {
  TempDir dir;
  std::string src = dir / "src.img";
  write_file(src, pattern_bytes(160 << 20, 8));
  for (auto [sig, signo] : {std::pair{"INT", SIGINT}, std::pair{"TERM", SIGTERM},
                            std::pair{"HUP", SIGHUP}, std::pair{"QUIT", SIGQUIT}}) {
    std::string dst = dir / "dst.img";
    std::string cmd = std::string(VDISK_BIN) + " convert --hash md5,sha1,sha256 " + sh_quote(src) +
                      " " + sh_quote(dst) + " & pid=$!; " + wait_until_catches("pid", signo) +
                      "sleep 0.15; kill -" + sig + " $pid; wait $pid";
    RunResult r = run(cmd);
    INFO(sig << ": exit " << r.exit_code << " " << r.err);
    if (r.exit_code == 0) {
      // The machine outran the signal; the output must then be complete.
      CHECK(coreutils_digest("sha256sum", dst) == coreutils_digest("sha256sum", src));
      ::unlink(dst.c_str());
      continue;
    }
    CHECK(r.exit_code == 130);
    CHECK_THAT(r.err, Catch::Contains("interrupted"));
    CHECK_FALSE(file_exists(dst));
    CHECK(listing(dir.path()) == "src.img\n");
  }
}

TEST_CASE("a full disk gives a clear error and removes the partial file", "[safety]") {
  INFO("mounting a tmpfs needs root; the suite runs as root in CI");
  REQUIRE(::geteuid() == 0);
  TempDir dir;
  std::string src = dir / "src.img";
  write_file(src, pattern_bytes(12 << 20, 9));
  std::string small = dir / "small";
  ::mkdir(small.c_str(), 0755);
  REQUIRE(::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=4m") == 0);
  struct Unmount {
    std::string p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } guard{small};
  RunResult r = run_vdisk("convert " + sh_quote(src) + " " + sh_quote(small + "/dst.img"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("No space left on device"));
  CHECK_THAT(r.err, Catch::Contains("dst.img"));
  CHECK(listing(small).empty());
}

TEST_CASE("a read error in the source stops the copy naming the offset", "[safety]") {
  TempDir dir;
  std::string src = dir / "src.img";
  write_file(src, pattern_bytes(8 << 20, 10));
  const uint64_t bad = (5 << 20) + 4096;
  FaultyEnv env({{bad, bad + 1}});
  BlockDevicePtr dev = open_faulty(src, "raw", env);
  CopyOptions copts;
  copts.algos = {HashAlgo::kSha256};
  try {
    copy_device(*dev, nullptr, copts);
    FAIL("the read error was not reported");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kIo);
    CHECK(e.offset() == bad);
    CHECK_THAT(std::string(e.what()), Catch::Contains("Input/output error"));
  }
}

TEST_CASE("a source that shrinks under us stops with the offset that failed", "[safety]") {
  TempDir dir;
  std::string src = dir / "src.img";
  write_file(src, pattern_bytes(8 << 20, 11));
  BlockDevicePtr dev = open_image(src, "raw", OpenOptions{});
  REQUIRE(::truncate(src.c_str(), 3 << 20) == 0);
  CopyOptions copts;
  copts.algos = {HashAlgo::kMd5};
  try {
    copy_device(*dev, nullptr, copts);
    FAIL("the short read was not reported");
  } catch (const Error& e) {
    CHECK(e.offset() == uint64_t{3} << 20);
    CHECK_THAT(std::string(e.what()),
               Catch::Contains("shrank") || Catch::Contains("unexpected end of file"));
  }
}

TEST_CASE(
    "every command exits 130 promptly after a signal (400 ms watchdog), even stuck in a write",
    "[safety]") {
  TempDir dir;
  // 3000 entries: `ls -l` prints ~200 KB, more than a pipe holds, so with a
  // reader that never reads vdisk blocks in write(2) where no loop can poll
  // the cancel flag.
  write_file(dir / "many.iso", isocraft::overlap(3000, 2048));
  REQUIRE(::mkfifo((dir / "pipe").c_str(), 0600) == 0);
  for (auto [sig, signo] :
       {std::pair{"TERM", SIGTERM}, std::pair{"HUP", SIGHUP}, std::pair{"QUIT", SIGQUIT},
        std::pair{"INT", SIGINT}, std::pair{"PIPE", SIGPIPE}}) {
    // For PIPE the reader goes away, as when `| head` is done.
    const bool pipe = std::string(sig) == "PIPE";
    const std::string script =
        "sleep 30 <" + sh_quote(dir / "pipe") + " & reader=$!; " + VDISK_BIN + " ls -l " +
        sh_quote(dir / "many.iso") + " >" + sh_quote(dir / "pipe") + " & pid=$!; " +
        wait_until_catches("pid", signo) + "sleep 1; t0=$(date +%s%N); " +
        (pipe ? std::string("kill $reader") : "kill -" + std::string(sig) + " $pid") +
        "; wait $pid; rc=$?; t1=$(date +%s%N); kill $reader 2>/dev/null; "
        "echo $rc $(( (t1 - t0) / 1000000 ))";
    RunResult r = run("bash -c " + sh_quote(script));
    INFO(sig << ": " << r.out << r.err);
    int rc = -1, ms = -1;
    REQUIRE(std::sscanf(r.out.c_str(), "%d %d", &rc, &ms) == 2);
    CHECK(rc == 130);
    // A closed pipe is how `| head` ends: vdisk stops without a word; every
    // other signal is said on stderr.
    if (pipe)
      CHECK(r.err.find("vdisk:") == std::string::npos);
    else
      CHECK_THAT(r.err, Catch::Contains("vdisk: interrupted"));
    // Well within the 30 s the blocked write would otherwise last; the
    // watchdog takes 400 ms, the rest is slack for a loaded machine.
    CHECK(ms < 5000);
  }
}
