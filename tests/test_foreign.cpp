// Containers vdisk does not read are refused by name, never read as raw
// (issue #18): each made by its own tool where Debian has one, built from its
// documented layout where it has none (BitLocker, GELI, Ex01). -f raw still
// forces raw; every command that opens an image refuses the same way; an
// encrypted partition is named by ls and by the mount's tree view.
#include <catch2/catch.hpp>
#include <filesystem>

#include "formats/core/error.h"
#include "formats/core/json.h"
#include "formats/foreign.h"
#include "formats/registry.h"
#include "mount/mount.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

struct Case {
  std::string file;     // made in the test folder
  std::string command;  // shell command that makes it from src.raw ("" : built in the test)
  std::string article;  // what the refusal must say
};

void expect_refused(const std::string& path, const std::string& article) {
  RunResult r = run_vdisk("info " + sh_quote(path));
  INFO(path << ": " << r.err);
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  CHECK_THAT(r.err, Catch::StartsWith("vdisk: " + path + ": this is " + article));
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);  // one line
}

}  // namespace

TEST_CASE("foreign containers made by their own tools are refused by name", "[foreign]") {
  for (const char* tool : {"qemu-img", "gzip", "xz", "zstd", "bzip2", "lz4", "lzip", "zip", "7z",
                           "tar", "ewfacquire", "affconvert", "img2simg", "cryptsetup"})
    require_tool(tool);
  TempDir dir;
  std::string src = dir / "src.raw";
  make_sample_disk(src, 16 << 20);
  const std::vector<Case> cases = {
      {"d.qcow2", "qemu-img create -q -f qcow2 d.qcow2 8M", "a qcow2 image"},
      {"v2.qcow2", "qemu-img convert -O qcow2 -o compat=0.10 src.raw v2.qcow2", "a qcow2 image"},
      {"d.qcow", "qemu-img create -q -f qcow d.qcow 8M", "a qcow (version 1) image"},
      {"d.qed", "qemu-img create -q -f qed d.qed 8M", "a QED image"},
      {"d.hdd", "qemu-img create -q -f parallels d.hdd 8M", "a Parallels disk image"},
      {"src.raw.gz", "gzip -k src.raw", "a gzip-compressed file"},
      {"src.raw.xz", "xz -k src.raw", "an xz-compressed file"},
      {"src.raw.zst", "zstd -q src.raw", "a zstd-compressed file"},
      {"src.raw.bz2", "bzip2 -k src.raw", "a bzip2-compressed file"},
      {"src.raw.lz4", "lz4 -q src.raw src.raw.lz4", "an LZ4-compressed file"},
      {"src.raw.lz", "lzip -k src.raw", "an lzip-compressed file"},
      {"src.zip", "zip -q src.zip src.raw", "a ZIP archive"},
      {"src.7z", "7z a -bd src.7z src.raw >/dev/null", "a 7-Zip archive"},
      {"src.tar", "tar -cf src.tar src.raw", "a tar archive"},
      {"e.E01", "ewfacquire -q -u -t e -f encase6 src.raw >/dev/null",
       "an Expert Witness (EWF: E01 or SMART s01) evidence file"},
      {"s.s01", "ewfacquire -q -u -t s -f smart src.raw >/dev/null",
       "an Expert Witness (EWF: E01 or SMART s01) evidence file"},
      {"a.aff", "affconvert -q -o a.aff src.raw >/dev/null 2>&1 || affconvert -o a.aff src.raw",
       "an Advanced Forensic Format (AFF) image"},
      {"s.simg", "img2simg src.raw s.simg", "an Android sparse image"},
      {"l1.img",
       "truncate -s 16M l1.img && printf pw | cryptsetup luksFormat -q --type luks1 "
       "--pbkdf-force-iterations 1000 l1.img -d -",
       "a LUKS1 encrypted volume"},
      {"l2.img",
       "truncate -s 32M l2.img && printf pw | cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 "
       "--pbkdf-force-iterations 1000 l2.img -d -",
       "a LUKS2 encrypted volume"},
  };
  for (const Case& c : cases) {
    INFO(c.command);
    run_ok("cd " + sh_quote(dir.path()) + " && " + c.command);
    expect_refused(dir / c.file, c.article);
  }
  // -f raw still reads the bytes as they are.
  Json j = Json::parse(
      run_ok(std::string(VDISK_BIN) + " info -f raw --output json " + sh_quote(dir / "d.qcow2")));
  CHECK(j.find("format")->as_string() == "raw");
  CHECK(j.find("virtual_size")->as_u64() == file_size(dir / "d.qcow2"));
  // A LUKS volume says it is encrypted, not merely unread.
  RunResult luks = run_vdisk("hash " + sh_quote(dir / "l2.img"));
  CHECK_THAT(luks.err, Catch::Contains("vdisk does not decrypt it"));
}

TEST_CASE("foreign signatures no Debian tool writes, built from their layouts", "[foreign]") {
  TempDir dir;
  // BitLocker: the volume header is a boot sector whose OEM id (offset 3)
  // is "-FVE-FS-" (libyal libbde, "BitLocker Drive Encryption" format).
  std::vector<uint8_t> bde(1 << 20, 0);
  const uint8_t jump[] = {0xEB, 0x58, 0x90};
  std::copy(jump, jump + 3, bde.begin());
  std::string oem = "-FVE-FS-";
  std::copy(oem.begin(), oem.end(), bde.begin() + 3);
  bde[510] = 0x55, bde[511] = 0xAA;
  write_file(dir / "bitlocker.img", bde);
  expect_refused(dir / "bitlocker.img", "a BitLocker encrypted volume");
  // FreeBSD GELI: metadata "GEOM::ELI" at the start of the provider's last sector.
  std::vector<uint8_t> geli(1 << 20, 0x11);
  std::string magic = "GEOM::ELI";
  std::copy(magic.begin(), magic.end(), geli.end() - 512);
  write_file(dir / "geli.img", geli);
  expect_refused(dir / "geli.img", "a FreeBSD GELI encrypted volume");
  // EWF2 (Ex01): "EVF2\r\n\x81\0" (libyal EWF2 document, file header).
  std::vector<uint8_t> ex01(4096, 0);
  const uint8_t sig[] = {'E', 'V', 'F', '2', 0x0d, 0x0a, 0x81, 0x00};
  std::copy(sig, sig + 8, ex01.begin());
  write_file(dir / "x.Ex01", ex01);
  expect_refused(dir / "x.Ex01", "an EnCase 7 (Ex01, EWF2) evidence file");
  // Files that are about disks, not disks.
  std::string vmx =
      ".encoding = \"UTF-8\"\nconfig.version = \"8\"\nvirtualHW.version = \"19\"\n"
      "scsi0:0.fileName = \"disk.vmdk\"\n";
  write_file(dir / "vm.vmx", {vmx.begin(), vmx.end()});
  expect_refused(dir / "vm.vmx", "a VMware virtual machine configuration (.vmx), not a disk image");
}

TEST_CASE("every command that opens an image refuses a foreign container", "[foreign]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string q = dir / "d.qcow2";
  run_ok("qemu-img create -q -f qcow2 " + sh_quote(q) + " 8M");
  std::filesystem::create_directory(dir / "mnt");
  std::filesystem::create_directory(dir / "out");
  const std::vector<std::string> commands = {
      "info " + sh_quote(q),
      "map " + sh_quote(q),
      "hash " + sh_quote(q),
      "convert -O vmdk " + sh_quote(q) + " " + sh_quote(dir / "o.vmdk"),
      "compare " + sh_quote(q) + " " + sh_quote(q),
      "verify --expect sha256:" + std::string(64, '0') + " " + sh_quote(q),
      "ls " + sh_quote(q),
      "cat " + sh_quote(q) + " /x",
      "extract " + sh_quote(q) + " / -C " + sh_quote(dir / "out"),
      "mount " + sh_quote(q) + " " + sh_quote(dir / "mnt"),
  };
  for (const std::string& c : commands) {
    RunResult r = run_vdisk(c);
    INFO(c << "\n" << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("this is a qcow2 image; vdisk does not read qcow2"));
  }
  CHECK(!file_exists(dir / "o.vmdk"));
}

TEST_CASE("an encrypted partition is named by ls and by the mount's tree view", "[foreign]") {
  for (const char* tool : {"sgdisk", "cryptsetup", "mkfs.vfat", "mcopy"}) require_tool(tool);
  TempDir dir;
  std::string disk = dir / "disk.img";
  run_ok("truncate -s 64M " + sh_quote(disk));
  run_ok("sgdisk -o -n 1:2048:+16M -t 1:0700 -n 2:0:+32M -t 2:8309 " + sh_quote(disk) +
         " >/dev/null");
  // p1: FAT with a file; p2: a LUKS2 header made by cryptsetup, copied in.
  run_ok("truncate -s 16M " + sh_quote(dir / "p1.img") + " && mkfs.vfat -n P1 " +
         sh_quote(dir / "p1.img") + " >/dev/null && echo hi > " + sh_quote(dir / "hi.txt") +
         " && mcopy -i " + sh_quote(dir / "p1.img") + " " + sh_quote(dir / "hi.txt") + " ::/");
  run_ok("truncate -s 32M " + sh_quote(dir / "p2.img") +
         " && printf pw | cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 "
         "--pbkdf-force-iterations 1000 " +
         sh_quote(dir / "p2.img") + " -d -");
  run_ok("dd if=" + sh_quote(dir / "p1.img") + " of=" + sh_quote(disk) +
         " bs=512 seek=2048 conv=notrunc status=none");
  run_ok("dd if=" + sh_quote(dir / "p2.img") + " of=" + sh_quote(disk) +
         " bs=512 seek=34816 conv=notrunc status=none");
  // The disk itself is a plain GPT disk: it opens.
  CHECK(run_vdisk("info " + sh_quote(disk)).exit_code == 0);
  RunResult ls1 = run_vdisk("ls " + sh_quote(disk + "@p1"));
  CHECK(ls1.exit_code == 0);
  CHECK_THAT(ls1.out, Catch::Contains("hi.txt"));
  RunResult ls2 = run_vdisk("ls " + sh_quote(disk + "@p2"));
  INFO(ls2.err);
  CHECK(ls2.exit_code == 2);
  CHECK_THAT(ls2.err, Catch::Contains("@p2: this is a LUKS2 encrypted volume; vdisk does not "
                                      "decrypt it"));

  // The mount's tree view: p1/ is there, p2 is named in a warning.
  std::vector<std::string> warnings;
  mount::ViewRequest req;
  req.disk = open_image(disk, "", OpenOptions{});
  req.image = disk;
  req.mode = mount::Mode::kTree;
  req.warn = [&](const std::string& w) { warnings.push_back(w); };
  std::unique_ptr<FileTree> view = mount::make_view(req);
  std::vector<std::string> names;
  for (const DirEntry& e : view->list(view->root())) names.push_back(e.name);
  CHECK(names == std::vector<std::string>{"p1"});
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(warnings[0], Catch::Contains("@p2: this is a LUKS2 encrypted volume"));
}

TEST_CASE("identify_foreign needs the signature, not just a prefix of it", "[foreign]") {
  // Short magics carry a second check: a disk that starts with the same
  // bytes is not refused.
  auto probe = [](std::vector<uint8_t> head) {
    ProbeInput in;
    in.head = head;
    in.tail = head;
    return identify_foreign(in).has_value();
  };
  CHECK(probe({'B', 'Z', 'h', '9', 0x31, 0x41, 0x59, 0x26, 0x53, 0x59}));
  CHECK_FALSE(probe({'B', 'Z', 'h', '9', 0, 0, 0, 0, 0, 0}));
  CHECK(probe({'Q', 'F', 'I', 0xfb, 0, 0, 0, 3}));
  CHECK_FALSE(probe({'Q', 'F', 'I', 0xfb, 0, 0, 0, 9}));
  CHECK_FALSE(probe({'L', 'U', 'K', 'S', 0xba, 0xbe, 0, 7}));
  CHECK_FALSE(probe({}));
}
