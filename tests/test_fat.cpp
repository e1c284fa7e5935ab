// FAT12/16/32 read as file trees. Images are made by mkfs.vfat and filled by
// mtools (mcopy -s -m, long names included); the source tree is the oracle,
// mtools' own extraction (mcopy out) a second one.
#include <catch2/catch.hpp>
#include <filesystem>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/fat/fat_tree.h"
#include "formats/registry.h"
#include "tests/support/fs_support.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

const char* kMtoolsEnv = "LC_ALL=C.UTF-8 TZ=UTC MTOOLS_SKIP_CHECK=1 ";

// Long and short names in every case style, non-ASCII names, nested and
// many-entry directories, empty and multi-cluster files, all dated at an even
// second so FAT's 2-second resolution keeps them exact.
void make_source(const std::string& src) {
  std::string s = sh_quote(src);
  run_ok("set -e; mkdir -p " + s + " && cd " + s +
         " && mkdir -p 'deep/level one/l2/l3/l4' many 'Mixed Case Dir'"
         " && echo hi > 'Long File Name With Spaces.txt' && echo c > café.txt"
         " && echo j > 日本語.txt && echo u > UPPER.TXT && echo l > lower.txt"
         " && echo m > MiXeD.Txt && echo d > a.b.c.d && echo n > noext && : > empty.txt"
         " && echo x > 'Mixed Case Dir/Inner.File'"
         " && for i in $(seq 1 150); do echo $i > \"many/a long name number $i.txt\"; done"
         " && echo ro > readonly.txt");
  write_random_file(src + "/deep/level one/l2/l3/l4/deep file.bin", 50001, 11);
  write_random_file(src + "/big.bin", 200003, 12);
  run_ok("find " + s + " -exec touch -d @1600000000 {} +");
}

// mkfs.vfat -F bits of `kib` KiB, then mcopy of the source and the read-only
// attribute on readonly.txt.
void make_fat(const std::string& img, const std::string& src, int bits, int kib) {
  require_tool("mkfs.vfat");
  require_tool("mcopy");
  run_ok("mkfs.vfat -C -s 1 -F " + std::to_string(bits) + " -n TESTVOL " + sh_quote(img) + " " +
         std::to_string(kib) + " >/dev/null 2>&1");
  run_ok(std::string(kMtoolsEnv) + "mcopy -s -m -i " + sh_quote(img) + " " + sh_quote(src) +
         "/* ::/");
  run_ok(std::string(kMtoolsEnv) + "mattrib -i " + sh_quote(img) + " +r ::/readonly.txt");
}

void check_fat(int bits, int kib) {
  TempDir dir;
  std::string src = dir / "src", img = dir / "fat.img";
  make_source(src);
  make_fat(img, src, bits, kib);
  auto tree = open_tree(img);
  Json info = tree->info();
  CHECK(info.find("filesystem")->as_string() == "FAT" + std::to_string(bits));
  CHECK(info.find("volume_label")->as_string() == "TESTVOL");
  CHECK(compare_with_host(*tree, tree->root(), src, TreeCompare{false, false, true, {}}) >= 170);
  // Modes: FAT has none; directories 0755, files 0644, read-only 0444.
  CHECK(tree->stat(resolve_tree_path(*tree, "readonly.txt", img)).mode == 0444);
  CHECK(tree->stat(resolve_tree_path(*tree, "big.bin", img)).mode == 0644);
  CHECK(tree->stat(resolve_tree_path(*tree, "/deep/level one", img)).mode == 0755);
  // Lookups are case-insensitive and accept the 8.3 alias, as on FAT.
  NodeId big = resolve_tree_path(*tree, "/big.bin", img);
  CHECK(resolve_tree_path(*tree, "/BIG.BIN", img) == big);
  CHECK(resolve_tree_path(*tree, "/LONGFI~1.TXT", img) ==
        resolve_tree_path(*tree, "/Long File Name With Spaces.txt", img));
  // Second oracle: what mtools itself extracts.
  std::string out = dir / "out";
  std::filesystem::create_directory(out);
  run_ok(std::string(kMtoolsEnv) + "mcopy -s -n -i " + sh_quote(img) + " ::/deep ::/many " +
         sh_quote(out));
  CHECK(compare_with_host(*tree, resolve_tree_path(*tree, "/deep", img), out + "/deep",
                          TreeCompare{}) == 5);
  CHECK(compare_with_host(*tree, resolve_tree_path(*tree, "/many", img), out + "/many",
                          TreeCompare{}) == 150);
}

uint32_t fat_entry_offset(const std::vector<uint8_t>& img, int bits, uint32_t cluster) {
  uint32_t bps = load_le16(&img[11]);
  uint32_t rsvd = load_le16(&img[14]);
  uint32_t base = rsvd * bps;
  return bits == 16 ? base + 2 * cluster : base + 4 * cluster;
}

}  // namespace

TEST_CASE("FAT12 made by mkfs.vfat and mcopy reads like its source", "[fat]") {
  check_fat(12, 2048);
}

TEST_CASE("FAT16 made by mkfs.vfat and mcopy reads like its source", "[fat]") {
  check_fat(16, 16384);
}

TEST_CASE("FAT32 made by mkfs.vfat and mcopy reads like its source", "[fat]") {
  // 33 MiB with 512-byte clusters: the fewest sectors that make a real FAT32
  // (at least 65525 clusters, fatgen103 section 3.5).
  check_fat(32, 33792);
}

TEST_CASE("FAT long names fall back to the 8.3 name on a bad checksum and skip deleted entries",
          "[fat]") {
  TempDir dir;
  std::string img = dir / "fat.img";
  run_ok("mkfs.vfat -C -F 16 " + sh_quote(img) + " 16384 >/dev/null");
  std::string f = dir / "Some Long Name.txt";
  write_file(f, {'a', 'b'});
  std::string gone = dir / "Deleted Soon.txt";
  write_file(gone, {'x'});
  run_ok(std::string(kMtoolsEnv) + "mcopy -i " + sh_quote(img) + " " + sh_quote(gone) + " " +
         sh_quote(f) + " ::/");
  run_ok(std::string(kMtoolsEnv) + "mdel -i " + sh_quote(img) + " '::/Deleted Soon.txt'");
  {
    auto tree = open_tree(img);
    CHECK(tree->lookup(tree->root(), "Some Long Name.txt") != 0);
    CHECK_THROWS_AS(tree->lookup(tree->root(), "Deleted Soon.txt"), Error);
  }
  // Find the long-name entry in the root directory (mtools' 8.3 alias is
  // "SOMELO~1TXT") and break its checksum byte (offset 13).
  auto b = read_file(img);
  uint32_t bps = load_le16(&b[11]), rsvd = load_le16(&b[14]), fats = b[16],
           fatsz = load_le16(&b[22]);
  uint64_t root = (rsvd + uint64_t{fats} * fatsz) * bps;
  uint64_t lfn = 0, sfn = 0;
  for (uint64_t p = root; p < root + 512 * 32; p += 32) {
    if (b[p + 11] == 0x0F && b[p] != 0xE5 && lfn == 0) lfn = p;
    if (std::string(b.begin() + p, b.begin() + p + 11) == "SOMELO~1TXT") sfn = p;
  }
  REQUIRE(lfn != 0);
  REQUIRE(sfn != 0);
  // The deleted file's entries are still there, marked 0xE5, before the live ones.
  CHECK(b[root] == 0xE5);
  write_at(img, lfn + 13, {static_cast<uint8_t>(b[lfn + 13] ^ 0xFF)});
  auto tree = open_tree(img);
  auto entries = tree->list(tree->root());
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].name == "SOMELO~1.TXT");
  CHECK(read_whole(*tree, entries[0].stat.id) == std::vector<uint8_t>{'a', 'b'});
  // The checksum itself, against the spec's example rule on the stored name.
  CHECK(fat::short_name_checksum(&b[sfn]) == b[lfn + 13]);
}

TEST_CASE("FAT cluster-chain loops are detected, not followed forever", "[fat]") {
  TempDir dir;
  std::string img = dir / "fat.img";
  run_ok("mkfs.vfat -C -F 16 -s 1 " + sh_quote(img) + " 16384 >/dev/null");
  std::string f = dir / "three.bin";
  write_file(f, pattern_bytes(3 * 512, 5));
  run_ok(std::string(kMtoolsEnv) + "mcopy -i " + sh_quote(img) + " " + sh_quote(f) + " ::/");
  run_ok(std::string(kMtoolsEnv) + "mmd -i " + sh_quote(img) + " ::/sub");
  auto b = read_file(img);
  // The first file of a fresh FAT16 gets clusters 2, 3, 4 (checked here,
  // from the FAT bytes, before relying on it); the directory then gets 5.
  REQUIRE(load_le16(&b[fat_entry_offset(b, 16, 2)]) == 3);
  REQUIRE(load_le16(&b[fat_entry_offset(b, 16, 3)]) == 4);
  REQUIRE(load_le16(&b[fat_entry_offset(b, 16, 4)]) >= 0xFFF8);
  REQUIRE(load_le16(&b[fat_entry_offset(b, 16, 5)]) >= 0xFFF8);
  {
    // 4 -> 3: a loop inside the file's length.
    std::vector<uint8_t> v = {3, 0};
    write_at(img, fat_entry_offset(b, 16, 4), v);
    write_at(img, fat_entry_offset(b, 16, 4) + load_le16(&b[22]) * 512, v);  // second FAT
    auto tree = open_tree(img);
    NodeId n = resolve_tree_path(*tree, "three.bin", img);
    std::vector<uint8_t> buf(3 * 512);
    CHECK_THROWS_WITH(tree->read(n, 0, buf.data(), buf.size()), Catch::Contains("cluster chain"));
  }
  {
    // 3 -> 2 (and 4 -> 3 still): the loop closes within the three clusters
    // the file's size asks for.
    std::vector<uint8_t> v = {2, 0};
    write_at(img, fat_entry_offset(b, 16, 3), v);
    auto tree = open_tree(img);
    NodeId n = resolve_tree_path(*tree, "three.bin", img);
    std::vector<uint8_t> buf(3 * 512);
    CHECK_THROWS_WITH(tree->read(n, 0, buf.data(), buf.size()),
                      Catch::Contains("loops back to cluster 2"));
  }
  {
    // A directory whose only cluster links to itself.
    std::vector<uint8_t> v = {5, 0};
    write_at(img, fat_entry_offset(b, 16, 5), v);
    auto tree = open_tree(img);
    NodeId n = resolve_tree_path(*tree, "sub", img);
    CHECK_THROWS_WITH(tree->list(n), Catch::Contains("loops back to cluster 5"));
  }
}

TEST_CASE("FAT32 root directory loops and garbage boot sectors are refused", "[fat]") {
  TempDir dir;
  std::string img = dir / "fat.img";
  run_ok("mkfs.vfat -C -F 32 -s 1 " + sh_quote(img) + " 33792 >/dev/null 2>&1");
  auto b = read_file(img);
  uint32_t root = load_le32(&b[44]);
  std::vector<uint8_t> v(4);
  store_le32(v.data(), root);
  write_at(img, fat_entry_offset(b, 32, root), v);
  {
    auto tree = open_tree(img);
    CHECK_THROWS_WITH(tree->list(tree->root()), Catch::Contains("loops"));
  }
  // Garbage: no filesystem at all, or a FAT boot sector with absurd fields.
  std::string junk = dir / "junk.img";
  write_file(junk, pattern_bytes(1 << 20, 1));
  CHECK(open_file_tree(open_image(junk, "", OpenOptions{}), junk) == nullptr);
  auto bad = b;
  bad.resize(1 << 20);
  store_le32(&bad[32], 0xFFFFFFF0u);  // total sectors far beyond the device
  write_file(junk, bad);
  BlockDevicePtr dev = open_image(junk, "", OpenOptions{});
  try {
    fat::open_fat_tree(dev, junk);
    FAIL("opened a FAT claiming 2 TiB of sectors");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kCorrupt);
    CHECK_THAT(e.what(), Catch::Contains("cluster count"));
  }
  bad[13] = 3;  // sectors per cluster not a power of two
  write_file(junk, bad);
  dev = open_image(junk, "", OpenOptions{});
  CHECK_THROWS_AS(fat::open_fat_tree(dev, junk), Error);
  CHECK(open_file_tree(dev, junk) == nullptr);
}
