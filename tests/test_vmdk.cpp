// VMDK read and write, checked against qemu-img/qemu-io (which make and check
// images) and sha256sum (which hashes raw content independently of vdisk).
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/json.h"
#include "formats/registry.h"
#include "formats/vmdk/vmdk_sparse_extent.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

// Odd on purpose: not a multiple of the 64 KiB grain (but whole sectors).
const uint64_t kDiskSize = 24ull * 1024 * 1024 + 512 * 3;
const char* const kSubformats[] = {"monolithicSparse", "twoGbMaxExtentSparse", "monolithicFlat",
                                   "twoGbMaxExtentFlat", "streamOptimized"};

std::string vdisk_sha256(const std::string& image, const std::string& extra = "") {
  RunResult r = run_vdisk("hash " + extra + " " + sh_quote(image));
  INFO("vdisk hash " << image << ": " << r.err);
  REQUIRE(r.exit_code == 0);
  return parse_tagged_digest(r.out, "SHA256");
}

// sha256sum of qemu-img's raw rendering of an image: the independent oracle.
std::string qemu_sha256(const TempDir& dir, const std::string& image) {
  std::string raw = dir / "qemu-render.raw";
  run_ok("qemu-img convert -O raw " + sh_quote(image) + " " + sh_quote(raw));
  std::string h = coreutils_digest("sha256sum", raw);
  run_ok("rm -f " + sh_quote(raw));
  return h;
}

uint64_t header_field64(const std::string& path, size_t off) {
  auto b = read_file(path);
  REQUIRE(b.size() >= 512);
  return load_le64(b.data() + off);
}

// A sample disk (partitions, data, zero runs, holes) and its sha256sum.
struct Sample {
  TempDir dir;
  std::string src = dir / "src.img";
  std::string want;
  explicit Sample(uint64_t size = kDiskSize) {
    make_sample_disk(src, size);
    want = coreutils_digest("sha256sum", src);
  }
  std::string subdir(const std::string& name) const {
    run_ok("mkdir " + sh_quote(dir / name));
    return dir / name;
  }
};

}  // namespace

TEST_CASE("every subformat qemu-img writes reads back identically", "[vmdk]") {
  require_tool("qemu-img");
  Sample s;
  for (const char* sub : kSubformats) {
    INFO("subformat " << sub);
    std::string sd = s.subdir(sub);
    std::string img = sd + "/disk.vmdk";
    run_ok(std::string("qemu-img convert -O vmdk -o subformat=") + sub + " " + sh_quote(s.src) +
           " " + sh_quote(img));
    std::string oracle = qemu_sha256(s.dir, img);
    CHECK(oracle == s.want);
    CHECK(vdisk_sha256(img) == oracle);
    RunResult info = run_vdisk("info --output json " + sh_quote(img));
    REQUIRE(info.exit_code == 0);
    Json j = Json::parse(info.out);
    CHECK(j.find("subformat")->as_string() == sub);
    CHECK(j.find("virtual_size")->as_u64() == kDiskSize);
  }
}

TEST_CASE("everything vdisk writes passes qemu-img check and compare", "[vmdk]") {
  require_tool("qemu-img");
  Sample s;
  for (const char* sub : kSubformats) {
    INFO("subformat " << sub);
    std::string sd = s.subdir(sub);
    std::string img = sd + "/out.vmdk";
    RunResult r = run_vdisk(std::string("convert -O vmdk -o subformat=") + sub +
                            ",adapter_type=lsilogic " + sh_quote(s.src) + " " + sh_quote(img));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    // qemu-img check reports "No errors" (flat images: "does not support
    // checks", exit 0 either way); any error or leak makes it exit non-zero.
    RunResult chk = run("qemu-img check -f vmdk " + sh_quote(img));
    INFO(chk.out << chk.err);
    CHECK(chk.exit_code == 0);
    CHECK(chk.err.find("ERROR") == std::string::npos);
    run_ok("qemu-img compare -f raw -F vmdk " + sh_quote(s.src) + " " + sh_quote(img));
    CHECK(qemu_sha256(s.dir, img) == s.want);
    CHECK(vdisk_sha256(img) == s.want);
    // qemu-img's reading of our descriptor: the subformat and the adapter.
    std::string qi = run_ok("qemu-img info --output=json " + sh_quote(img));
    CHECK(qi.find(std::string("\"create-type\": \"") + sub + "\"") != std::string::npos);
    // No partial files left behind.
    RunResult ls = run("ls -A " + sh_quote(sd));
    CHECK(ls.out.find("partial") == std::string::npos);
  }
  // All-zero grains stay unallocated: the sparse output holds little more
  // than the source's data.
  CHECK(file_size(s.dir / "monolithicSparse/out.vmdk") < 4u << 20);
}

TEST_CASE("streamOptimized to a pipe equals the file written to a path, and stays small",
          "[vmdk]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string src = dir / "src.img";
  make_sample_disk(src, kDiskSize);
  // Fixed CID, uuid and recorded name make the output a function of the input.
  const std::string opts =
      "subformat=streamOptimized,cid=0badcafe,uuid=00112233-4455-6677-8899-aabbccddeeff";
  std::string piped = dir / "piped.vmdk", direct = dir / "direct.vmdk";
  RunResult p = run_vdisk("convert -O vmdk -o " + opts + ",embedded_name=direct.vmdk " +
                          sh_quote(src) + " - > " + sh_quote(piped));
  INFO(p.err);
  REQUIRE(p.exit_code == 0);
  RunResult d =
      run_vdisk("convert -O vmdk -o " + opts + " " + sh_quote(src) + " " + sh_quote(direct));
  REQUIRE(d.exit_code == 0);
  CHECK(coreutils_digest("sha256sum", piped) == coreutils_digest("sha256sum", direct));
  CHECK(qemu_sha256(dir, piped) == coreutils_digest("sha256sum", src));
  run_ok("qemu-img check " + sh_quote(piped));
  // Within 2% of qemu-img's own streamOptimized output.
  std::string q = dir / "qemu.vmdk";
  run_ok("qemu-img convert -O vmdk -o subformat=streamOptimized " + sh_quote(src) + " " +
         sh_quote(q));
  CHECK(file_size(direct) * 100 <= file_size(q) * 102);
  // The header says "directory at the end" and the stream ends with footer
  // marker, footer, end-of-stream marker (VDF stream-optimized layout).
  CHECK(header_field64(direct, 56) == ~uint64_t{0});
  auto b = read_file(direct);
  size_t n = b.size();
  CHECK(load_le32(b.data() + n - 1536 + 12) == 3u);      // footer marker
  CHECK(load_le32(b.data() + n - 1024) == 0x564d444bu);  // footer = header copy
  CHECK(std::all_of(b.end() - 512, b.end(), [](uint8_t c) { return c == 0; }));  // EOS
  // Other subformats refuse standard output with a clear error.
  RunResult bad = run_vdisk("convert -O vmdk -o subformat=monolithicSparse " + sh_quote(src) +
                            " - > /dev/null");
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("streamOptimized") != std::string::npos);
}

TEST_CASE("a qemu-img snapshot chain reads through its parent, info shows the chain", "[vmdk]") {
  require_tool("qemu-img");
  require_tool("qemu-io");
  TempDir dir;
  std::string src = dir / "src.img";
  make_sample_disk(src, kDiskSize);
  std::string base = dir / "base.vmdk", child = dir / "child.vmdk";
  run_ok("qemu-img convert -O vmdk " + sh_quote(src) + " " + sh_quote(base));
  run_ok("cd " + sh_quote(dir.path()) +
         " && qemu-img create -q -f vmdk -b base.vmdk -F vmdk child.vmdk");
  run_ok("qemu-io -c 'write -P 0x5a 1M 64k' " + sh_quote(child));
  std::string oracle = qemu_sha256(dir, child);
  CHECK(oracle != coreutils_digest("sha256sum", src));
  CHECK(vdisk_sha256(child) == oracle);

  RunResult info = run_vdisk("info --output json " + sh_quote(child));
  REQUIRE(info.exit_code == 0);
  Json j = Json::parse(info.out);
  CHECK(j.find("parent")->as_string() == base);
  REQUIRE(j.find("chain"));
  REQUIRE(j.find("chain")->as_array().size() == 1);
  CHECK(j.find("chain")->as_array()[0].find("filename")->as_string() == base);
  // CIDs as qemu-img reports them.
  Json q = Json::parse(run_ok("qemu-img info --output=json " + sh_quote(child)));
  const Json* fs = q.find("format-specific")->find("data");
  char cid[16], pcid[16];
  std::snprintf(cid, sizeof cid, "%08llx",
                static_cast<unsigned long long>(fs->find("cid")->as_u64()));
  std::snprintf(pcid, sizeof pcid, "%08llx",
                static_cast<unsigned long long>(fs->find("parent-cid")->as_u64()));
  CHECK(j.find("details")->find("cid")->as_string() == cid);
  CHECK(j.find("details")->find("parent_cid")->as_string() == pcid);
  RunResult human = run_vdisk("info " + sh_quote(child));
  CHECK(human.out.find("backing chain:") != std::string::npos);
  CHECK(human.out.find("grain_size: 65536") != std::string::npos);
  CHECK(human.out.find("adapter_type: ide") != std::string::npos);
  CHECK(human.out.find("allocated_in_this_layer: 65536") != std::string::npos);

  // The parent changed after the snapshot: a warning, still readable.
  run_ok("qemu-io -c 'write -P 0x11 0 4k' " + sh_quote(base));
  auto bytes = read_file(base);
  std::string text(bytes.begin(), bytes.begin() + 4096);
  size_t at = text.find("CID=");
  REQUIRE(at != std::string::npos);
  // qemu writes the CID without leading zeros: overwrite its digits only.
  size_t len = text.find('\n', at) - (at + 4);
  std::vector<uint8_t> digits(len, '0');
  digits.back() = '1';
  write_at(base, at + 4, digits);
  RunResult warn = run_vdisk("hash " + sh_quote(child));
  INFO(warn.err);
  CHECK(warn.exit_code == 0);
  CHECK(warn.err.find("parentCID") != std::string::npos);

  // A missing parent is an error naming the path looked for.
  run_ok("mv " + sh_quote(base) + " " + sh_quote(dir / "moved.vmdk"));
  RunResult missing = run_vdisk("info " + sh_quote(child));
  CHECK(missing.exit_code == 2);
  CHECK(missing.err.find(base) != std::string::npos);
  CHECK(missing.err.find("not found") != std::string::npos);
  // --parent names it explicitly.
  CHECK(run_vdisk("hash --parent " + sh_quote(dir / "moved.vmdk") + " " + sh_quote(child))
            .exit_code == 0);
}

TEST_CASE("a damaged primary grain directory reads through the redundant one", "[vmdk]") {
  require_tool("qemu-img");
  Sample s;
  for (int damage = 0; damage < 2; ++damage) {
    INFO("damage " << damage);
    std::string img = s.dir / "d.vmdk";
    run_ok("rm -f " + sh_quote(img) + " && qemu-img convert -O vmdk " + sh_quote(s.src) + " " +
           sh_quote(img));
    uint64_t gd = header_field64(img, 56) * 512;
    // Garbage (entries pointing past the end) or zeros (tables "missing").
    write_at(img, gd, std::vector<uint8_t>(64, damage == 0 ? 0xee : 0x00));
    RunResult r = run_vdisk("hash " + sh_quote(img));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(parse_tagged_digest(r.out, "SHA256") == s.want);
    CHECK(r.err.find("redundant") != std::string::npos);
  }
}

TEST_CASE("a renamed monolithicSparse opens as itself, never as the file with its old name",
          "[vmdk]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string src = dir / "src.img";
  make_sample_disk(src, kDiskSize);
  run_ok("qemu-img convert -O vmdk " + sh_quote(src) + " " + sh_quote(dir / "old.vmdk"));
  run_ok("mv " + sh_quote(dir / "old.vmdk") + " " + sh_quote(dir / "new.vmdk"));
  // A different disk now carries the old name.
  run_ok("qemu-img create -q -f vmdk " + sh_quote(dir / "old.vmdk") + " 1M");
  CHECK(vdisk_sha256(dir / "new.vmdk") == coreutils_digest("sha256sum", src));
}

TEST_CASE("hand-written descriptors: mixed extents, offsets, CRLF, comments, quoted names",
          "[vmdk]") {
  require_tool("qemu-img");
  TempDir dir;
  // Flat file with a 2-sector prefix that the FLAT extent skips, and 16
  // sectors after it that the VMFS extent maps (extents of one file may not
  // overlap).
  auto flat = pattern_bytes(1024 + 64 * 1024 + 16 * 512, 7);
  write_file(dir / "my disk-flat.bin", flat);
  // A sparse extent made by qemu-img from a raw piece.
  auto piece = pattern_bytes(128 * 1024, 8);
  write_file(dir / "piece.raw", piece);
  run_ok("qemu-img convert -O vmdk -o subformat=twoGbMaxExtentSparse " +
         sh_quote(dir / "piece.raw") + " " + sh_quote(dir / "p.vmdk"));
  std::string desc =
      "# Disk DescriptorFile\r\n"
      "# written by hand\r\n"
      "ddb.adapterType = \"lsilogic\"\r\n"
      "version=1\r\n"
      "encoding=\"UTF-8\"\r\n"
      "CID=fffffffe\r\n"
      "parentCID=ffffffff\r\n"
      "createType=\"custom\"\r\n"
      "\r\n"
      "RW 128 FLAT \"my disk-flat.bin\" 2\r\n"
      "RW 64 ZERO\r\n"
      "RDONLY 256 SPARSE \"p-s001.vmdk\"\r\n"
      "RW 16 VMFS \"my disk-flat.bin\" 130\r\n"
      "ddb.geometry.heads = \"255\"\r\n";
  std::string dpath = dir / "mixed.vmdk";
  write_file(dpath, std::vector<uint8_t>(desc.begin(), desc.end()));
  // FLAT: sectors 2-129 of the file; ZERO: 64 sectors; SPARSE: the piece;
  // VMFS: sectors 130-145 of the file.
  std::vector<uint8_t> expect((128 + 64 + 256 + 16) * 512, 0);
  std::copy_n(flat.begin() + 2 * 512, 128 * 512, expect.begin());
  std::copy_n(piece.begin(), piece.size(), expect.begin() + (128 + 64) * 512);
  std::copy_n(flat.begin() + 130 * 512, 16 * 512, expect.begin() + (128 + 64 + 256) * 512);
  write_file(dir / "expect.raw", expect);
  CHECK(vdisk_sha256(dpath) == coreutils_digest("sha256sum", dir / "expect.raw"));
  RunResult m = run_vdisk("map " + sh_quote(dpath));
  CHECK(m.out.find("zero") != std::string::npos);
  Json j = Json::parse(run_vdisk("info --output json " + sh_quote(dpath)).out);
  CHECK(j.find("details")->find("adapter_type")->as_string() == "lsilogic");
  CHECK(j.find("details")->find("extents")->as_array().size() == 4);
}

TEST_CASE("extent and parent names must stay inside the image's folder", "[vmdk]") {
  TempDir dir;
  run_ok("mkdir " + sh_quote(dir / "vm"));
  write_file(dir / "outside-flat.bin", pattern_bytes(64 * 1024, 3));
  auto make_desc = [&](const std::string& name, const std::string& file) {
    std::string d =
        "# Disk "
        "DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="
        "\"monolithicFlat\"\n"
        "RW 128 FLAT \"" +
        file + "\" 0\n";
    write_file(dir / ("vm/" + name), std::vector<uint8_t>(d.begin(), d.end()));
    return dir / ("vm/" + name);
  };
  std::string up = make_desc("up.vmdk", "../outside-flat.bin");
  std::string abs = make_desc("abs.vmdk", dir / "outside-flat.bin");
  run_ok("ln -s ../outside-flat.bin " + sh_quote(dir / "vm/link-flat.bin"));
  std::string link = make_desc("link.vmdk", "link-flat.bin");
  for (auto& [img, why] : std::vector<std::pair<std::string, std::string>>{
           {up, ".."}, {abs, "absolute"}, {link, "symlink"}}) {
    INFO(img);
    RunResult r = run_vdisk("hash " + sh_quote(img));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(why) != std::string::npos);
    CHECK(r.err.find("--allow-outside-paths") != std::string::npos);
    CHECK(vdisk_sha256(img, "--allow-outside-paths") ==
          coreutils_digest("sha256sum", dir / "outside-flat.bin"));
  }
  // A parent hint that climbs out is refused the same way.
  require_tool("qemu-img");
  run_ok("qemu-img create -q -f vmdk " + sh_quote(dir / "base.vmdk") + " 1M");
  run_ok("cd " + sh_quote(dir / "vm") +
         " && qemu-img create -q -f vmdk -b ../base.vmdk -F vmdk child.vmdk");
  RunResult pr = run_vdisk("info " + sh_quote(dir / "vm/child.vmdk"));
  CHECK(pr.exit_code == 2);
  CHECK(pr.err.find("parent '../base.vmdk' climbs out") != std::string::npos);
  CHECK(run_vdisk("info --allow-outside-paths " + sh_quote(dir / "vm/child.vmdk")).exit_code == 0);
  // A missing extent names the path looked for.
  std::string gone = make_desc("gone.vmdk", "gone-flat.bin");
  RunResult g = run_vdisk("info " + sh_quote(gone));
  CHECK(g.exit_code == 2);
  CHECK(g.err.find("gone-flat.bin") != std::string::npos);
}

TEST_CASE("truncated and garbage VMDKs fail with exit 2 and a clear message", "[vmdk]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string src = dir / "src.img";
  make_sample_disk(src, 16ull << 20);
  std::string sparse = dir / "s.vmdk", stream = dir / "so.vmdk";
  run_ok("qemu-img convert -O vmdk " + sh_quote(src) + " " + sh_quote(sparse));
  RunResult w = run_vdisk("convert -O vmdk -o subformat=streamOptimized " + sh_quote(src) + " " +
                          sh_quote(stream));
  REQUIRE(w.exit_code == 0);

  struct Case {
    std::string name;
    std::function<void(const std::string&)> damage;
    std::string base;
    std::string expect;
  };
  auto truncate_to = [](uint64_t n) {
    return [n](const std::string& p) {
      run_ok("truncate -s " + std::to_string(n) + " " + sh_quote(p));
    };
  };
  auto poke = [](size_t off, std::vector<uint8_t> bytes) {
    return [off, bytes](const std::string& p) { write_at(p, off, bytes); };
  };
  std::vector<uint8_t> huge(8, 0xff);
  huge[7] = 0x00;
  std::vector<Case> cases = {
      {"sparse cut in half", truncate_to(file_size(sparse) / 2), sparse, "past the end"},
      {"sparse header only", truncate_to(512), sparse, "outside"},
      {"stream without footer", truncate_to(file_size(stream) - 2048), stream, "footer"},
      {"huge capacity", poke(12, huge), sparse, "capacity"},
      {"grain size 3", poke(20, {3, 0, 0, 0, 0, 0, 0, 0}), sparse, "grain size"},
      {"bad descriptor line", poke(512 + 22, std::vector<uint8_t>(9, 'x')), sparse, "descriptor"},
      {"random after magic",
       [](const std::string& p) {
         auto g = pattern_bytes(4096, 99);
         std::memcpy(g.data(), "KDMV", 4);
         write_file(p, g);
       },
       sparse, ""},
  };
  for (auto& c : cases) {
    INFO(c.name);
    std::string img = dir / "case.vmdk";
    run_ok("cp " + sh_quote(c.base) + " " + sh_quote(img));
    c.damage(img);
    RunResult r = run_vdisk("hash " + sh_quote(img));
    INFO(r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(img) != std::string::npos);
    if (!c.expect.empty()) CHECK(r.err.find(c.expect) != std::string::npos);
  }
  // A corrupt compressed grain is found when read.
  {
    std::string img = dir / "case2.vmdk";
    run_ok("cp " + sh_quote(stream) + " " + sh_quote(img));
    // The first grain marker follows header and descriptor (overHead).
    uint64_t first = header_field64(img, 64) * 512;
    write_at(img, first + 12, std::vector<uint8_t>(64, 0x55));
    RunResult r = run_vdisk("hash " + sh_quote(img));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("inflate") != std::string::npos);
  }
}

TEST_CASE("zeroed-grain entries read as zero and report zero status", "[vmdk]") {
  require_tool("qemu-img");
  require_tool("qemu-io");
  TempDir dir;
  std::string img = dir / "z.vmdk";
  run_ok("qemu-img create -q -f vmdk -o zeroed_grain=on " + sh_quote(img) + " 4M");
  run_ok("qemu-io -c 'write -P 1 0 128k' -c 'write -z 0 64k' " + sh_quote(img));
  BlockDevicePtr dev = open_image(img, "", OpenOptions{});
  Extent e = dev->block_status(0, dev->size());
  CHECK(e.type == ExtentType::kZero);
  CHECK(e.length == 65536);
  CHECK(dev->block_status(65536, dev->size() - 65536).type == ExtentType::kData);
  std::vector<uint8_t> buf(65536, 0xaa);
  dev->read(0, buf.data(), buf.size());
  CHECK(std::all_of(buf.begin(), buf.end(), [](uint8_t c) { return c == 0; }));
  CHECK(vdisk_sha256(img) == qemu_sha256(dir, img));
}

TEST_CASE("vmdk writer: sector rounding only when allowed, abort leaves nothing", "[vmdk]") {
  MemEnv env;
  CreateRequest req;
  req.env = &env;
  req.path = "d/out.vmdk";
  req.virtual_size = 1000 * 1000 + 1;
  const FormatDescriptor& f = require_format("vmdk");
  req.options = parse_options("subformat=twoGbMaxExtentFlat", f.create_options, "vmdk");
  try {
    f.create(req);
    FAIL("an odd size was accepted");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kInvalidArgument);
    CHECK(std::string(e.what()).find("1000448") != std::string::npos);
  }
  req.allow_resize = true;
  auto w = f.create(req);
  CHECK(w->virtual_size() == 1000448);
  REQUIRE(w->notes().size() == 1);
  auto data = pattern_bytes(4096, 1);
  w->write(0, data.data(), data.size());
  w->abort();
  CHECK(env.contents("d/out.vmdk") == nullptr);
  CHECK(env.contents("d/out-f001.vmdk") == nullptr);

  // Committed: descriptor and extent, the descriptor naming the extent.
  auto w2 = f.create(req);
  w2->write(0, data.data(), data.size());
  w2->finish();
  REQUIRE(env.contents("d/out.vmdk"));
  REQUIRE(env.contents("d/out-f001.vmdk"));
  std::string desc(env.contents("d/out.vmdk")->begin(), env.contents("d/out.vmdk")->end());
  CHECK(desc.find("RW 1954 FLAT \"out-f001.vmdk\" 0") != std::string::npos);
  OpenOptions o;
  o.env = &env;
  BlockDevicePtr dev = open_image("d/out.vmdk", "", o);
  std::vector<uint8_t> back(4096);
  dev->read(0, back.data(), back.size());
  CHECK(back == data);
}

TEST_CASE("seSparse extents read (built per the public layout)", "[vmdk]") {
  // seSparse has no tool that makes it outside ESXi: build one. 1 MiB disk,
  // 4 KiB grains, one grain table (4096 entries, 32 KiB).
  const uint64_t cap_sectors = 2048;
  std::vector<uint8_t> f(64 * 1024 + 512 * 64 + 4 * 4096, 0);
  auto put64 = [&](size_t off, uint64_t v) { store_le64(f.data() + off, v); };
  put64(0, 0xcafebabe);
  put64(8, 0x0000000200000001ull);
  put64(16, cap_sectors);
  put64(24, 8);
  put64(32, 64);
  const uint64_t gd_sec = 8, gts_sec = 16, grains_sec = 16 + 64;
  put64(128, gd_sec), put64(136, 1);
  put64(144, gts_sec), put64(152, 64);
  put64(192, grains_sec), put64(200, 32);
  put64(gd_sec * 512, (uint64_t{1} << 60) | 0);  // table index 0
  auto gte_alloc = [](uint64_t idx) {
    return (uint64_t{3} << 60) | ((idx & 0xfff) << 48) | (idx >> 12);
  };
  size_t gt = gts_sec * 512;
  put64(gt + 8 * 0, gte_alloc(1));       // grain 0 -> stored grain 1
  put64(gt + 8 * 1, uint64_t{2} << 60);  // grain 1 zero
  put64(gt + 8 * 5, gte_alloc(0));       // grain 5 -> stored grain 0
  f.resize(grains_sec * 512 + 4 * 4096);
  auto g0 = pattern_bytes(4096, 21), g1 = pattern_bytes(4096, 22);
  std::memcpy(f.data() + grains_sec * 512, g0.data(), 4096);
  std::memcpy(f.data() + grains_sec * 512 + 4096, g1.data(), 4096);
  MemEnv env;
  env.add_file("x/s-sesparse.vmdk", f);
  std::string desc =
      "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"seSparse\"\n"
      "RW 2048 SESPARSE \"s-sesparse.vmdk\"\n";
  env.add_file("x/s.vmdk", std::vector<uint8_t>(desc.begin(), desc.end()));
  OpenOptions o;
  o.env = &env;
  BlockDevicePtr dev = open_image("x/s.vmdk", "", o);
  REQUIRE(dev->size() == cap_sectors * 512);
  std::vector<uint8_t> buf(6 * 4096);
  dev->read(0, buf.data(), buf.size());
  CHECK(std::equal(g1.begin(), g1.end(), buf.begin()));
  CHECK(std::all_of(buf.begin() + 4096, buf.begin() + 5 * 4096, [](uint8_t c) { return c == 0; }));
  CHECK(std::equal(g0.begin(), g0.end(), buf.begin() + 5 * 4096));
  CHECK(dev->block_status(4096, 4096).type == ExtentType::kZero);
  CHECK(dev->block_status(8192, 4096).type == ExtentType::kUnallocated);
  // As ESXi writes them: the grain area reserved in the header (here 512
  // MiB) runs far past the end of the file, which holds only the grains
  // allocated so far. It opens; a table entry pointing past the end of the
  // file is corruption that names the grain.
  put64(200, 0x100000);
  env.add_file("x/s-sesparse.vmdk", f);
  BlockDevicePtr esxi = open_image("x/s.vmdk", "", o);
  esxi->read(0, buf.data(), buf.size());
  CHECK(std::equal(g0.begin(), g0.end(), buf.begin() + 5 * 4096));
  put64(gt + 8 * 6, gte_alloc(9));  // stored grain 9: inside the area, past the file
  env.add_file("x/s-sesparse.vmdk", f);
  CHECK_THROWS_WITH(open_image("x/s.vmdk", "", o),
                    Catch::Contains("seSparse grain 6 is stored as grain 9") &&
                        Catch::Contains("past the end of the"));
  // A grain index past the reserved area is corruption too.
  put64(200, 32);
  put64(gt + 8 * 6, 0);
  put64(gt + 8 * 7, gte_alloc(1000));
  env.add_file("x/s-sesparse.vmdk", f);
  CHECK_THROWS_AS(open_image("x/s.vmdk", "", o), Error);
}

TEST_CASE("sequential small reads of a streamOptimized disk inflate each grain once", "[vmdk]") {
  TempDir dir;
  std::string src = dir / "src.img";
  make_sample_disk(src, 16ull << 20);
  std::string img = dir / "s.vmdk";
  RunResult w = run_vdisk("convert -O vmdk -o subformat=streamOptimized " + sh_quote(src) + " " +
                          sh_quote(img));
  REQUIRE(w.exit_code == 0);
  BlockDevicePtr dev = open_image(img, "", OpenOptions{});
  Json info = dev->info().details;
  const uint64_t grains = info.find("extents")->as_array()[0].find("allocated_grains")->as_u64();
  REQUIRE(grains > 10);
  const uint64_t before = vmdk::grains_inflated();
  // 4 KiB reads, as FUSE makes them: 16 reads per grain.
  std::vector<uint8_t> all(dev->size()), buf(4096);
  for (uint64_t off = 0; off < dev->size(); off += buf.size()) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), dev->size() - off));
    dev->read(off, buf.data(), n);
    std::memcpy(all.data() + off, buf.data(), n);
  }
  CHECK(vmdk::grains_inflated() - before == grains);
  CHECK(all == read_file(src));
}

TEST_CASE("mutated and truncated VMDKs never crash: only vdisk::Error", "[vmdk]") {
  // Small images written by our own writer into memory, then damaged at
  // random (fixed seed) in their metadata and data; every open and read
  // either works or throws vdisk::Error.
  const FormatDescriptor& f = require_format("vmdk");
  const uint64_t size = 2ull << 20;
  auto content = pattern_bytes(static_cast<size_t>(size), 5);
  std::fill(content.begin() + 300000, content.begin() + 900000, 0);
  for (const char* sub : {"monolithicSparse", "streamOptimized", "twoGbMaxExtentSparse"}) {
    INFO(sub);
    MemEnv env;
    CreateRequest req;
    req.env = &env;
    req.path = "m/img.vmdk";
    req.virtual_size = size;
    req.options =
        parse_options(std::string("subformat=") + sub + ",grain_size=4K", f.create_options, "vmdk");
    auto w = f.create(req);
    w->write(0, content.data(), content.size());
    w->finish();
    std::string target =
        std::string(sub) == "twoGbMaxExtentSparse" ? "m/img-s001.vmdk" : "m/img.vmdk";
    const std::vector<uint8_t> good = *env.contents(target);
    uint64_t x = 12345;
    auto rnd = [&] {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      return x;
    };
    int opened = 0, failed = 0;
    std::vector<uint8_t> buf(256 * 1024);
    // VDISK_FUZZ_ITERATIONS raises the count for a longer local run.
    const char* env_iters = std::getenv("VDISK_FUZZ_ITERATIONS");
    const int iterations = env_iters ? std::atoi(env_iters) : 150;
    for (int i = 0; i < iterations; ++i) {
      std::vector<uint8_t> bad = good;
      if (i % 10 == 9) {
        bad.resize(static_cast<size_t>(rnd() % bad.size()));
      } else {
        // Mostly metadata (first 16 KiB and last 4 KiB), sometimes anywhere.
        for (int k = 0; k < 1 + static_cast<int>(rnd() % 4); ++k) {
          uint64_t r = rnd();
          size_t at = r % 3 == 0 ? static_cast<size_t>(rnd() % bad.size())
                      : r % 3 == 1
                          ? static_cast<size_t>(rnd() % std::min<size_t>(16384, bad.size()))
                          : bad.size() - 1 - static_cast<size_t>(rnd() % 4096);
          bad[at] = static_cast<uint8_t>(rnd());
        }
      }
      env.add_file(target, bad);
      OpenOptions o;
      o.env = &env;
      o.warn = [](const std::string&) {};
      try {
        BlockDevicePtr dev = open_image("m/img.vmdk", "vmdk", o);
        for (uint64_t off = 0; off < dev->size(); off += buf.size()) {
          size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), dev->size() - off));
          dev->block_status(off, n);
          dev->read(off, buf.data(), n);
        }
        ++opened;
      } catch (const Error&) {
        ++failed;
      }
    }
    CHECK(opened + failed == iterations);
    CHECK(failed > 0);
  }
}

TEST_CASE("twoGbMaxExtent outputs split at 2047 MiB and read across the seams", "[vmdk]") {
  require_tool("qemu-img");
  TempDir dir;
  // 4.5 GiB, nearly all holes: data straddles both extent boundaries.
  const uint64_t size = 4608ull << 20;
  std::string src = dir / "big.img";
  run_ok("truncate -s " + std::to_string(size) + " " + sh_quote(src));
  const uint64_t seam = 2047ull << 20;
  write_at(src, seam - 40000, pattern_bytes(80000, 1));
  write_at(src, 2 * seam - 512, pattern_bytes(1024, 2));
  write_at(src, size - 4096, pattern_bytes(4096, 3));
  for (const char* sub : {"twoGbMaxExtentSparse", "twoGbMaxExtentFlat"}) {
    INFO(sub);
    std::string img = dir / (std::string(sub) + ".vmdk");
    RunResult r = run_vdisk(std::string("convert --hash none -O vmdk -o subformat=") + sub + " " +
                            sh_quote(src) + " " + sh_quote(img));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    auto desc = read_file(img);
    std::string text(desc.begin(), desc.end());
    CHECK(text.find("RW 4192256 ") != std::string::npos);
    CHECK(text.find(std::string(sub).find("Sparse") != std::string::npos
                        ? "-s003.vmdk"
                        : "-f003.vmdk") != std::string::npos);
    run_ok("qemu-img check -f vmdk " + sh_quote(img));
    run_ok("qemu-img compare -f raw -F vmdk " + sh_quote(src) + " " + sh_quote(img));
    // vdisk's own reading across the seams, against the raw source.
    CHECK(run_vdisk("compare " + sh_quote(src) + " " + sh_quote(img)).exit_code == 0);
  }
}

TEST_CASE("a streamOptimized device answers many threads at once", "[vmdk]") {
  // FUSE reads from several threads: the shared grain cache must hold up.
  MemEnv env;
  const FormatDescriptor& f = require_format("vmdk");
  const uint64_t size = 4ull << 20;
  auto content = pattern_bytes(static_cast<size_t>(size), 77);
  CreateRequest req;
  req.env = &env;
  req.path = "t/s.vmdk";
  req.virtual_size = size;
  req.options = parse_options("subformat=streamOptimized", f.create_options, "vmdk");
  auto w = f.create(req);
  w->write(0, content.data(), content.size());
  w->finish();
  OpenOptions o;
  o.env = &env;
  BlockDevicePtr dev = open_image("t/s.vmdk", "", o);
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      uint64_t x = 99 + t;
      std::vector<uint8_t> buf(70000);
      for (int i = 0; i < 300; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t len = 1 + x % buf.size();
        uint64_t off = (x >> 20) % (size - len);
        dev->read(off, buf.data(), len);
        if (!std::equal(buf.begin(), buf.begin() + static_cast<long>(len),
                        content.begin() + static_cast<long>(off))) {
          ++bad;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(bad == 0);
}

TEST_CASE("descriptors whose extents overlap or name the descriptor itself are refused",
          "[vmdk][hostile]") {
  require_tool("qemu-img");
  TempDir dir;
  // 64 sectors of flat data, and a sparse extent qemu-img makes.
  write_file(dir / "a.bin", pattern_bytes(64 * 512, 41));
  run_ok("ln " + sh_quote(dir / "a.bin") + " " + sh_quote(dir / "hard.bin"));
  run_ok("ln -s a.bin " + sh_quote(dir / "soft.bin"));
  write_file(dir / "piece.raw", pattern_bytes(128 * 1024, 42));
  run_ok("qemu-img convert -O vmdk -o subformat=twoGbMaxExtentSparse " +
         sh_quote(dir / "piece.raw") + " " + sh_quote(dir / "p.vmdk"));
  auto desc = [&](const std::string& name, const std::vector<std::string>& extents,
                  const std::string& type = "custom") {
    std::string d =
        "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n"
        "createType=\"" +
        type + "\"\n\n# Extent description\n";
    for (const std::string& e : extents) d += e + "\n";
    std::string path = dir / name;
    write_file(path, std::vector<uint8_t>(d.begin(), d.end()));
    return path;
  };
  struct Row {
    std::string what;
    std::vector<std::string> extents;
    std::string message;  // pieces of the expected message
  };
  const std::vector<Row> rows = {
      {"two FLAT ranges of one file overlap",
       {"RW 32 FLAT \"a.bin\" 0", "RW 32 FLAT \"a.bin\" 16"},
       "overlap: both use bytes 8192-16384 of"},
      {"the same FLAT range twice",
       {"RW 16 FLAT \"a.bin\" 8", "RW 16 FLAT \"a.bin\" 8"},
       "extent lines 'RW 16 FLAT \"a.bin\" 8' and 'RW 16 FLAT \"a.bin\" 8' overlap"},
      {"a hard link to the same file",
       {"RW 32 FLAT \"a.bin\" 0", "RW 32 FLAT \"hard.bin\" 31"},
       "both use bytes 15872-16384 of"},
      {"a symlink to the same file",
       {"RW 32 FLAT \"soft.bin\" 0", "RW 8 VMFS \"a.bin\" 0"},
       "both use bytes 0-4096 of"},
      {"the same sparse extent twice",
       {"RW 256 SPARSE \"p-s001.vmdk\"", "RW 256 SPARSE \"p-s001.vmdk\""},
       "both use all of"},
      {"a FLAT range inside a sparse extent",
       {"RW 256 SPARSE \"p-s001.vmdk\"", "RW 1 FLAT \"p-s001.vmdk\" 0"},
       "both use bytes 0-512 of"},
      {"a FLAT extent that is the descriptor",
       {"RW 1 FLAT \"self.vmdk\" 0"},
       "names the descriptor file itself"},
  };
  for (const Row& row : rows) {
    INFO(row.what);
    std::string path = desc("self.vmdk", row.extents);
    try {
      (void)open_image(path, "vmdk", OpenOptions{});
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kCorrupt);
      CHECK_THAT(e.what(), Catch::Contains(path));
      CHECK_THAT(e.what(), Catch::Contains(row.message));
    }
    RunResult r = run_vdisk("info " + sh_quote(path));
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(row.message));
  }
  // The descriptor reached through a symlink in its folder is still itself.
  run_ok("ln -s self.vmdk " + sh_quote(dir / "me.vmdk"));
  std::string self = desc("self.vmdk", {"RW 1 FLAT \"me.vmdk\" 0"});
  CHECK_THROWS_WITH(open_image(self, "vmdk", OpenOptions{}),
                    Catch::Contains("names the descriptor file itself"));
  // Distinct ranges of one file are legitimate (a partitionedDevice maps
  // several ranges of one disk) and read as the ranges they name, out of
  // order and through a hard link.
  std::string ok =
      desc("ok.vmdk",
           {"RW 16 FLAT \"a.bin\" 48", "RW 16 FLAT \"hard.bin\" 0", "RW 32 FLAT \"a.bin\" 16"},
           "twoGbMaxExtentFlat");  // a type qemu-img opens
  run_ok("( dd if=" + sh_quote(dir / "a.bin") +
         " bs=512 skip=48 count=16 status=none; dd if=" + sh_quote(dir / "a.bin") +
         " bs=512 count=16 status=none; dd if=" + sh_quote(dir / "a.bin") +
         " bs=512 skip=16 count=32 status=none ) > " + sh_quote(dir / "ok.expect"));
  CHECK(vdisk_sha256(ok) == coreutils_digest("sha256sum", dir / "ok.expect"));
  CHECK(qemu_sha256(dir, ok) == coreutils_digest("sha256sum", dir / "ok.expect"));
}
