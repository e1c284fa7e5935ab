// `vdisk mount`: real FUSE mounts checked with coreutils, dd, sfdisk/sgdisk,
// mkfs.ext4 + the kernel's own ext4 driver, and xorriso. Every mount is
// undone by a MountGuard, whatever fails.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <random>
#include <thread>

#include "formats/core/error.h"
#include "formats/core/json.h"
#include "formats/registry.h"
#include "mount/mount.h"
#include "tests/support/mount_support.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;
namespace fs = std::filesystem;

namespace {

const uint64_t kDiskSize = 24ull * 1024 * 1024;

// Mounts `image` at `mp` (extra: more arguments) and requires success.
void mount_ok(const std::string& image, const std::string& mp, const std::string& extra = "") {
  RunResult r = run_vdisk("mount " + extra + " " + sh_quote(image) + " " + sh_quote(mp));
  INFO("vdisk mount " << image << ": " << r.err);
  REQUIRE(r.exit_code == 0);
  // The parent returns only once the mount is live.
  REQUIRE(is_mounted(mp));
  CHECK(mounted_fstype(mp) == "fuse.vdisk");
}

std::string dd_range_sha256(const std::string& image, uint64_t start_sector, uint64_t sectors,
                            const std::string& scratch) {
  run_ok("dd if=" + sh_quote(image) + " of=" + sh_quote(scratch) + " bs=512 skip=" +
         std::to_string(start_sector) + " count=" + std::to_string(sectors) + " status=none");
  REQUIRE(file_size(scratch) == sectors * 512);
  return coreutils_digest("sha256sum", scratch);
}

std::vector<std::string> dir_names(const std::string& dir) {
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

struct timespec mtime_of(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mtim;
}

// Checks that nothing under the mount can be changed, and that every attempt
// fails with EROFS.
void check_read_only(const std::string& mp, const std::string& file) {
  std::string f = mp + "/" + file;
  errno = 0;
  CHECK(::open(f.c_str(), O_WRONLY) == -1);
  CHECK(errno == EROFS);
  errno = 0;
  CHECK(::open(f.c_str(), O_RDWR) == -1);
  CHECK(errno == EROFS);
  errno = 0;
  CHECK(::open((mp + "/new").c_str(), O_WRONLY | O_CREAT, 0644) == -1);
  CHECK(errno == EROFS);
  errno = 0;
  CHECK(::truncate(f.c_str(), 0) == -1);
  CHECK(errno == EROFS);
  errno = 0;
  CHECK(::mkdir((mp + "/d").c_str(), 0755) == -1);
  CHECK(errno == EROFS);
  errno = 0;
  CHECK(::unlink(f.c_str()) == -1);
  CHECK(errno == EROFS);
  errno = 0;
  CHECK(::chmod(f.c_str(), 0777) == -1);
  CHECK(errno == EROFS);
  errno = 0;
  CHECK(::rename(f.c_str(), (mp + "/renamed").c_str()) == -1);
  CHECK(errno == EROFS);
  errno = 0;
  CHECK(::symlink("x", (mp + "/newlink").c_str()) == -1);
  CHECK(errno == EROFS);
}

// Unmounts with `vdisk unmount` and checks that the daemon is gone.
void unmount_ok(const std::string& mp) {
  std::vector<pid_t> daemons = mount_daemons(mp);
  CHECK(daemons.size() == 1);
  RunResult r = run_vdisk("unmount " + sh_quote(mp));
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK_FALSE(is_mounted(mp));
  CHECK(wait_exited(daemons, 5.0).empty());
  CHECK(mount_daemons(mp).empty());
}

}  // namespace

TEST_CASE("block mode: disk.raw, p1, p2 and info.json of a raw MBR disk", "[mount]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  TempDir dir;
  std::string img = dir / "disk.img", mp = dir / "mnt";
  make_sample_disk(img, kDiskSize);
  // Settle the host's delayed allocation, so st_blocks (info's actual_size)
  // is the same when the mount computes info.json and when `vdisk info` runs.
  run_ok("sync " + sh_quote(img));
  fs::create_directory(mp);
  const std::string img_sha = coreutils_digest("sha256sum", img);
  const struct timespec img_mtime = mtime_of(img);
  {
    MountGuard guard(mp);
    mount_ok(img, mp);
    CHECK(dir_names(mp) == std::vector<std::string>{"disk.raw", "info.json", "p1", "p2"});
    CHECK(file_size(mp + "/disk.raw") == kDiskSize);
    CHECK(coreutils_digest("sha256sum", mp + "/disk.raw") == img_sha);
    RunResult h = run_vdisk("hash " + sh_quote(img));
    REQUIRE(h.exit_code == 0);
    CHECK(parse_tagged_digest(h.out, "SHA256") == img_sha);

    // The partitions as sfdisk placed them (make_sample_disk): 2048+16384, 18432..end.
    CHECK(file_size(mp + "/p1") == 16384 * 512ull);
    CHECK(coreutils_digest("sha256sum", mp + "/p1") ==
          dd_range_sha256(img, 2048, 16384, dir / "x"));
    uint64_t p2_sectors = kDiskSize / 512 - 18432;
    CHECK(coreutils_digest("sha256sum", mp + "/p2") ==
          dd_range_sha256(img, 18432, p2_sectors, dir / "x"));

    RunResult info = run_vdisk("info --output json " + sh_quote(img));
    REQUIRE(info.exit_code == 0);
    std::vector<uint8_t> mounted = read_file(mp + "/info.json");
    CHECK(Json::parse(std::string(mounted.begin(), mounted.end())).dump() ==
          Json::parse(info.out).dump());

    struct stat st;
    REQUIRE(::stat((mp + "/disk.raw").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0444);
    CHECK(st.st_mtim.tv_sec == img_mtime.tv_sec);

    check_read_only(mp, "disk.raw");
    check_read_only(mp, "p1");
    unmount_ok(mp);
  }
  CHECK(coreutils_digest("sha256sum", img) == img_sha);
  struct timespec after = mtime_of(img);
  CHECK(after.tv_sec == img_mtime.tv_sec);
  CHECK(after.tv_nsec == img_mtime.tv_nsec);
  // Nothing was written into the mount point's own directory either.
  CHECK(dir_names(mp).empty());
}

TEST_CASE("8 concurrent readers doing random 4 KiB reads get the right bytes", "[mount]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  TempDir dir;
  std::string img = dir / "disk.img", mp = dir / "mnt";
  make_sample_disk(img, kDiskSize);
  // Fill more of the disk so most reads see data, not holes.
  for (uint64_t off = 4ull << 20; off < kDiskSize - (4 << 20); off += 6ull << 20) {
    write_at(img, off, pattern_bytes(1 << 20, static_cast<uint32_t>(off >> 20)));
  }
  fs::create_directory(mp);
  MountGuard guard(mp);
  mount_ok(img, mp);
  int ref = ::open(img.c_str(), O_RDONLY);
  REQUIRE(ref >= 0);
  std::atomic<int> bad{0}, failed{0}, done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      // O_DIRECT bypasses the page cache, so every read reaches the driver.
      int fd = ::open((mp + "/disk.raw").c_str(), O_RDONLY | (t % 2 ? O_DIRECT : 0));
      if (fd < 0) {
        ++failed;
        return;
      }
      std::mt19937_64 rng(1234 + t);
      alignas(4096) static thread_local char got[4096];
      char want[4096];
      for (int i = 0; i < 400; ++i) {
        uint64_t off = (rng() % (kDiskSize / 4096)) * 4096;
        if (::pread(fd, got, 4096, static_cast<off_t>(off)) != 4096 ||
            ::pread(ref, want, 4096, static_cast<off_t>(off)) != 4096) {
          ++failed;
          continue;
        }
        if (std::memcmp(got, want, 4096) != 0) ++bad;
        ++done;
      }
      ::close(fd);
    });
  }
  for (auto& th : threads) th.join();
  ::close(ref);
  CHECK(failed == 0);
  CHECK(bad == 0);
  CHECK(done == 8 * 400);
  unmount_ok(mp);
}

TEST_CASE("block mode: p1 and p3 of an sgdisk GPT disk equal the dd'd ranges", "[mount]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  require_tool("sgdisk");
  TempDir dir;
  std::string img = dir / "gpt.img", mp = dir / "mnt";
  run_ok("truncate -s 40M " + sh_quote(img));
  run_ok("sgdisk -o -n 1:2048:+8M -n 3:20480:+16M " + sh_quote(img) + " >/dev/null");
  write_at(img, 2048 * 512 + 4096, pattern_bytes(1 << 20, 7));
  write_at(img, 20480 * 512 - 512, pattern_bytes(4096, 8));             // straddles p3's start
  write_at(img, (20480 + 32768) * 512 - 1000, pattern_bytes(1000, 9));  // p3's last bytes
  fs::create_directory(mp);
  MountGuard guard(mp);
  mount_ok(img, mp, "--mode block");
  // Numbers follow the GPT entry index: no p2.
  CHECK(dir_names(mp) == std::vector<std::string>{"disk.raw", "info.json", "p1", "p3"});
  CHECK(coreutils_digest("sha256sum", mp + "/p1") == dd_range_sha256(img, 2048, 16384, dir / "x"));
  CHECK(coreutils_digest("sha256sum", mp + "/p3") == dd_range_sha256(img, 20480, 32768, dir / "x"));
  unmount_ok(mp);
}

TEST_CASE("disk.raw of the sample converted to every writable format hashes as the source",
          "[mount]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  TempDir dir;
  std::string src = dir / "src.img", mp = dir / "mnt";
  make_sample_disk(src, kDiskSize);
  const std::string want = coreutils_digest("sha256sum", src);
  fs::create_directory(mp);
  RunResult formats = run_vdisk("formats --output json");
  REQUIRE(formats.exit_code == 0);
  int tried = 0;
  const Json list = Json::parse(formats.out);
  for (const Json& f : list.as_array()) {
    if (!f.find("write")->as_bool() || !f.find("read")->as_bool()) continue;
    const std::string name = f.find("name")->as_string();
    INFO("format " << name);
    std::string img = dir / ("disk." + name);
    run_ok(std::string(VDISK_BIN) + " convert -O " + name + " " + sh_quote(src) + " " +
           sh_quote(img));
    MountGuard guard(mp);
    mount_ok(img, mp, "--mode block");
    CHECK(coreutils_digest("sha256sum", mp + "/disk.raw") == want);
    CHECK(coreutils_digest("sha256sum", mp + "/p1") ==
          dd_range_sha256(src, 2048, 16384, dir / "x"));
    RunResult h = run_vdisk("hash " + sh_quote(img));
    CHECK(parse_tagged_digest(h.out, "SHA256") == want);
    unmount_ok(mp);
    ++tried;
  }
  CHECK(tried >= 1);
}

TEST_CASE("an ext4 partition loop-mounts read-only from the mount and a file reads back",
          "[mount]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  require_tool("mkfs.ext4");
  require_tool("sfdisk");
  TempDir dir;
  std::string raw = dir / "disk.img", mp = dir / "mnt", fsmp = dir / "ext4";
  fs::create_directories(dir / "tree/sub");
  write_file(dir / "tree/sub/known.bin", pattern_bytes(300 * 1024 + 3, 42));
  write_file(dir / "tree/hello.txt", {'h', 'e', 'l', 'l', 'o', '\n'});
  run_ok("truncate -s 32M " + sh_quote(raw));
  run_ok("printf 'label: dos\\nstart=2048, size=24576, type=83\\n' | sfdisk -q " + sh_quote(raw));
  run_ok("truncate -s " + std::to_string(24576 * 512) + " " + sh_quote(dir / "part.img"));
  run_ok("mkfs.ext4 -q -F -d " + sh_quote(dir / "tree") + " " + sh_quote(dir / "part.img"));
  run_ok("dd if=" + sh_quote(dir / "part.img") + " of=" + sh_quote(raw) +
         " bs=512 seek=2048 conv=notrunc,sparse status=none");
  // Inside a VMDK when that format is built in, else the raw disk.
  std::string img = raw;
  const FormatDescriptor* vmdk = find_format("vmdk");
  if (vmdk && vmdk->create && vmdk->open) {
    img = dir / "disk.vmdk";
    run_ok(std::string(VDISK_BIN) + " convert -O vmdk " + sh_quote(raw) + " " + sh_quote(img));
  }
  fs::create_directory(mp);
  fs::create_directory(fsmp);
  MountGuard guard(mp);
  mount_ok(img, mp, "--mode block");
  {
    RunResult m = run("mount -o loop,ro " + sh_quote(mp + "/p1") + " " + sh_quote(fsmp));
    INFO("loop mount: " << m.err);
    REQUIRE(m.exit_code == 0);
    struct LoopGuard {
      std::string path;
      ~LoopGuard() { run("umount " + sh_quote(path)); }
    } loop_guard{fsmp};
    CHECK(read_file(fsmp + "/sub/known.bin") == pattern_bytes(300 * 1024 + 3, 42));
    CHECK(read_file(fsmp + "/hello.txt") == std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o', '\n'});
    // The loop device is read-only too.
    errno = 0;
    CHECK(::open((fsmp + "/new").c_str(), O_WRONLY | O_CREAT, 0644) == -1);
    CHECK(errno == EROFS);
  }
  CHECK(wait_mounted(fsmp, false, 5.0));
  unmount_ok(mp);
}

TEST_CASE("mount refuses missing, busy, non-empty mount points and bad arguments", "[mount]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  TempDir dir;
  std::string img = dir / "disk.img", mp = dir / "mnt";
  make_sample_disk(img, 16 << 20);
  auto expect_fail = [&](const std::string& args, const std::string& needle) {
    RunResult r = run_vdisk(args);
    INFO("vdisk " << args << "\nstderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(needle));
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') <= 2);
  };
  expect_fail("mount " + sh_quote(img) + " " + sh_quote(dir / "missing"), "does not exist");
  expect_fail("mount " + sh_quote(img) + " " + sh_quote(img), "not a directory");
  fs::create_directory(mp);
  write_file(mp + "/file", {1});
  expect_fail("mount " + sh_quote(img) + " " + sh_quote(mp), "not empty");
  fs::remove(mp + "/file");
  expect_fail("mount --mode sideways " + sh_quote(img) + " " + sh_quote(mp), "--mode");
  expect_fail("mount -o rw " + sh_quote(img) + " " + sh_quote(mp), "unknown mount option");
  expect_fail("mount " + sh_quote(dir / "nope.img") + " " + sh_quote(mp), "nope.img");
  expect_fail("unmount " + sh_quote(mp), "not a mount point");
  expect_fail("unmount /proc", "not by vdisk");
  CHECK_FALSE(is_mounted(mp));

  MountGuard guard(mp);
  mount_ok(img, mp);
  expect_fail("mount " + sh_quote(img) + " " + sh_quote(mp), "busy");
  CHECK(mount_daemons(mp).size() == 1);
  unmount_ok(mp);
}

TEST_CASE("allow_other reaches the kernel, and a killed daemon's stale mount is cleared",
          "[mount]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  TempDir dir;
  std::string img = dir / "disk.img", mp = dir / "mnt";
  make_sample_disk(img, 16 << 20);
  fs::create_directory(mp);
  MountGuard guard(mp);
  mount_ok(img, mp, "-o allow_other");
  std::ifstream in("/proc/self/mountinfo");
  std::string line, ours;
  while (std::getline(in, line)) {
    if (line.find(" " + mp + " ") != std::string::npos) ours = line;
  }
  CHECK_THAT(ours, Catch::Contains("allow_other"));
  CHECK_THAT(ours, Catch::Contains(" ro"));
  std::vector<pid_t> daemons = mount_daemons(mp);
  REQUIRE(daemons.size() == 1);
  ::kill(daemons[0], SIGKILL);
  CHECK(wait_exited(daemons, 5.0).empty());
  REQUIRE(is_mounted(mp));  // the kernel keeps the dead mount
  RunResult again = run_vdisk("mount " + sh_quote(img) + " " + sh_quote(mp));
  CHECK(again.exit_code == 2);
  CHECK_THAT(again.err, Catch::Contains("stale"));
  RunResult u = run_vdisk("unmount " + sh_quote(mp));
  INFO(u.err);
  CHECK(u.exit_code == 0);
  CHECK_FALSE(is_mounted(mp));
}

TEST_CASE("a foreground mount serves until SIGTERM or SIGINT, then unmounts", "[mount]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  TempDir dir;
  std::string img = dir / "disk.img", mp = dir / "mnt";
  make_sample_disk(img, 16 << 20);
  fs::create_directory(mp);
  for (const char* sig : {"TERM", "INT"}) {
    INFO("signal " << sig);
    MountGuard guard(mp);
    RunResult r = run(std::string(VDISK_BIN) + " mount --foreground " + sh_quote(img) + " " +
                      sh_quote(mp) + " >" + sh_quote(dir / "fg.out") + " 2>&1 & echo $!");
    REQUIRE(r.exit_code == 0);
    const std::string pid = r.out.substr(0, r.out.find('\n'));
    REQUIRE(wait_mounted(mp, true, 5.0));
    CHECK(coreutils_digest("sha256sum", mp + "/disk.raw") == coreutils_digest("sha256sum", img));
    run_ok("kill -" + std::string(sig) + " " + pid);
    CHECK(wait_mounted(mp, false, 5.0));
    CHECK(wait_exited({static_cast<pid_t>(std::stoi(pid))}, 5.0).empty());
    std::vector<uint8_t> out = read_file(dir / "fg.out");
    CHECK(std::string(out.begin(), out.end()).empty());
  }
}

namespace {

// A small in-memory tree: / { hello.txt, big.bin, sub/ { deep.txt }, link -> hello.txt }.
class FakeTree final : public FileTree {
 public:
  FakeTree() : big_(pattern_bytes(3 * 1024 * 1024 + 123, 77)) {}
  NodeId root() const override { return 100; }
  NodeStat stat(NodeId id) const override {
    NodeStat s;
    s.id = id;
    s.mtime = s.atime = s.ctime = Timestamp{1600000000 + static_cast<int64_t>(id), 5000};
    s.uid = 1234;
    s.gid = 567;
    switch (id) {
      case 100:
      case 103:
        s.type = NodeType::kDirectory;
        s.mode = 0755;
        s.nlink = 2;
        return s;
      case 101:
        s.mode = 0644;
        s.size = hello_.size();
        return s;
      case 102:
        s.mode = 0600;
        s.size = big_.size();
        return s;
      case 104:
        s.mode = 0444;
        s.size = deep_.size();
        return s;
      case 106:  // a file whose data is damaged: reads throw kCorrupt
        s.mode = 0644;
        s.size = 4096;
        return s;
      case 105:
        s.type = NodeType::kSymlink;
        s.mode = 0777;
        s.size = 9;
        return s;
    }
    throw Error(ErrorKind::kNotFound, "fake", std::nullopt, "no node");
  }
  std::vector<DirEntry> list(NodeId dir) const override {
    if (dir == 100) {
      return {{"hello.txt", stat(101)},
              {"big.bin", stat(102)},
              {"sub", stat(103)},
              {"link", stat(105)},
              {"bad.bin", stat(106)}};
    }
    if (dir == 103) return {{"deep.txt", stat(104)}};
    throw Error(ErrorKind::kInvalidArgument, "fake", std::nullopt, "not a directory");
  }
  size_t read(NodeId id, uint64_t offset, void* buf, size_t len) const override {
    const std::string* s = id == 101 ? &hello_ : id == 104 ? &deep_ : nullptr;
    const uint8_t* data = s ? reinterpret_cast<const uint8_t*>(s->data()) : big_.data();
    uint64_t size = s ? s->size() : big_.size();
    if (id != 101 && id != 102 && id != 104)
      throw Error(ErrorKind::kCorrupt, "fake", 0, "bad read");
    if (offset >= size) return 0;
    len = std::min<uint64_t>(len, size - offset);
    std::memcpy(buf, data + offset, len);
    return len;
  }
  std::string readlink(NodeId id) const override {
    if (id != 105) throw Error(ErrorKind::kInvalidArgument, "fake", std::nullopt, "not a link");
    return "hello.txt";
  }
  Json info() const override { return Json::object(); }

 private:
  std::string hello_ = "hello, tree\n";
  std::string deep_ = "deep\n";
  std::vector<uint8_t> big_;
};

}  // namespace

TEST_CASE("the driver serves a FileTree: names, modes, sizes, times, links, contents", "[mount]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  TempDir dir;
  std::string mp = dir / "mnt";
  fs::create_directory(mp);
  auto tree = std::make_shared<FakeTree>();
  mount::ServeOptions opts;
  opts.mountpoint = mount::check_mountpoint(mp);
  opts.fsname = "fake";
  opts.handle_signals = false;
  std::promise<void> ready;
  std::future<void> served =
      std::async(std::launch::async, [&] { mount::serve(tree, opts, [&] { ready.set_value(); }); });
  // Unmount (so the serving thread returns) however the checks end.
  struct Stop {
    std::string mp;
    std::future<void>& served;
    ~Stop() {
      try {
        if (is_mounted(mp)) mount::unmount(mp);
      } catch (const std::exception&) {
        run("umount -l " + sh_quote(mp));
      }
      served.wait();
    }
  } stop{opts.mountpoint, served};
  REQUIRE(ready.get_future().wait_for(kHangLimit) == std::future_status::ready);

  CHECK(dir_names(mp) ==
        std::vector<std::string>{"bad.bin", "big.bin", "hello.txt", "link", "sub"});
  CHECK(dir_names(mp + "/sub") == std::vector<std::string>{"deep.txt"});
  struct stat st;
  REQUIRE(::lstat((mp + "/big.bin").c_str(), &st) == 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(st.st_size == 3 * 1024 * 1024 + 123);
  CHECK(st.st_uid == 1234);
  CHECK(st.st_gid == 567);
  CHECK(st.st_mtim.tv_sec == 1600000102);
  CHECK(st.st_mtim.tv_nsec == 5000);
  REQUIRE(::lstat((mp + "/sub").c_str(), &st) == 0);
  CHECK(S_ISDIR(st.st_mode));
  REQUIRE(::lstat((mp + "/link").c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
  CHECK(fs::read_symlink(mp + "/link") == "hello.txt");
  CHECK(read_file(mp + "/link") == read_file(mp + "/hello.txt"));
  std::vector<uint8_t> hello = read_file(mp + "/hello.txt");
  CHECK(std::string(hello.begin(), hello.end()) == "hello, tree\n");
  std::vector<uint8_t> deep = read_file(mp + "/sub/deep.txt");
  CHECK(std::string(deep.begin(), deep.end()) == "deep\n");
  CHECK(read_file(mp + "/big.bin") == pattern_bytes(3 * 1024 * 1024 + 123, 77));
  CHECK_FALSE(file_exists(mp + "/missing"));
  CHECK_FALSE(file_exists(mp + "/missing"));  // the cached negative entry answers the same
  // An error inside the image is EIO for the reader, never a crash of the driver.
  int fd = ::open((mp + "/bad.bin").c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  char one[16];
  errno = 0;
  CHECK(::read(fd, one, sizeof one) == -1);
  CHECK(errno == EIO);
  ::close(fd);
  CHECK(read_file(mp + "/hello.txt").size() == 12);  // still serving
  check_read_only(mp, "hello.txt");
  mount::unmount(opts.mountpoint);
  CHECK(served.wait_for(kHangLimit) == std::future_status::ready);
}

namespace {

// Compares two directory trees: names, types, sizes, contents, link targets.
void compare_trees(const fs::path& want, const fs::path& got) {
  std::map<std::string, fs::path> a, b;
  for (auto it = fs::recursive_directory_iterator(want); it != fs::recursive_directory_iterator();
       ++it) {
    a[it->path().lexically_relative(want).string()] = it->path();
  }
  for (auto it = fs::recursive_directory_iterator(got); it != fs::recursive_directory_iterator();
       ++it) {
    b[it->path().lexically_relative(got).string()] = it->path();
  }
  std::vector<std::string> na, nb;
  for (auto& [k, v] : a) na.push_back(k);
  for (auto& [k, v] : b) nb.push_back(k);
  CHECK(na == nb);
  for (auto& [name, pa] : a) {
    auto found = b.find(name);
    if (found == b.end()) continue;
    INFO(name);
    const fs::path& pb = found->second;
    CHECK(fs::is_symlink(pa) == fs::is_symlink(pb));
    if (fs::is_symlink(pa)) {
      CHECK(fs::read_symlink(pa) == fs::read_symlink(pb));
    } else if (fs::is_regular_file(pa)) {
      CHECK(fs::file_size(pa) == fs::file_size(pb));
      CHECK(read_file(pa.string()) == read_file(pb.string()));
    } else {
      CHECK(fs::is_directory(pb));
    }
  }
}

}  // namespace

TEST_CASE("tree mode of an xorriso ISO equals xorriso's extraction", "[mount]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  require_tool("xorriso");
  TempDir dir;
  std::string iso = dir / "t.iso", mp = dir / "mnt";
  fs::create_directories(dir / "src/dir/deeper");
  write_file(dir / "src/readme.txt", {'r', 'e', 'a', 'd', '\n'});
  write_file(dir / "src/dir/data.bin", pattern_bytes(200 * 1024 + 9, 3));
  write_file(dir / "src/dir/deeper/empty", {});
  fs::create_symlink("../readme.txt", dir / "src/dir/link");
  run_ok("xorriso -outdev " + sh_quote(iso) + " -map " + sh_quote(dir / "src") +
         " / >/dev/null 2>&1");
  fs::create_directory(mp);

  BlockDevicePtr dev = open_image(iso, "", OpenOptions{});
  bool has_tree = open_file_tree(dev, iso) != nullptr;
  if (!has_tree) {
    // No ISO 9660 reader in this build: tree mode says so, auto falls back.
    RunResult r = run_vdisk("mount --mode tree " + sh_quote(iso) + " " + sh_quote(mp));
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("no file system vdisk can read"));
    CHECK_FALSE(is_mounted(mp));
    MountGuard guard(mp);
    mount_ok(iso, mp);
    CHECK(dir_names(mp).front() == "disk.raw");
    CHECK(coreutils_digest("sha256sum", mp + "/disk.raw") == coreutils_digest("sha256sum", iso));
    unmount_ok(mp);
    return;
  }
  fs::create_directory(dir / "x");
  run_ok("xorriso -osirrox on -indev " + sh_quote(iso) + " -extract / " + sh_quote(dir / "x") +
         " >/dev/null 2>&1");
  MountGuard guard(mp);
  mount_ok(iso, mp);  // auto picks the tree
  compare_trees(dir / "x", mp);
  unmount_ok(mp);
  mount_ok(iso, mp, "--mode tree");
  compare_trees(dir / "x", mp);
  check_read_only(mp, "readme.txt");
  unmount_ok(mp);
}

TEST_CASE("views: block view entries, tree mode without a file system, damaged tables", "[mount]") {
  // No FUSE needed: the views are FileTrees.
  TempDir dir;
  std::string img = dir / "disk.img";
  make_sample_disk(img, 16 << 20);
  BlockDevicePtr dev = open_image(img, "", OpenOptions{});
  std::vector<std::string> warnings;
  mount::ViewRequest req;
  req.disk = dev;
  req.image = img;
  req.warn = [&](const std::string& w) { warnings.push_back(w); };
  req.mtime = Timestamp{1234567890, 0};

  req.mode = mount::Mode::kAuto;  // no file system on a partitioned disk: the block view
  std::unique_ptr<FileTree> view = mount::make_view(req);
  std::vector<std::string> names;
  for (const DirEntry& e : view->list(view->root())) names.push_back(e.name);
  CHECK(names == std::vector<std::string>{"disk.raw", "p1", "p2", "info.json"});
  NodeId p1 = view->lookup(view->root(), "p1");
  CHECK(view->stat(p1).size == 16384 * 512ull);
  CHECK(view->stat(p1).mtime.seconds == 1234567890);
  std::vector<uint8_t> buf(4096), want = read_file(img);
  CHECK(view->read(p1, 1 << 20, buf.data(), buf.size()) == 4096);
  CHECK(std::equal(buf.begin(), buf.end(), want.begin() + 2048 * 512 + (1 << 20)));
  NodeId disk = view->lookup(view->root(), "disk.raw");
  CHECK(view->read(disk, (16 << 20) - 100, buf.data(), buf.size()) == 100);  // short at the end
  CHECK(view->read(disk, 16 << 20, buf.data(), buf.size()) == 0);
  NodeId info = view->lookup(view->root(), "info.json");
  size_t info_len = view->read(info, 0, buf.data(), buf.size());
  Json info_j = Json::parse(std::string(buf.begin(), buf.begin() + info_len));
  CHECK(info_j.find("virtual_size")->as_u64() == uint64_t{16} << 20);
  CHECK(info_j.find("format")->as_string() == "raw");
  CHECK_THROWS_AS(view->lookup(view->root(), "p3"), Error);
  CHECK(warnings.empty());

  req.mode = mount::Mode::kTree;
  if (!open_file_tree(dev, img)) {
    try {
      mount::make_view(req);
      FAIL("tree mode without a file system must fail");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kUnsupported);
      CHECK_THAT(e.what(), Catch::Contains(img));
    }
  }
  CHECK_THROWS_AS(mount::parse_mode("sideways"), Error);

  // A GPT whose both headers are damaged costs the partition files only.
  require_tool("sgdisk");
  std::string gpt = dir / "gpt.img";
  run_ok("truncate -s 16M " + sh_quote(gpt));
  run_ok("sgdisk -o -n 1:2048:+4M " + sh_quote(gpt) + " >/dev/null");
  write_at(gpt, 512 + 40, {0x77});
  write_at(gpt, (16 << 20) - 512 + 40, {0x77});
  req.disk = open_image(gpt, "", OpenOptions{});
  req.image = gpt;
  req.mode = mount::Mode::kBlock;
  view = mount::make_view(req);
  names.clear();
  for (const DirEntry& e : view->list(view->root())) names.push_back(e.name);
  CHECK(names == std::vector<std::string>{"disk.raw", "info.json"});
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(warnings[0], Catch::Contains("GPT"));
}

TEST_CASE("a rescued image mounts through its ddrescue mapfile: bad areas read as zeros or EIO",
          "[mount][ddrescue]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  TempDir dir;
  std::string img = dir / "rescued.img", map = dir / "rescue.map", mp = dir / "mnt";
  const std::vector<uint8_t> content = pattern_bytes(8 << 20, 21);
  write_file(img, content);
  // [2 MiB, 3 MiB) was never read (non-tried), [5 MiB, 5 MiB + 4 KiB) is a bad sector.
  write_file(map, [] {
    std::string m =
        "# Mapfile. Created by GNU ddrescue version 1.27\n"
        "# current_pos  current_status  current_pass\n"
        "0x00800000     +               1\n"
        "#      pos        size  status\n"
        "0x00000000  0x00200000  +\n"
        "0x00200000  0x00100000  ?\n"
        "0x00300000  0x00200000  +\n"
        "0x00500000  0x00001000  -\n"
        "0x00501000  0x002FF000  +\n";
    return std::vector<uint8_t>(m.begin(), m.end());
  }());
  // The zero-filled image, made independently with dd.
  std::string zf = dir / "zero-filled.img";
  run_ok("cp " + sh_quote(img) + " " + sh_quote(zf) + " && dd if=/dev/zero of=" + sh_quote(zf) +
         " bs=1M seek=2 count=1 conv=notrunc status=none" + " && dd if=/dev/zero of=" +
         sh_quote(zf) + " bs=4096 seek=1280 count=1 conv=notrunc status=none");
  fs::create_directory(mp);
  {
    MountGuard guard(mp);
    mount_ok(img, mp, "--mode block --mapfile " + sh_quote(map));
    CHECK(coreutils_digest("sha256sum", mp + "/disk.raw") == coreutils_digest("sha256sum", zf));
    unmount_ok(mp);
  }
  {
    MountGuard guard(mp);
    mount_ok(img, mp, "--mode block --mapfile " + sh_quote(map) + " --bad-areas eio");
    int fd = ::open((mp + "/disk.raw").c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    std::vector<uint8_t> buf(4096);
    CHECK(::pread(fd, buf.data(), buf.size(), 0) == 4096);
    CHECK(std::equal(buf.begin(), buf.end(), content.begin()));
    errno = 0;
    CHECK(::pread(fd, buf.data(), buf.size(), (2 << 20) + 8192) == -1);
    CHECK(errno == EIO);
    errno = 0;
    CHECK(::pread(fd, buf.data(), buf.size(), 5 << 20) == -1);
    CHECK(errno == EIO);
    CHECK(::pread(fd, buf.data(), buf.size(), (5 << 20) + 4096) == 4096);
    ::close(fd);
    unmount_ok(mp);
  }
  RunResult bad = run_vdisk("mount --bad-areas eio " + sh_quote(img) + " " + sh_quote(mp));
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Catch::Contains("--mapfile"));
}

TEST_CASE("unmount names the loop device that holds a partition of the mount", "[mount][loop]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  require_tool("losetup");
  TempDir dir;
  std::string img = dir / "disk.img", mp = dir / "mnt";
  make_sample_disk(img, kDiskSize);
  fs::create_directory(mp);
  MountGuard guard(mp);
  mount_ok(img, mp);
  // losetup needs loop devices; a container without them skips, as FUSE does.
  RunResult attach = run("losetup --find --show --read-only " + sh_quote(mp + "/p2"));
  if (attach.exit_code != 0) {
    std::printf("SKIPPED: losetup cannot attach a loop device here: %s\n", attach.err.c_str());
    return;
  }
  std::string loop = attach.out.substr(0, attach.out.find('\n'));
  INFO(loop);
  RunResult busy = run_vdisk("unmount " + sh_quote(mp));
  run_ok("losetup -d " + sh_quote(loop));
  INFO(busy.err);
  CHECK(busy.exit_code == 2);
  CHECK_THAT(busy.err, Catch::Contains(loop + " is attached to " + fs::canonical(mp).string() +
                                       "/p2: losetup -d it first"));
  CHECK(is_mounted(mp));
  // Once the loop device is gone (the kernel lets go of it asynchronously:
  // losetup -d is a lazy detach), the unmount goes through.
  for (int i = 0; i < 50; ++i) {
    RunResult f = run("losetup -j " + sh_quote(mp + "/p2"));
    if (f.out.empty()) break;
    ::usleep(100000);
  }
  unmount_ok(mp);
}
