// ext2/3/4 read as file trees. Images are made by mke2fs -d from a source tree
// on the host; the source tree is the oracle, debugfs (ls -p, rdump, htree,
// imap) a second one.
#include <atomic>
#include <catch2/catch.hpp>
#include <ctime>
#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

#include "formats/core/error.h"
#include "formats/registry.h"
#include "formats/ext/ext_tree.h"
#include "tests/support/fs_support.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

// The source tree: deep directories, symlinks short and long, sparse and
// empty files, non-ASCII names, assorted modes, a FIFO, and (optionally) a
// directory of 3000 entries for htree.
void make_source(const std::string& src, bool big_dir, bool huge_sparse = false) {
  std::string s = sh_quote(src);
  std::string script =
      "set -e; mkdir -p " + s + " && cd " + s +
      " && mkdir -p deep/a/b/c/d/e/f/g/h && echo 'at the bottom' > deep/a/b/c/d/e/f/g/h/bottom.txt"
      " && : > empty && printf 'hello ext\\n' > small.txt"
      " && mkdir 'café' && echo crème > 'café/brûlée.txt' && mkdir 日本語 && echo 東京 > "
      "日本語/名前.txt"
      " && echo emoji > 'smile 😀.txt'"
      " && ln -s deep/a short_link && ln -s " +
      std::string(110, 'x') + "/" + std::string(40, 'y') +
      " long_link && ln -s ../small.txt deep/up_link"
      " && truncate -s 8M sparse.bin && printf start | dd of=sparse.bin conv=notrunc status=none"
      " && printf middle | dd of=sparse.bin bs=1 seek=5000000 conv=notrunc status=none"
      " && mkfifo pipe"
      " && chmod 0600 small.txt && chmod 0750 deep/a && chmod 0444 empty && chmod 2755 deep";
  if (huge_sparse) {
    // Past 64 MiB + 256 KiB + 12 KiB of 1 KiB blocks: the triple-indirect range.
    script +=
        " && truncate -s 70M huge_sparse.bin && printf tail |"
        " dd of=huge_sparse.bin bs=1 seek=69000000 conv=notrunc status=none";
  }
  if (big_dir) {
    script +=
        " && mkdir big && cd big && for i in $(seq 1 3000); do : > entry_with_a_longer_name_$i;"
        " done && echo one > entry_with_a_longer_name_1 && echo last > "
        "entry_with_a_longer_name_3000"
        " && cd ..";
  }
  run_ok(script);
  write_random_file(src + "/medium.bin", 300001, 7);
  write_random_file(src + "/deep/a/b/blocks.bin", 700000, 8);
}

void mkfs(const std::string& cmd, const std::string& src, const std::string& img,
          const std::string& size) {
  require_tool("mke2fs");
  run_ok("truncate -s " + size + " " + sh_quote(img));
  run_ok(cmd + " -q -F -d " + sh_quote(src) + " " + sh_quote(img));
}

// Turns /big into an htree (mke2fs -d writes linear directories) and checks
// that it is one, with debugfs.
void make_htree(const std::string& img) {
  require_tool("e2fsck");
  require_tool("debugfs");
  auto r = run("e2fsck -fyD " + sh_quote(img));
  REQUIRE(r.exit_code <= 1);
  std::string out = run_ok("debugfs -R 'htree /big' " + sh_quote(img) + " 2>/dev/null");
  REQUIRE(out.find("Root node dump") != std::string::npos);
}

// debugfs 'ls -p DIR': "/ino/mode/uid/gid/name/size/" per entry.
struct DebugfsEntry {
  uint64_t ino = 0;
  uint32_t mode = 0, uid = 0, gid = 0;
  std::string size;
};
std::map<std::string, DebugfsEntry> debugfs_ls(const std::string& img, const std::string& dir) {
  std::string out =
      run_ok("debugfs -R " + sh_quote("ls -p " + dir) + " " + sh_quote(img) + " 2>/dev/null");
  std::map<std::string, DebugfsEntry> m;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() < 2 || line[0] != '/') continue;
    std::vector<std::string> f;
    size_t p = 1;
    for (int i = 0; i < 6; ++i) {
      size_t q = line.find('/', p);
      if (q == std::string::npos) break;
      f.push_back(line.substr(p, q - p));
      p = q + 1;
    }
    if (f.size() < 6 || f[4].empty() || f[4] == "." || f[4] == ".." || f[0] == "0") continue;
    DebugfsEntry e;
    e.ino = std::stoull(f[0]);
    e.mode = static_cast<uint32_t>(std::stoul(f[1], nullptr, 8));
    e.uid = static_cast<uint32_t>(std::stoul(f[2]));
    e.gid = static_cast<uint32_t>(std::stoul(f[3]));
    e.size = f[5];
    m.emplace(f[4], e);
  }
  return m;
}

void check_against_debugfs(const FileTree& tree, const std::string& img, const std::string& dir) {
  auto oracle = debugfs_ls(img, dir);
  NodeId node = resolve_tree_path(tree, dir, img);
  auto entries = tree.list(node);
  CHECK(entries.size() == oracle.size());
  for (const DirEntry& e : entries) {
    INFO(dir << "/" << e.name);
    auto it = oracle.find(e.name);
    REQUIRE(it != oracle.end());
    CHECK(e.stat.id == it->second.ino);
    CHECK(e.stat.mode == (it->second.mode & 07777));
    CHECK(e.stat.uid == it->second.uid);
    CHECK(e.stat.gid == it->second.gid);
    if (e.stat.type == NodeType::kRegular) CHECK(std::to_string(e.stat.size) == it->second.size);
  }
}

TreeCompare full() {
  return TreeCompare{true, true, true, {"lost+found"}};
}

}  // namespace

TEST_CASE("ext4 with extents, 64-bit descriptors and an htree reads like its source", "[ext]") {
  TempDir dir;
  std::string src = dir / "src", img = dir / "ext4.img";
  make_source(src, true);
  mkfs("mkfs.ext4 -O 64bit,metadata_csum -N 4096", src, img, "32M");
  make_htree(img);
  auto tree = open_tree(img);
  CHECK(tree->info().find("filesystem")->as_string() == "ext4");
  CHECK(compare_with_host(*tree, tree->root(), src, full()) > 3000);
  // Second oracle: debugfs's own view of inode numbers, modes and owners.
  check_against_debugfs(*tree, img, "/");
  check_against_debugfs(*tree, img, "/big");
  check_against_debugfs(*tree, img, "/deep/a/b");
  // Third: debugfs rdump's extraction.
  std::string out = dir / "rdump";
  std::filesystem::create_directory(out);
  run_ok("debugfs -R " + sh_quote("rdump /deep /café /medium.bin /long_link " + out) + " " +
         sh_quote(img) + " 2>/dev/null");
  NodeId deep = resolve_tree_path(*tree, "/deep", img);
  CHECK(compare_with_host(*tree, deep, out + "/deep", TreeCompare{}) > 10);
  CHECK(read_whole(*tree, resolve_tree_path(*tree, "/medium.bin", img)) ==
        read_file(out + "/medium.bin"));
  // Sparse: the hole reads as zeros, at any offset.
  NodeId sp = resolve_tree_path(*tree, "sparse.bin", img);
  uint8_t buf[16];
  REQUIRE(tree->read(sp, 4999998, buf, 10) == 10);
  CHECK(std::string(reinterpret_cast<char*>(buf), 10) == std::string("\0\0middle\0\0", 10));
  CHECK_THROWS_AS(tree->lookup(tree->root(), "missing"), Error);
}

TEST_CASE("ext2 with 1 KiB blocks reads direct, indirect, double and triple indirect blocks",
          "[ext]") {
  TempDir dir;
  std::string src = dir / "src", img = dir / "ext2.img";
  make_source(src, false, true);
  mkfs("mkfs.ext2 -b 1024", src, img, "8M");
  auto tree = open_tree(img);
  CHECK(tree->info().find("filesystem")->as_string() == "ext2");
  CHECK(compare_with_host(*tree, tree->root(), src, full()) > 15);
  check_against_debugfs(*tree, img, "/");
}

TEST_CASE("ext3 with a journal and an htree reads like its source", "[ext]") {
  TempDir dir;
  std::string src = dir / "src", img = dir / "ext3.img";
  make_source(src, true);
  mkfs("mkfs.ext3 -N 4096", src, img, "24M");
  make_htree(img);
  auto tree = open_tree(img);
  CHECK(tree->info().find("filesystem")->as_string() == "ext3");
  CHECK(compare_with_host(*tree, tree->root(), src, full()) > 3000);
  check_against_debugfs(*tree, img, "/big");
}

TEST_CASE("ext4 inline data: small files and directories inside the inode", "[ext]") {
  TempDir dir;
  std::string src = dir / "src", img = dir / "inline.img";
  make_source(src, false);
  // mke2fs 1.47 with inline_data records a file ending in a hole with the
  // size of its last data block (debugfs agrees): leave that file out here.
  run_ok("cd " + sh_quote(src) +
         " && rm sparse.bin && mkdir tiny_dir && echo x > tiny_dir/a && : > tiny_dir/b" +
         " && printf '%0100d' 0 > hundred.txt && printf '%059d' 7 > fiftynine.txt");
  mkfs("mkfs.ext4 -O inline_data -I 256", src, img, "8M");
  // The oracle says the small file and directory really are inline.
  std::string st = run_ok("debugfs -R 'stat /hundred.txt' " + sh_quote(img) + " 2>/dev/null");
  REQUIRE(st.find("Size of inline data") != std::string::npos);
  st = run_ok("debugfs -R 'stat /tiny_dir' " + sh_quote(img) + " 2>/dev/null");
  REQUIRE(st.find("Size of inline data") != std::string::npos);
  auto tree = open_tree(img);
  CHECK(compare_with_host(*tree, tree->root(), src, full()) > 15);
  check_against_debugfs(*tree, img, "/tiny_dir");
}

TEST_CASE("ext4 with meta_bg and many small groups finds every group descriptor", "[ext]") {
  TempDir dir;
  std::string src = dir / "src", img = dir / "metabg.img";
  make_source(src, false);
  mkfs("mkfs.ext4 -b 1024 -g 256 -O meta_bg,^resize_inode,64bit -N 2048", src, img, "16M");
  std::string sb = run_ok("dumpe2fs -h " + sh_quote(img) + " 2>/dev/null");
  REQUIRE(sb.find("meta_bg") != std::string::npos);
  auto tree = open_tree(img);
  CHECK(compare_with_host(*tree, tree->root(), src, full()) > 15);
}

TEST_CASE("ext: unknown incompatible features are refused by name", "[ext]") {
  TempDir dir;
  std::string src = dir / "src", img = dir / "e.img";
  make_source(src, false);
  mkfs("mkfs.ext4 -O ^metadata_csum", src, img, "8M");
  auto poke_incompat = [&](uint32_t bits) {
    auto b = read_file(img);
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{b[1024 + 0x60 + i]} << (8 * i);
    v |= bits;
    std::vector<uint8_t> le = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
    write_at(img, 1024 + 0x60, le);
  };
  BlockDevicePtr dev = open_image(img, "", OpenOptions{});
  poke_incompat(0x80000000u);
  dev = open_image(img, "", OpenOptions{});
  try {
    ext::open_ext_tree(dev, img);
    FAIL("opened a filesystem with an unknown incompat feature");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUnsupported);
    CHECK_THAT(e.what(), Catch::Contains("0x80000000"));
    CHECK_THAT(e.what(), Catch::Contains("incompatible features"));
  }
  poke_incompat(0x10000);  // ENCRYPT: known, not readable
  dev = open_image(img, "", OpenOptions{});
  CHECK_THROWS_WITH(ext::open_ext_tree(dev, img), Catch::Contains("ENCRYPT"));
  // The CLI-facing entry point refuses too (it does not fall back to "no fs").
  CHECK_THROWS_AS(open_file_tree(dev, img), Error);
}

TEST_CASE("ext: a journal that needs recovery is read anyway", "[ext]") {
  TempDir dir;
  std::string src = dir / "src", img = dir / "e.img";
  make_source(src, false);
  mkfs("mkfs.ext4 -O ^metadata_csum", src, img, "8M");
  auto b = read_file(img);
  write_at(img, 1024 + 0x60, {uint8_t(b[1024 + 0x60] | 0x04)});
  REQUIRE(run_ok("dumpe2fs -h " + sh_quote(img) + " 2>/dev/null").find("needs_recovery") !=
          std::string::npos);
  auto tree = open_tree(img);
  CHECK(tree->info().find("warning") != nullptr);
  CHECK(compare_with_host(*tree, tree->root(), src, full()) > 15);
}

TEST_CASE("ext: damaged metadata gives errors, never a crash or a hang", "[ext]") {
  TempDir dir;
  std::string src = dir / "src", img = dir / "e.img";
  make_source(src, false);
  mkfs("mkfs.ext4 -b 4096 -N 512", src, img, "4M");
  // A bad extent header magic in medium.bin's inode (located by debugfs).
  std::string imap = run_ok("debugfs -R 'imap /medium.bin' " + sh_quote(img) + " 2>/dev/null");
  uint64_t block = 0, offset = 0;
  {
    size_t p = imap.find("located at block ");
    REQUIRE(p != std::string::npos);
    std::istringstream in(imap.substr(p + 17));
    char comma;
    std::string word;
    in >> block >> comma >> word >> offset;  // "N, offset 0xXXX"
    offset = std::stoull(imap.substr(imap.find("offset ", p) + 7), nullptr, 16);
  }
  std::string bad = dir / "bad.img";
  std::filesystem::copy_file(img, bad);
  write_at(bad, block * 4096 + offset + 0x28, {0x0B, 0xF3});
  {
    auto tree = open_tree(bad);
    NodeId f = resolve_tree_path(*tree, "/medium.bin", bad);
    uint8_t buf[64];
    CHECK_THROWS_WITH(tree->read(f, 0, buf, sizeof buf), Catch::Contains("0xF30A"));
    // Everything else still reads.
    CHECK(read_whole(*tree, resolve_tree_path(*tree, "/deep/a/b/blocks.bin", bad)).size() ==
          700000);
  }
  // Random damage to the metadata blocks: walking the tree may fail, but only
  // with vdisk errors.
  auto orig = read_file(img);
  uint32_t seed = 12345;
  auto next = [&] { return seed = seed * 1103515245u + 12345u; };
  for (int round = 0; round < 60; ++round) {
    auto b = orig;
    for (int k = 0; k < 40; ++k)
      b[1024 + next() % (256 * 1024)] = static_cast<uint8_t>(next() >> 16);
    write_file(bad, b);
    try {
      auto tree = open_tree(bad);
      std::vector<NodeId> todo{tree->root()};
      for (size_t i = 0; i < todo.size() && i < 2000; ++i) {
        try {
          for (const DirEntry& e : tree->list(todo[i])) {
            if (e.stat.type == NodeType::kDirectory) todo.push_back(e.stat.id);
            if (e.stat.type == NodeType::kRegular) {
              std::vector<uint8_t> buf(65536);
              tree->read(e.stat.id, 0, buf.data(), buf.size());
            }
            if (e.stat.type == NodeType::kSymlink) tree->readlink(e.stat.id);
          }
        } catch (const Error&) {
        }
      }
    } catch (const Error&) {
    }
  }
  // Garbage with the magic in place: refused or empty, not a crash.
  std::vector<uint8_t> junk = pattern_bytes(1 << 20, 3);
  junk[1024 + 0x38] = 0x53;
  junk[1024 + 0x39] = 0xEF;
  write_file(bad, junk);
  BlockDevicePtr dev = open_image(bad, "", OpenOptions{});
  CHECK_THROWS_AS(ext::open_ext_tree(dev, bad), Error);
}

TEST_CASE("ext: 32-bit owners, device numbers and times past 2038 with nanoseconds", "[ext]") {
  TempDir dir;
  std::string src = dir / "src", img = dir / "e.img";
  make_source(src, false);
  mkfs("mkfs.ext4", src, img, "8M");
  auto sif = [&](const std::string& field, const std::string& value) {
    run_ok("debugfs -w -R " + sh_quote("sif /small.txt " + field + " " + value) + " " +
           sh_quote(img) + " 2>/dev/null");
  };
  sif("uid", "100005");
  sif("gid", "70000");
  sif("mtime", "0x80000000");
  sif("mtime_extra", "0x12345679");  // epoch bits 01, nanoseconds 0x12345679 >> 2
  // Device nodes, old (8-bit) and new encodings, made by debugfs (no root).
  run_ok("debugfs -w -R 'mknod tty c 4 64' " + sh_quote(img) + " 2>/dev/null");
  run_ok("debugfs -w -R 'mknod nvme b 259 700' " + sh_quote(img) + " 2>/dev/null");
  REQUIRE(run_ok("debugfs -R 'stat nvme' " + sh_quote(img) + " 2>/dev/null")
              .find("major/minor number: 259:700") != std::string::npos);
  REQUIRE(run_ok("debugfs -R 'stat tty' " + sh_quote(img) + " 2>/dev/null")
              .find("major/minor number: 04:64") != std::string::npos);
  auto tree = open_tree(img);
  NodeStat st = tree->stat(resolve_tree_path(*tree, "/small.txt", img));
  check_against_debugfs(*tree, img, "/");  // uid 100005, gid 70000 per debugfs
  NodeStat tty = tree->stat(resolve_tree_path(*tree, "/tty", img));
  CHECK(tty.type == NodeType::kCharDevice);
  CHECK(tty.rdev == ((uint64_t{4} << 32) | 64));  // the FileTree convention: major << 32 | minor
  NodeStat nvme = tree->stat(resolve_tree_path(*tree, "/nvme", img));
  CHECK(nvme.type == NodeType::kBlockDevice);
  CHECK(nvme.rdev == ((uint64_t{259} << 32) | 700));
  CHECK_THAT(run_ok(std::string(VDISK_BIN) + " ls -l " + sh_quote(img) + " /nvme"),
             Catch::Contains("259, 700"));
  CHECK(st.uid == 100005);
  CHECK(st.gid == 70000);
  // debugfs prints the decoded date; with TZ=UTC it must be ours.
  std::string out = run_ok("TZ=UTC debugfs -R 'stat /small.txt' " + sh_quote(img) + " 2>/dev/null");
  size_t p = out.find(" mtime: ");
  REQUIRE(p != std::string::npos);
  std::string shown = out.substr(out.find("-- ", p) + 3, 24);
  time_t t = static_cast<time_t>(st.mtime.seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "%a %b %e %H:%M:%S %Y", &tm);
  CHECK(shown == buf);
  CHECK(st.mtime.seconds == 2147483648LL);
  CHECK(st.mtime.nanoseconds == (0x12345679u >> 2));
}

TEST_CASE("ext and FAT trees read correctly from several threads at once", "[ext][fat]") {
  TempDir dir;
  std::string src = dir / "src", img = dir / "e.img", fimg = dir / "f.img";
  make_source(src, false);
  mkfs("mkfs.ext4 -b 1024", src, img, "8M");
  run_ok("mkfs.vfat -C -F 16 " + sh_quote(fimg) + " 16384 >/dev/null");
  run_ok("LC_ALL=C.UTF-8 MTOOLS_SKIP_CHECK=1 mcopy -s -i " + sh_quote(fimg) + " " +
         sh_quote(src + "/medium.bin") + " " + sh_quote(src + "/deep") + " ::/");
  for (const std::string& image : {img, fimg}) {
    auto tree = open_tree(image);
    const auto medium = read_file(src + "/medium.bin");
    const auto blocks = read_file(src + "/deep/a/b/blocks.bin");
    NodeId m = resolve_tree_path(*tree, "/medium.bin", image);
    NodeId b = resolve_tree_path(*tree, "/deep/a/b/blocks.bin", image);
    std::atomic<int> bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int round = 0; round < 20; ++round) {
          // No Catch assertions off the main thread: plain reads here.
          NodeId n = (t + round) % 2 ? m : b;
          std::vector<uint8_t> got(tree->stat(n).size);
          for (size_t pos = 0; pos < got.size();) {
            size_t want = std::min<size_t>(100003, got.size() - pos);
            if (tree->read(n, pos, got.data() + pos, want) != want) break;
            pos += want;
          }
          if (got != ((t + round) % 2 ? medium : blocks)) ++bad;
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(bad == 0);
  }
}
