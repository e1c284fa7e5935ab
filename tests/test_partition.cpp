// Partition tables (MBR with extended/logical partitions, GPT) read from disks
// that sfdisk and sgdisk made, checked against what sfdisk --json reports.
#include <catch2/catch.hpp>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/registry.h"
#include "views/partition/partition_layout.h"
#include "views/partition/partition_table.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::partition;
using namespace vdisk::test;

namespace {

const uint64_t kDisk = 32ull << 20;

struct OraclePart {
  uint32_t number;
  uint64_t start;  // sectors
  uint64_t size;   // sectors
  std::string type;
};

// What sfdisk says, numbered from the node name ("/x/disk.img5" -> 5).
std::vector<OraclePart> sfdisk_partitions(const std::string& img) {
  require_tool("sfdisk");
  Json j = Json::parse(run_ok("sfdisk -J " + sh_quote(img)));
  std::vector<OraclePart> out;
  for (const Json& p : j.find("partitiontable")->find("partitions")->as_array()) {
    std::string node = p.find("node")->as_string();
    REQUIRE(node.size() > img.size());
    OraclePart o;
    o.number = static_cast<uint32_t>(std::stoul(node.substr(img.size())));
    o.start = p.find("start")->as_u64();
    o.size = p.find("size")->as_u64();
    o.type = p.find("type")->as_string();
    out.push_back(o);
  }
  return out;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void check_against_sfdisk(const PartitionTable& t, const std::string& img) {
  std::vector<OraclePart> want = sfdisk_partitions(img);
  REQUIRE(t.partitions.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("partition " << want[i].number);
    const Partition& p = t.partitions[i];
    CHECK(p.number == want[i].number);
    CHECK(p.offset == want[i].start * 512);
    if (p.kind != PartitionKind::kExtended) CHECK(p.length == want[i].size * 512);
    if (t.scheme == Scheme::kGpt) {
      CHECK(lower(p.type_guid) == lower(want[i].type));
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "%x", p.mbr_type);
      CHECK(hex == want[i].type);
    }
  }
}

BlockDevicePtr open_raw(const std::string& path) {
  return open_image(path, "raw", OpenOptions{});
}

// Primaries 1 and 2, an extended partition 3, logicals 5, 6 and 7.
void make_mbr_disk(const std::string& img) {
  require_tool("sfdisk");
  run_ok("truncate -s " + std::to_string(kDisk) + " " + sh_quote(img));
  run_ok(
      "printf 'label: dos\\n"
      "start=2048, size=8192, type=83\\n"
      "start=10240, size=8192, type=7, bootable\\n"
      "start=18432, type=5\\n"
      "start=20480, size=4096, type=83\\n"
      "start=26624, size=4096, type=b\\n"
      "size=4096, type=83\\n' | sfdisk -q " +
      sh_quote(img));
}

void make_gpt_disk(const std::string& img) {
  require_tool("sgdisk");
  run_ok("truncate -s " + std::to_string(kDisk) + " " + sh_quote(img));
  // Entry 2 left empty on purpose: numbers follow the entry index.
  run_ok(
      "sgdisk -o -n 1:2048:+4M -t 1:8300 -c 1:alpha -n 3:12288:+8M -t 3:0700 -c 3:'beta gamma' " +
      sh_quote(img) + " >/dev/null");
}

// The absolute LBA of each EBR in the chain of the disk made above.
std::vector<uint64_t> ebr_lbas(const std::string& img) {
  std::vector<uint8_t> bytes = read_file(img);
  std::vector<uint64_t> out;
  uint64_t ext = 18432, lba = ext;
  for (int guard = 0; guard < 16; ++guard) {
    out.push_back(lba);
    const uint8_t* link = bytes.data() + lba * 512 + kMbrEntriesOffset + kMbrEntrySize;
    if (load_le32(link + kMbrEntrySizeLba) == 0) break;
    lba = ext + load_le32(link + kMbrEntryStartLba);
  }
  return out;
}

bool has_warning(const PartitionTable& t, const std::string& needle) {
  for (auto& w : t.warnings) {
    if (w.find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("MBR primary, extended and logical partitions are numbered as Linux does",
          "[partition]") {
  TempDir dir;
  std::string img = dir / "mbr.img";
  make_mbr_disk(img);
  write_at(img, 20480 * 512ull, pattern_bytes(4096, 5));
  BlockDevicePtr disk = open_raw(img);
  PartitionTable t = read_partition_table(*disk, img);
  CHECK(t.scheme == Scheme::kMbr);
  CHECK(t.warnings.empty());
  check_against_sfdisk(t, img);
  REQUIRE(t.partitions.size() == 6);
  CHECK(t.partitions[1].bootable);
  CHECK(t.partitions[2].kind == PartitionKind::kExtended);
  CHECK_FALSE(t.partitions[2].has_data());
  CHECK(t.partitions[3].kind == PartitionKind::kLogical);
  CHECK(t.partitions[3].number == 5);
  // A partition reads as a device of its own.
  BlockDevicePtr p5 = open_partition(disk, t.partitions[3], img);
  CHECK(p5->size() == 4096 * 512ull);
  std::vector<uint8_t> buf(4096);
  p5->read(0, buf.data(), buf.size());
  CHECK(buf == pattern_bytes(4096, 5));
  CHECK_THROWS_AS(p5->read(p5->size() - 1, buf.data(), 2), Error);
  CHECK(t.to_json().find("partitions")->as_array().size() == 6);
}

TEST_CASE("a looping EBR chain stops with a warning and keeps what came before", "[partition]") {
  TempDir dir;
  std::string img = dir / "loop.img";
  make_mbr_disk(img);
  std::vector<uint64_t> chain = ebr_lbas(img);
  REQUIRE(chain.size() == 3);
  // The last EBR links back to the second: 5, 6, 7, then sector chain[1] again.
  std::vector<uint8_t> link(16, 0);
  link[kMbrEntryType] = kMbrTypeExtendedChs;
  store_le32(link.data() + kMbrEntryStartLba, static_cast<uint32_t>(chain[1] - 18432));
  store_le32(link.data() + kMbrEntrySizeLba, 4096);
  write_at(img, chain[2] * 512 + kMbrEntriesOffset + kMbrEntrySize, link);
  PartitionTable t = read_partition_table(*open_raw(img), img);
  CHECK(has_warning(t, "loops back"));
  std::vector<uint32_t> numbers;
  for (auto& p : t.partitions) numbers.push_back(p.number);
  CHECK(numbers == std::vector<uint32_t>{1, 2, 3, 5, 6, 7});

  // A self-loop on the first EBR: one logical, then stop.
  store_le32(link.data() + kMbrEntryStartLba, 0);
  write_at(img, chain[0] * 512 + kMbrEntriesOffset + kMbrEntrySize, link);
  t = read_partition_table(*open_raw(img), img);
  CHECK(has_warning(t, "loops back"));
  CHECK(t.partitions.back().number == 5);

  // A link past the disk's end and an EBR without its signature.
  store_le32(link.data() + kMbrEntryStartLba, 0x7fffffff);
  write_at(img, chain[0] * 512 + kMbrEntriesOffset + kMbrEntrySize, link);
  t = read_partition_table(*open_raw(img), img);
  CHECK(has_warning(t, "past the disk's end"));
  store_le32(link.data() + kMbrEntryStartLba, static_cast<uint32_t>(chain[1] - 18432));
  write_at(img, chain[0] * 512 + kMbrEntriesOffset + kMbrEntrySize, link);
  write_at(img, chain[1] * 512 + kMbrSignatureOffset, {0, 0});
  t = read_partition_table(*open_raw(img), img);
  CHECK(has_warning(t, "no 0x55AA"));
  CHECK(t.partitions.back().number == 5);
}

TEST_CASE("MBR partitions past the disk's end are truncated or dropped", "[partition]") {
  TempDir dir;
  std::string img = dir / "trunc.img";
  make_mbr_disk(img);
  run_ok("truncate -s " + std::to_string(14000 * 512) + " " + sh_quote(img));
  PartitionTable t = read_partition_table(*open_raw(img), img);
  REQUIRE(t.partitions.size() == 2);
  CHECK(t.partitions[1].length == (14000 - 10240) * 512ull);
  CHECK(has_warning(t, "truncated"));
  CHECK(has_warning(t, "ignored"));
}

TEST_CASE("GPT entries are numbered by index and match sfdisk", "[partition]") {
  TempDir dir;
  std::string img = dir / "gpt.img";
  make_gpt_disk(img);
  PartitionTable t = read_partition_table(*open_raw(img), img);
  CHECK(t.scheme == Scheme::kGpt);
  CHECK(t.gpt_header == "primary");
  CHECK(t.warnings.empty());
  check_against_sfdisk(t, img);
  REQUIRE(t.partitions.size() == 2);
  CHECK(t.partitions[0].number == 1);
  CHECK(t.partitions[0].name == "alpha");
  CHECK(t.partitions[1].number == 3);
  CHECK(t.partitions[1].name == "beta gamma");
  CHECK(t.partitions[1].type_guid == "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7");
  // The disk GUID as sgdisk prints it.
  std::string out = run_ok("sgdisk -p " + sh_quote(img));
  CHECK_THAT(lower(out), Catch::Contains(lower(t.disk_guid)));
}

TEST_CASE("a GPT with a bad primary CRC is read from the backup, both bad is an error",
          "[partition]") {
  TempDir dir;
  std::string img = dir / "gpt.img";
  make_gpt_disk(img);
  PartitionTable good = read_partition_table(*open_raw(img), img);

  SECTION("primary header CRC") {
    write_at(img, 512 + kGptHdrFirstUsableLba, {0x35});  // a byte the CRC covers
  }
  SECTION("primary entry array CRC") {
    write_at(img, 1024 + kGptEntryName, {'X'});
  }
  PartitionTable t = read_partition_table(*open_raw(img), img);
  CHECK(t.gpt_header == "backup");
  CHECK(has_warning(t, "primary GPT not valid"));
  REQUIRE(t.partitions.size() == good.partitions.size());
  for (size_t i = 0; i < t.partitions.size(); ++i) {
    CHECK(t.partitions[i].offset == good.partitions[i].offset);
    CHECK(t.partitions[i].length == good.partitions[i].length);
    CHECK(t.partitions[i].name == good.partitions[i].name);
  }
  // sgdisk agrees that the primary is damaged.
  RunResult v = run("sgdisk -v " + sh_quote(img) + " 2>&1");
  CHECK_THAT(v.out, Catch::Contains("ERROR"));

  // Now the backup header too.
  write_at(img, kDisk - 512 + kGptHdrFirstUsableLba, {0x35});
  try {
    read_partition_table(*open_raw(img), img);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kCorrupt);
    CHECK_THAT(e.what(), Catch::Contains("backup header"));
    CHECK_THAT(e.what(), Catch::Contains(img));
  }
}

TEST_CASE("a damaged backup GPT is reported while the primary is used", "[partition]") {
  TempDir dir;
  std::string img = dir / "gpt.img";
  make_gpt_disk(img);
  write_at(img, kDisk - 512, std::vector<uint8_t>(512, 0));
  PartitionTable t = read_partition_table(*open_raw(img), img);
  CHECK(t.gpt_header == "primary");
  CHECK(has_warning(t, "backup GPT header"));
  CHECK(t.partitions.size() == 2);
}

TEST_CASE("disks without a partition table and garbage tables", "[partition]") {
  TempDir dir;
  std::string img = dir / "x.img";
  run_ok("truncate -s 4M " + sh_quote(img));
  CHECK(read_partition_table(*open_raw(img), img).scheme == Scheme::kNone);

  // A FAT volume without a partition table: boot code, not an MBR.
  require_tool("mkfs.vfat");
  run_ok("mkfs.vfat -C " + sh_quote(dir / "fat.img") + " 4096 >/dev/null");
  PartitionTable fat = read_partition_table(*open_raw(dir / "fat.img"), dir / "fat.img");
  CHECK(fat.partitions.empty());

  // Random sectors with a boot signature, and random GPT headers behind a
  // protective MBR: never a crash, never a hang, never a huge allocation.
  for (uint32_t seed = 1; seed <= 64; ++seed) {
    std::vector<uint8_t> junk = pattern_bytes(64 * 1024, seed);
    junk[510] = 0x55;
    junk[511] = 0xAA;
    for (int i = 0; i < 4; ++i) junk[446 + 16 * i] = (seed & 1) ? 0x80 : 0;
    if (seed % 4 == 0) {
      junk[446 + 4] = kMbrTypeGptProtective;
      std::memcpy(junk.data() + 512, kGptSignature, 8);
    }
    if (seed % 4 == 1) junk[446 + 4] = kMbrTypeExtendedLba;
    write_at(img, 0, junk);
    try {
      PartitionTable t = read_partition_table(*open_raw(img), img);
      for (auto& p : t.partitions) CHECK(p.offset + p.length <= 4u << 20);
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kCorrupt);
    }
  }
}
