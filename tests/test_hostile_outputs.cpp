// Issue #16: no output may destroy what it should not, no input may hang the
// machine. One case per reproduced defect; each failed on the code before
// its fix. Crafted files are made here by the test, never checked in.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <tuple>

#include "formats/core/file.h"
#include "formats/core/json.h"
#include "tests/support/memory_bound.h"
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

// The sources the refusal tables read, made by qemu-img in `dir`: s.img (a
// 16 MiB sample disk, returned), a split VMDK of it (x.vmdk + x-s001.vmdk)
// and a qcow2 child over a parent (child.qcow2 over base.qcow2).
std::string make_sources(const TempDir& dir) {
  require_tool("qemu-img");
  const std::string src = dir / "s.img";
  make_sample_disk(src, 16 << 20);
  run_ok("qemu-img convert -O vmdk -o subformat=twoGbMaxExtentSparse " + sh_quote(src) + " " +
         sh_quote(dir / "x.vmdk"));
  REQUIRE(file_exists(dir / "x-s001.vmdk"));
  run_ok("qemu-img convert -O qcow2 " + sh_quote(src) + " " + sh_quote(dir / "base.qcow2"));
  run_ok("qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 " + sh_quote(dir / "child.qcow2"));
  return src;
}

// A command that must be refused: `vdisk ARGS`, and a text its one-line
// message must contain (the second path, or the reason).
struct Refused {
  std::string args;
  std::string must_name;
};

// What each file in `dir` is: its identity, size and modification time, so
// that a file written, replaced or created shows.
std::map<std::string, std::tuple<ino_t, off_t, int64_t>> folder_state(const TempDir& dir) {
  std::map<std::string, std::tuple<ino_t, off_t, int64_t>> state;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    struct stat st;
    REQUIRE(::lstat(e.path().c_str(), &st) == 0);
    state[e.path().filename()] = {st.st_ino, st.st_size,
                                  int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  }
  return state;
}

// Runs each case in `dir`: exit 2 with one line on stderr naming
// `must_name`, refused before any work (nothing on stdout), and nothing in
// `dir` written, replaced or created.
void expect_refused(const TempDir& dir, const std::vector<Refused>& cases) {
  for (const Refused& c : cases) {
    INFO(c.args);
    const auto before = folder_state(dir);
    RunResult r = run_vdisk(c.args);
    INFO(r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(c.must_name));
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK(r.out.empty());
    CHECK(folder_state(dir) == before);
  }
}

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

TEST_CASE("outputs: a file replaced (--force, a resized VMDK's descriptor) keeps its permissions",
          "[hostile-outputs]") {
  require_tool("qemu-img");
  TempDir dir;
  const std::string src = dir / "src.img", out = dir / "out.vmdk";
  make_sample_disk(src, 16 << 20);
  auto mode_of = [](const std::string& p) {
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    return st.st_mode & 07777;
  };
  // An existing 0600 image replaced with --force stays 0600 (umask would
  // give 0644); a set-group-ID bit is not carried over.
  for (mode_t mode : {mode_t{0600}, mode_t{02640}}) {
    write_file(out, std::vector<uint8_t>(512, 1));
    REQUIRE(::chmod(out.c_str(), mode) == 0);
    RunResult r =
        run_vdisk("convert --force --hash none -O vmdk " + sh_quote(src) + " " + sh_quote(out));
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(mode_of(out) == (mode & 0777));
  }
  // resize of a monolithicFlat VMDK replaces its descriptor file.
  const std::string flat = dir / "flat.vmdk";
  run_ok("qemu-img create -q -f vmdk -o subformat=monolithicFlat " + sh_quote(flat) + " 4M");
  REQUIRE(::chmod(flat.c_str(), 0600) == 0);
  RunResult r = run_vdisk("resize " + sh_quote(flat) + " 8M");
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(mode_of(flat) == 0600);
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
      CHECK(rss_kib < rss_bound_kib(256 * 1024));
      if (r.exit_code != 0) {
        CHECK(r.exit_code == 2);
        // A refusal names the format's limit (or the host file system's).
        CHECK_THAT(r.err, Catch::Contains("too large") || Catch::Contains("at most") ||
                              Catch::Contains("exceeds") || Catch::Contains("cannot hold") ||
                              Catch::Contains("in 32 bits"));
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
      }
      run("rm -rf " + sh_quote(dir.path()) + "/out.*");
      ++tried;
    }
  }
  CHECK(tried >= 8);
}

TEST_CASE("outputs: no output is a file the source reads, nor another output",
          "[hostile-outputs]") {
  TempDir dir;
  const std::string src = make_sources(dir);
  const std::string map = "# Rescue Logfile\n0x00000000     +\n0x00000000  0x01000000  +\n";
  write_file(dir / "m.map", {map.begin(), map.end()});
  write_file(dir / "report.json", {'{', '}', '\n'});
  // acquire's working raw, named as the source.
  write_file(dir / "w.E01.vdisk-work", read_file(src));
  // A file a writer makes besides the destination (a split VMDK's extent).
  run_ok("cp " + sh_quote(src) + " " + sh_quote(dir / "y-s001.vmdk"));
  const std::string q_src = sh_quote(src), q_dir = sh_quote(dir.path());
  const std::string q_new_map = sh_quote(dir / "new.map");

  expect_refused(
      dir,
      {
          {"hash --force --hash-file " + q_src + " " + q_src, "--hash-file"},
          {"convert --force --hash-file " + sh_quote(dir / "x.vmdk") + " -O vmdk " + q_src + " " +
               sh_quote(dir / "x.vmdk"),
           "destination"},
          {"convert --force -O raw " + sh_quote(dir / "x.vmdk") + " " +
               sh_quote(dir / "x-s001.vmdk"),
           "x-s001.vmdk"},
          // Another spelling of the same file.
          {"convert --force -O raw " + sh_quote(dir / "x.vmdk") + " " + q_dir + "/./x-s001.vmdk",
           "x-s001.vmdk"},
          {"convert --force -O raw " + sh_quote(dir / "child.qcow2") + " " +
               sh_quote(dir / "base.qcow2"),
           "base.qcow2"},
          {"convert --force --mapfile " + sh_quote(dir / "m.map") +
               " --on-read-error continue --error-map " + sh_quote(dir / "m.map") + " " + q_src +
               " " + sh_quote(dir / "o1.img"),
           "--error-map"},
          {"convert --force --on-read-error continue --error-map " + sh_quote(dir / "report.json") +
               " --hash-file " + sh_quote(dir / "report.json") + " " + q_src + " " +
               sh_quote(dir / "o2.img"),
           "--error-map"},
          {"verify --hash-file " + sh_quote(dir / "report.json") +
               " --on-read-error continue --error-map " + sh_quote(dir / "report.json") + " " +
               q_src,
           "report.json"},
          // Outputs not made yet collide by folder and name.
          {"convert --hash-file " + q_dir + "/new.img " + q_src + " " + q_dir + "/../" +
               path_basename(dir.path()) + "/new.img",
           "new.img"},
          {"convert --force -f raw -O vmdk -o subformat=twoGbMaxExtentSparse " +
               sh_quote(dir / "y-s001.vmdk") + " " + sh_quote(dir / "y.vmdk"),
           "y-s001.vmdk"},
          // acquire (issue 22): DEST, the working raw, the mapfile and the
          // report against the source and each other.
          {"acquire --mapfile " + q_new_map + " " + q_src + " " + q_src, "destination"},
          {"acquire --mapfile " + q_new_map + " " + q_src + " " + q_dir + "/./s.img",
           "destination"},
          {"acquire --mapfile " + q_src + " " + q_src + " " + sh_quote(dir / "a1.img"),
           "--mapfile"},
          {"acquire --mapfile " + sh_quote(dir / "m.map") + " " + q_src + " " +
               sh_quote(dir / "m.map"),
           "--mapfile"},
          {"acquire --force --hash-file " + sh_quote(dir / "m.map") + " --mapfile " +
               sh_quote(dir / "m.map") + " " + q_src + " " + sh_quote(dir / "a2.img"),
           "--hash-file"},
          {"acquire --force --hash-file " + q_src + " --mapfile " + q_new_map + " " + q_src + " " +
               sh_quote(dir / "a3.img"),
           "--hash-file"},
          {"acquire -O e01 --mapfile " + q_new_map + " " + sh_quote(dir / "w.E01.vdisk-work") +
               " " + sh_quote(dir / "w.E01"),
           "working raw"},
      });
}

TEST_CASE("outputs: create, check --repair and the in-place commands never write a file they read",
          "[hostile-outputs]") {
  TempDir dir;
  const std::string src = make_sources(dir);
  // base <- child <- gc, a symlink to the child and a child over that link.
  const std::string base = dir / "base.qcow2", child = dir / "child.qcow2", gc = dir / "gc.qcow2";
  run_ok("qemu-io -c 'write -P 0x22 1M 1M' " + sh_quote(child) + " >/dev/null");
  run_ok("qemu-img create -q -f qcow2 -b child.qcow2 -F qcow2 " + sh_quote(gc));
  std::filesystem::create_symlink("child.qcow2", dir / "clink.qcow2");
  run_ok("qemu-img create -q -f qcow2 -b clink.qcow2 -F qcow2 " + sh_quote(dir / "gcl.qcow2"));
  // A qcow2 child whose external data file is its own (raw) parent.
  run_ok("cd " + sh_quote(dir.path()) +
         " && qemu-img create -q -f raw d.img 16M && qemu-img create -q -f qcow2 -o "
         "data_file=d.raw -b d.img -F raw dchild.qcow2 && qemu-img rebase -u -b d.raw -F raw "
         "dchild.qcow2");
  write_file(dir / "victim", {'k', 'e', 'e', 'p'});
  std::filesystem::create_symlink("victim", dir / "link.img");
  const std::string q_base = sh_quote(base), q_child = sh_quote(child), q_gc = sh_quote(gc);
  const std::string q_clink = sh_quote(dir / "clink.qcow2"), q_link = sh_quote(dir / "link.img");
  const std::string q_victim = sh_quote(dir / "victim");

  expect_refused(dir,
                 {
                     // create -b: the new image is the backing image or a file of its chain.
                     {"create --force -O qcow2 -b " + q_base + " " + q_base, "the new image"},
                     {"create --force -O qcow2 -b " + q_child + " " + q_base, "base.qcow2"},
                     {"create --force -O vmdk -b " + q_gc + " " + q_child, "child.qcow2"},
                     {"create --force -O qcow2 -b " + sh_quote(dir / "x.vmdk") + " " +
                          sh_quote(dir / "x-s001.vmdk"),
                      "x-s001.vmdk"},
                     {"create -O raw " + q_link + " 1M", "symbolic link"},
                     {"create --force -O raw " + q_link + " 1M", "symbolic link"},
                     {"create -O raw " + q_victim + " 1M", "exists"},
                     {"create -O raw " + sh_quote(dir / "nodir/n.img") + " 1M", "nodir"},
                     // check --repair OUT: refused before the check is run.
                     {"check --repair " + q_child + " " + q_child, "--repair"},
                     {"check --force --repair " + q_base + " " + q_child, "base.qcow2"},
                     {"check --force --repair " + sh_quote(dir / "x-s001.vmdk") + " " +
                          sh_quote(dir / "x.vmdk"),
                      "x-s001.vmdk"},
                     {"check --force --repair " + q_link + " " + q_child, "symbolic link"},
                     {"check --repair " + q_victim + " " + q_child, "exists"},
                     {"check --repair " + sh_quote(dir / "nodir/r.qcow2") + " " + q_child, "nodir"},
                     {"check --output json --repair - " + q_child, "standard output"},
                     // rebase writes the child only: never a parent whose chain reads it.
                     {"rebase -b gc.qcow2 " + q_child, "CHILD"},
                     {"rebase -u -b gc.qcow2 " + q_child, "CHILD"},
                     {"rebase -b clink.qcow2 " + q_child, "its own parent"},
                     {"rebase -b base.qcow2 " + q_clink, "symbolic link"},
                     // commit writes the parent only, never through a link.
                     {"commit --parent " + q_child + " " + q_child, "loops"},
                     {"commit --parent " + q_gc + " " + q_child, "loops"},
                     {"commit " + sh_quote(dir / "gcl.qcow2"), "symbolic link"},
                     {"commit " + sh_quote(dir / "dchild.qcow2"), "PARENT"},
                     {"resize " + q_clink + " +1M", "symbolic link"},
                 });

  // measure writes nothing, even where --as names an existing file.
  const auto before = folder_state(dir);
  for (const std::string& args : {"measure -O qcow2 --as " + q_base + " " + q_child,
                                  "measure -O vmdk -o subformat=twoGbMaxExtentSparse --as " +
                                      sh_quote(dir / "x.vmdk") + " " + sh_quote(src)}) {
    INFO(args);
    RunResult r = run_vdisk(args);
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("required size"));
  }
  CHECK(folder_state(dir) == before);
}

TEST_CASE("outputs: resize, rebase and commit make no file a planted symlink could redirect",
          "[hostile-outputs]") {
  require_tool("strace");
  require_tool("qemu-img");
  TempDir dir;
  const std::string q_dir = sh_quote(dir.path());
  run_ok("cd " + q_dir +
         " && qemu-img create -q -f qcow2 base.qcow2 16M && qemu-img create -q -f qcow2 "
         "other.qcow2 16M && qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 child.qcow2 && "
         "qemu-io -c 'write -P 0x22 1M 1M' child.qcow2 >/dev/null && qemu-img create -q -f vhdx "
         "r.vhdx 16M && qemu-img create -q -f vmdk r.vmdk 16M && qemu-img create -q -f vdi r.vdi "
         "16M");
  run_ok(std::string(VDISK_BIN) + " create -O vhd " + sh_quote(dir / "r.vhd") + " 16M");
  // They change their image in place (Env::open_update, O_NOFOLLOW): no
  // temporary, no rename, no link, nothing created or removed in the folder.
  for (const std::string& args :
       {"resize " + q_dir + "/base.qcow2 +1M", "resize " + q_dir + "/r.vhd +1M",
        "resize " + q_dir + "/r.vhdx +1M", "resize " + q_dir + "/r.vmdk +1M",
        "resize " + q_dir + "/r.vdi +1M", "rebase -b other.qcow2 " + q_dir + "/child.qcow2",
        "commit " + q_dir + "/child.qcow2"}) {
    INFO(args);
    RunResult r =
        run("ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -e "
            "trace=open,openat,creat,rename,renameat,renameat2,link,linkat,unlink,unlinkat,symlink,"
            "symlinkat -o " +
            sh_quote(dir / "trace") + " " + VDISK_BIN + " " + args);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    std::string trace;
    for (uint8_t b : read_file(dir / "trace")) trace.push_back(static_cast<char>(b));
    size_t updates = 0;
    for (size_t pos = trace.find(dir.path()); pos != std::string::npos;
         pos = trace.find(dir.path(), pos + 1)) {
      const size_t bol = trace.rfind('\n', pos) + 1;
      const std::string line = trace.substr(bol, trace.find('\n', pos) - bol);
      INFO(line);
      CHECK_THAT(line, !Catch::Contains("O_CREAT") && !Catch::Contains("O_TMPFILE") &&
                           !Catch::Contains("rename") && !Catch::Contains("link"));
      if (line.find("O_RDWR") != std::string::npos) ++updates;
    }
    CHECK(updates >= 1);  // the trace saw the image opened for its change
  }
}

TEST_CASE("outputs: two outputs on standard output are a usage error before any work",
          "[hostile-outputs]") {
  TempDir dir;
  const std::string src = dir / "s.img";
  make_sample_disk(src, 16 << 20);
  for (const std::string& args :
       {"convert --hash-file - " + sh_quote(src) + " -",
        "convert --on-read-error continue --error-map - " + sh_quote(src) + " -",
        "hash --on-read-error continue --error-map - --hash-file - " + sh_quote(src)}) {
    INFO(args);
    RunResult r = run_vdisk(args);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("standard output"));
    CHECK(r.out.empty());
  }
}

TEST_CASE("outputs: a format other than raw onto a block device is refused", "[hostile-outputs]") {
  TempDir dir;
  std::string src = dir / "src.img";
  make_sample_disk(src, 16 << 20);
  std::string backing = dir / "backing";
  write_file(backing, std::vector<uint8_t>(8 << 20, 0xAA));
  LoopDevice loop(backing);
  for (const std::string fmt : {"vmdk", "qcow2", "vhd"}) {
    INFO(fmt);
    RunResult r =
        run_vdisk("convert --force -O " + fmt + " " + sh_quote(src) + " " + sh_quote(loop.path()));
    INFO(r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("only -O raw"));
    CHECK(file_type(loop.path()) == S_IFBLK);
  }
  std::vector<uint8_t> after = read_file(backing);
  CHECK(std::count(after.begin(), after.end(), 0xAA) == 8 << 20);
}

TEST_CASE("outputs: mkiso refuses to write the ISO over one of its own input files",
          "[hostile-outputs]") {
  TempDir dir;
  run_ok("mkdir -p " + sh_quote(dir / "t") + " && echo a > " + sh_quote(dir / "t/a.txt"));
  REQUIRE(
      run_vdisk("mkiso " + sh_quote(dir / "t") + " -o " + sh_quote(dir / "t/old.iso")).exit_code ==
      0);
  const std::vector<uint8_t> before = read_file(dir / "t/old.iso");
  RunResult r =
      run_vdisk("mkiso --force " + sh_quote(dir / "t") + " -o " + sh_quote(dir / "t/old.iso"));
  INFO(r.err);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("old.iso"));
  CHECK(read_file(dir / "t/old.iso") == before);
}
