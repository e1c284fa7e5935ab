// mkiso boot options (issue #17 item 6) and volume labels (item 8), judged by
// xorriso (-report_el_torito, -pvd_info, the same image made by xorrisofs),
// sfdisk and sgdisk (the hybrid MBR and GPT), and by booting the images in
// qemu-system-x86_64 under TCG: as a CD and as a hard disk, with boot images
// made here that print to the serial port, real ISOLINUX (which checks its
// boot information table), and a UEFI application under OVMF.
#include <catch2/catch.hpp>
#include <cstring>
#include <regex>

#include "formats/core/endian.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

// A 2048-byte no-emulation boot image (also a valid MBR boot code): a short
// jump over bytes 8-63 (where a boot information table goes), then at 0x40:
// print `msg` to COM1 through port 0x3F8 and leave qemu through the
// isa-debug-exit device (port 0xF4; qemu exits with status 33).
std::vector<uint8_t> serial_boot_sector(const std::string& msg) {
  std::vector<uint8_t> b(2048, 0);
  b[0] = 0xEB;  // jmp short 0x40
  b[1] = 0x3E;
  const uint8_t code[] = {
      0xFA,              // cli
      0x31, 0xC0,        // xor ax, ax
      0x8E, 0xD8,        // mov ds, ax
      0xBE, 0x5A, 0x7C,  // mov si, 0x7C5A (the message below)
      0xBA, 0xF8, 0x03,  // mov dx, 0x3F8
      0xAC,              // loop: lodsb
      0x84, 0xC0,        // test al, al
      0x74, 0x03,        // jz done
      0xEE,              // out dx, al
      0xEB, 0xF8,        // jmp loop
      0xB0, 0x10,        // done: mov al, 0x10
      0xE6, 0xF4,        // out 0xF4, al
      0xF4,              // hlt
      0xEB, 0xFD,        // jmp hlt
  };
  std::memcpy(b.data() + 0x40, code, sizeof code);
  std::memcpy(b.data() + 0x40 + sizeof code, msg.data(), msg.size());  // at 0x5A
  return b;
}

// Boots qemu with `args` (TCG), the serial port into a file, until `expect`
// appears there or `seconds` pass; returns what the serial port printed.
std::string boot_qemu(const std::string& dir, const std::string& args, const std::string& expect,
                      int seconds) {
  require_tool("qemu-system-x86_64");
  std::string log = dir + "/serial.log";
  run("rm -f " + sh_quote(log));
  std::string cmd =
      "qemu-system-x86_64 -machine accel=tcg -m 128 -display none -vga none -no-reboot -net none "
      "-device isa-debug-exit,iobase=0xf4,iosize=0x04 -serial file:" +
      sh_quote(log) + " " + args + " </dev/null >/dev/null 2>&1 & pid=$!; i=0; while [ $i -lt " +
      std::to_string(seconds * 10) + " ]; do grep -q " + sh_quote(expect) + " " + sh_quote(log) +
      " 2>/dev/null && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; i=$((i+1)); done; "
      "kill $pid 2>/dev/null; wait $pid 2>/dev/null; true";
  run_ok(cmd);
  return file_exists(log) ? run_ok("cat " + sh_quote(log)) : std::string();
}

std::string el_torito_report(const std::string& iso) {
  return run_ok("xorriso -indev " + sh_quote(iso) +
                " -report_el_torito plain 2>/dev/null | grep 'El Torito boot img' | "
                "sed 's/[[:space:]]*[0-9]*$//'");  // without the LBA column
}

uint32_t u32(const std::vector<uint8_t>& b, size_t off) {
  return load_le32(b.data() + off);
}

// Checks the boot information table of the boot image at `lba` in `iso`:
// PVD at 16, the image's own LBA and length, the sum of its 32-bit words
// from byte 64 (computed here from the source file).
void check_info_table(const std::vector<uint8_t>& iso, uint32_t lba,
                      const std::vector<uint8_t>& src) {
  const size_t at = static_cast<size_t>(lba) * 2048;
  uint32_t sum = 0;
  for (size_t i = 64; i < src.size(); i += 4) {
    uint32_t w = 0;
    for (size_t k = 0; k < 4 && i + k < src.size(); ++k) w |= uint32_t{src[i + k]} << (8 * k);
    sum += w;
  }
  CHECK(u32(iso, at + 8) == 16);
  CHECK(u32(iso, at + 12) == lba);
  CHECK(u32(iso, at + 16) == src.size());
  CHECK(u32(iso, at + 20) == sum);
  CHECK(std::vector<uint8_t>(iso.begin() + at + 64, iso.begin() + at + src.size()) ==
        std::vector<uint8_t>(src.begin() + 64, src.end()));
}

uint32_t boot_lba(const std::string& iso, int entry) {
  std::string rep = run_ok("xorriso -indev " + sh_quote(iso) +
                           " -report_el_torito plain 2>/dev/null | grep 'El Torito boot img :   " +
                           std::to_string(entry) + "'");
  std::smatch m;
  REQUIRE(std::regex_search(rep, m, std::regex(R"((\d+)\s*$)")));
  return static_cast<uint32_t>(std::stoul(m[1]));
}

}  // namespace

TEST_CASE("mkiso boot catalog and boot information table match xorrisofs", "[iso][boot]") {
  require_tool("xorriso");
  TempDir dir;
  run_ok("mkdir -p " + sh_quote(dir / "t/boot"));
  std::vector<uint8_t> img = pattern_bytes(5000, 7);  // not a multiple of 4
  write_file(dir / "t/boot/boot.bin", img);
  run_ok("head -c 70000 /dev/urandom > " + sh_quote(dir / "t/boot/efi.img"));
  std::string v = dir / "v.iso", x = dir / "x.iso";
  RunResult mk = run_vdisk(
      "mkiso --boot boot/boot.bin --no-emul-boot --boot-load-size 4 --boot-info-table "
      "--efi-boot boot/efi.img " +
      sh_quote(dir / "t") + " -o " + sh_quote(v));
  INFO(mk.err);
  REQUIRE(mk.exit_code == 0);
  run_ok(
      "xorriso -as mkisofs -R -J -b boot/boot.bin -no-emul-boot -boot-load-size 4 "
      "-boot-info-table -eltorito-alt-boot -e boot/efi.img -no-emul-boot -o " +
      sh_quote(x) + " " + sh_quote(dir / "t") + " 2>/dev/null");
  // The same catalog, LBAs aside.
  std::string rv = el_torito_report(v), rx = el_torito_report(x);
  CHECK(rv == rx);
  CHECK_THAT(rv, Catch::Contains("1  BIOS  y   none  0x0000  0x00      4"));
  CHECK_THAT(rv, Catch::Contains("2  UEFI  y   none  0x0000  0x00    140"));
  // Both tables hold what the El Torito/isolinux layout says.
  check_info_table(read_file(v), boot_lba(v, 1), img);
  check_info_table(read_file(x), boot_lba(x, 1), img);
  // The source was not touched; the file in the image is the patched one.
  CHECK(read_file(dir / "t/boot/boot.bin") == img);

  // A floppy-sized image is emulated unless --no-emul-boot.
  run_ok("truncate -s 1474560 " + sh_quote(dir / "t/boot/floppy.img"));
  REQUIRE(run_vdisk("mkiso --boot boot/floppy.img " + sh_quote(dir / "t") + " -o " +
                    sh_quote(dir / "f.iso"))
              .exit_code == 0);
  run_ok("xorriso -as mkisofs -b boot/floppy.img -o " + sh_quote(dir / "fx.iso") + " " +
         sh_quote(dir / "t") + " 2>/dev/null");
  CHECK(el_torito_report(dir / "f.iso") == el_torito_report(dir / "fx.iso"));
  CHECK_THAT(el_torito_report(dir / "f.iso"), Catch::Contains("fd1.4"));
  REQUIRE(run_vdisk("mkiso --no-emul-boot --boot boot/floppy.img " + sh_quote(dir / "t") + " -o " +
                    sh_quote(dir / "fn.iso"))
              .exit_code == 0);
  CHECK_THAT(el_torito_report(dir / "fn.iso"), Catch::Contains("none"));
  // Options without their image are refused before any work.
  RunResult bad = run_vdisk("mkiso --boot-info-table " + sh_quote(dir / "t") + " -o " +
                            sh_quote(dir / "bad.iso"));
  CHECK(bad.exit_code == 2);
  CHECK(!file_exists(dir / "bad.iso"));
}

TEST_CASE("mkiso --hybrid: MBR and GPT that sfdisk and sgdisk accept", "[iso][boot]") {
  require_tool("sfdisk");
  require_tool("sgdisk");
  require_tool("gdisk");
  require_tool("xorriso");
  TempDir dir;
  run_ok("mkdir -p " + sh_quote(dir / "t/boot") + " && head -c 300000 /dev/urandom > " +
         sh_quote(dir / "t/big.bin"));
  write_file(dir / "t/boot/boot.bin", serial_boot_sector("VDISK-CD-OK\r\n"));
  run_ok("head -c 100000 /dev/urandom > " + sh_quote(dir / "t/boot/efi.img"));
  std::string iso = dir / "h.iso";
  RunResult mk = run_vdisk(
      "mkiso --boot boot/boot.bin --no-emul-boot --boot-load-size 4 "
      "--efi-boot boot/efi.img --hybrid " +
      sh_quote(dir / "t") + " -o " + sh_quote(iso));
  INFO(mk.err);
  REQUIRE(mk.exit_code == 0);
  uint64_t size = file_size(iso);
  CHECK(size % (1 << 20) == 0);  // whole 64 x 32 cylinders, as isohybrid pads
  // MBR: partition 1 from sector 0 over the whole image (bootable), 2 the EFI image.
  std::string d = run_ok("sfdisk -d " + sh_quote(iso));
  uint32_t efi = boot_lba(iso, 2);
  CHECK(std::regex_search(d, std::regex("1 : start=\\s*0, size=\\s*" + std::to_string(size / 512) +
                                        ", type=0, bootable")));
  CHECK(std::regex_search(
      d, std::regex("2 : start=\\s*" + std::to_string(efi * 4) + ", size=\\s*196, type=ef")));
  // GPT: valid, the EFI image as an EFI System Partition, the rest as Basic
  // Data, none overlapping. The MBR is an isohybrid one (no 0xEE entry, so
  // Linux and firmware see partition 1 as the whole ISO, as with xorriso's
  // images): gdisk finds "valid MBR and GPT" and is told to take the GPT.
  std::string p = run_ok("printf '2\\n' | gdisk -l " + sh_quote(iso) + " 2>&1");
  INFO(p);
  CHECK_THAT(p, Catch::Contains("Found valid MBR and GPT"));
  CHECK(std::regex_search(p, std::regex("2\\s+" + std::to_string(efi * 4) + "\\s+" +
                                        std::to_string(efi * 4 + 195) + ".*EF00")));
  CHECK(std::regex_search(
      p, std::regex("1\\s+64\\s+" + std::to_string(efi * 4 - 1) + ".*0700\\s+ISO9660")));
  CHECK_THAT(run_ok("printf '2\\nv\\nq\\n' | gdisk " + sh_quote(iso) + " 2>&1"),
             Catch::Contains("No problems found"));
  // sgdisk -v's one complaint is the isohybrid design itself (MBR partition 1
  // covers the image, the EFI partition lies inside it), shared with xorriso.
  RunResult v = run("sgdisk -v " + sh_quote(iso) + " 2>&1");
  INFO(v.out);
  CHECK_THAT(v.out, Catch::Contains("Identified 1 problems"));
  CHECK_THAT(v.out, Catch::Contains("MBR partitions 1 and 2 overlap"));
  // Still an ISO: the tree reads, xorriso is content.
  CHECK_THAT(run_vdisk("ls " + sh_quote(iso)).out, Catch::Contains("big.bin"));
  CHECK(run("xorriso -indev " + sh_quote(iso) + " -find / 2>&1").out.find("FAILURE") ==
        std::string::npos);
}

TEST_CASE("mkiso images boot in qemu: BIOS from CD, BIOS from a hybrid disk", "[iso][boot][qemu]") {
  TempDir dir;
  run_ok("mkdir -p " + sh_quote(dir / "t/boot"));
  write_file(dir / "t/boot/boot.bin", serial_boot_sector("VDISK-CD-OK\r\n"));
  auto mbr = serial_boot_sector("VDISK-MBR-OK\r\n");
  // MBR boot code runs from byte 0: the jump at 0 leads to the code at 0x40.
  write_file(dir / "mbr.bin", std::vector<uint8_t>(mbr.begin(), mbr.begin() + 432));
  std::string iso = dir / "b.iso";
  RunResult mk = run_vdisk(
      "mkiso --boot boot/boot.bin --no-emul-boot --boot-load-size 4 "
      "--boot-info-table --hybrid-mbr " +
      sh_quote(dir / "mbr.bin") + " " + sh_quote(dir / "t") + " -o " + sh_quote(iso));
  INFO(mk.err);
  REQUIRE(mk.exit_code == 0);
  CHECK_THAT(boot_qemu(dir.path(), "-boot d -cdrom " + sh_quote(iso), "VDISK-CD-OK", 60),
             Catch::Contains("VDISK-CD-OK"));
  CHECK_THAT(boot_qemu(dir.path(), "-boot c -drive file=" + sh_quote(iso) + ",format=raw,if=ide",
                       "VDISK-MBR-OK", 60),
             Catch::Contains("VDISK-MBR-OK"));
  // The isohybrid MBR learns where the boot image is (as xorriso patches it).
  std::vector<uint8_t> b = read_file(iso);
  CHECK(u32(b, 432) == boot_lba(iso, 1) * 4);
}

TEST_CASE("ISOLINUX boots from a mkiso image as a CD and as a USB stick", "[iso][boot][qemu]") {
  const std::string isolinux = "/usr/lib/ISOLINUX/isolinux.bin";
  const std::string ldlinux = "/usr/lib/syslinux/modules/bios/ldlinux.c32";
  const std::string isohdpfx = "/usr/lib/ISOLINUX/isohdpfx.bin";
  for (const std::string& f : {isolinux, ldlinux, isohdpfx}) {
    if (!file_exists(f)) FAIL(f + " is missing: scripts/install-deps installs isolinux");
  }
  TempDir dir;
  run_ok("mkdir -p " + sh_quote(dir / "t/isolinux") + " && cp " + isolinux + " " + ldlinux + " " +
         sh_quote(dir / "t/isolinux/") +
         " && printf 'SERIAL 0 115200\\nSAY VDISK-ISOLINUX-OK\\n"
         "PROMPT 0\\n' > " +
         sh_quote(dir / "t/isolinux/isolinux.cfg"));
  std::string iso = dir / "i.iso";
  RunResult mk = run_vdisk(
      "mkiso -V DEBIAN_LIKE --boot isolinux/isolinux.bin --no-emul-boot --boot-load-size 4 "
      "--boot-info-table --hybrid-mbr " +
      isohdpfx + " " + sh_quote(dir / "t") + " -o " + sh_quote(iso));
  INFO(mk.err);
  REQUIRE(mk.exit_code == 0);
  // ISOLINUX refuses to start when its boot information table is wrong; it
  // reaches its serial console (the SERIAL line of isolinux.cfg, read
  // through ldlinux.c32 from the ISO) and its "boot:" prompt when all is
  // right. From the hybrid disk, isohdpfx.bin found it through byte 432.
  for (const std::string& how : {"-boot d -cdrom " + sh_quote(iso),
                                 "-boot c -drive file=" + sh_quote(iso) + ",format=raw,if=ide"}) {
    INFO(how);
    std::string out = boot_qemu(dir.path(), how, "boot:", 90);
    CHECK_THAT(out, Catch::Contains("ISOLINUX 6"));
    CHECK_THAT(out, Catch::Contains("No DEFAULT or UI configuration directive found"));
    CHECK_THAT(out, Catch::Contains("boot:"));
  }
}

TEST_CASE("a UEFI application boots from mkiso --efi-boot under OVMF", "[iso][boot][qemu]") {
  const std::string code = "/usr/share/OVMF/OVMF_CODE.fd", vars = "/usr/share/OVMF/OVMF_VARS.fd";
  if (!file_exists(code)) FAIL(code + " is missing: scripts/install-deps installs ovmf");
  require_tool("as");
  require_tool("ld");
  require_tool("mkfs.vfat");
  require_tool("mmd");
  TempDir dir;
  // A PE32+ EFI application (UEFI 2.x 4.1: efi_main(ImageHandle in RCX,
  // SystemTable in RDX); SystemTable->ConOut at +64, OutputString at +8 of
  // the protocol), linked by binutils' i386pep emulation.
  write_file(dir / "app.s", [] {
    std::string s =
        ".intel_syntax noprefix\n.text\n.globl efi_main\nefi_main:\n  sub rsp, 40\n"
        "  mov rcx, [rdx+64]\n  lea rdx, [rip+msg]\n  call [rcx+8]\n  mov al, 0x10\n"
        "  out 0xf4, al\n1: hlt\n  jmp 1b\n.data\nmsg: .short 'V','D','I','S','K','-','E','F',"
        "'I','-','O','K',13,10,0\n";
    return std::vector<uint8_t>(s.begin(), s.end());
  }());
  run_ok("cd " + sh_quote(dir.path()) +
         " && as --64 -o app.o app.s && ld -m i386pep --subsystem 10 -e efi_main -o app.efi app.o"
         " && mkdir -p t/boot && mkfs.vfat -C t/boot/efi.img 1440 >/dev/null"
         " && mmd -i t/boot/efi.img ::/EFI ::/EFI/BOOT"
         " && mcopy -i t/boot/efi.img app.efi ::/EFI/BOOT/BOOTX64.EFI && cp " +
         vars + " vars.fd");
  std::string iso = dir / "e.iso";
  RunResult mk = run_vdisk("mkiso --efi-boot boot/efi.img --hybrid " + sh_quote(dir / "t") +
                           " -o " + sh_quote(iso));
  INFO(mk.err);
  REQUIRE(mk.exit_code == 0);
  CHECK_THAT(el_torito_report(iso), Catch::Contains("1  UEFI  y   none"));
  std::string fw = "-drive if=pflash,format=raw,readonly=on,file=" + code +
                   " -drive if=pflash,format=raw,file=" + sh_quote(dir / "vars.fd") + " ";
  // OVMF under TCG takes a few seconds when the machine is quiet; the
  // generous limit is for a loaded one.
  CHECK_THAT(boot_qemu(dir.path(), fw + "-cdrom " + sh_quote(iso), "VDISK-EFI-OK", 150),
             Catch::Contains("VDISK-EFI-OK"));
}

TEST_CASE("mkiso -V: too long is refused, what changes is said", "[iso]") {
  require_tool("xorriso");
  TempDir dir;
  run_ok("mkdir " + sh_quote(dir / "t") + " && echo x > " + sh_quote(dir / "t/f"));
  // Over 32 bytes: refused, as xorriso and genisoimage refuse it.
  std::string l40(40, 'A');
  RunResult r =
      run_vdisk("mkiso -V " + l40 + " " + sh_quote(dir / "t") + " -o " + sh_quote(dir / "a.iso"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("40 bytes"));
  CHECK(!file_exists(dir / "a.iso"));
  CHECK(run("xorriso -as mkisofs -V " + l40 + " -o " + sh_quote(dir / "x.iso") + " " +
            sh_quote(dir / "t") + " 2>/dev/null")
            .exit_code != 0);
  // 26 characters: the ISO 9660 label keeps them, the Joliet one is cut to
  // 16 with a warning (xorriso warns the same).
  r = run_vdisk("mkiso -V ABCDEFGHIJKLMNOPQRSTUVWXYZ " + sh_quote(dir / "t") + " -o " +
                sh_quote(dir / "b.iso"));
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.err, Catch::Contains("Joliet"));
  CHECK_THAT(r.err, Catch::Contains("ABCDEFGHIJKLMNOP'"));
  CHECK_THAT(run_ok("xorriso -indev " + sh_quote(dir / "b.iso") + " -pvd_info 2>/dev/null"),
             Catch::Contains("Volume Id    : ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
  // Non-ASCII: '_' in the ISO 9660 label, said; kept in Joliet.
  r = run_vdisk("mkiso -V 'Δisk 1' " + sh_quote(dir / "t") + " -o " + sh_quote(dir / "c.iso"));
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.err, Catch::Contains("recorded as '_isk 1'"));
  CHECK_THAT(run_ok("xorriso -indev " + sh_quote(dir / "c.iso") + " -pvd_info 2>/dev/null"),
             Catch::Contains("Volume Id    : _isk 1"));
  // Lower case and spaces are recorded as given (and said to be outside
  // d-characters), as xorriso and genisoimage record them.
  r = run_vdisk("mkiso -V 'my disk' " + sh_quote(dir / "t") + " -o " + sh_quote(dir / "d.iso"));
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.err, Catch::Contains("d-characters"));
  CHECK_THAT(run_ok("xorriso -indev " + sh_quote(dir / "d.iso") + " -pvd_info 2>/dev/null"),
             Catch::Contains("Volume Id    : my disk"));
}
