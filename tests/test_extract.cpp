// `vdisk extract` and `vdisk ls` with images that try to hand out devices or
// privileges, clobber what is there, or forge output with their names
// (issue #16 items 7-9, issue #17 item 10). The images are made by
// mkfs.ext4 -d from a folder the test fills (as root: device nodes), so the
// file system is another tool's; each case failed before its fix.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/support/test_support.h"

using namespace vdisk::test;

namespace {

struct stat lstat_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st;
}

// An ext4 image of a folder holding /dev/mem's numbers, /dev/null's, a FIFO,
// a set-user-ID file, a world-writable .ssh with a key, and names that would
// forge lines or drive a terminal.
std::string make_hostile_ext(const TempDir& dir) {
  require_tool("mkfs.ext4");
  const std::string src = dir / "src";
  std::filesystem::create_directories(src + "/bin");
  std::filesystem::create_directories(src + "/.ssh");
  write_file(src + "/.ssh/authorized_keys2", {'k', 'e', 'y', '\n'});
  write_file(src + "/bin/tool", {'t', 'o', 'o', 'l', '\n'});
  write_file(src + "/suid", {'s', '\n'});
  write_file(src + "/evil\nname", {'e', '\n'});
  write_file(src + "/\x1b[31mred", {'r', '\n'});
  REQUIRE(::chmod((src + "/suid").c_str(), 06777) == 0);
  REQUIRE(::chmod((src + "/.ssh").c_str(), 0777) == 0);
  REQUIRE(::chmod((src + "/bin").c_str(), 01777) == 0);
  REQUIRE(::mknod((src + "/mem").c_str(), S_IFCHR | 0666, makedev(1, 1)) == 0);
  REQUIRE(::mknod((src + "/disk").c_str(), S_IFBLK | 0644, makedev(7, 0)) == 0);
  REQUIRE(::mkfifo((src + "/fifo").c_str(), 0666) == 0);
  const std::string img = dir / "hostile.img";
  run_ok("mkfs.ext4 -q -d " + sh_quote(src) + " " + sh_quote(img) + " 8M");
  return img;
}

}  // namespace

TEST_CASE("extract: devices and FIFOs are listed, not created, unless --devices", "[extract]") {
  TempDir dir;
  const std::string img = make_hostile_ext(dir);
  const std::string out = dir / "out";
  RunResult r = run_vdisk("extract " + sh_quote(img) + " -C " + sh_quote(out));
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK_FALSE(std::filesystem::exists(std::filesystem::symlink_status(out + "/mem")));
  CHECK_FALSE(std::filesystem::exists(std::filesystem::symlink_status(out + "/disk")));
  CHECK_FALSE(std::filesystem::exists(std::filesystem::symlink_status(out + "/fifo")));
  CHECK_THAT(r.err, Catch::Contains("character device 1,1 not created"));
  CHECK_THAT(r.err, Catch::Contains("block device 7,0 not created"));
  CHECK_THAT(r.err, Catch::Contains("FIFO not created"));
  CHECK(file_exists(out + "/bin/tool"));

  const std::string out2 = dir / "out2";
  RunResult d = run_vdisk("extract -q --devices " + sh_quote(img) + " -C " + sh_quote(out2));
  INFO(d.err);
  CHECK(d.exit_code == 0);
  const struct stat mem = lstat_of(out2 + "/mem");
  CHECK(S_ISCHR(mem.st_mode));
  CHECK(mem.st_rdev == makedev(1, 1));
  CHECK(S_ISFIFO(lstat_of(out2 + "/fifo").st_mode));
}

TEST_CASE("extract: modes are masked by the umask and never set-ID or sticky", "[extract]") {
  TempDir dir;
  const std::string img = make_hostile_ext(dir);
  const std::string out = dir / "out";
  RunResult r = run("umask 022; " + std::string(VDISK_BIN) + " extract -q " + sh_quote(img) +
                    " -C " + sh_quote(out));
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK((lstat_of(out + "/suid").st_mode & 07777) == 0755);
  CHECK((lstat_of(out + "/.ssh").st_mode & 07777) == 0755);
  CHECK((lstat_of(out + "/bin").st_mode & 07777) == 0755);
}

TEST_CASE("extract: existing entries are not replaced or merged into without --overwrite",
          "[extract]") {
  TempDir dir;
  const std::string img = make_hostile_ext(dir);
  const std::string home = dir / "home";
  std::filesystem::create_directories(home + "/.ssh");
  REQUIRE(::chmod((home + "/.ssh").c_str(), 0700) == 0);
  write_file(home + "/suid", {'m', 'i', 'n', 'e'});
  RunResult r = run_vdisk("extract " + sh_quote(img) + " -C " + sh_quote(home));
  INFO(r.err);
  CHECK(r.exit_code == 3);
  CHECK_THAT(r.err, Catch::Contains("--overwrite"));
  CHECK((lstat_of(home + "/.ssh").st_mode & 07777) == 0700);
  CHECK_FALSE(file_exists(home + "/.ssh/authorized_keys2"));
  CHECK(read_file(home + "/suid") == std::vector<uint8_t>{'m', 'i', 'n', 'e'});
  CHECK(file_exists(home + "/bin/tool"));  // the rest is extracted

  // --overwrite replaces files and merges, but never loosens a directory.
  RunResult o = run("umask 0; " + std::string(VDISK_BIN) + " extract -q --overwrite " +
                    sh_quote(img) + " -C " + sh_quote(home));
  INFO(o.err);
  CHECK(o.exit_code == 0);
  CHECK((lstat_of(home + "/.ssh").st_mode & 07777) == 0700);
  CHECK(file_exists(home + "/.ssh/authorized_keys2"));
  CHECK(read_file(home + "/suid") == std::vector<uint8_t>{'s', '\n'});
  // ...and never replaces the image it reads.
  std::filesystem::create_directories(dir / "self");
  run_ok("cp " + sh_quote(img) + " " + sh_quote(dir / "self/suid"));
  const std::vector<uint8_t> before = read_file(dir / "self/suid");
  RunResult self = run_vdisk("extract -q --overwrite " + sh_quote(dir / "self/suid") +
                             " /suid -C " + sh_quote(dir / "self"));
  INFO(self.err);
  CHECK(self.exit_code == 2);
  CHECK(read_file(dir / "self/suid") == before);
}

TEST_CASE("extract: a named directory comes out under its name, messages without '//'",
          "[extract]") {
  TempDir dir;
  const std::string img = make_hostile_ext(dir);
  const std::string out = dir / "out";
  RunResult r = run_vdisk("extract -q " + sh_quote(img) + " /bin -C " + sh_quote(out + "/"));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(read_file(out + "/bin/tool") == std::vector<uint8_t>{'t', 'o', 'o', 'l', '\n'});
  CHECK_FALSE(file_exists(out + "/tool"));
  RunResult again = run_vdisk("extract " + sh_quote(img) + " /bin/ -C " + sh_quote(out + "/"));
  CHECK(again.exit_code == 3);
  CHECK_THAT(again.err, Catch::Contains(out + "/bin"));
  CHECK_THAT(again.err, !Catch::Contains("//"));
}

TEST_CASE("ls: names are escaped so they cannot forge lines or drive the terminal", "[extract]") {
  TempDir dir;
  const std::string img = make_hostile_ext(dir);
  for (const std::string flags : {"", "-l "}) {
    RunResult r = run_vdisk("ls " + flags + sh_quote(img));
    INFO(r.out);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("evil\\nname"));
    CHECK_THAT(r.out, Catch::Contains("\\033[31mred"));
    CHECK(r.out.find('\x1b') == std::string::npos);
    // The newline in a name does not start a line of its own.
    CHECK(r.out.find("\nname") == std::string::npos);
  }
}

TEST_CASE("extract: an ext name holding '/' or NUL is skipped with its reason, exit 3",
          "[extract]") {
  require_tool("mkfs.ext4");
  TempDir dir;
  const std::string src = dir / "src";
  std::filesystem::create_directories(src);
  write_file(src + "/SLASHME", {'1'});
  write_file(src + "/NULNAME", {'2'});
  write_file(src + "/good", {'3'});
  const std::string img = dir / "names.img";
  run_ok("mkfs.ext4 -q -O ^metadata_csum -d " + sh_quote(src) + " " + sh_quote(img) + " 4M");
  std::vector<uint8_t> b = read_file(img);
  auto patch = [&](const std::string& from, const std::string& to) {
    auto it = std::search(b.begin(), b.end(), from.begin(), from.end());
    REQUIRE(it != b.end());
    std::copy(to.begin(), to.end(), it);
  };
  patch("SLASHME", "SLA/HME");
  patch("NULNAME", std::string("NUL\0AME", 7));
  write_file(img, b);
  RunResult r = run_vdisk("extract " + sh_quote(img) + " -C " + sh_quote(dir / "out"));
  INFO(r.err);
  CHECK(r.exit_code == 3);
  CHECK_THAT(r.err, Catch::Contains("SLA/HME") && Catch::Contains("contains '/'"));
  CHECK_THAT(r.err, Catch::Contains("NUL\\000AME") && Catch::Contains("NUL byte"));
  CHECK(read_file(dir / "out/good") == std::vector<uint8_t>{'3'});
  RunResult ls = run_vdisk("ls " + sh_quote(img));
  CHECK(ls.exit_code == 3);
  CHECK_THAT(ls.out, Catch::Contains("good"));
}
