// Crafted headers, one table per format that had none in its own tests:
// field, value -> expected kind of error. VHD, VHDX, VDI and ISO 9660 have
// such tables in test_vhd/test_vhdx/test_vdi/test_iso; these fill the gaps:
// the GPT header (both copies poked, CRCs recomputed so the field itself is
// what is judged), the FAT boot sector (BPB), the ext superblock (ext2,
// which has no superblock checksum, so the field is what is judged), the
// NTFS boot sector (both copies) and $MFT entry (both copies), and the
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
#include <map>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/file_tree.h"
#include "formats/dmg/dmg_plist.h"
#include "formats/ext/ext_tree.h"
#include "formats/fat/fat_tree.h"
#include "formats/iso9660/iso_tree.h"
#include "formats/ntfs/ntfs_tree.h"
#include "formats/registry.h"
#include "tests/support/dmg_builder.h"
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
    CHECK(std::chrono::steady_clock::now() - t0 < kHangLimit);
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

TEST_CASE("NTFS boot sector and $MFT fields poked to extreme values are refused",
          "[hostile][ntfs]") {
  require_tool("mkntfs");
  TempDir dir;
  std::string img = dir / "ntfs.img";
  run_ok("truncate -s 2M " + sh_quote(img));
  run_ok("mkntfs -F -q -s 512 -c 1024 " + sh_quote(img) + " >/dev/null 2>&1");
  const std::vector<uint8_t> good = read_file(img);
  // Boot sector offsets (libyal NTFS, "The volume header"). mkntfs writes a
  // backup in the last sector, which vdisk falls back to: both are poked.
  const size_t backup = good.size() - 512;
  auto bs = [backup](size_t off, std::vector<uint8_t> v) {
    return [=](std::vector<uint8_t>& b) {
      put(b, off, v);
      put(b, backup + off, v);
    };
  };
  // MFT entry 0 ($MFT) and its $MFTMirr copy: where the boot sector says.
  const uint64_t cluster = load_le16(good.data() + 11) * uint64_t{good[13]};
  const uint64_t mft = load_le64(good.data() + 48) * cluster;
  const uint64_t mirr = load_le64(good.data() + 56) * cluster;
  auto both_records = [=](size_t off, std::vector<uint8_t> v) {
    return [=](std::vector<uint8_t>& b) {
      put(b, mft + off, v);
      put(b, mirr + off, v);
    };
  };
  std::vector<Case> cases = {
      {"bytes per sector 0", bs(11, le(0, 2)), ErrorKind::kCorrupt, "bytes per sector"},
      {"bytes per sector 8192", bs(11, le(8192, 2)), ErrorKind::kCorrupt, "bytes per sector"},
      {"sectors per cluster 3", bs(13, le(3, 1)), ErrorKind::kCorrupt, "sectors per cluster"},
      {"sectors per cluster 240", bs(13, le(240, 1)), ErrorKind::kCorrupt, "sectors per cluster"},
      {"cluster 16 MiB",
       [=](std::vector<uint8_t>& b) {
         bs(11, le(4096, 2))(b);
         bs(13, le(244, 1))(b);  // 2^(256-244) sectors of 4096 bytes
       },
       ErrorKind::kCorrupt, "cluster size"},
      {"total sectors 0", bs(40, le(0, 8)), ErrorKind::kCorrupt, "total sectors"},
      {"total sectors 2^63", bs(40, le(1ull << 63, 8)), ErrorKind::kCorrupt, "total sectors"},
      {"$MFT cluster 2^40", bs(48, le(1ull << 40, 8)), ErrorKind::kCorrupt, "$MFT cluster"},
      {"$MFTMirr cluster 2^40", bs(56, le(1ull << 40, 8)), ErrorKind::kCorrupt, "$MFTMirr"},
      {"MFT entry size 127 clusters", bs(64, le(127, 1)), ErrorKind::kCorrupt, "MFT entry size"},
      {"MFT entry size 2^32", bs(64, le(0xE0, 1)), ErrorKind::kCorrupt, "MFT entry size"},
      {"index block size 0", bs(68, le(0, 1)), ErrorKind::kCorrupt, "index block size"},
      {"$MFT entry signature", both_records(0, {'X', 'X', 'X', 'X'}), ErrorKind::kCorrupt,
       "no FILE signature"},
      {"$MFT update sequence offset 0xFFFF", both_records(4, le(0xFFFF, 2)), ErrorKind::kCorrupt,
       "update sequence array"},
      {"$MFT first attribute at 0xFFFF", both_records(20, le(0xFFF8, 2)), ErrorKind::kCorrupt,
       "does not fit"},
  };
  run_cases(
      dir.path(), "ntfs", good, cases,
      [](const std::string& p) { walk(*ntfs::open_ntfs_tree(open_raw_image(p), p)); }, "");
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

TEST_CASE("qcow2 header, L1, L2, refcount and snapshot fields poked to hostile values are refused",
          "[hostile][qcow2]") {
  require_tool("qemu-img");
  require_tool("qemu-io");
  TempDir dir;
  std::string raw = dir / "src.raw";
  make_sample_disk(raw, 16ull << 20);
  // QEMU docs/interop/qcow2.rst, all big-endian: cluster_bits at 20, size at
  // 24, crypt_method at 32, l1_size at 36, l1_table_offset at 40,
  // refcount_table_offset at 48, refcount_table_clusters at 56,
  // nb_snapshots at 60, snapshots_offset at 64, incompatible features at 72,
  // refcount_order at 96, header_length at 100, compression_type at 104.
  run_ok("qemu-img convert -f raw -O qcow2 " + sh_quote(raw) + " " + sh_quote(dir / "d.qcow2"));
  const std::vector<uint8_t> img = read_file(dir / "d.qcow2");
  auto be = [](uint64_t v, int n) {
    std::vector<uint8_t> b(n);
    for (int i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(v >> (8 * (n - 1 - i)));
    return b;
  };
  auto at = [](size_t off, std::vector<uint8_t> v) {
    return [=](std::vector<uint8_t>& b) { put(b, off, v); };
  };
  const uint64_t l1 = load_be64(img.data() + 40), rt = load_be64(img.data() + 48);
  const uint64_t copied = 1ull << 63;
  const uint64_t l2 = load_be64(img.data() + l1) & 0x00fffffffffffe00ull;
  const uint64_t block0 = load_be64(img.data() + rt);
  REQUIRE(l2 != 0);
  REQUIRE(block0 != 0);
  size_t k = 0;  // the first allocated L2 entry
  while (load_be64(img.data() + l2 + 8 * k) == 0) ++k;
  const uint64_t data = load_be64(img.data() + l2 + 8 * k) & 0x00fffffffffffe00ull;
  const size_t entry = static_cast<size_t>(l2 + 8 * k);
  std::vector<Case> cases = {
      {"cluster_bits 8", at(20, be(8, 4)), ErrorKind::kCorrupt, "below 9"},
      {"cluster_bits 22", at(20, be(22, 4)), ErrorKind::kUnsupported, "2 MiB limit"},
      {"version 4", at(4, be(4, 4)), ErrorKind::kUnsupported, "qcow version 4"},
      {"size 2^62", at(24, be(1ull << 62, 8)), ErrorKind::kCorrupt, "too small"},
      {"l1_size 2^32-1", at(36, be(0xFFFFFFFF, 4)), ErrorKind::kCorrupt, "L1 table at"},
      {"l1_size 0", at(36, be(0, 4)), ErrorKind::kCorrupt, "too small"},
      {"L1 offset unaligned", at(40, be(l1 + 512, 8)), ErrorKind::kCorrupt, "L1 table at"},
      {"L1 offset 2^63", at(40, be(1ull << 63, 8)), ErrorKind::kCorrupt, "L1 table at"},
      {"refcount table clusters 2^32-1", at(56, be(0xFFFFFFFF, 4)), ErrorKind::kCorrupt,
       "refcount table clusters"},
      {"refcount table offset 0", at(48, be(0, 8)), ErrorKind::kCorrupt, "offset 0"},
      {"header_length 100", at(100, be(100, 4)), ErrorKind::kCorrupt, "header_length"},
      {"refcount_order 7", at(96, be(7, 4)), ErrorKind::kCorrupt, "refcount_order"},
      {"nb_snapshots 2^31", at(60, be(0x80000000, 4)), ErrorKind::kCorrupt, "snapshots"},
      {"backing name of 5000 bytes",
       [&](std::vector<uint8_t>& b) {
         put(b, 8, be(0x200, 8));
         put(b, 16, be(5000, 4));
       },
       ErrorKind::kCorrupt, "backing file name"},
      {"compression type 1 without its feature bit", at(104, be(1, 1)), ErrorKind::kCorrupt,
       "feature bit"},
      {"crypt_method LUKS", at(32, be(2, 4)), ErrorKind::kUnsupported, "encrypted"},
      {"header extension longer than the cluster", at(112 + 4, be(0xFFFFFFF0, 4)),
       ErrorKind::kCorrupt, "runs past"},
      {"L1 entry 0 -> the L1 table", at(l1, be(l1 | copied, 8)), ErrorKind::kCorrupt, "overlaps"},
      {"L1 entry 0 -> the refcount table", at(l1, be(rt | copied, 8)), ErrorKind::kCorrupt,
       "overlaps"},
      {"L1 entry 0 -> past the end", at(l1, be(1ull << 40 | copied, 8)), ErrorKind::kCorrupt,
       "L1 entry 0"},
      {"L1 entry 0 with reserved bits", at(l1, be(l2 | copied | 2, 8)), ErrorKind::kCorrupt,
       "reserved bits"},
      {"L2 entry -> the header (compressed)", at(entry, be(1ull << 62 | 16, 8)),
       ErrorKind::kCorrupt, "inside the header cluster"},
      {"L2 entry -> the L1 table", at(entry, be(l1 | copied, 8)), ErrorKind::kCorrupt,
       "inside the L1 table"},
      {"L2 entry -> refcount block 0", at(entry, be(block0 | copied, 8)), ErrorKind::kCorrupt,
       "inside refcount block 0"},
      {"L2 entry -> its own L2 table", at(entry, be(l2 | copied, 8)), ErrorKind::kCorrupt,
       "inside the L2 table of L1 entry 0"},
      {"L2 entry -> past the end", at(entry, be(1ull << 40 | copied, 8)), ErrorKind::kCorrupt,
       "outside"},
      {"L2 entry unaligned", at(entry, be((data + 512) | copied, 8)), ErrorKind::kCorrupt,
       "not aligned"},
      {"refcount table entry 0 -> the L1 table", at(rt, be(l1, 8)), ErrorKind::kCorrupt,
       "overlaps"},
      {"refcount table entry 0 -> past the end", at(rt, be(1ull << 40, 8)), ErrorKind::kCorrupt,
       "refcount block 0 at"},
  };
  auto open_and_read = [](const std::string& p) {
    BlockDevicePtr d = open_image(p, "qcow2", OpenOptions{});
    std::vector<uint8_t> b(1 << 20);
    for (uint64_t off = 0; off < d->size(); off += b.size())
      d->read(off, b.data(), static_cast<size_t>(std::min<uint64_t>(b.size(), d->size() - off)));
  };
  run_cases(dir.path(), "qcow2", img, cases, open_and_read, "", "hash");

  // The snapshot table ("Snapshots": L1 offset at 0, extra data size at 36).
  const std::string s = dir / "s.qcow2";
  run_ok("qemu-img create -q -f qcow2 " + sh_quote(s) + " 4M");
  run_ok("qemu-io -f qcow2 -c 'write -P 1 0 64k' " + sh_quote(s) + " >/dev/null");
  run_ok("qemu-img snapshot -c snap " + sh_quote(s));
  const std::vector<uint8_t> simg = read_file(s);
  const uint64_t sn = load_be64(simg.data() + 64), sl1 = load_be64(simg.data() + 40);
  REQUIRE(sn != 0);
  std::vector<Case> snap_cases = {
      {"snapshot extra data 2^31 bytes", at(sn + 36, be(0x80000000, 4)), ErrorKind::kCorrupt,
       "runs past the end"},
      {"snapshot L1 table -> the active L1 table", at(sn, be(sl1, 8)), ErrorKind::kCorrupt,
       "overlaps"},
      {"snapshot table offset past the end", at(64, be(1ull << 40, 8)), ErrorKind::kCorrupt,
       "snapshot table offset"},
  };
  run_cases(dir.path(), "qcow2-snap", simg, snap_cases, open_and_read, "", "hash");
}

// --- compressed raw images and DMG (issue 21) ---------------------------------

namespace {

uint32_t crc(const std::vector<uint8_t>& b, size_t off, size_t len) {
  return static_cast<uint32_t>(crc32(0, b.data() + off, static_cast<uInt>(len)));
}

BlockDevicePtr open_probed(const std::string& path) {
  OpenOptions o;
  o.warn = [](const std::string&) {};
  return open_image(path, "", o);
}

// Rewrites the DMG's plist with `edit` applied to the mish of blkx entry
// `entry` (decoded), or to the whole XML text when entry < 0.
std::vector<uint8_t> edit_dmg(const std::vector<uint8_t>& dmg, int entry,
                              const std::function<void(std::vector<uint8_t>&)>& mish_edit,
                              const std::function<void(std::string&)>& xml_edit = nullptr) {
  uint64_t xoff = load_be64(dmg.data() + dmg.size() - 512 + 216);
  uint64_t xlen = load_be64(dmg.data() + dmg.size() - 512 + 224);
  std::string xml(dmg.begin() + xoff, dmg.begin() + xoff + xlen);
  if (entry >= 0) {
    size_t at = 0;
    for (int i = 0; i <= entry; ++i) at = xml.find("<data>", at) + 6;
    size_t end = xml.find("</data>", at);
    std::vector<uint8_t> m = vdisk::dmg::decode_base64(xml.substr(at, end - at), "t", 0);
    mish_edit(m);
    xml.replace(at, end - at, "\n" + base64_encode(m) + "\n");
  }
  if (xml_edit) xml_edit(xml);
  std::vector<uint8_t> out(dmg.begin(), dmg.begin() + xoff);
  out.insert(out.end(), xml.begin(), xml.end());
  std::vector<uint8_t> koly(dmg.end() - 512, dmg.end());
  store_be64(koly.data() + 224, xml.size());
  out.insert(out.end(), koly.begin(), koly.end());
  return out;
}

}  // namespace

TEST_CASE("xz index and footer fields poked to extreme values are refused",
          "[hostile][compressed]") {
  require_tool("xz");
  TempDir dir;
  std::string raw = dir / "d.raw";
  write_file(raw, pattern_bytes(3 << 20, 9));
  std::string xz = dir / "d.xz";
  run_ok("xz -0 -T2 --block-size=1MiB -c " + sh_quote(raw) + " > " + sh_quote(xz));
  const std::vector<uint8_t> good = read_file(xz);
  const size_t n = good.size(), foot = n - 12;
  const uint64_t index_size = (uint64_t{load_le32(good.data() + foot + 4)} + 1) * 4;
  const size_t index = foot - index_size;
  auto fix_footer = [=](std::vector<uint8_t>& b) {
    store_le32(b.data() + foot, crc(b, foot + 4, 6));
  };
  auto fix_index = [=](std::vector<uint8_t>& b) {
    store_le32(b.data() + foot - 4, crc(b, index, index_size - 4));
  };
  std::vector<Case> cases = {
      {"footer magic", [=](auto& b) { b[n - 1] = 'X'; }, ErrorKind::kCorrupt, "footer magic"},
      {"footer CRC32", [=](auto& b) { b[foot + 4] ^= 1; }, ErrorKind::kCorrupt, "footer CRC32"},
      {"backward size past the start",
       [=](auto& b) {
         store_le32(b.data() + foot + 4, 0x7fffffff);
         fix_footer(b);
       },
       ErrorKind::kCorrupt, "backward size"},
      {"stream flags unknown",
       [=](auto& b) {
         b[foot + 9] = 0x30;
         fix_footer(b);
       },
       ErrorKind::kUnsupported, "flags"},
      {"index CRC32", [=](auto& b) { b[index + 1] ^= 1; }, ErrorKind::kCorrupt, "index CRC32"},
      {"index record count",
       [=](auto& b) {
         b[index + 1] = 0x7f;
         fix_index(b);
       },
       ErrorKind::kCorrupt, "index"},
      {"index block sizes past the file",
       [=](auto& b) {
         b[index + 2] = 0xff;
         b[index + 3] |= 0x7f;
         fix_index(b);
       },
       ErrorKind::kCorrupt, "xz"},
      {"stream header CRC32", [=](auto& b) { b[8] ^= 1; }, ErrorKind::kCorrupt, "header CRC32"},
  };
  run_cases(
      dir.path(), "xz", good, cases, [](const std::string& p) { open_probed(p); }, "", "info");
}

TEST_CASE("zstd frame headers and seek tables poked to extreme values are refused",
          "[hostile][compressed]") {
  require_tool("zstd");
  TempDir dir;
  std::string raw = dir / "d.raw";
  write_file(raw, pattern_bytes(3 << 20, 9));
  // The seekable format, as our writer makes it (zstd -d checks it first).
  std::string z = dir / "d.zst";
  run_ok(std::string(VDISK_BIN) + " convert --hash none -O raw -o compression=zstd " +
         sh_quote(raw) + " " + sh_quote(z) + " >/dev/null");
  run_ok("zstd -tq " + sh_quote(z));
  const std::vector<uint8_t> good = read_file(z);
  const size_t n = good.size();
  std::vector<Case> cases = {
      {"seek table frame count", [=](auto& b) { store_le32(b.data() + n - 9, 0xffffffff); },
       ErrorKind::kCorrupt, "frames"},
      {"seek table descriptor reserved bits", [=](auto& b) { b[n - 5] = 0x7c; },
       ErrorKind::kCorrupt, "reserved"},
      {"seek table entry size", [=](auto& b) { store_le32(b.data() + n - 9 - 8 * 1, 0x7fffffff); },
       ErrorKind::kCorrupt, "seek table"},
      {"seek table frame size",
       [=](auto& b) {
         size_t head = n - (8 + load_le32(b.data() + n - 9) * 8 + 9);
         store_le32(b.data() + head + 4, load_le32(b.data() + head + 4) + 1);
       },
       ErrorKind::kCorrupt, "seek table"},
  };
  run_cases(
      dir.path(), "zstd-seekable", good, cases, [](const std::string& p) { open_probed(p); }, "",
      "info");
  // A plain zstd frame (no seek table): the header walk.
  std::string plain = dir / "p.zst";
  run_ok("zstd -q -c " + sh_quote(raw) + " > " + sh_quote(plain));
  const std::vector<uint8_t> pgood = read_file(plain);
  std::vector<Case> pcases = {
      {"frame header reserved bit", [](auto& b) { b[4] |= 0x08; }, ErrorKind::kCorrupt, "reserved"},
      {"block type reserved",
       [](auto& b) {
         static const int kDict[4] = {0, 1, 2, 4};
         int fcs = b[4] >> 6 ? 1 << (b[4] >> 6) : (b[4] & 0x20 ? 1 : 0);
         size_t hsize = 5 + (b[4] & 0x20 ? 0 : 1) + kDict[b[4] & 3] + fcs;
         b[hsize] |= 0x06;  // the first block header follows magic and frame header
       },
       ErrorKind::kCorrupt, "reserved"},
      {"bytes after the last frame",
       [](auto& b) {
         b.insert(b.end(), {1, 2, 3, 4, 5});
       },
       ErrorKind::kCorrupt, "after the last zstd frame"},
  };
  run_cases(
      dir.path(), "zstd-plain", pgood, pcases, [](const std::string& p) { open_probed(p); }, "",
      "info");
}

TEST_CASE("gzip and bzip2 streams damaged in their first bytes are refused at open",
          "[hostile][compressed]") {
  for (const char* t : {"gzip", "bzip2"}) require_tool(t);
  TempDir dir;
  std::string raw = dir / "d.raw";
  write_file(raw, pattern_bytes(1 << 20, 3));
  std::string gz = dir / "d.gz", bz = dir / "d.bz2";
  // -n: no name in the header, so the deflate data starts at byte 10.
  run_ok("gzip -n -c " + sh_quote(raw) + " > " + sh_quote(gz));
  run_ok("bzip2 -c " + sh_quote(raw) + " > " + sh_quote(bz));
  std::vector<Case> gcases = {
      {"FLG reserved bits", [](auto& b) { b[3] = 0x20; }, ErrorKind::kNotThisFormat, ""},
      {"first deflate block type 3", [](auto& b) { b[10] = 0x07; }, ErrorKind::kCorrupt, "gzip"},
  };
  // FLG reserved bits fail the probe: the file is then raw, and opens; the
  // case list only holds what must be refused.
  gcases.erase(gcases.begin());
  run_cases(
      dir.path(), "gzip", read_file(gz), gcases, [](const std::string& p) { open_probed(p); }, "",
      "info");
  std::vector<Case> bcases = {
      {"first block CRC", [](auto& b) { b[10] ^= 0xff; }, ErrorKind::kCorrupt, "bzip2"},
  };
  run_cases(
      dir.path(), "bzip2", read_file(bz), bcases, [](const std::string& p) { open_probed(p); }, "",
      "info");
}

TEST_CASE("DMG koly, mish and plist fields poked to extreme values are refused", "[hostile][dmg]") {
  TempDir dir;
  std::vector<uint8_t> disk = pattern_bytes(3 << 20, 5);
  std::fill(disk.begin() + (1 << 20), disk.begin() + (2 << 20), 0);
  DmgBuildOptions o;
  o.partitions = {1024};
  const std::vector<uint8_t> good = make_dmg(disk, o);
  const size_t k = good.size() - 512;
  auto replace_with = [](std::vector<uint8_t> img) {
    return [img](std::vector<uint8_t>& b) { b = img; };
  };
  auto mish = [&](int entry, size_t off, uint64_t v, int width) {
    return replace_with(edit_dmg(good, entry, [=](std::vector<uint8_t>& m) {
      if (width == 8)
        store_be64(m.data() + off, v);
      else
        store_be32(m.data() + off, static_cast<uint32_t>(v));
    }));
  };
  auto xml = [&](std::function<void(std::string&)> f) {
    return replace_with(edit_dmg(good, -1, nullptr, std::move(f)));
  };
  std::string bomb = "<plist><dict>";
  for (int i = 0; i < 100; ++i) bomb += "<key>k</key><dict>";
  std::vector<Case> cases = {
      {"koly header size", [=](auto& b) { store_be32(b.data() + k + 8, 4096); },
       ErrorKind::kCorrupt, "header size"},
      {"data fork past the trailer", [=](auto& b) { store_be64(b.data() + k + 24, 1ull << 40); },
       ErrorKind::kCorrupt, "data fork"},
      {"plist past the trailer", [=](auto& b) { store_be64(b.data() + k + 216, k); },
       ErrorKind::kCorrupt, "property list"},
      {"plist length 0 (resource fork only)", [=](auto& b) { store_be64(b.data() + k + 224, 0); },
       ErrorKind::kUnsupported, "resource fork"},
      {"sector count huge", [=](auto& b) { store_be64(b.data() + k + 492, ~0ull); },
       ErrorKind::kCorrupt, "sector count"},
      {"mish signature", mish(0, 0, 0x6d697368 + 1, 4), ErrorKind::kCorrupt, "mish"},
      {"mish chunk count", mish(0, 200, 0xffffffff, 4), ErrorKind::kCorrupt, "chunks"},
      {"chunk outside its partition", mish(0, 204 + 16, 1ull << 40, 8), ErrorKind::kCorrupt,
       "outside its partition"},
      {"chunk data outside the data fork", mish(1, 204 + 24, 1ull << 40, 8), ErrorKind::kCorrupt,
       "data fork"},
      {"partitions overlap", mish(1, 8, 0, 8), ErrorKind::kCorrupt, "overlap"},
      {"compressed chunk of 1 TiB", mish(1, 204 + 16, 1ull << 31, 8), ErrorKind::kCorrupt,
       "partition"},
      {"plist nested 100 deep", xml([&](std::string& s) { s = bomb; }), ErrorKind::kCorrupt,
       "32 levels"},
      {"plist without blkx", xml([](std::string& s) { s.replace(s.find("blkx"), 4, "blkz"); }),
       ErrorKind::kCorrupt, "blkx"},
      {"base64 with a bad character",
       xml([](std::string& s) { s.insert(s.find("<data>") + 8, "*"); }), ErrorKind::kCorrupt,
       "base64"},
      {"plist not closed", xml([](std::string& s) { s.resize(s.size() / 2); }), ErrorKind::kCorrupt,
       "property list"},
  };
  run_cases(
      dir.path(), "dmg", good, cases, [](const std::string& p) { open_probed(p); }, "", "info");
}

TEST_CASE("E01 section descriptors, volume and table fields poked to extreme values are refused",
          "[hostile][e01]") {
  require_tool("ewfacquire");
  TempDir dir;
  std::string raw = dir / "src.raw";
  make_sample_disk(raw, 16ull << 20);
  // libyal "Expert Witness Compression Format (EWF)", little-endian: file
  // header 13 bytes (segment number at 9); section descriptors of 76 bytes:
  // type (16), next offset (8, at 16), size (8, at 24), Adler-32 of bytes
  // 0-71 at 72. Volume data (1052 bytes): chunk count at 4, sectors per
  // chunk at 8, bytes per sector at 12, sector count (8) at 16, Adler-32 at
  // 1048. Table: header of 24 bytes (entry count at 0, base offset at 8,
  // Adler-32 at 20), 4-byte entries, then the Adler-32 of the entries.
  run_ok("ewfacquire -u -q -f encase6 -c fast -t " + sh_quote(dir / "e") + " " + sh_quote(raw) +
         " >/dev/null");
  const std::vector<uint8_t> e01 = read_file(dir / "e.E01");
  std::map<std::string, size_t> at;  // first section of each type
  for (size_t off = 13; off + 76 <= e01.size();) {
    std::string type(reinterpret_cast<const char*>(e01.data() + off));
    at.emplace(type, off);
    if (type == "done") break;
    off = static_cast<size_t>(load_le64(e01.data() + off + 16));
  }
  for (const char* t : {"header2", "volume", "sectors", "table", "table2", "done"}) {
    INFO(t);
    REQUIRE(at.count(t));
  }
  REQUIRE(at.count("data"));  // the volume's copy, after the tables of a single segment
  const size_t hdr2 = at["header2"], vol = at["volume"] + 76, data = at["data"] + 76,
               table = at["table"] + 76, table2 = at["table2"] + 76;
  const uint32_t entries = load_le32(e01.data() + table);
  auto adler = [](const uint8_t* p, size_t n) {
    return static_cast<uint32_t>(::adler32(1, p, static_cast<uInt>(n)));
  };
  // Each poke keeps the checksums right, so the field itself is judged.
  auto descriptor = [=](size_t field, uint64_t v) {
    return [=](std::vector<uint8_t>& b) {
      store_le64(b.data() + hdr2 + field, v);
      store_le32(b.data() + hdr2 + 72, adler(b.data() + hdr2, 72));
    };
  };
  // The volume section and its copy, the data section.
  auto volume = [=](size_t field, uint64_t v, int bytes) {
    return [=](std::vector<uint8_t>& b) {
      for (size_t s : {vol, data}) {
        if (bytes == 8)
          store_le64(b.data() + s + field, v);
        else
          store_le32(b.data() + s + field, static_cast<uint32_t>(v));
        store_le32(b.data() + s + 1048, adler(b.data() + s, 1048));
      }
    };
  };
  auto both_tables = [=](std::function<void(uint8_t*)> poke) {
    return [=](std::vector<uint8_t>& b) {
      for (size_t t : {table, table2}) {
        poke(b.data() + t);
        store_le32(b.data() + t + 20, adler(b.data() + t, 20));
        store_le32(b.data() + t + 24 + 4 * entries, adler(b.data() + t + 24, 4 * entries));
      }
    };
  };
  std::vector<Case> cases = {
      {"segment number 0", [](std::vector<uint8_t>& b) { store_le16(b.data() + 9, 0); },
       ErrorKind::kCorrupt, "segment number 0"},
      {"start of fields 2", [](std::vector<uint8_t>& b) { b[8] = 2; }, ErrorKind::kCorrupt,
       "framed"},
      {"section descriptor checksum", [=](std::vector<uint8_t>& b) { b[hdr2 + 72] ^= 1; },
       ErrorKind::kCorrupt, "section descriptor checksum"},
      {"next offset 0 (backwards)", descriptor(16, 0), ErrorKind::kCorrupt,
       "names the next section"},
      {"next offset 2^63", descriptor(16, 1ull << 63), ErrorKind::kCorrupt,
       "names the next section"},
      {"size disagrees with next offset", descriptor(24, 77), ErrorKind::kCorrupt,
       "disagrees with its next section offset"},
      {"bytes per sector 0", volume(12, 0, 4), ErrorKind::kCorrupt, "bytes per sector 0"},
      {"bytes per sector 1000", volume(12, 1000, 4), ErrorKind::kCorrupt, "bytes per sector"},
      {"sectors per chunk 0", volume(8, 0, 4), ErrorKind::kCorrupt, "0 sectors per chunk"},
      {"sectors per chunk 2^31", volume(8, 1ull << 31, 4), ErrorKind::kUnsupported, "chunks of"},
      {"sector count 2^63", volume(16, 1ull << 63, 8), ErrorKind::kCorrupt, "sector count"},
      {"sector count one more", volume(16, (16ull << 20) / 512 + 64, 8), ErrorKind::kCorrupt,
       "the tables list"},
      {"table entry count 2^32-1", both_tables([](uint8_t* t) { store_le32(t, 0xFFFFFFFF); }),
       ErrorKind::kCorrupt, "entries, room for"},
      {"table entry 0 past its sectors section",
       both_tables([](uint8_t* t) { store_le32(t + 24, 0x7FFFFFF0u); }), ErrorKind::kCorrupt,
       "outside the chunk data"},
      {"table entry 1 before entry 0",
       both_tables([](uint8_t* t) { store_le32(t + 28, load_le32(t + 24)); }), ErrorKind::kCorrupt,
       "does not come after"},
      {"table base 2^63", both_tables([](uint8_t* t) { store_le64(t + 8, 1ull << 63); }),
       ErrorKind::kCorrupt, "outside the chunk data"},
      {"both table headers' checksums",
       [=](std::vector<uint8_t>& b) { b[table + 20] ^= 1, b[table2 + 20] ^= 1; },
       ErrorKind::kCorrupt, "no good table2 copy"},
      {"data section disagrees with the volume",
       [=](std::vector<uint8_t>& b) {
         store_le64(b.data() + data + 16, 12345);
         store_le32(b.data() + data + 1048, adler(b.data() + data, 1048));
       },
       ErrorKind::kCorrupt, "disagrees with the volume section"},
      {"truncated before done", [=](std::vector<uint8_t>& b) { b.resize(at.at("done") + 40); },
       ErrorKind::kCorrupt, "truncated"},
  };
  run_cases(
      dir.path(), "e01", e01, cases,
      [](const std::string& p) {
        BlockDevicePtr d = open_image(p, "e01", OpenOptions{});
        std::vector<uint8_t> buf(1 << 20);
        for (uint64_t o = 0; o < d->size(); o += buf.size())
          d->read(o, buf.data(),
                  static_cast<size_t>(std::min<uint64_t>(buf.size(), d->size() - o)));
        (void)map_extents(*d);
      },
      "", "hash");
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
