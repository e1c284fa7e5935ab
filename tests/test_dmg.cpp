// DMG (UDIF): images built from the public layout by a test helper
// (tests/support/dmg_builder.h), each first read by the oracles -- qemu-img
// convert -f dmg (zlib and raw chunks; Debian's qemu has no bzip2/LZFSE
// module) and dmg2img (zlib, bzip2, ADC) -- and compared with its source
// before vdisk reads it.
#include <catch2/catch.hpp>

#include "formats/core/error.h"
#include "formats/registry.h"
#include "tests/support/dmg_builder.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

TEST_CASE("DMG images read as the disk qemu-img and dmg2img see", "[dmg]") {
  for (const char* t : {"qemu-img", "dmg2img", "sha256sum"}) require_tool(t);
  TempDir dir;
  std::string raw = dir / "disk.raw";
  make_sample_disk(raw, 12 << 20);
  const std::vector<uint8_t> bytes = read_file(raw);
  const std::string want = coreutils_digest("sha256sum", raw);
  struct Kind {
    std::string name;
    uint32_t codec;
    bool qemu;
  };
  for (const Kind& k : {Kind{"zlib", 0x80000005, true}, Kind{"raw", 1, true},
                        Kind{"bzip2", 0x80000006, false}, Kind{"adc", 0x80000004, false}}) {
    INFO(k.name);
    DmgBuildOptions o;
    o.codec = k.codec;
    o.partitions = {2048, 16384};  // three blkx entries, like hdiutil's
    std::string dmg = dir / (k.name + ".dmg");
    write_file(dmg, make_dmg(bytes, o));
    // The oracles first.
    std::string d2i = dir / "d2i.raw";
    run_ok("dmg2img -s " + sh_quote(dmg) + " " + sh_quote(d2i) + " >/dev/null 2>&1");
    REQUIRE(coreutils_digest("sha256sum", d2i) == want);
    if (k.qemu) {
      std::string q = dir / "q.raw";
      run_ok("qemu-img convert -f dmg -O raw " + sh_quote(dmg) + " " + sh_quote(q));
      REQUIRE(coreutils_digest("sha256sum", q) == want);
    }
    RunResult h = run_vdisk("hash " + sh_quote(dmg));
    REQUIRE(h.exit_code == 0);
    CHECK(parse_tagged_digest(h.out, "SHA256") == want);
    RunResult info = run_vdisk("info --output json " + sh_quote(dmg));
    REQUIRE(info.exit_code == 0);
    CHECK_THAT(info.out, Catch::Contains("\"format\": \"dmg\""));
    CHECK_THAT(info.out, Catch::Contains("Apple_HFS : 2"));
    // Zero chunks are holes in a converted image; qemu-img compares the two.
    std::string vdi = dir / "o.vdi";
    run_ok(std::string(VDISK_BIN) + " convert --hash none -O vdi " + sh_quote(dmg) + " " +
           sh_quote(vdi) + " >/dev/null");
    run_ok("qemu-img compare -f raw -F vdi " + sh_quote(raw) + " " + sh_quote(vdi) + " >/dev/null");
    std::remove(vdi.c_str());
  }
}

TEST_CASE("DMG codecs vdisk does not decode, and encrypted DMGs, are named", "[dmg]") {
  TempDir dir;
  std::string raw = dir / "disk.raw";
  make_sample_disk(raw, 12 << 20);
  DmgBuildOptions o;
  o.codec = 0x80000007;  // LZFSE
  std::string dmg = dir / "lzfse.dmg";
  write_file(dmg, make_dmg(read_file(raw), o));
  RunResult info = run_vdisk("info " + sh_quote(dmg));
  REQUIRE(info.exit_code == 0);
  CHECK_THAT(info.out, Catch::Contains("codecs_not_decoded: lzfse"));
  RunResult h = run_vdisk("hash " + sh_quote(dmg));
  CHECK(h.exit_code == 2);
  CHECK_THAT(h.err, Catch::Contains("lzfse"));
  CHECK_THAT(h.err, Catch::Contains("does not decode"));

  std::string enc = dir / "enc.dmg";
  std::vector<uint8_t> e(4096, 0x11);
  std::copy_n("encrcdsa", 8, e.begin());
  write_file(enc, e);
  RunResult r = run_vdisk("info " + sh_quote(enc));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("encrypted Apple disk image"));
  RunResult f = run_vdisk("info -f dmg " + sh_quote(enc));
  CHECK(f.exit_code == 2);
  CHECK_THAT(f.err, Catch::Contains("encrypted DMG (encrcdsa)"));
}
