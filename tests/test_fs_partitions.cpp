// FAT and ext file systems inside MBR and GPT disks (sfdisk, sgdisk), read
// through `vdisk ls/cat/extract` with IMAGE@pN:PATH and --partition N, and
// through the library (partition table -> SliceDevice -> open_file_tree).
// Oracles: the source trees (find, sha256sum, diff -r).
#include <catch2/catch.hpp>
#include <filesystem>
#include <set>
#include <sstream>

#include "formats/registry.h"
#include "mount/mount.h"
#include "tests/support/fs_support.h"
#include "tests/support/mount_support.h"
#include "tests/support/test_support.h"
#include "views/partition/partition_table.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

const char* kMtoolsEnv = "LC_ALL=C.UTF-8 TZ=UTC MTOOLS_SKIP_CHECK=1 ";

void make_source(const std::string& src, bool symlinks) {
  std::string s = sh_quote(src);
  run_ok("set -e; mkdir -p " + s + "/sub/deeper && cd " + s +
         " && echo hello > hello.txt && echo long > 'A Long Name.txt' && : > empty"
         " && echo deep > sub/deeper/deep.txt" +
         std::string(symlinks ? " && ln -s hello.txt link && ln -s ../hello.txt sub/up" : ""));
  write_random_file(src + "/medium.bin", 300001, 21);
  write_random_file(src + "/sub/deeper/x.bin", 100003, 22);
}

// The start (in 512-byte sectors) of partition `n`, from `sfdisk -d`.
uint64_t partition_start(const std::string& disk, int n) {
  std::string dump = run_ok("sfdisk -d " + sh_quote(disk));
  std::istringstream in(dump);
  std::string line, want = disk + std::to_string(n) + " ";
  while (std::getline(in, line)) {
    if (line.rfind(want, 0) == 0) {
      size_t p = line.find("start=");
      return std::stoull(line.substr(p + 6));
    }
  }
  FAIL("no partition " << n << " in\n" << dump);
  return 0;
}

void put_fat(const std::string& disk, int n, const std::string& src, const std::string& work,
             int kib) {
  std::string img = work + "/p" + std::to_string(n) + ".fat";
  run_ok("mkfs.vfat -C -F 16 " + sh_quote(img) + " " + std::to_string(kib) + " >/dev/null");
  run_ok(std::string(kMtoolsEnv) + "mcopy -s -i " + sh_quote(img) + " " + sh_quote(src) + "/* ::/");
  run_ok("dd if=" + sh_quote(img) + " of=" + sh_quote(disk) + " bs=512 seek=" +
         std::to_string(partition_start(disk, n)) + " conv=notrunc,sparse status=none");
}

void put_ext(const std::string& disk, int n, const std::string& src, const std::string& work,
             const std::string& mkfs, const std::string& size) {
  std::string img = work + "/p" + std::to_string(n) + ".ext";
  run_ok("truncate -s " + size + " " + sh_quote(img));
  run_ok(mkfs + " -q -F -d " + sh_quote(src) + " " + sh_quote(img));
  run_ok("dd if=" + sh_quote(img) + " of=" + sh_quote(disk) + " bs=512 seek=" +
         std::to_string(partition_start(disk, n)) + " conv=notrunc,sparse status=none");
}

// `vdisk ls -R` paths against `find` on the source.
void check_ls(const std::string& spec, const std::string& src, bool ext) {
  RunResult r = run_vdisk("ls -R " + sh_quote(spec));
  INFO(spec << ": " << r.err);
  REQUIRE(r.exit_code == 0);
  std::set<std::string> mine, theirs;
  std::istringstream a(r.out);
  std::string line;
  while (std::getline(a, line)) {
    if (ext && line.rfind("lost+found", 0) == 0) continue;
    mine.insert(line);
  }
  std::istringstream b(run_ok("cd " + sh_quote(src) + " && find . -mindepth 1 | sed 's|^\\./||'"));
  while (std::getline(b, line)) theirs.insert(line);
  CHECK(mine == theirs);
}

void check_cat(const std::string& spec_with_path, const std::string& host_file) {
  std::string mine =
      run_ok(std::string(VDISK_BIN) + " cat " + sh_quote(spec_with_path) + " | sha256sum");
  std::string theirs = run_ok("sha256sum < " + sh_quote(host_file));
  CHECK(mine == theirs);
}

void check_extract(const std::string& args, const std::string& src, const std::string& out) {
  // --devices: the sources hold a FIFO, which diff -r expects to find.
  RunResult r = run_vdisk("extract -q --devices " + args + " -C " + sh_quote(out));
  INFO(args << ": " << r.err);
  REQUIRE(r.exit_code == 0);
  run_ok("diff -r --no-dereference -x lost+found " + sh_quote(src) + " " + sh_quote(out));
}

// An MBR disk: p1 FAT16 (fat source), p2 extended holding p5 ext4 and p6
// ext2 with 1 KiB blocks (ext source).
std::string make_mbr_disk(const TempDir& dir, std::string& fsrc, std::string& esrc) {
  require_tool("sfdisk");
  fsrc = dir / "fat_src";
  esrc = dir / "ext_src";
  std::string disk = dir / "mbr.img";
  make_source(fsrc, false);
  make_source(esrc, true);
  run_ok("truncate -s 48M " + sh_quote(disk));
  run_ok(
      "printf 'label: dos\\nstart=2048, size=32768, type=6\\nstart=34816, size=49152, "
      "type=5\\nstart=36864, size=24576, type=83\\nstart=63488, size=18432, type=83\\n' | "
      "sfdisk -q " +
      sh_quote(disk));
  put_fat(disk, 1, fsrc, dir.path(), 16384);
  put_ext(disk, 5, esrc, dir.path(), "mkfs.ext4", "12M");
  put_ext(disk, 6, esrc, dir.path(), "mkfs.ext2 -b 1024", "9M");
  return disk;
}

}  // namespace

TEST_CASE("FAT and ext partitions of an MBR disk (primary and logical) read by partition",
          "[fat][ext][partition-trees]") {
  TempDir dir;
  std::string fsrc, esrc;
  std::string disk = make_mbr_disk(dir, fsrc, esrc);
  check_ls(disk + "@p1:/", fsrc, false);
  check_ls(disk + "@p5", esrc, true);
  check_ls(disk + "@p6:/", esrc, true);
  CHECK(run_ok(std::string(VDISK_BIN) + " ls " + sh_quote(disk + "@p5:/sub/deeper")) ==
        "deep.txt\nx.bin\n");
  CHECK(run_ok(std::string(VDISK_BIN) + " ls --partition 6 " + sh_quote(disk) + " /sub") ==
        "deeper\nup\n");
  check_cat(disk + "@p1:/sub/deeper/x.bin", fsrc + "/sub/deeper/x.bin");
  check_cat(disk + "@p5:/medium.bin", esrc + "/medium.bin");
  check_cat(disk + "@p6:/link", esrc + "/hello.txt");  // cat follows links
  CHECK(run_ok(std::string(VDISK_BIN) + " cat --partition 1 " + sh_quote(disk) +
               " '/A LONG NAME.TXT'") == "long\n");
  check_extract(sh_quote(disk + "@p5"), esrc, dir / "out5");
  check_extract("--partition 6 " + sh_quote(disk), esrc, dir / "out6");
  check_extract(sh_quote(disk + "@p1:/"), fsrc, dir / "out1");

  // The whole disk holds no file system: the error names the partitions.
  RunResult r = run_vdisk("ls " + sh_quote(disk));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("p1, p2, p5, p6") || Catch::Contains("p1, p5, p6"));
  r = run_vdisk("ls " + sh_quote(disk + "@p9:/"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("no partition 9"));
  r = run_vdisk("ls --partition 5 " + sh_quote(disk + "@p6"));
  CHECK(r.exit_code != 0);
  r = run_vdisk("cat " + sh_quote(disk + "@p5:/hello.txt") + " /medium.bin");
  CHECK(r.exit_code != 0);

  // The library path the mount driver uses: table -> slice -> tree.
  BlockDevicePtr dev = open_image(disk, "", OpenOptions{});
  auto table = partition::read_partition_table(*dev, disk);
  for (const auto& p : table.partitions) {
    if (p.number != 5 && p.number != 1) continue;
    auto tree = open_file_tree(partition::open_partition(dev, p, disk), disk);
    REQUIRE(tree);
    CHECK(compare_with_host(
              *tree, tree->root(), p.number == 1 ? fsrc : esrc,
              TreeCompare{p.number == 5, p.number == 5, p.number == 5, {"lost+found"}}) >= 8);
  }
}

TEST_CASE("FAT and ext partitions read the same after the disk is converted to VMDK, VHDX and VHD",
          "[fat][ext][partition-trees]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string fsrc, esrc;
  std::string disk = make_mbr_disk(dir, fsrc, esrc);
  // One image made by qemu-img (an independent writer) and one by vdisk, per format.
  struct Image {
    std::string path, how;
  };
  std::vector<Image> images = {
      {dir / "q.vmdk", "qemu-img convert -q -f raw -O vmdk"},
      {dir / "q.vhdx", "qemu-img convert -q -f raw -O vhdx"},
      {dir / "v.vmdk", std::string(VDISK_BIN) + " convert --hash none -O vmdk"},
      {dir / "v.vhdx", std::string(VDISK_BIN) + " convert --hash none -O vhdx -o block_size=1M"},
      {dir / "v.vhd", std::string(VDISK_BIN) + " convert --hash none -O vhd"},
  };
  for (const Image& img : images) {
    INFO(img.how << " -> " << img.path);
    run_ok(img.how + " " + sh_quote(disk) + " " + sh_quote(img.path));
    check_ls(img.path + "@p1:/", fsrc, false);
    check_ls(img.path + "@p5", esrc, true);
    check_ls(img.path + "@p6:/", esrc, true);
    check_cat(img.path + "@p1:/sub/deeper/x.bin", fsrc + "/sub/deeper/x.bin");
    check_cat(img.path + "@p5:/medium.bin", esrc + "/medium.bin");
    check_extract(sh_quote(img.path + "@p5"), esrc, img.path + ".out5");
    check_extract(sh_quote(img.path + "@p1:/"), fsrc, img.path + ".out1");
  }
}

TEST_CASE("FAT and ext partitions of a GPT disk read by partition", "[fat][ext][partition-trees]") {
  require_tool("sgdisk");
  TempDir dir;
  std::string fsrc = dir / "fat_src", esrc = dir / "ext_src", disk = dir / "gpt.img";
  make_source(fsrc, false);
  make_source(esrc, true);
  run_ok("truncate -s 40M " + sh_quote(disk));
  run_ok("sgdisk -n 1:2048:+16M -t 1:0700 -n 2:0:+20M -t 2:8300 " + sh_quote(disk) + " >/dev/null");
  put_fat(disk, 1, fsrc, dir.path(), 16384);
  put_ext(disk, 2, esrc, dir.path(), "mkfs.ext4", "20M");
  check_ls(disk + "@p1", fsrc, false);
  check_ls(disk + "@p2:/", esrc, true);
  check_cat(disk + "@p2:/sub/deeper/x.bin", esrc + "/sub/deeper/x.bin");
  check_cat(disk + "@p1:/medium.bin", fsrc + "/medium.bin");
  check_extract("--partition 2 " + sh_quote(disk), esrc, dir / "out2");
  RunResult r = run_vdisk("ls " + sh_quote(disk));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("gpt partitions p1, p2"));
}

TEST_CASE("tree view of a partitioned disk has one folder per readable partition",
          "[fat][ext][partition-trees]") {
  TempDir dir;
  std::string fsrc, esrc;
  std::string disk = make_mbr_disk(dir, fsrc, esrc);
  mount::ViewRequest req;
  req.disk = open_image(disk, "", OpenOptions{});
  req.image = disk;
  req.mode = mount::Mode::kTree;
  std::vector<std::string> warnings;
  req.warn = [&](const std::string& w) { warnings.push_back(w); };
  auto view = mount::make_view(req);
  std::vector<std::string> names;
  for (const DirEntry& e : view->list(view->root())) names.push_back(e.name);
  CHECK(names == std::vector<std::string>{"p1", "p5", "p6"});  // p2 is the extended container
  CHECK(warnings.empty());
  CHECK(compare_with_host(*view, view->lookup(view->root(), "p1"), fsrc, TreeCompare{}) >= 8);
  CHECK(compare_with_host(*view, view->lookup(view->root(), "p5"), esrc,
                          TreeCompare{true, true, true, {"lost+found"}}) >= 8);
  NodeId x = resolve_tree_path(*view, "/p6/sub/deeper/x.bin", disk);
  CHECK(read_whole(*view, x) == read_file(esrc + "/sub/deeper/x.bin"));
  // Auto mode keeps the block view for a disk without a whole-disk file system.
  req.mode = mount::Mode::kAuto;
  names.clear();
  auto block = mount::make_view(req);
  for (const DirEntry& e : block->list(block->root())) names.push_back(e.name);
  CHECK(names.front() == "disk.raw");
}

TEST_CASE("vdisk mount --mode tree of an MBR disk shows p1/, p5/, p6/", "[partition-trees]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  TempDir dir;
  std::string fsrc, esrc;
  std::string disk = make_mbr_disk(dir, fsrc, esrc);
  std::string mp = dir / "mnt";
  std::filesystem::create_directory(mp);
  MountGuard guard(mp);
  run_ok(std::string(VDISK_BIN) + " mount --mode tree " + sh_quote(disk) + " " + sh_quote(mp));
  CHECK(run_ok("ls " + sh_quote(mp)) == "p1\np5\np6\n");
  run_ok("diff -r --no-dereference " + sh_quote(fsrc) + " " + sh_quote(mp + "/p1"));
  run_ok("diff -r --no-dereference -x lost+found " + sh_quote(esrc) + " " + sh_quote(mp + "/p5"));
  run_ok("diff -r --no-dereference -x lost+found " + sh_quote(esrc) + " " + sh_quote(mp + "/p6"));
  run_ok(std::string(VDISK_BIN) + " unmount " + sh_quote(mp));
}
