// VDI: images made by qemu-img read bit for bit; what vdisk writes passes
// `qemu-img check` and `qemu-img compare`; a differencing child laid out here
// byte by byte per VirtualBox's header layout (no tool makes one) reads
// through its parent; damaged headers fail with exit 2 and one clear line.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/json.h"
#include "formats/registry.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

constexpr uint64_t kMiB = 1 << 20;

std::vector<uint8_t> le32(uint32_t v) {
  std::vector<uint8_t> b(4);
  store_le32(b.data(), v);
  return b;
}

std::vector<uint8_t> le64(uint64_t v) {
  std::vector<uint8_t> b(8);
  store_le64(b.data(), v);
  return b;
}

// The UUID at `off` of a VDI file, formatted the VirtualBox way (first three
// fields little-endian), computed here independently of the reader.
std::string uuid_at(const std::vector<uint8_t>& f, size_t off) {
  char buf[40];
  const uint8_t* u = f.data() + off;
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", load_le32(u),
                load_le16(u + 4), load_le16(u + 6), u[8], u[9], u[10], u[11], u[12], u[13], u[14],
                u[15]);
  return buf;
}

// Total bytes qemu-img's map reports as data for an image.
uint64_t qemu_data_bytes(const std::string& path, const std::string& fmt) {
  Json j = Json::parse(run_ok("qemu-img map --output=json -f " + fmt + " " + sh_quote(path)));
  uint64_t total = 0;
  for (auto& e : j.as_array()) {
    if (e.find("data")->as_bool()) total += e.find("length")->as_u64();
  }
  return total;
}

uint64_t vdisk_data_bytes(const std::string& path) {
  RunResult r = run_vdisk("map --output json " + sh_quote(path));
  REQUIRE(r.exit_code == 0);
  uint64_t total = 0;
  Json j = Json::parse(r.out);
  for (auto& e : j.as_array()) {
    if (e.find("type")->as_string() == "data") total += e.find("length")->as_u64();
  }
  return total;
}

std::string vdisk_sha256(const std::string& args) {
  RunResult r = run_vdisk("hash " + args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return parse_tagged_digest(r.out, "SHA256");
}

// A 3 MiB + 512-byte raw disk with data in its first block and in its last,
// partial block: a size that is neither a whole block nor a whole MiB.
void make_small_disk(const std::string& path) {
  run_ok("truncate -s " + std::to_string(3 * kMiB + 512) + " " + sh_quote(path));
  write_at(path, 4096, pattern_bytes(70000, 11));
  write_at(path, 3 * kMiB + 100, pattern_bytes(300, 12));
}

}  // namespace

TEST_CASE("VDI images made by qemu-img read bit-exact", "[vdi]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string sample = dir / "sample.raw", small = dir / "small.raw";
  make_sample_disk(sample, 24 * kMiB + 1536);
  make_small_disk(small);
  for (const std::string& src : {sample, small}) {
    for (const std::string opts : {"", "-o static=on"}) {
      INFO(src << " " << opts);
      std::string img = dir / "q.vdi", ref = dir / "ref.raw", out = dir / "out.raw";
      run_ok("rm -f " + sh_quote(img) + " " + sh_quote(ref) + " " + sh_quote(out));
      run_ok("qemu-img convert -f raw -O vdi " + opts + " " + sh_quote(src) + " " + sh_quote(img));
      run_ok("qemu-img convert -f vdi -O raw " + sh_quote(img) + " " + sh_quote(ref));
      std::string want = coreutils_digest("sha256sum", ref);
      CHECK(want == coreutils_digest("sha256sum", src));
      CHECK(vdisk_sha256(sh_quote(img)) == want);
      RunResult c = run_vdisk("convert -O raw " + sh_quote(img) + " " + sh_quote(out));
      INFO(c.err);
      REQUIRE(c.exit_code == 0);
      CHECK(coreutils_digest("sha256sum", out) == want);

      // Allocation as qemu-img sees it, and the header facts in `info`.
      CHECK(vdisk_data_bytes(img) == qemu_data_bytes(img, "vdi"));
      RunResult i = run_vdisk("info --output json " + sh_quote(img));
      REQUIRE(i.exit_code == 0);
      Json j = Json::parse(i.out);
      Json q = Json::parse(run_ok("qemu-img info --output=json " + sh_quote(img)));
      CHECK(j.find("format")->as_string() == "vdi");
      CHECK(j.find("subformat")->as_string() == (opts.empty() ? "dynamic" : "static"));
      CHECK(j.find("virtual_size")->as_u64() == q.find("virtual-size")->as_u64());
      const Json& d = *j.find("details");
      CHECK(d.find("block_size")->as_u64() == q.find("cluster-size")->as_u64());
      CHECK(d.find("blocks_total")->as_u64() == (file_size(src) + kMiB - 1) / kMiB);
      CHECK(d.find("version")->as_string() == "1.1");
      std::vector<uint8_t> bytes = read_file(img);
      CHECK(d.find("uuid")->as_string() == uuid_at(bytes, 0x188));
      CHECK(d.find("modification_uuid")->as_string() == uuid_at(bytes, 0x198));
      CHECK(d.find("blocks_allocated")->as_u64() == load_le32(bytes.data() + 0x184));
    }
  }
}

TEST_CASE("VDI written by vdisk passes qemu-img check and compare", "[vdi]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string src = dir / "src.raw";
  const uint64_t size = 24 * kMiB + 1536;
  make_sample_disk(src, size);
  // Blocks of the source holding a non-zero byte, counted here from the raw
  // bytes: exactly these must be allocated in a dynamic image.
  std::vector<uint8_t> raw = read_file(src);
  uint64_t nonzero_blocks = 0;
  for (uint64_t b = 0; b * kMiB < size; ++b) {
    auto first = raw.begin() + static_cast<ptrdiff_t>(b * kMiB);
    auto last = raw.begin() + static_cast<ptrdiff_t>(std::min(size, (b + 1) * kMiB));
    nonzero_blocks += std::any_of(first, last, [](uint8_t c) { return c != 0; });
  }
  REQUIRE(nonzero_blocks >= 3);
  const uint64_t blocks = (size + kMiB - 1) / kMiB;

  struct Case {
    std::string opts;
    bool is_static;
  };
  for (const Case& c :
       {Case{"", false}, Case{"-o subformat=dynamic", false}, Case{"-o subformat=static", true},
        Case{"-o static=on", true}, Case{"-o subformat=static,static=on", true}}) {
    INFO("options: " << c.opts);
    std::string dst = dir / "out.vdi";
    run_ok("rm -f " + sh_quote(dst));
    RunResult r = run_vdisk("convert -O vdi " + c.opts + " " + sh_quote(src) + " " + sh_quote(dst));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    run_ok("qemu-img check -f vdi " + sh_quote(dst));
    run_ok("qemu-img compare -f raw -F vdi " + sh_quote(src) + " " + sh_quote(dst));
    Json q = Json::parse(run_ok("qemu-img info --output=json -f vdi " + sh_quote(dst)));
    CHECK(q.find("virtual-size")->as_u64() == size);
    uint64_t data = qemu_data_bytes(dst, "vdi");
    if (c.is_static) {
      CHECK(data == size);
    } else {
      // Every allocated block is whole except a partial last one.
      CHECK((data + kMiB - 1) / kMiB == nonzero_blocks);
    }
    // The header as VirtualBox writes it (VDICore.h): Oracle pre-header,
    // 0xbeda107f, version 1.1, 400-byte header, map and data 1 MiB aligned.
    std::vector<uint8_t> f = read_file(dst);
    std::string text(f.begin(), f.begin() + 40);
    CHECK(text == "<<< Oracle VM VirtualBox Disk Image >>>\n");
    CHECK(load_le32(f.data() + 0x40) == 0xbeda107f);
    CHECK(load_le32(f.data() + 0x44) == 0x00010001);
    CHECK(load_le32(f.data() + 0x48) == 400);
    CHECK(load_le32(f.data() + 0x4c) == (c.is_static ? 2u : 1u));
    CHECK(load_le32(f.data() + 0x154) == kMiB);
    CHECK(load_le32(f.data() + 0x158) % kMiB == 0);
    CHECK(load_le32(f.data() + 0x178) == kMiB);
    CHECK(load_le32(f.data() + 0x180) == blocks);
    CHECK(load_le32(f.data() + 0x184) == (c.is_static ? blocks : nonzero_blocks));
    CHECK(load_le64(f.data() + 0x170) == size);
    if (!c.is_static) {
      // All-zero blocks are left free.
      uint64_t free_entries = 0;
      for (uint64_t b = 0; b < blocks; ++b)
        free_entries += load_le32(f.data() + kMiB + b * 4) == 0xffffffff;
      CHECK(free_entries == blocks - nonzero_blocks);
    }
  }

  // Fresh UUIDs: two images of one source differ in both.
  run_ok("rm -f " + sh_quote(dir / "a.vdi") + " " + sh_quote(dir / "b.vdi"));
  REQUIRE(run_vdisk("convert -O vdi " + sh_quote(src) + " " + sh_quote(dir / "a.vdi")).exit_code ==
          0);
  REQUIRE(run_vdisk("convert -O vdi " + sh_quote(src) + " " + sh_quote(dir / "b.vdi")).exit_code ==
          0);
  std::vector<uint8_t> a = read_file(dir / "a.vdi"), b = read_file(dir / "b.vdi");
  CHECK(uuid_at(a, 0x188) != uuid_at(b, 0x188));
  CHECK(uuid_at(a, 0x198) != uuid_at(b, 0x198));
  CHECK(uuid_at(a, 0x188) != "00000000-0000-0000-0000-000000000000");

  // Conflicting options, and a size that is not whole sectors.
  RunResult bad = run_vdisk("convert -O vdi -o subformat=dynamic,static=on " + sh_quote(src) + " " +
                            sh_quote(dir / "c.vdi"));
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Catch::Contains("conflict"));
  CHECK_FALSE(file_exists(dir / "c.vdi"));

  std::string odd = dir / "odd.raw";
  run_ok("truncate -s 1000000 " + sh_quote(odd));
  write_at(odd, 999000, pattern_bytes(1000, 5));
  RunResult refused =
      run_vdisk("convert -O vdi " + sh_quote(odd) + " " + sh_quote(dir / "odd.vdi"));
  CHECK(refused.exit_code == 2);
  CHECK_THAT(refused.err, Catch::Contains("--allow-resize"));
  CHECK_FALSE(file_exists(dir / "odd.vdi"));
  RunResult resized =
      run_vdisk("convert --allow-resize -O vdi " + sh_quote(odd) + " " + sh_quote(dir / "odd.vdi"));
  INFO(resized.err);
  REQUIRE(resized.exit_code == 0);
  CHECK_THAT(resized.err, Catch::Contains("1000448"));
  run_ok("qemu-img check -f vdi " + sh_quote(dir / "odd.vdi"));
  run_ok("qemu-img convert -f vdi -O raw " + sh_quote(dir / "odd.vdi") + " " +
         sh_quote(dir / "odd-back.raw"));
  CHECK(file_size(dir / "odd-back.raw") == 1000448);
  run_ok("truncate -s 1000448 " + sh_quote(odd));
  CHECK(coreutils_digest("sha256sum", dir / "odd-back.raw") == coreutils_digest("sha256sum", odd));
}

namespace {

// Lays out a differencing VDI (image type 4) per VDICore.h: a 400-byte
// header, the block map at 0x200, 512 bytes of "extra" data before each block
// (which readers must skip), and data blocks stored out of guest order.
struct ChildBlock {
  uint32_t guest_block;
  std::vector<uint8_t> data;  // kMiB bytes, or empty for a zero block
};

std::vector<uint8_t> make_child(const std::vector<uint8_t>& parent, uint64_t disk_size,
                                const std::vector<ChildBlock>& blocks, uint8_t id_seed = 0xa0) {
  const uint32_t nblocks = static_cast<uint32_t>((disk_size + kMiB - 1) / kMiB);
  const uint32_t extra = 512;
  const uint32_t map_off = 0x200;
  const uint32_t data_off = (map_off + nblocks * 4 + 511) / 512 * 512;
  std::vector<uint8_t> f(data_off, 0);
  const std::string text = "<<< Oracle VM VirtualBox Disk Image >>>\n";
  std::copy(text.begin(), text.end(), f.begin());
  store_le32(&f[0x40], 0xbeda107f);
  store_le32(&f[0x44], 0x00010001);
  store_le32(&f[0x48], 400);
  store_le32(&f[0x4c], 4);  // differencing
  store_le32(&f[0x154], map_off);
  store_le32(&f[0x158], data_off);
  store_le32(&f[0x168], 512);
  store_le64(&f[0x170], disk_size);
  store_le32(&f[0x178], kMiB);
  store_le32(&f[0x17c], extra);
  store_le32(&f[0x180], nblocks);
  for (int i = 0; i < 16; ++i) {
    f[0x188 + i] = static_cast<uint8_t>(id_seed + i);  // this image
    f[0x198 + i] = static_cast<uint8_t>(0xb0 + i);     // its modification
  }
  std::copy(parent.begin() + 0x188, parent.begin() + 0x198, f.begin() + 0x1a8);  // parent's UUID
  std::copy(parent.begin() + 0x198, parent.begin() + 0x1a8, f.begin() + 0x1b8);  // and modification
  for (uint32_t b = 0; b < nblocks; ++b) store_le32(&f[map_off + b * 4], 0xffffffff);
  // Stored in reverse order of appearance, so data block n != guest block.
  uint32_t stored = 0;
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    if (it->data.empty()) {
      store_le32(&f[map_off + it->guest_block * 4], 0xfffffffe);
      continue;
    }
    f.insert(f.end(), extra, 0xee);
    f.insert(f.end(), it->data.begin(), it->data.end());
    store_le32(&f[map_off + it->guest_block * 4], stored++);
  }
  store_le32(&f[0x184], stored);
  return f;
}

}  // namespace

TEST_CASE("a differencing VDI reads through its parent found by UUID", "[vdi]") {
  require_tool("qemu-img");
  TempDir dir;
  const uint64_t size = 16 * kMiB;
  std::string base_raw = dir / "base.raw";
  make_sample_disk(base_raw, size);
  run_ok("mkdir " + sh_quote(dir / "vm"));
  std::string parent = dir / "vm/base-disk.vdi", decoy = dir / "vm/other.vdi";
  run_ok("qemu-img convert -f raw -O vdi " + sh_quote(base_raw) + " " + sh_quote(parent));
  std::string small = dir / "small.raw";
  make_small_disk(small);
  run_ok("qemu-img convert -f raw -O vdi " + sh_quote(small) + " " + sh_quote(decoy));
  write_file(dir / "vm/notes.vdi", pattern_bytes(100, 3));  // not a VDI at all

  std::vector<uint8_t> parent_bytes = read_file(parent);
  std::vector<uint8_t> a = pattern_bytes(kMiB, 21), b = pattern_bytes(kMiB, 22);
  // Block 1 overrides parent data, block 8 zeroes parent data (the sample
  // disk has data at 1 MiB and at size / 2), block 5 is new, the rest
  // read through.
  std::vector<uint8_t> child = make_child(parent_bytes, size, {{1, a}, {8, {}}, {5, b}});
  std::string child_path = dir / "vm/{snapshot}.vdi";
  write_file(child_path, child);

  // The expected guest content, assembled here from qemu-img's view of the parent.
  std::string expect = dir / "expect.raw";
  run_ok("qemu-img convert -f vdi -O raw " + sh_quote(parent) + " " + sh_quote(expect));
  std::vector<uint8_t> raw = read_file(expect);
  REQUIRE(std::any_of(raw.begin() + 8 * kMiB, raw.begin() + 9 * kMiB,
                      [](uint8_t c) { return c != 0; }));
  std::copy(a.begin(), a.end(), raw.begin() + kMiB);
  std::fill(raw.begin() + 8 * kMiB, raw.begin() + 9 * kMiB, 0);
  std::copy(b.begin(), b.end(), raw.begin() + 5 * kMiB);
  write_file(expect, raw);
  const std::string want = coreutils_digest("sha256sum", expect);

  CHECK(vdisk_sha256(sh_quote(child_path)) == want);
  std::string out = dir / "out.raw";
  RunResult c = run_vdisk("convert -O raw " + sh_quote(child_path) + " " + sh_quote(out));
  INFO(c.err);
  REQUIRE(c.exit_code == 0);
  run_ok("qemu-img compare -f raw -F raw " + sh_quote(expect) + " " + sh_quote(out));
  // And through qemu-img's reading of our VDI output of the chain.
  RunResult cv =
      run_vdisk("convert -O vdi " + sh_quote(child_path) + " " + sh_quote(dir / "flat.vdi"));
  REQUIRE(cv.exit_code == 0);
  run_ok("qemu-img compare -f raw -F vdi " + sh_quote(expect) + " " + sh_quote(dir / "flat.vdi"));

  RunResult info = run_vdisk("info --output json " + sh_quote(child_path));
  REQUIRE(info.exit_code == 0);
  Json j = Json::parse(info.out);
  CHECK(j.find("subformat")->as_string() == "differencing");
  CHECK(j.find("parent")->as_string() == parent);
  CHECK(j.find("details")->find("parent_uuid")->as_string() == uuid_at(parent_bytes, 0x188));
  CHECK(j.find("details")->find("block_extra")->as_u64() == 512);
  REQUIRE(j.find("chain") != nullptr);
  CHECK(j.find("chain")->as_array().size() == 1);
  // Block 8 is an explicit zero block: reported as such, not as the parent's data.
  RunResult m = run_vdisk("map --output json " + sh_quote(child_path));
  REQUIRE(m.exit_code == 0);
  bool zero_at_8 = false;
  Json map = Json::parse(m.out);
  for (auto& e : map.as_array()) {
    zero_at_8 |= e.find("type")->as_string() == "zero" && e.find("start")->as_u64() == 8 * kMiB &&
                 e.find("length")->as_u64() == kMiB;
  }
  CHECK(zero_at_8);

  // Without its parent in the folder: a clear error naming the UUID, the
  // folder and what was examined; never a standalone read.
  run_ok("mv " + sh_quote(parent) + " " + sh_quote(dir / "moved.vdi"));
  for (const char* cmd : {"info", "hash", "convert"}) {
    INFO(cmd);
    std::string args = std::string(cmd) + " " + sh_quote(child_path);
    if (std::string(cmd) == "convert") args += " " + sh_quote(dir / "never.raw");
    RunResult r = run_vdisk(args);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(uuid_at(parent_bytes, 0x188)));
    CHECK_THAT(r.err, Catch::Contains(dir / "vm"));
    CHECK_THAT(r.err, Catch::Contains("other.vdi"));
    CHECK_THAT(r.err, Catch::Contains("--parent"));
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
  CHECK_FALSE(file_exists(dir / "never.raw"));
  // Named with --parent it is found anywhere; a wrong one is refused.
  CHECK(vdisk_sha256("--parent " + sh_quote(dir / "moved.vdi") + " " + sh_quote(child_path)) ==
        want);
  RunResult wrong = run_vdisk("hash --parent " + sh_quote(decoy) + " " + sh_quote(child_path));
  CHECK(wrong.exit_code == 2);
  CHECK_THAT(wrong.err, Catch::Contains(uuid_at(parent_bytes, 0x188)));
  CHECK_THAT(wrong.err, Catch::Contains(uuid_at(read_file(decoy), 0x188)));
}

TEST_CASE("damaged VDI headers exit 2 with a clear message", "[vdi][errors]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string small = dir / "small.raw", good = dir / "good.vdi";
  make_small_disk(small);
  run_ok("qemu-img convert -f raw -O vdi " + sh_quote(small) + " " + sh_quote(good));
  std::vector<uint8_t> g = read_file(good);
  const uint32_t data_off = load_le32(g.data() + 0x158);
  REQUIRE(load_le32(g.data() + 0x184) >= 1);

  struct Case {
    std::string name;
    uint64_t offset;  // where to patch (ignored when truncate_to is set)
    std::vector<uint8_t> bytes;
    uint64_t truncate_to = 0;  // 0: keep the size
    std::string message;
  };
  std::vector<Case> cases = {
      {"bad-signature", 0x40, le32(0xbeda1080), 0, "signature"},
      {"huge-block-count", 0x180, le32(0xfffffff0), 0, "past the end"},
      {"map-past-eof", 0x154, le32(0x7ffffe00), 0, "past the end"},
      {"truncated-header", 0, {}, 300, "truncated"},
      {"tiny", 0, {}, 40, "too small"},
      {"entry-beyond", 0x200, le32(1000), 0, "beyond"},
      {"block-size", 0x178, le32(1000), 0, "power of two"},
      {"disk-size", 0x170, le64(uint64_t{1} << 50), 0, "exceeds"},
      {"data-past-eof", 0, {}, data_off + 4096, "past the end"},
      {"version", 0x44, le32(0x00020000), 0, "not supported"},
      {"image-type", 0x4c, le32(9), 0, "image type"},
      {"diff-no-parent-uuid", 0x4c, le32(4), 0, "null parent UUID"},
      {"header-size", 0x48, le32(16), 0, "header size"},
      {"data-overlaps-map", 0x158, le32(0x200), 0, "overlaps"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    std::string path = dir / (c.name + ".vdi");
    std::vector<uint8_t> f = g;
    if (c.truncate_to) {
      f.resize(c.truncate_to);
    } else {
      std::copy(c.bytes.begin(), c.bytes.end(), f.begin() + static_cast<ptrdiff_t>(c.offset));
    }
    write_file(path, f);
    for (const char* cmd : {"info -f vdi ", "hash -f vdi ", "map -f vdi "}) {
      RunResult r = run_vdisk(std::string(cmd) + sh_quote(path));
      INFO(cmd << ": " << r.err);
      CHECK(r.exit_code == 2);
      CHECK(r.err.rfind("vdisk", 0) == 0);
      CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
      CHECK_THAT(r.err, Catch::Contains(path));
      CHECK_THAT(r.err, Catch::Contains(c.message));
    }
  }
  // Without -f, a file carrying the signature is taken for a VDI and checked.
  RunResult probed = run_vdisk("info " + sh_quote(dir / "huge-block-count.vdi"));
  CHECK(probed.exit_code == 2);
  CHECK_THAT(probed.err, Catch::Contains("block map"));
  // The intact image still reads (the cases above really were the damage).
  CHECK(vdisk_sha256(sh_quote(good)) == coreutils_digest("sha256sum", small));
}

TEST_CASE("VDI chains of differencing images resolve and loops are refused", "[vdi]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string small = dir / "small.raw", base = dir / "base.vdi";
  make_small_disk(small);
  run_ok("qemu-img convert -f raw -O vdi " + sh_quote(small) + " " + sh_quote(base));
  const uint64_t size = file_size(small);
  std::vector<uint8_t> a = pattern_bytes(kMiB, 31), b = pattern_bytes(kMiB, 32);
  std::vector<uint8_t> mid = make_child(read_file(base), size, {{0, a}}, 0x10);
  std::vector<uint8_t> top = make_child(mid, size, {{0, {}}, {2, b}}, 0x30);
  write_file(dir / "mid.vdi", mid);
  write_file(dir / "top.vdi", top);
  // Expected: the base's bytes, block 0 zeroed by top (over mid's data),
  // block 2 from top; the final partial block still comes from the base.
  std::vector<uint8_t> raw = read_file(small);
  std::fill(raw.begin(), raw.begin() + kMiB, 0);
  std::copy(b.begin(), b.end(), raw.begin() + 2 * kMiB);
  write_file(dir / "expect.raw", raw);
  CHECK(vdisk_sha256(sh_quote(dir / "top.vdi")) ==
        coreutils_digest("sha256sum", dir / "expect.raw"));
  RunResult info = run_vdisk("info --output json " + sh_quote(dir / "top.vdi"));
  REQUIRE(info.exit_code == 0);
  Json j = Json::parse(info.out);
  REQUIRE(j.find("chain") != nullptr);
  CHECK(j.find("chain")->as_array().size() == 2);
  // --parent on an image that has none is reported, not silently dropped.
  RunResult ignored =
      run_vdisk("info --parent " + sh_quote(dir / "mid.vdi") + " " + sh_quote(base));
  CHECK(ignored.exit_code == 0);
  CHECK_THAT(ignored.err, Catch::Contains("is ignored"));

  // Two children naming each other: a loop, reported, not followed forever.
  run_ok("mkdir " + sh_quote(dir / "loop"));
  std::vector<uint8_t> fake(0x200, 0);
  for (int i = 0; i < 16; ++i) fake[0x188 + i] = static_cast<uint8_t>(0x50 + i);
  std::vector<uint8_t> x = make_child(fake, size, {}, 0x70);  // X names 0x50.. as parent
  std::vector<uint8_t> y = make_child(x, size, {}, 0x50);     // Y is 0x50.., names X
  write_file(dir / "loop/x.vdi", x);
  write_file(dir / "loop/y.vdi", y);
  RunResult r = run_vdisk("info " + sh_quote(dir / "loop/x.vdi"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("chain loops"));
}

TEST_CASE("mutated VDI headers and block maps never crash the reader", "[vdi][errors]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string small = dir / "small.raw", good = dir / "good.vdi";
  make_small_disk(small);
  run_ok("qemu-img convert -f raw -O vdi " + sh_quote(small) + " " + sh_quote(good));
  const std::vector<uint8_t> g = read_file(good);
  // A parent in the same in-memory folder, so mutated type/UUID fields also
  // exercise the parent search.
  std::vector<uint8_t> parent = g;
  for (int i = 0; i < 16; ++i) parent[0x188 + i] = g[0x1a8 + i];

  uint32_t seed = 12345;
  auto next = [&seed] {
    seed = seed * 1103515245u + 12345u;
    return seed >> 8;
  };
  int opened = 0, refused = 0;
  for (int iter = 0; iter < 1500; ++iter) {
    std::vector<uint8_t> f = g;
    int edits = 1 + static_cast<int>(next() % 4);
    for (int k = 0; k < edits; ++k) {
      size_t at = next() % 0x210;  // header and the first block map entries
      f[at] = static_cast<uint8_t>(next() & 1 ? next() : (next() & 1 ? 0xff : 0x00));
    }
    if (next() % 8 == 0) f.resize(next() % f.size());
    MemEnv env;
    env.add_file("/m/parent.vdi", parent);
    env.add_file("/m/x.vdi", f);
    OpenOptions opts;
    opts.env = &env;
    opts.warn = [](const std::string&) {};
    try {
      BlockDevicePtr dev = open_image("/m/x.vdi", "vdi", opts);
      ++opened;
      std::vector<uint8_t> buf(1 << 20);
      uint64_t n = std::min<uint64_t>(dev->size(), buf.size());
      if (n) dev->read(0, buf.data(), static_cast<size_t>(n));
      uint64_t off = 0;
      for (int s = 0; s < 64 && off < dev->size(); ++s)
        off += dev->block_status(off, dev->size() - off).length;
      (void)dev->info();
    } catch (const Error&) {
      ++refused;
    }
  }
  CHECK(opened > 0);
  CHECK(refused > 0);
}
