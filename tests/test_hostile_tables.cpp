// Crafted headers, one table per format that had none in its own tests:
// field, value -> expected kind of error. VHD, VHDX, VDI and ISO 9660 have
// such tables in test_vhd/test_vhdx/test_vdi/test_iso; these fill the gaps:
// the GPT header (both copies poked, CRCs recomputed so the field itself is
// what is judged), the FAT boot sector (BPB), and the ext superblock (ext2,
// which has no superblock checksum, so the field is what is judged), and the
// ISO 9660 Rock Ridge continuation (CE) of the root and a directory record
// naming the root (bounds against bombs and loops).
//
// Every case is checked twice: through the library (the ErrorKind, within
// 5 s) and through the CLI (`vdisk ls`: exit 2 and one line naming the file).
// The good image is made by the oracle tool (sgdisk, mkfs.vfat, mkfs.ext2)
// and must read before any field is poked, so a case cannot pass because the
// base image was already refused.
#include <zlib.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <functional>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/file_tree.h"
#include "formats/ext/ext_tree.h"
#include "formats/fat/fat_tree.h"
#include "formats/iso9660/iso_tree.h"
#include "formats/registry.h"
#include "tests/support/test_support.h"
#include "views/partition/partition_layout.h"
#include "views/partition/partition_table.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

struct Case {
  std::string field;
  std::function<void(std::vector<uint8_t>&)> poke;
  ErrorKind kind;
  std::string message;  // a piece of the message
};

std::vector<uint8_t> le(uint64_t v, int n) {
  std::vector<uint8_t> b(n);
  for (int i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
  return b;
}

void put(std::vector<uint8_t>& img, size_t off, const std::vector<uint8_t>& bytes) {
  std::memcpy(img.data() + off, bytes.data(), bytes.size());
}

// Runs `open` over each case's poked image; checks the kind, the time, and the
// CLI's exit code and one-line message naming the image (`cli_suffix`
// follows the image path: "@p1" to go through the partition table;
// `cli_verb` is `ls` for file systems, `info` for disk images).
void run_cases(const std::string& dir, const std::string& name, const std::vector<uint8_t>& good,
               const std::vector<Case>& cases, const std::function<void(const std::string&)>& open,
               const std::string& cli_suffix, const std::string& cli_verb = "ls") {
  // The base image is good: no case passes because it was refused anyway.
  std::string base = dir + "/" + name + "-good.img";
  write_file(base, good);
  REQUIRE_NOTHROW(open(base));
  REQUIRE(run_vdisk(cli_verb + " " + sh_quote(base + cli_suffix)).exit_code == 0);
  for (const Case& c : cases) {
    INFO(name << ": " << c.field);
    std::vector<uint8_t> b = good;
    c.poke(b);
    std::string path = dir + "/" + name + "-bad.img";
    write_file(path, b);
    auto t0 = std::chrono::steady_clock::now();
    try {
      open(path);
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.kind() == c.kind);
      CHECK_THAT(e.what(), Catch::Contains(c.message));
      CHECK_THAT(e.what(), Catch::Contains(path));
    }
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
    RunResult r = run_vdisk(cli_verb + " " + sh_quote(path + cli_suffix));
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(path));
    // One line: the message and its newline, nothing else.
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
}

BlockDevicePtr open_raw_image(const std::string& path) {
  OpenOptions o;
  return open_image(path, "raw", o);
}

// Walks the tree a little so errors found lazily count too.
void walk(const FileTree& t) {
  for (const DirEntry& e : t.list(t.root())) (void)t.stat(e.stat.id);
}

}  // namespace

TEST_CASE("GPT header fields poked to extreme values are refused", "[hostile][partition]") {
  using namespace vdisk::partition;
  require_tool("sgdisk");
  TempDir dir;
  std::string img = dir / "gpt.img";
  run_ok("truncate -s 1M " + sh_quote(img));
  run_ok("sgdisk -n 1:34:1000 -t 1:8300 " + sh_quote(img) + " >/dev/null");
  // A FAT in partition 1 (sectors 34..1000 = 483 KiB) so `vdisk ls IMG@p1`
  // has something to list when the table is good.
  require_tool("mkfs.vfat");
  run_ok("mkfs.vfat --offset 34 " + sh_quote(img) + " 483 >/dev/null 2>&1");
  const std::vector<uint8_t> good = read_file(img);
  const size_t primary = 512, backup = good.size() - 512;
  REQUIRE(std::memcmp(good.data() + backup, kGptSignature, 8) == 0);

  // Pokes the field in both headers and recomputes each header's CRC-32.
  auto both = [&](size_t field, std::vector<uint8_t> value) {
    return [=](std::vector<uint8_t>& b) {
      for (size_t h : {primary, backup}) {
        put(b, h + field, value);
        uint32_t hsize = load_le32(b.data() + h + kGptHdrHeaderSize);
        if (hsize < kGptHeaderMinSize || hsize > 512) continue;  // no CRC to fix
        store_le32(b.data() + h + kGptHdrHeaderCrc, 0);
        store_le32(b.data() + h + kGptHdrHeaderCrc,
                   static_cast<uint32_t>(crc32(0L, b.data() + h, hsize)));
      }
    };
  };
  std::vector<Case> cases = {
      {"entry count 2^32-1", both(kGptHdrEntryCount, le(0xFFFFFFFF, 4)), ErrorKind::kCorrupt,
       "implausibly large"},
      {"entry size 0", both(kGptHdrEntrySize, le(0, 4)), ErrorKind::kCorrupt, "128 * 2^n"},
      {"entry size 2^31", both(kGptHdrEntrySize, le(0x80000000, 4)), ErrorKind::kCorrupt,
       "implausibly large"},
      {"entry size 200", both(kGptHdrEntrySize, le(200, 4)), ErrorKind::kCorrupt, "128 * 2^n"},
      {"header size 2^32-1", both(kGptHdrHeaderSize, le(0xFFFFFFFF, 4)), ErrorKind::kCorrupt,
       "header size"},
      {"header size 0", both(kGptHdrHeaderSize, le(0, 4)), ErrorKind::kCorrupt, "header size"},
      {"entries LBA 2^63", both(kGptHdrEntriesLba, le(1ull << 63, 8)), ErrorKind::kCorrupt,
       "GPT entry array offset"},
      {"entries LBA past the end", both(kGptHdrEntriesLba, le(4096, 8)), ErrorKind::kCorrupt,
       "past the disk's end"},
      {"my LBA wrong", both(kGptHdrMyLba, le(7, 8)), ErrorKind::kCorrupt, "header says"},
      {"header CRC wrong",
       [&](std::vector<uint8_t>& b) {
         b[primary + kGptHdrHeaderCrc] ^= 1;
         b[backup + kGptHdrHeaderCrc] ^= 1;
       },
       ErrorKind::kCorrupt, "CRC-32"},
      {"entry array CRC wrong", both(kGptHdrEntriesCrc, le(0x12345678, 4)), ErrorKind::kCorrupt,
       "entry array CRC-32"},
  };
  run_cases(
      dir.path(), "gpt", good, cases,
      [](const std::string& p) {
        PartitionTable t = read_partition_table(*open_raw_image(p), p);
        if (t.scheme != Scheme::kGpt || t.partitions.size() != 1)
          throw Error(ErrorKind::kCorrupt, p, std::nullopt, "not the GPT sgdisk wrote");
      },
      "@p1");
}

TEST_CASE("FAT boot sector fields poked to extreme values are refused", "[hostile][fat]") {
  require_tool("mkfs.vfat");
  TempDir dir;
  std::string img = dir / "fat.img";
  run_ok("mkfs.vfat -C -F 16 -s 1 " + sh_quote(img) + " 4096 >/dev/null");
  const std::vector<uint8_t> good = read_file(img);
  // BPB offsets (Microsoft FAT specification, section 3.1).
  auto at = [](size_t off, std::vector<uint8_t> v) {
    return [=](std::vector<uint8_t>& b) { put(b, off, v); };
  };
  // A BPB whose basic fields are impossible is not a FAT boot sector at all
  // (kNotThisFormat, so other file systems may still be tried); one whose
  // fields are each plausible but do not add up is a damaged FAT (kCorrupt).
  std::vector<Case> cases = {
      {"bytes per sector 0", at(11, le(0, 2)), ErrorKind::kNotThisFormat, "bytes per sector 0"},
      {"bytes per sector 100", at(11, le(100, 2)), ErrorKind::kNotThisFormat,
       "bytes per sector 100"},
      {"sectors per cluster 0", at(13, le(0, 1)), ErrorKind::kNotThisFormat, "sectors per cluster"},
      {"sectors per cluster 3", at(13, le(3, 1)), ErrorKind::kNotThisFormat, "sectors per cluster"},
      {"reserved sectors 0", at(14, le(0, 2)), ErrorKind::kNotThisFormat, "no reserved sectors"},
      {"FAT count 0", at(16, le(0, 1)), ErrorKind::kNotThisFormat, "no FAT"},
      {"root entries 0 (FAT16)", at(17, le(0, 2)), ErrorKind::kCorrupt,
       "no root directory entries"},
      {"total sectors 2^32-1", nullptr, ErrorKind::kCorrupt, "cluster count"},
      {"sectors per FAT 65535", at(22, le(0xFFFF, 2)), ErrorKind::kCorrupt, "no room for data"},
  };
  // total sectors: the 16-bit field zeroed sends the reader to the 32-bit one.
  cases[7].poke = [](std::vector<uint8_t>& b) {
    put(b, 19, le(0, 2));
    put(b, 32, le(0xFFFFFFFF, 4));
  };
  run_cases(
      dir.path(), "fat", good, cases,
      [](const std::string& p) { walk(*fat::open_fat_tree(open_raw_image(p), p)); }, "");
}

TEST_CASE("ext superblock fields poked to extreme values are refused", "[hostile][ext]") {
  require_tool("mkfs.ext2");
  TempDir dir;
  std::string img = dir / "ext.img";
  run_ok("truncate -s 2M " + sh_quote(img));
  run_ok("mkfs.ext2 -q -F -b 1024 " + sh_quote(img));
  const std::vector<uint8_t> good = read_file(img);
  // Superblock at byte 1024 (ext4 disk layout, "The Super Block").
  auto sb = [](size_t off, std::vector<uint8_t> v) {
    return [=](std::vector<uint8_t>& b) { put(b, 1024 + off, v); };
  };
  std::vector<Case> cases = {
      {"log block size 30", sb(0x18, le(30, 4)), ErrorKind::kCorrupt, "block size"},
      {"blocks per group 0", sb(0x20, le(0, 4)), ErrorKind::kCorrupt, "blocks per group"},
      {"blocks per group 2^32-1", sb(0x20, le(0xFFFFFFFF, 4)), ErrorKind::kCorrupt,
       "blocks per group"},
      {"inodes per group 0", sb(0x28, le(0, 4)), ErrorKind::kCorrupt, "inodes per group"},
      // The inode bitmap is one block: at most 8 * block size inodes a group.
      {"inodes per group 2^32-1", sb(0x28, le(0xFFFFFFFF, 4)), ErrorKind::kCorrupt,
       "inodes per group"},
      {"blocks count 2^32-1", sb(0x04, le(0xFFFFFFFF, 4)), ErrorKind::kCorrupt,
       "group descriptors need"},
      {"first data block 2^31", sb(0x14, le(0x80000000, 4)), ErrorKind::kCorrupt, "block count"},
      {"inode size 7 (rev 1)", sb(0x58, le(7, 2)), ErrorKind::kCorrupt, "inode size"},
      {"inode size 65535 (rev 1)", sb(0x58, le(0xFFFF, 2)), ErrorKind::kCorrupt, "inode size"},
  };
  run_cases(
      dir.path(), "ext", good, cases,
      [](const std::string& p) { walk(*ext::open_ext_tree(open_raw_image(p), p)); }, "");
}

TEST_CASE("VHD and VHDX BAT entries pointing into metadata are refused", "[hostile][vhd][vhdx]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string raw = dir / "src.raw";
  make_sample_disk(raw, 16ull << 20);

  // VHD (Virtual Hard Disk Image Format Specification): the footer copy at
  // 0, the dynamic header at the footer's Data Offset (big-endian, footer
  // offset 16), the BAT at the header's Table Offset (header offset 16).
  run_ok("qemu-img convert -f raw -O vpc -o subformat=dynamic " + sh_quote(raw) + " " +
         sh_quote(dir / "d.vhd"));
  const std::vector<uint8_t> vhd = read_file(dir / "d.vhd");
  const uint64_t hoff = load_be64(vhd.data() + 16);
  const uint64_t bat = load_be64(vhd.data() + hoff + 16);
  REQUIRE(load_be32(vhd.data() + bat) != 0xFFFFFFFF);  // block 0 is allocated
  auto vhd_entry0 = [&](uint32_t sector) {
    return [=](std::vector<uint8_t>& b) { store_be32(b.data() + bat, sector); };
  };
  std::vector<Case> vhd_cases = {
      {"BAT entry 0 -> sector 0", vhd_entry0(0), ErrorKind::kCorrupt, "over the footer copy"},
      {"BAT entry 0 -> dynamic header", vhd_entry0(static_cast<uint32_t>(hoff / 512)),
       ErrorKind::kCorrupt, "over the dynamic disk header"},
      {"BAT entry 0 -> the BAT", vhd_entry0(static_cast<uint32_t>(bat / 512)), ErrorKind::kCorrupt,
       "over the BAT"},
  };
  run_cases(
      dir.path(), "vhd", vhd, vhd_cases,
      [](const std::string& p) { (void)open_image(p, "vhd", OpenOptions{}); }, "", "info");

  // VHDX (MS-VHDX 2.2.3 region table at 192 KiB: 16-byte header, then
  // 32-byte entries: GUID, file offset (8), length (4), required (4)).
  run_ok("qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=1M " + sh_quote(raw) +
         " " + sh_quote(dir / "d.vhdx"));
  const std::vector<uint8_t> vhdx = read_file(dir / "d.vhdx");
  const uint8_t kBatGuid[4] = {0x66, 0x77, 0xC2, 0x2D};       // 2DC27766-...
  const uint8_t kMetadataGuid[4] = {0x06, 0xA2, 0x7C, 0x8B};  // 8B7CA206-...
  uint64_t bat_off = 0, meta_off = 0;
  const size_t rt = 192 * 1024;
  for (uint32_t i = 0; i < load_le32(vhdx.data() + rt + 8); ++i) {
    const uint8_t* e = vhdx.data() + rt + 16 + 32 * i;
    if (std::memcmp(e, kBatGuid, 4) == 0) bat_off = load_le64(e + 16);
    if (std::memcmp(e, kMetadataGuid, 4) == 0) meta_off = load_le64(e + 16);
  }
  REQUIRE(bat_off != 0);
  REQUIRE(meta_off != 0);
  const uint64_t log_off = load_le64(vhdx.data() + 64 * 1024 + 72);  // header: LogOffset
  REQUIRE(log_off >= (1u << 20));
  // BAT entry: state in bits 0-2 (6 = PAYLOAD_BLOCK_FULLY_PRESENT), file
  // offset in MiB in bits 20-63 (MS-VHDX 2.5.1).
  auto vhdx_entry0 = [&](uint64_t off) {
    return [=](std::vector<uint8_t>& b) { store_le64(b.data() + bat_off, (off >> 20) << 20 | 6); };
  };
  std::vector<Case> vhdx_cases = {
      {"BAT entry 0 -> log", vhdx_entry0(log_off), ErrorKind::kCorrupt, "overlaps the log"},
      {"BAT entry 0 -> metadata region", vhdx_entry0(meta_off), ErrorKind::kCorrupt,
       "overlaps the metadata region"},
      {"BAT entry 0 -> BAT region", vhdx_entry0(bat_off), ErrorKind::kCorrupt,
       "overlaps the BAT region"},
  };
  run_cases(
      dir.path(), "vhdx", vhdx, vhdx_cases,
      [](const std::string& p) { (void)open_image(p, "vhdx", OpenOptions{}); }, "", "info");
}

TEST_CASE("VMDK grain directory and grain table entries pointing into metadata are refused",
          "[hostile][vmdk]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string raw = dir / "src.raw";
  make_sample_disk(raw, 16ull << 20);
  // VMware Virtual Disk Format 1.1, "Hosted Sparse Extent Header" (all
  // little-endian): descriptorOffset at 28, descriptorSize at 36 (sectors),
  // numGTEsPerGT at 44 (4 bytes), rgdOffset at 48, gdOffset at 56 (sectors).
  // Directory and table entries are 4-byte sector numbers; 0 is unallocated
  // and 1 a zeroed grain.
  run_ok("qemu-img convert -f raw -O vmdk " + sh_quote(raw) + " " + sh_quote(dir / "d.vmdk"));
  const std::vector<uint8_t> vmdk = read_file(dir / "d.vmdk");
  const uint64_t desc_sector = load_le64(vmdk.data() + 28);
  const uint64_t desc_sectors = load_le64(vmdk.data() + 36);
  const uint64_t rgd = load_le64(vmdk.data() + 48), gd = load_le64(vmdk.data() + 56);
  REQUIRE(desc_sector != 0);
  REQUIRE(desc_sectors > 1);
  REQUIRE(rgd != 0);
  REQUIRE(gd != 0);
  // qemu-img keeps a redundant directory: every poke goes to both copies, so
  // the reader cannot fall back to an intact one.
  const uint32_t gt = load_le32(vmdk.data() + gd * 512), rgt = load_le32(vmdk.data() + rgd * 512);
  REQUIRE(gt != 0);
  REQUIRE(rgt != 0);
  // The first allocated grain's entry (the sample disk has data at its start).
  size_t k = 0;
  while (load_le32(vmdk.data() + uint64_t{gt} * 512 + 4 * k) < 2) ++k;
  auto grain_to = [=](uint64_t sector, uint64_t redundant_sector = 0) {
    return [=](std::vector<uint8_t>& b) {
      store_le32(b.data() + uint64_t{gt} * 512 + 4 * k, static_cast<uint32_t>(sector));
      store_le32(b.data() + uint64_t{rgt} * 512 + 4 * k,
                 static_cast<uint32_t>(redundant_sector ? redundant_sector : sector));
    };
  };
  auto table_to = [=](uint64_t primary, uint64_t redundant) {
    return [=](std::vector<uint8_t>& b) {
      store_le32(b.data() + gd * 512, static_cast<uint32_t>(primary));
      store_le32(b.data() + rgd * 512, static_cast<uint32_t>(redundant));
    };
  };
  std::vector<Case> cases = {
      {"grain -> embedded descriptor", grain_to(desc_sector + 1), ErrorKind::kCorrupt,
       "inside the embedded descriptor"},
      {"grain -> grain directory", grain_to(gd), ErrorKind::kCorrupt,
       "inside the grain directory at sector " + std::to_string(gd)},
      {"grain -> redundant grain directory", grain_to(rgd), ErrorKind::kCorrupt,
       "inside the grain directory at sector " + std::to_string(rgd)},
      {"grain -> its own grain table", grain_to(gt, rgt), ErrorKind::kCorrupt,
       "inside grain table 0"},
      {"grain table -> its grain directory", table_to(gd, rgd), ErrorKind::kCorrupt,
       "grain table 0 (bytes"},
      {"grain table -> embedded descriptor", table_to(desc_sector, desc_sector),
       ErrorKind::kCorrupt, "overlaps the embedded descriptor"},
  };
  run_cases(
      dir.path(), "vmdk", vmdk, cases,
      [](const std::string& p) { (void)open_image(p, "vmdk", OpenOptions{}); }, "", "info");
}

TEST_CASE("ISO 9660 continuation areas and directory records poked are refused", "[hostile][iso]") {
  require_tool("xorriso");
  TempDir dir;
  run_ok("mkdir -p " + sh_quote(dir / "t/sub") + " && echo x > " + sh_quote(dir / "t/sub/f"));
  std::string img = dir / "x.iso";
  run_ok("xorriso -as mkisofs -R -o " + sh_quote(img) + " " + sh_quote(dir / "t") + " 2>/dev/null");
  const std::vector<uint8_t> good = read_file(img);
  // ECMA-119 8.4: the root record at byte 156 of the PVD (LBA 16); its
  // extent (LBA, both-endian) at +2. The "." record opens the root extent;
  // its system use holds SP and, from xorriso, a CE (SUSP 5.1: block @4,
  // offset @12, length @20, each both-endian) to the ER entry.
  const uint32_t root = load_le32(good.data() + 16 * 2048 + 156 + 2);
  const size_t dot = static_cast<size_t>(root) * 2048;
  size_t ce = 0;
  for (size_t k = dot + 34; k + 28 <= dot + good[dot]; ++k) {
    if (good[k] == 'C' && good[k + 1] == 'E' && good[k + 2] == 28) ce = k;
  }
  REQUIRE(ce != 0);
  // The record of "SUB" (after "." and "..").
  size_t sub = dot + good[dot];
  sub += good[sub];
  REQUIRE(std::string(reinterpret_cast<const char*>(good.data() + sub + 33), 3) == "SUB");
  auto both32 = [](size_t off, uint32_t v) {
    return [=](std::vector<uint8_t>& b) {
      store_le32(b.data() + off, v);
      store_be32(b.data() + off + 4, v);
    };
  };
  const uint32_t ce_block = load_le32(good.data() + ce + 4);
  std::vector<Case> cases = {
      {"CE into itself",
       [&](std::vector<uint8_t>& b) {
         size_t area = static_cast<size_t>(ce_block) * 2048 + load_le32(b.data() + ce + 12);
         std::memcpy(b.data() + area, b.data() + ce, 28);
       },
       ErrorKind::kCorrupt, "loop back"},
      {"CE length 40000", both32(ce + 20, 40000), ErrorKind::kCorrupt, "add up to more than"},
      {"CE block past the end", both32(ce + 4, 0x7FFFFFFF), ErrorKind::kCorrupt,
       "lies outside the image"},
      {"directory record naming the root", both32(sub + 2, root), ErrorKind::kCorrupt,
       "directory loop"},
  };
  run_cases(
      dir.path(), "iso", good, cases,
      [](const std::string& p) { walk(*iso9660::open_iso_tree(open_raw_image(p), p)); }, "");
}
