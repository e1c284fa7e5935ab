// `vdisk create`, judged by qemu-img: every writable format QEMU reads gets
// an empty image that `qemu-img info` sizes right, `qemu-img check` finds
// clean and `qemu-img compare` finds equal to zeros; a qcow2 child over a
// qemu-made parent records its backing file and reads as the parent.
#include <catch2/catch.hpp>

#include "formats/core/json.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

constexpr uint64_t kMiB = 1024 * 1024;

uint64_t qemu_virtual_size(const std::string& image, const std::string& qemu_fmt) {
  const std::string out =
      run_ok("qemu-img info --output json -f " + qemu_fmt + " " + sh_quote(image));
  return Json::parse(out).find("virtual-size")->as_u64();
}

}  // namespace

TEST_CASE("create: empty images of every format qemu-img reads are sized, clean and zero",
          "[create][cli]") {
  require_tool("qemu-img");
  TempDir dir;
  const std::string zeros = dir / "zeros.raw";
  run_ok("truncate -s 64M " + sh_quote(zeros));
  struct Case {
    std::string fmt, opts, qemu_fmt, file;
    bool qemu_checks;
  };
  const std::vector<Case> cases = {
      {"raw", "", "raw", "a.raw", false},
      {"qcow2", "", "qcow2", "a.qcow2", true},
      {"qcow2", "-o compat=0.10,cluster_size=4K", "qcow2", "b.qcow2", true},
      {"vmdk", "", "vmdk", "a.vmdk", true},
      {"vmdk", "-o subformat=streamOptimized", "vmdk", "b.vmdk", true},
      {"vmdk", "-o subformat=twoGbMaxExtentSparse", "vmdk", "c.vmdk", true},
      {"vhd", "", "vpc", "a.vhd", false},
      {"vhd", "-o subformat=fixed", "vpc", "b.vhd", false},
      {"vhdx", "", "vhdx", "a.vhdx", true},
      {"vdi", "", "vdi", "a.vdi", true},
      {"vdi", "-o subformat=static", "vdi", "b.vdi", true},
  };
  for (const Case& c : cases) {
    INFO(c.fmt << " " << c.opts);
    const std::string out = dir / c.file;
    RunResult r = run_vdisk("create -O " + c.fmt + " " + c.opts + " " + sh_quote(out) + " 64M");
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(qemu_virtual_size(out, c.qemu_fmt) == 64 * kMiB);
    if (c.qemu_checks)
      CHECK(run("qemu-img check -f " + c.qemu_fmt + " " + sh_quote(out)).exit_code == 0);
    RunResult cmp = run("qemu-img compare -f " + c.qemu_fmt + " -F raw " + sh_quote(out) + " " +
                        sh_quote(zeros));
    INFO(cmp.out << cmp.err);
    CHECK(cmp.exit_code == 0);
    // Our own check agrees.
    CHECK(run_vdisk("check " + sh_quote(out)).exit_code == 0);
  }
}

TEST_CASE("create: sizes take suffixes and bytes; bad sizes and formats are refused by name",
          "[create][cli]") {
  TempDir dir;
  REQUIRE(run_vdisk("create -O qcow2 " + sh_quote(dir / "g.qcow2") + " 2G").exit_code == 0);
  CHECK(qemu_virtual_size(dir / "g.qcow2", "qcow2") == 2048 * kMiB);
  REQUIRE(run_vdisk("create -O raw " + sh_quote(dir / "b.raw") + " 1048576").exit_code == 0);
  CHECK(file_size(dir / "b.raw") == kMiB);
  RunResult bad = run_vdisk("create -O raw " + sh_quote(dir / "c.raw") + " 12Q");
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Catch::Contains("SIZE"));
  CHECK(!file_exists(dir / "c.raw"));
  RunResult exists = run_vdisk("create -O raw " + sh_quote(dir / "b.raw") + " 1M");
  CHECK(exists.exit_code == 2);
  CHECK_THAT(exists.err, Catch::Contains("exists"));
  RunResult unwritable = run_vdisk("create -O iso " + sh_quote(dir / "x.iso") + " 1M");
  CHECK(unwritable.exit_code == 2);
  RunResult help = run_vdisk("create -O vhdx -o help");
  CHECK(help.exit_code == 0);
  CHECK_THAT(help.out, Catch::Contains("block_size"));
}

TEST_CASE("create -b: a qcow2 child over a qemu-made parent reads as the parent",
          "[create][cli][qcow2]") {
  require_tool("qemu-img");
  require_tool("qemu-io");
  TempDir dir;
  const std::string base = dir / "base.qcow2";
  run_ok("qemu-img create -q -f qcow2 " + sh_quote(base) + " 32M");
  run_ok("qemu-io -f qcow2 -c 'write -P 0x5a 1M 3M' -c 'write -P 0x11 30M 64k' " + sh_quote(base));
  const std::string child = dir / "child.qcow2";
  RunResult r = run_vdisk("create -O qcow2 -b base.qcow2 -F qcow2 " + sh_quote(child));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const Json info = Json::parse(run_ok("qemu-img info --output json " + sh_quote(child)));
  CHECK(info.find("backing-filename")->as_string() == "base.qcow2");
  CHECK(info.find("backing-filename-format")->as_string() == "qcow2");
  CHECK(info.find("virtual-size")->as_u64() == 32 * kMiB);
  CHECK(run("qemu-img check " + sh_quote(child)).exit_code == 0);
  RunResult cmp = run("qemu-img compare " + sh_quote(child) + " " + sh_quote(base));
  INFO(cmp.out << cmp.err);
  CHECK(cmp.exit_code == 0);
  // Nothing of the parent was copied into the child.
  CHECK(file_size(child) < 1 * kMiB);
  // Written through QEMU, the child changes and the parent does not.
  run_ok("qemu-io -f qcow2 -c 'write -P 0x77 2M 64k' " + sh_quote(child));
  CHECK(run("qemu-img compare " + sh_quote(child) + " " + sh_quote(base)).exit_code == 1);
  CHECK(run_vdisk("check " + sh_quote(child)).exit_code == 0);

  // A size other than the parent's is refused; formats whose writer makes
  // no child are refused by name.
  CHECK(
      run_vdisk("create -O qcow2 -b base.qcow2 " + sh_quote(dir / "c2.qcow2") + " 1G").exit_code ==
      2);
  RunResult vmdk = run_vdisk("create -O vmdk -b base.qcow2 " + sh_quote(dir / "c.vmdk"));
  CHECK(vmdk.exit_code == 2);
  CHECK_THAT(vmdk.err, Catch::Contains("vmdk"));
  CHECK(!file_exists(dir / "c.vmdk"));
}
