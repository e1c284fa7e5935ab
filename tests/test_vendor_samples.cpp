// Images laid out as VMware Workstation, Windows/Hyper-V, Virtual Server and
// VirtualBox write them (testdata/vendor/make_vendor_samples.py, built from
// the published layouts: testdata/README.md), read by vdisk and by qemu-img;
// both must give the guest disk the generator put in (its NAME.raw).
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "formats/core/json.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

struct Sample {
  std::string image, raw;
};

std::vector<Sample> make_samples(const TempDir& dir) {
  require_tool("python3");
  run_ok("python3 " +
         sh_quote(std::string(VDISK_SOURCE_DIR) + "/testdata/vendor/make_vendor_samples.py") + " " +
         sh_quote(dir.path()));
  std::ifstream list(dir / "samples.txt");
  std::vector<Sample> out;
  std::string image, raw;
  while (list >> image >> raw) out.push_back({dir / image, dir / raw});
  return out;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

Json info_json(const std::string& image) {
  return Json::parse(run_ok(std::string(VDISK_BIN) + " info --output json " + sh_quote(image)));
}

std::string detail(const Json& info, const std::string& key) {
  const Json* d = info.find("details");
  const Json* v = d ? d->find(key) : nullptr;
  if (!v) return "";
  return v->is_string() ? v->as_string() : v->dump();
}

}  // namespace

TEST_CASE("vendor-layout samples read the same in vdisk and qemu-img", "[vendor]") {
  require_tool("qemu-img");
  TempDir dir;
  const std::vector<Sample> samples = make_samples(dir);
  REQUIRE(samples.size() == 7);
  for (const Sample& s : samples) {
    INFO(s.image);
    const std::string want = coreutils_digest("sha256sum", s.raw);
    RunResult h = run_vdisk("hash " + sh_quote(s.image));
    INFO(h.err);
    REQUIRE(h.exit_code == 0);
    CHECK(parse_tagged_digest(h.out, "SHA256") == want);
    RunResult c = run_vdisk("compare -F raw " + sh_quote(s.image) + " " + sh_quote(s.raw));
    CHECK(c.exit_code == 0);
    // qemu-img reads every sample but two: VDI differencing images (qemu
    // refuses a non-null link UUID) and VHDX with 4 KiB logical sectors.
    if (ends_with(s.image, "vbox-child.vdi") || ends_with(s.image, "4kn.vhdx")) continue;
    RunResult q = run("qemu-img compare -F raw " + sh_quote(s.image) + " " + sh_quote(s.raw));
    INFO(q.out << q.err);
    CHECK(q.exit_code == 0);
    if (!ends_with(s.image, ".vhd")) {  // qemu-img check knows no VHD
      RunResult k = run("qemu-img check " + sh_quote(s.image));
      INFO(k.out << k.err);
      CHECK(k.exit_code == 0);
    }
    // vdisk's copy of it is what qemu-img reads from the sample.
    const std::string copy = s.image + ".copy.qcow2";
    run_ok(std::string(VDISK_BIN) + " convert -O qcow2 " + sh_quote(s.image) + " " +
           sh_quote(copy));
    CHECK(run("qemu-img compare " + sh_quote(s.image) + " " + sh_quote(copy)).exit_code == 0);
  }
}

TEST_CASE("vendor-layout samples show their vendor's fields in info", "[vendor]") {
  TempDir dir;
  make_samples(dir);
  Json hv = info_json(dir / "hyperv-dynamic.vhd");
  CHECK(hv.find("format")->as_string() == "vhd");
  CHECK(detail(hv, "creator_application") == "win ");
  CHECK(hv.find("virtual_size")->as_u64() == 64ull << 20);
  Json vs = info_json(dir / "virtualserver-dynamic.vhd");
  CHECK(detail(vs, "creator_application") == "vs  ");

  Json ws = info_json(dir / "workstation-sparse.vmdk");
  CHECK(ws.find("subformat")->as_string() == "monolithicSparse");
  CHECK(ws.find("virtual_size")->as_u64() == 40ull << 20);

  // The VirtualBox child finds its base by the linkage UUID alone.
  Json child = info_json(dir / "vbox-child.vdi");
  REQUIRE(child.find("chain") != nullptr);
  REQUIRE(child.find("chain")->as_array().size() == 1);
  CHECK(
      ends_with(child.find("chain")->as_array()[0].find("filename")->as_string(), "vbox-base.vdi"));

  Json kn = info_json(dir / "hyperv-4kn.vhdx");
  CHECK(kn.find("virtual_size")->as_u64() == 96ull << 20);
  CHECK_THAT(kn.dump(), Catch::Contains("4096"));
}
