// `vdisk check`, judged by `qemu-img check` where QEMU checks the format
// (qcow2, VMDK, VHDX, VDI): images qemu-img makes, and images vdisk writes,
// are clean for both tools; the same image with one table entry, refcount or
// checksum poked is reported by both. VHD, which qemu-img cannot check, is
// judged against the specification's rules, one poke per rule. Formats
// without tables are read end to end (E01's chunk checksums).
#include <catch2/catch.hpp>

#include "formats/core/endian.h"
#include "formats/core/json.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

constexpr uint64_t kMiB = 1024 * 1024;

struct Checked {
  int exit_code = -1;
  Json report;
  std::string text;
};

Checked vdisk_check(const std::string& image, const std::string& extra = "") {
  Checked c;
  RunResult r = run_vdisk("check --output json " + extra + " " + sh_quote(image));
  c.exit_code = r.exit_code;
  INFO("vdisk check " << image << ": " << r.out << r.err);
  if (r.exit_code != 2) {
    c.report = Json::parse(r.out);
    for (const Json& f : c.report.find("findings")->as_array())
      c.text += f.find("structure")->as_string() + ": " + f.find("what")->as_string() + "\n";
  } else {
    c.text = r.err;
  }
  return c;
}

// vdisk check finds `img` inconsistent (exit 1) with a finding that
// contains `what`; `context` (qemu-img check's verdict) is shown with a
// failure. Returns the report.
Checked check_finds(const std::string& img, const std::string& what,
                    const std::string& context = "") {
  Checked k = vdisk_check(img);
  INFO(context << k.text);
  CHECK(k.exit_code == 1);
  CHECK_THAT(k.text, Catch::Contains(what));
  return k;
}

// A 16 MiB sample disk converted by qemu-img (`qemu_args`, "-O vpc") into
// dir/a.EXT; returns its path.
std::string qemu_made(const TempDir& dir, const std::string& qemu_args, const std::string& ext) {
  require_tool("qemu-img");
  const std::string src = dir / "src.raw";
  make_sample_disk(src, 16 * kMiB);
  const std::string img = dir / ("a." + ext);
  run_ok("qemu-img convert -f raw " + qemu_args + " " + sh_quote(src) + " " + sh_quote(img));
  return img;
}

int qemu_check(const std::string& image, const std::string& fmt, std::string* out = nullptr) {
  RunResult r = run("qemu-img check -f " + fmt + " " + sh_quote(image));
  if (out) *out = r.out + r.err;
  return r.exit_code;
}

uint64_t be64_at(const std::string& path, uint64_t off) {
  const std::vector<uint8_t> b = read_file(path);
  REQUIRE(off + 8 <= b.size());
  return load_be64(b.data() + off);
}
uint32_t be32_at(const std::string& path, uint64_t off) {
  const std::vector<uint8_t> b = read_file(path);
  REQUIRE(off + 4 <= b.size());
  return load_be32(b.data() + off);
}
uint32_t le32_at(const std::string& path, uint64_t off) {
  const std::vector<uint8_t> b = read_file(path);
  REQUIRE(off + 4 <= b.size());
  return load_le32(b.data() + off);
}
uint64_t le64_at(const std::string& path, uint64_t off) {
  const std::vector<uint8_t> b = read_file(path);
  REQUIRE(off + 8 <= b.size());
  return load_le64(b.data() + off);
}
void put_be32(const std::string& path, uint64_t off, uint32_t v) {
  std::vector<uint8_t> b(4);
  store_be32(b.data(), v);
  write_at(path, off, b);
}
void put_be16(const std::string& path, uint64_t off, uint16_t v) {
  std::vector<uint8_t> b(2);
  store_be16(b.data(), v);
  write_at(path, off, b);
}
void put_le32(const std::string& path, uint64_t off, uint32_t v) {
  std::vector<uint8_t> b(4);
  store_le32(b.data(), v);
  write_at(path, off, b);
}
void put_le64(const std::string& path, uint64_t off, uint64_t v) {
  std::vector<uint8_t> b(8);
  store_le64(b.data(), v);
  write_at(path, off, b);
}

}  // namespace

TEST_CASE("check: images qemu-img and vdisk make are clean for both tools", "[check][cli]") {
  require_tool("qemu-img");
  TempDir dir;
  const std::string src = dir / "src.raw";
  make_sample_disk(src, 24 * kMiB + 512 * 3);
  struct Case {
    std::string qemu_fmt, qemu_opts, vdisk_fmt, vdisk_opts, ext;
    bool qemu_checks;
  };
  const std::vector<Case> cases = {
      {"qcow2", "", "qcow2", "", "qcow2", true},
      {"qcow2", "-o compat=0.10,cluster_size=4096", "qcow2", "-o compat=0.10,cluster_size=4K",
       "qcow2", true},
      {"qcow2", "-c", "qcow2", "-o compression=zlib", "qcow2", true},
      {"vmdk", "", "vmdk", "", "vmdk", true},
      {"vmdk", "-o subformat=streamOptimized", "vmdk", "-o subformat=streamOptimized", "vmdk",
       true},
      {"vmdk", "-o subformat=twoGbMaxExtentSparse", "vmdk", "-o subformat=twoGbMaxExtentSparse",
       "vmdk", true},
      {"vpc", "", "vhd", "", "vhd", false},
      {"vpc", "-o subformat=fixed", "vhd", "-o subformat=fixed", "vhd", false},
      {"vhdx", "", "vhdx", "", "vhdx", true},
      {"vhdx", "-o block_size=1M", "vhdx", "-o block_size=1M", "vhdx", true},
      {"vdi", "", "vdi", "", "vdi", true},
      {"vdi", "-o static=on", "vdi", "-o subformat=static", "vdi", true},
  };
  int n = 0;
  for (const Case& c : cases) {
    const std::string q = dir / ("q" + std::to_string(n) + "." + c.ext);
    const std::string v = dir / ("v" + std::to_string(n) + "." + c.ext);
    ++n;
    INFO(c.qemu_fmt << " " << c.qemu_opts);
    run_ok("qemu-img convert -f raw -O " + c.qemu_fmt + " " + c.qemu_opts + " " + sh_quote(src) +
           " " + sh_quote(q));
    RunResult w = run_vdisk("convert --hash none -O " + c.vdisk_fmt + " " + c.vdisk_opts + " " +
                            sh_quote(src) + " " + sh_quote(v));
    REQUIRE(w.exit_code == 0);
    for (const std::string& img : {q, v}) {
      INFO(img);
      if (c.qemu_checks) {
        std::string out;
        CHECK(qemu_check(img, c.qemu_fmt, &out) == 0);
        INFO(out);
      }
      Checked k = vdisk_check(img);
      INFO(k.text);
      CHECK(k.exit_code == 0);
      CHECK(k.report.find("clean")->as_bool());
      CHECK(k.report.find("format")->as_string() == c.vdisk_fmt);
    }
  }
}

TEST_CASE("check: a poked qcow2 refcount is reported by qemu-img check and vdisk check",
          "[check][cli][qcow2]") {
  TempDir dir;
  const std::string img = qemu_made(dir, "-O qcow2", "qcow2");
  // Header: refcount_table_offset at 48; its first entry names the block of
  // clusters 0..32767; 16-bit refcounts.
  const uint64_t rt = be64_at(img, 48);
  const uint64_t block = be64_at(img, rt) & ~uint64_t{511};
  const uint64_t clusters = (file_size(img) + 65535) / 65536;

  SECTION("a cluster in use with refcount 0") {
    put_be16(img, block + 2 * (clusters - 1), 0);
    std::string out;
    CHECK(qemu_check(img, "qcow2", &out) == 2);
    Checked k = vdisk_check(img);
    INFO(out << k.text);
    CHECK(k.exit_code == 1);
    CHECK(k.report.find("errors")->as_u64() >= 1);
    CHECK_THAT(k.text, Catch::Contains("refcount 0 but referenced 1"));
  }
  SECTION("a leaked cluster: a refcount for a cluster nothing uses") {
    write_at(img, clusters * 65536, std::vector<uint8_t>(65536, 0));
    put_be16(img, block + 2 * clusters, 1);
    std::string out;
    CHECK(qemu_check(img, "qcow2", &out) == 3);  // leaks only
    Checked k = vdisk_check(img);
    INFO(out << k.text);
    CHECK(k.exit_code == 1);
    CHECK(k.report.find("errors")->as_u64() == 0);
    CHECK(k.report.find("leaks")->as_u64() == 1);
    CHECK(k.report.find("leaked_bytes")->as_u64() == 65536);

    // --repair writes a clean copy; the image itself is unchanged.
    const std::vector<uint8_t> before = read_file(img);
    const std::string fixed = dir / "fixed.qcow2";
    RunResult r = run_vdisk("check --repair " + sh_quote(fixed) + " " + sh_quote(img));
    CHECK(r.exit_code == 1);
    CHECK(read_file(img) == before);
    CHECK(qemu_check(fixed, "qcow2") == 0);
    CHECK(vdisk_check(fixed).exit_code == 0);
    CHECK(run("qemu-img compare " + sh_quote(img) + " " + sh_quote(fixed)).exit_code == 0);
    // An existing OUT is refused before the check, replaced with --force.
    RunResult again = run_vdisk("check --repair " + sh_quote(fixed) + " " + sh_quote(img));
    CHECK(again.exit_code == 2);
    CHECK_THAT(again.err, Catch::Contains("exists"));
    CHECK(again.out.empty());
    CHECK(run_vdisk("check --force --repair " + sh_quote(fixed) + " " + sh_quote(img)).exit_code ==
          1);
    CHECK(qemu_check(fixed, "qcow2") == 0);
  }
  SECTION("an L2 entry pointing at the L1 table (shared storage)") {
    const uint64_t l1 = be64_at(img, 40);
    const uint64_t l2 = be64_at(img, l1) & 0x00fffffffffffe00ull;
    // The first entry of the first L2 table (the MBR's cluster): now the L1
    // table's cluster, COPIED.
    std::vector<uint8_t> e(8);
    store_be64(e.data(), l1 | (uint64_t{1} << 63));
    write_at(img, l2, e);
    std::string out;
    CHECK(qemu_check(img, "qcow2", &out) == 2);
    check_finds(img, "referenced 2 times", out);
  }
  SECTION("the corrupt flag") {
    std::vector<uint8_t> flags(8);
    store_be64(flags.data(), be64_at(img, 72) | 2);
    write_at(img, 72, flags);
    check_finds(img, "corrupt");
  }
}

TEST_CASE("check: a poked VMDK grain table entry is reported by both tools", "[check][cli][vmdk]") {
  TempDir dir;
  const std::string img = qemu_made(dir, "-O vmdk", "vmdk");
  // Sparse header: gdOffset (sectors) at 56; the first GD entry names GT 0.
  const uint64_t gd = le64_at(img, 56) * 512;
  const uint64_t gt = uint64_t{le32_at(img, gd)} * 512;
  // GT 0's entries: the MBR grain (entry 0) is allocated.
  const uint32_t first = le32_at(img, gt);
  REQUIRE(first > 1);

  SECTION("a grain beyond the end of the file") {
    put_le32(img, gt + 4 * 3, static_cast<uint32_t>(file_size(img) / 512 + 64));
    std::string out;
    CHECK(qemu_check(img, "vmdk", &out) != 0);
    check_finds(img, "past the end", out);
  }
  SECTION("two entries sharing one grain") {
    put_le32(img, gt + 4 * 5, first);
    check_finds(img, "overlap");
  }
}

TEST_CASE("check: a poked VHDX BAT entry and header checksum are reported", "[check][cli][vhdx]") {
  TempDir dir;
  const std::string img = qemu_made(dir, "-O vhdx -o block_size=1M", "vhdx");
  // Region table 1 at 192 KiB: entries from +16, 32 bytes each: the BAT's
  // offset is at +16 of the entry whose GUID is the BAT's.
  uint64_t bat = 0;
  const std::vector<uint8_t> rt = read_file(img);
  for (uint32_t i = 0; i < load_le32(rt.data() + 192 * 1024 + 8); ++i) {
    const uint8_t* e = rt.data() + 192 * 1024 + 16 + 32 * i;
    if (load_le32(e) == 0x2DC27766) bat = load_le64(e + 16);
  }
  REQUIRE(bat != 0);

  SECTION("a block beyond the end of the file") {
    const uint64_t beyond = (file_size(img) / kMiB + 8) << 20;
    put_le64(img, bat + 8 * 2, beyond | 6);
    std::string out;
    CHECK(qemu_check(img, "vhdx", &out) != 0);
    check_finds(img, "not inside the file", out);
  }
  SECTION("two blocks at one offset") {
    put_le64(img, bat + 8 * 3, le64_at(img, bat));
    REQUIRE((le64_at(img, bat) & 7) == 6);
    check_finds(img, "overlap");
  }
  SECTION("a header checksum") {
    write_at(img, 64 * 1024 + 200, {0x55});
    check_finds(img, "header 1 checksum");
  }
}

TEST_CASE("check: a poked VDI block map is reported by both tools", "[check][cli][vdi]") {
  TempDir dir;
  const std::string img = qemu_made(dir, "-O vdi", "vdi");
  const uint64_t map = le32_at(img, 0x154);
  // Block 0 (the MBR) is allocated; block 9 takes its data block too.
  const uint32_t first = le32_at(img, map);
  REQUIRE(first < 0xfffffffe);
  put_le32(img, map + 4 * 9, first);
  std::string out;
  CHECK(qemu_check(img, "vdi", &out) != 0);
  check_finds(img, "also used by entry 0", out);
}

TEST_CASE("check: VHD against the specification, one rule at a time", "[check][cli][vhd]") {
  TempDir dir;
  const std::string img = qemu_made(dir, "-O vpc", "vhd");
  const uint64_t fsize = file_size(img);
  const uint64_t header = be64_at(img, fsize - 512 + 16);
  const uint64_t bat = be64_at(img, header + 16);
  const uint32_t first = be32_at(img, bat);
  REQUIRE(first != 0xffffffff);
  REQUIRE(vdisk_check(img).exit_code == 0);

  struct Poke {
    const char* name;
    std::function<void()> poke;
    const char* expect;
  };
  const std::vector<uint8_t> pristine = read_file(img);
  const std::vector<Poke> pokes = {
      {"footer checksum", [&] { write_at(img, fsize - 512 + 100, {0x01}); }, "footer checksum"},
      {"footer copy", [&] { write_at(img, 100, {0x01}); }, "footer copy"},
      {"header checksum", [&] { write_at(img, header + 900, {0x01}); }, "dynamic header checksum"},
      {"BAT entry past the footer",
       [&] { put_be32(img, bat + 4 * 4, static_cast<uint32_t>(fsize / 512)); }, "past the footer"},
      {"two BAT entries sharing a block", [&] { put_be32(img, bat + 4 * 6, first); }, "overlap"},
      {"a block over the BAT",
       [&] { put_be32(img, bat + 4 * 7, static_cast<uint32_t>(bat / 512)); }, "overlap the BAT"},
  };
  for (const Poke& p : pokes) {
    INFO(p.name);
    write_file(img, pristine);
    p.poke();
    check_finds(img, p.expect);
  }
  // Not a VHD at all: unreadable, exit 2.
  write_file(img, std::vector<uint8_t>(4096, 0x33));
  CHECK(vdisk_check(img, "-f vhd").exit_code == 2);
}

TEST_CASE("check: E01 chunks are verified; raw has nothing to check", "[check][cli][e01]") {
  require_tool("ewfacquire");
  TempDir dir;
  const std::string src = dir / "src.raw";
  write_file(src, pattern_bytes(4 * kMiB, 5));
  run_ok("ewfacquire -q -u -t " + sh_quote(dir / "ev") + " -c none -S 1G -b 64 " + sh_quote(src) +
         " >/dev/null 2>&1");
  const std::string e01 = dir / "ev.E01";
  REQUIRE(file_exists(e01));
  Checked clean = vdisk_check(e01);
  INFO(clean.text);
  CHECK(clean.exit_code == 0);
  // A byte of chunk data in the middle of the segment.
  const std::vector<uint8_t> b = read_file(e01);
  write_at(e01, b.size() / 2, {static_cast<uint8_t>(b[b.size() / 2] ^ 0xff)});
  Checked bad = vdisk_check(e01);
  INFO(bad.text);
  CHECK(bad.exit_code == 1);
  CHECK(bad.report.find("errors")->as_u64() >= 1);

  Checked raw = vdisk_check(src);
  CHECK(raw.exit_code == 0);
  CHECK(raw.report.find("format")->as_string() == "raw");
}
