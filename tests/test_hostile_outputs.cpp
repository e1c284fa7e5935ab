// Issue #16: no output may destroy what it should not, no input may hang the
// machine. One case per reproduced defect; each failed on the code before
// its fix. Crafted files are made here by the test, never checked in.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "formats/core/json.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

mode_t file_type(const std::string& path) {
  struct stat st;
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_mode & S_IFMT;
}

// A loop device over `backing`, detached at destruction.
class LoopDevice {
 public:
  explicit LoopDevice(const std::string& backing) {
    require_tool("losetup");
    RunResult r = run("losetup --find --show " + sh_quote(backing));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    dev_ = r.out.substr(0, r.out.find('\n'));
  }
  ~LoopDevice() { run("losetup -d " + sh_quote(dev_)); }
  const std::string& path() const { return dev_; }

 private:
  std::string dev_;
};

}  // namespace

TEST_CASE("outputs: a symlink, a device node or a FIFO is never replaced by a file",
          "[hostile-outputs]") {
  TempDir dir;
  std::string src = dir / "src.img";
  make_sample_disk(src, 16 << 20);
  // /dev/stdout is a symlink; a planted link to a file the user did not name
  // is the same case.
  write_file(dir / "victim", {'k', 'e', 'e', 'p'});
  std::filesystem::create_symlink(dir / "victim", dir / "link.img");
  REQUIRE(::mknod((dir / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0);
  REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);
  const std::vector<std::pair<std::string, std::string>> targets = {
      {dir / "link.img", "is a symbolic link"},
      {dir / "null", "is a character device"},
      {dir / "fifo", "is a FIFO"},
      {"/dev/stdout", "is a symbolic link"},
  };
  for (const auto& [target, why] : targets) {
    for (const std::string fmt : {"raw", "vmdk"}) {
      INFO(target << " -O " << fmt);
      mode_t before = file_type(target);
      RunResult r = run("timeout 20 " + std::string(VDISK_BIN) + " convert --force -O " + fmt +
                        " " + sh_quote(src) + " " + sh_quote(target) + " </dev/null");
      INFO(r.err);
      CHECK(r.exit_code == 2);
      CHECK_THAT(r.err, Catch::Contains(why));
      CHECK(file_type(target) == before);
    }
  }
  CHECK(read_file(dir / "victim") == std::vector<uint8_t>{'k', 'e', 'e', 'p'});
  // A report is an output too.
  RunResult rep =
      run_vdisk("hash --force --hash-file " + sh_quote(dir / "link.img") + " " + sh_quote(src));
  CHECK(rep.exit_code == 2);
  CHECK(file_type(dir / "link.img") == S_IFLNK);
}

TEST_CASE("outputs: the partial file is created exclusively, never under a guessable name",
          "[hostile-outputs]") {
  require_tool("strace");
  TempDir dir;
  std::string src = dir / "src.img";
  make_sample_disk(src, 16 << 20);
  RunResult r =
      run("ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq "
          "-e trace=open,openat -o " +
          sh_quote(dir / "trace") + " " + VDISK_BIN + " convert --hash none -O vhdx " +
          sh_quote(src) + " " + sh_quote(dir / "out.vhdx"));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::string trace;
  for (uint8_t b : read_file(dir / "trace")) trace.push_back(static_cast<char>(b));
  INFO(trace);
  // Every open that creates a file in the output's folder is O_TMPFILE
  // (unnamed) or O_CREAT|O_EXCL|O_NOFOLLOW under a random name.
  size_t creates = 0;
  for (size_t pos = trace.find(dir.path()); pos != std::string::npos;
       pos = trace.find(dir.path(), pos + 1)) {
    size_t eol = trace.find('\n', pos);
    std::string line = trace.substr(pos, eol - pos);
    if (line.find("O_CREAT") == std::string::npos && line.find("O_TMPFILE") == std::string::npos)
      continue;
    ++creates;
    if (line.find("O_TMPFILE") == std::string::npos) {
      CHECK_THAT(line, Catch::Contains("O_EXCL"));
      CHECK_THAT(line, Catch::Contains("O_NOFOLLOW"));
      CHECK_THAT(line, !Catch::Contains(std::to_string(::getpid())));
    }
  }
  CHECK(creates >= 1);
  run_ok("qemu-img compare -f raw -F vhdx " + sh_quote(src) + " " + sh_quote(dir / "out.vhdx"));
}

TEST_CASE("outputs: raw onto a block device is written in place, holes zeroed, size checked",
          "[hostile-outputs]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string src = dir / "src.img";
  make_sample_disk(src, 16 << 20);
  run_ok("qemu-img convert -O vmdk " + sh_quote(src) + " " + sh_quote(dir / "src.vmdk"));
  // The device starts full of 0xAA: holes of the image must become zeros.
  std::string backing = dir / "backing";
  write_file(backing, std::vector<uint8_t>(20 << 20, 0xAA));
  LoopDevice loop(backing);
  RunResult no_force =
      run_vdisk("convert -O raw " + sh_quote(dir / "src.vmdk") + " " + sh_quote(loop.path()));
  CHECK(no_force.exit_code == 2);
  CHECK_THAT(no_force.err, Catch::Contains("--force"));
  CHECK(read_file(backing)[0] == 0xAA);

  RunResult ok = run_vdisk("convert --force -O raw " + sh_quote(dir / "src.vmdk") + " " +
                           sh_quote(loop.path()));
  INFO(ok.err);
  REQUIRE(ok.exit_code == 0);
  CHECK(file_type(loop.path()) == S_IFBLK);  // still the device node
  run_ok("sync");
  std::vector<uint8_t> got = read_file(backing), want = read_file(src);
  REQUIRE(got.size() == 20u << 20);
  CHECK(std::equal(want.begin(), want.end(), got.begin()));
  // Past the image's end the device is left as it was.
  CHECK(std::count(got.begin() + want.size(), got.end(), 0xAA) ==
        static_cast<long>(got.size() - want.size()));

  // A device smaller than the image: refused before anything is written.
  std::string small = dir / "small";
  write_file(small, std::vector<uint8_t>(8 << 20, 0x55));
  LoopDevice small_loop(small);
  RunResult too_small =
      run_vdisk("convert --force -O raw " + sh_quote(src) + " " + sh_quote(small_loop.path()));
  CHECK(too_small.exit_code == 2);
  CHECK_THAT(too_small.err, Catch::Contains("block device holds"));
  std::vector<uint8_t> untouched = read_file(small);
  CHECK(std::count(untouched.begin(), untouched.end(), 0x55) == 8 << 20);
}

TEST_CASE("outputs: a mounted block device is refused", "[hostile-outputs]") {
  require_tool("mkfs.ext4");
  TempDir dir;
  std::string src = dir / "src.img";
  make_sample_disk(src, 16 << 20);
  std::string backing = dir / "fs.img";
  run_ok("truncate -s 32M " + sh_quote(backing) + " && mkfs.ext4 -q " + sh_quote(backing));
  LoopDevice loop(backing);
  std::filesystem::create_directory(dir / "mnt");
  run_ok("mount -o ro " + sh_quote(loop.path()) + " " + sh_quote(dir / "mnt"));
  RunResult r = run_vdisk("convert --force -O raw " + sh_quote(src) + " " + sh_quote(loop.path()));
  run("umount " + sh_quote(dir / "mnt"));
  INFO(r.err);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("in use"));
  run_ok("e2fsck -fn " + sh_quote(backing) + " >/dev/null");  // the file system is intact
}

TEST_CASE("inputs: a FIFO named as an image or an extent is refused at once", "[hostile-outputs]") {
  TempDir dir;
  REQUIRE(::mkfifo((dir / "pipe.img").c_str(), 0600) == 0);
  RunResult r = run("timeout 20 " + std::string(VDISK_BIN) + " info " + sh_quote(dir / "pipe.img"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("is a FIFO, not a disk image"));
  std::string desc =
      "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
      "createType=\"monolithicFlat\"\nRW 2048 FLAT \"pipe.img\" 0\n";
  write_file(dir / "d.vmdk", {desc.begin(), desc.end()});
  RunResult e = run("timeout 20 " + std::string(VDISK_BIN) + " info " + sh_quote(dir / "d.vmdk"));
  CHECK(e.exit_code == 2);
  CHECK_THAT(e.err, Catch::Contains("is a FIFO"));
}

TEST_CASE("writers: a 2^50-byte empty source stays under 256 MiB or is refused by its limit",
          "[hostile-outputs]") {
  require_tool("/usr/bin/time");
  TempDir dir;
  // 2^50 bytes of ZERO extent: a 150-byte descriptor.
  std::string desc =
      "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
      "createType=\"monolithicFlat\"\nRW 2199023255552 ZERO\n";
  write_file(dir / "huge.vmdk", {desc.begin(), desc.end()});
  Json formats = Json::parse(run_ok(std::string(VDISK_BIN) + " formats --output json"));
  size_t tried = 0;
  for (const Json& f : formats.as_array()) {
    if (!f.find("write")->as_bool()) continue;
    std::vector<std::string> subs;
    for (const Json& s : f.find("subformats")->as_array()) subs.push_back(s.as_string());
    if (subs.empty()) subs.push_back("");
    for (const std::string& sub : subs) {
      const std::string name = f.find("name")->as_string();
      INFO(name << " " << sub);
      std::string out = dir / ("out." + name);
      RunResult r = run("/usr/bin/time -f 'RSS %M' -o " + sh_quote(dir / "rss") + " timeout 120 " +
                        VDISK_BIN + " convert -t unsafe --hash none -O " + name +
                        (sub.empty() ? "" : " -o subformat=" + sub) + " " +
                        sh_quote(dir / "huge.vmdk") + " " + sh_quote(out));
      INFO(r.err);
      std::string rss_text;
      for (uint8_t c : read_file(dir / "rss")) rss_text.push_back(static_cast<char>(c));
      const uint64_t rss_kib = std::stoull(rss_text.substr(rss_text.find("RSS ") + 4));
      CHECK(rss_kib < 256 * 1024);
      if (r.exit_code != 0) {
        CHECK(r.exit_code == 2);
        // A refusal names the format's limit (or the host file system's).
        CHECK_THAT(r.err, Catch::Contains("too large") || Catch::Contains("at most") ||
                              Catch::Contains("exceeds") || Catch::Contains("cannot hold"));
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
      }
      run("rm -rf " + sh_quote(dir.path()) + "/out.*");
      ++tried;
    }
  }
  CHECK(tried >= 8);
}
