// Compressed raw images (gzip, xz, zstd, bzip2): every image is made by the
// native tool (or, for our writer, decoded by it) and checked against the raw
// source with sha256sum and with random reads compared byte for byte.
#include <catch2/catch.hpp>
#include <cstring>
#include <random>

#include "formats/core/error.h"
#include "formats/registry.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

// A 12 MiB disk: partition table, data, written zeros, holes, text.
std::string make_disk(const TempDir& dir) {
  std::string raw = dir / "disk.raw";
  make_sample_disk(raw, 12 << 20);
  std::string text;
  for (int i = 0; text.size() < (3 << 19); ++i) text += "log line " + std::to_string(i) + " ok\n";
  write_at(raw, 3 << 20, std::vector<uint8_t>(text.begin(), text.end()));
  return raw;
}

// Random reads of `n` ranges through the library, compared with the raw file.
void check_random_reads(const std::string& image, const std::vector<uint8_t>& raw, int n) {
  OpenOptions o;
  o.warn = [](const std::string&) {};
  BlockDevicePtr dev = open_image(image, "", o);
  REQUIRE(dev->size() == raw.size());
  std::mt19937_64 rng(7);
  std::vector<uint8_t> buf;
  for (int i = 0; i < n; ++i) {
    uint64_t len = 1 + rng() % (300 * 1024);
    uint64_t off = rng() % (raw.size() - len);
    buf.resize(len);
    dev->read(off, buf.data(), len);
    INFO(image << " at " << off << " length " << len);
    REQUIRE(std::memcmp(buf.data(), raw.data() + off, len) == 0);
  }
}

}  // namespace

TEST_CASE("compressed images made by gzip, xz, zstd and bzip2 read as their source",
          "[compressed]") {
  for (const char* t : {"gzip", "xz", "zstd", "bzip2", "sha256sum"}) require_tool(t);
  TempDir dir;
  std::string raw = make_disk(dir);
  const std::vector<uint8_t> bytes = read_file(raw);
  const std::string want = coreutils_digest("sha256sum", raw);
  struct Made {
    std::string file, format, cmd;
  };
  std::vector<Made> made = {
      {"d.gz", "gzip", "gzip -c R > O"},
      // Two members laid end to end (RFC 1952 2.2), as `cat a.gz b.gz` makes.
      {"multi.gz", "gzip", "head -c 3670016 R | gzip -1 > O && tail -c +3670017 R | gzip -9 >> O"},
      {"d.xz", "xz", "xz -1 -T1 -c R > O"},
      {"blocks.xz", "xz", "xz -0 -T2 --block-size=1MiB -c R > O"},
      {"d.zst", "zstd", "zstd -q -c R > O"},
      {"frames.zst", "zstd", "zstd -q -c -B1M R > O"},
      {"small.bz2", "bzip2", "bzip2 -1 -c R > O"},
  };
  for (const Made& m : made) {
    INFO(m.file);
    std::string out = dir / m.file, cmd = m.cmd;
    for (size_t p; (p = cmd.find(" R")) != std::string::npos;)
      cmd.replace(p, 2, " " + sh_quote(raw));
    for (size_t p; (p = cmd.find(" O")) != std::string::npos;)
      cmd.replace(p, 2, " " + sh_quote(out));
    run_ok(cmd);
    RunResult info = run_vdisk("info --output json " + sh_quote(out));
    REQUIRE(info.exit_code == 0);
    CHECK_THAT(info.out, Catch::Contains("\"format\": \"" + m.format + "\""));
    CHECK_THAT(info.out, Catch::Contains("\"virtual_size\": " + std::to_string(bytes.size())));
    RunResult h = run_vdisk("hash " + sh_quote(out));
    REQUIRE(h.exit_code == 0);
    CHECK(parse_tagged_digest(h.out, "SHA256") == want);
    check_random_reads(out, bytes, 40);
    // Zero runs are holes for the converter: a VHD made from the image holds
    // the same content (qemu-img compares) and is sparse.
    std::string vhd = dir / "out.vhd";
    run_ok(std::string(VDISK_BIN) + " convert --hash none -O vhd " + sh_quote(out) + " " +
           sh_quote(vhd) + " >/dev/null");
    run_ok("qemu-img compare -f raw -F vpc " + sh_quote(raw) + " " + sh_quote(vhd) + " >/dev/null");
    CHECK(allocated_bytes_on_host(vhd) < 9u << 20);
    std::remove(vhd.c_str());
  }
}

TEST_CASE("vdisk map of a compressed image shows the zero runs", "[compressed]") {
  require_tool("zstd");
  TempDir dir;
  std::string raw = make_disk(dir);
  std::string z = dir / "d.zst";
  run_ok("zstd -q -c " + sh_quote(raw) + " > " + sh_quote(z));
  RunResult m = run_vdisk("map --output json " + sh_quote(z));
  REQUIRE(m.exit_code == 0);
  CHECK_THAT(m.out, Catch::Contains("zero"));
  // The first 1 MiB after the MBR sector is all zero in the source.
  RunResult q = run("qemu-img map -f raw --output json " + sh_quote(raw));
  REQUIRE(q.exit_code == 0);
}

TEST_CASE("raw writer with compression= writes what gunzip, xz -d and zstd -d decode",
          "[compressed]") {
  for (const char* t : {"gzip", "xz", "zstd"}) require_tool(t);
  TempDir dir;
  std::string raw = make_disk(dir);
  const std::vector<uint8_t> bytes = read_file(raw);
  const std::string want = coreutils_digest("sha256sum", raw);
  struct W {
    std::string codec, ext, decode, fact;
  };
  for (const W& w : {W{"gzip", "gz", "gzip -dc", "\"members\": \"12\""},
                     W{"xz", "xz", "xz -dc", "\"blocks\": \"3\""},
                     W{"zstd", "zst", "zstd -dcq", "\"seek_table\": \"yes\""}}) {
    INFO(w.codec);
    std::string out = dir / ("w." + w.ext);
    RunResult c = run_vdisk("convert -O raw -o compression=" + w.codec + " " + sh_quote(raw) + " " +
                            sh_quote(out));
    REQUIRE(c.exit_code == 0);
    CHECK(run_ok(w.decode + " " + sh_quote(out) + " | sha256sum").substr(0, 64) == want);
    RunResult info = run_vdisk("info --output json " + sh_quote(out));
    CHECK_THAT(info.out, Catch::Contains(w.fact));
    CHECK_THAT(info.out, Catch::Contains("\"random_access\": \"yes\""));
    check_random_reads(out, bytes, 40);
    // To standard output, with a level.
    std::string piped = dir / ("p." + w.ext);
    RunResult p =
        run(std::string(VDISK_BIN) + " convert --hash none -O raw -o compression=" + w.codec +
            ",level=1 " + sh_quote(raw) + " - > " + sh_quote(piped));
    REQUIRE(p.exit_code == 0);
    CHECK(run_ok(w.decode + " " + sh_quote(piped) + " | sha256sum").substr(0, 64) == want);
  }
  // xz checks every block, zstd the checksums: the tools' own tests pass.
  run_ok("xz -t " + sh_quote(dir / "w.xz"));
  run_ok("zstd -tq " + sh_quote(dir / "w.zst"));
  run_ok("gzip -t " + sh_quote(dir / "w.gz"));
  RunResult bad = run_vdisk("convert -O raw -o compression=xz,level=12 " + sh_quote(raw) + " " +
                            sh_quote(dir / "bad.xz"));
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Catch::Contains("level 12"));
  CHECK_FALSE(file_exists(dir / "bad.xz"));
}

TEST_CASE("gzip access points go to a sidecar (--index FILE) only when asked", "[compressed]") {
  require_tool("gzip");
  TempDir dir;
  std::string raw = make_disk(dir);
  std::string gz = dir / "d.gz";
  run_ok("gzip -c " + sh_quote(raw) + " > " + sh_quote(gz));
  const std::string want = coreutils_digest("sha256sum", raw);
  REQUIRE(run_vdisk("hash " + sh_quote(gz)).exit_code == 0);
  // Nothing is written beside the source unless asked.
  CHECK(run_ok("ls " + sh_quote(dir.path()) + " | wc -l").substr(0, 1) == "2");
  std::string idx = dir / "d.gz.idx";
  RunResult h1 = run_vdisk("hash --index " + sh_quote(idx) + " " + sh_quote(gz));
  REQUIRE(h1.exit_code == 0);
  REQUIRE(file_exists(idx));
  RunResult h2 = run_vdisk("hash --index " + sh_quote(idx) + " " + sh_quote(gz));
  REQUIRE(h2.exit_code == 0);
  CHECK(parse_tagged_digest(h2.out, "SHA256") == want);
  RunResult info = run_vdisk("info --index " + sh_quote(idx) + " " + sh_quote(gz));
  CHECK_THAT(info.out, Catch::Contains("index_file"));
  // An index of another image is refused by name.
  std::string other = dir / "o.gz";
  run_ok("head -c 1000000 " + sh_quote(raw) + " | gzip > " + sh_quote(other));
  RunResult wrong = run_vdisk("hash --index " + sh_quote(idx) + " " + sh_quote(other));
  CHECK(wrong.exit_code == 2);
  CHECK_THAT(wrong.err, Catch::Contains("does not belong"));
  // A damaged index is refused, not trusted.
  std::vector<uint8_t> b = read_file(idx);
  b[b.size() / 2] ^= 0xff;
  write_file(idx, b);
  RunResult dam = run_vdisk("hash --index " + sh_quote(idx) + " " + sh_quote(gz));
  CHECK(dam.exit_code == 2);
  CHECK_THAT(dam.err, Catch::Contains("CRC"));
}

TEST_CASE("a truncated or damaged compressed image names both offsets", "[compressed]") {
  for (const char* t : {"gzip", "xz", "zstd", "bzip2"}) require_tool(t);
  TempDir dir;
  std::string raw = make_disk(dir);
  for (std::string tool : {"gzip", "xz", "zstd", "bzip2"}) {
    INFO(tool);
    std::string full = dir / ("full." + tool), cut = dir / ("cut." + tool);
    run_ok(tool + " -1 -c " + sh_quote(raw) + " > " + sh_quote(full));
    uint64_t n = file_size(full);
    if (tool == "xz") {
      // xz keeps its index at the end: cutting it is a metadata error
      // (kCorrupt, at open); damage a block's data instead.
      std::vector<uint8_t> b = read_file(full);
      for (size_t i = n / 2; i < n / 2 + 64; ++i) b[i] ^= 0x5a;
      write_file(cut, b);
    } else {
      run_ok("head -c " + std::to_string(n * 2 / 3) + " " + sh_quote(full) + " > " + sh_quote(cut));
    }
    RunResult h = run_vdisk("hash " + sh_quote(cut));
    CHECK(h.exit_code == 2);
    CHECK_THAT(h.err, Catch::Contains(cut));
    CHECK_THAT(h.err, Catch::Contains("disk offset"));
    CHECK(std::count(h.err.begin(), h.err.end(), '\n') <= 3);
    RunResult c = run_vdisk("hash --on-read-error continue " + sh_quote(cut));
    CHECK(c.exit_code == 3);
  }
  // Cutting xz's index is caught at open, as metadata.
  std::string xz = dir / "full.xz", cut = dir / "cutindex.xz";
  run_ok("head -c " + std::to_string(file_size(xz) - 20) + " " + sh_quote(xz) + " > " +
         sh_quote(cut));
  RunResult i = run_vdisk("info " + sh_quote(cut));
  CHECK(i.exit_code == 2);
  CHECK_THAT(i.err, Catch::Contains("xz"));
}

TEST_CASE("OpenOptions::decode_limit stops the index pass of gzip, bzip2 and streamed zstd",
          "[compressed]") {
  for (const char* t : {"gzip", "bzip2", "zstd"}) require_tool(t);
  TempDir dir;
  std::string raw = make_disk(dir);  // 12 MiB
  // zstd reading a pipe writes no content size: its frames must be decoded.
  for (const char* cmd : {"gzip -c", "bzip2 -1 -c", "zstd -q -c -"}) {
    std::string out = dir / "d.cmp";
    std::remove(out.c_str());
    run_ok(std::string("cat ") + sh_quote(raw) + " | " + cmd + " > " + sh_quote(out));
    INFO(cmd);
    OpenOptions o;
    o.warn = [](const std::string&) {};
    o.decode_limit = 4 << 20;
    try {
      open_image(out, "", o);
      FAIL("a 12 MiB disk opened under a 4 MiB decode limit");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kUnsupported);
      CHECK_THAT(e.what(), Catch::Contains(out) && Catch::Contains("4194304"));
    }
    o.decode_limit = 12 << 20;  // exactly the disk: allowed
    CHECK(open_image(out, "", o)->size() == 12u << 20);
  }
}
