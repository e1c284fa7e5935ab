#include "formats/foreign.h"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "formats/core/endian.h"
#include "formats/core/error.h"

namespace vdisk {

namespace {

using Bytes = std::span<const uint8_t>;

bool has(Bytes b, size_t off, std::string_view magic) {
  return b.size() >= off + magic.size() &&
         std::memcmp(b.data() + off, magic.data(), magic.size()) == 0;
}

// `needle` anywhere in the first `limit` bytes of `b`.
bool contains(Bytes b, std::string_view needle, size_t limit = ~size_t{0}) {
  const size_t n = std::min(b.size(), limit);
  if (n < needle.size()) return false;
  auto end = b.begin() + static_cast<std::ptrdiff_t>(n);
  return std::search(b.begin(), end, needle.begin(), needle.end()) != end;
}

using std::literals::string_view_literals::operator""sv;

struct Signature {
  ForeignFormat format;
  bool (*match)(const ProbeInput& in);
};

const char* const kQemuAdvice = "convert it with qemu-img";

// The table. Each entry states where its signature comes from; signatures at
// offset 0 are checked with a second field where the magic alone is short,
// so a raw disk that happens to start with the same bytes is not refused.
const std::vector<Signature>& signatures() {
  static const std::vector<Signature> list = {
      // QEMU docs/interop/qcow2.rst: "QFI\xfb", then the version (1 is the
      // original qcow, 2 and 3 are qcow2).
      {{"qcow2", "a qcow2 image", ForeignKind::kDiskImage, kQemuAdvice},
       [](const ProbeInput& in) {
         return has(in.head, 0, "QFI\xfb"sv) && in.head.size() >= 8 &&
                (load_be32(in.head.data() + 4) == 2 || load_be32(in.head.data() + 4) == 3);
       }},
      {{"qcow", "a qcow (version 1) image", ForeignKind::kDiskImage, kQemuAdvice},
       [](const ProbeInput& in) {
         return has(in.head, 0, "QFI\xfb"sv) && in.head.size() >= 8 &&
                load_be32(in.head.data() + 4) == 1;
       }},
      // QEMU docs/interop/qed_spec.txt: magic "QED\0".
      {{"QED", "a QED image", ForeignKind::kDiskImage, kQemuAdvice},
       [](const ProbeInput& in) { return has(in.head, 0, "QED\0"sv); }},
      // Parallels disk format (QEMU docs/interop/parallels.txt).
      {{"Parallels", "a Parallels disk image", ForeignKind::kDiskImage, kQemuAdvice},
       [](const ProbeInput& in) {
         return has(in.head, 0, "WithoutFreeSpace"sv) || has(in.head, 0, "WithouFreSpacExt"sv);
       }},
      {{"Bochs", "a Bochs disk image", ForeignKind::kDiskImage, kQemuAdvice},
       [](const ProbeInput& in) { return has(in.head, 0, "Bochs Virtual HD Image"sv); }},
      // cloop: a shell script header, "#V2.0 Format" on its second line.
      {{"cloop", "a cloop compressed loop image", ForeignKind::kDiskImage, kQemuAdvice},
       [](const ProbeInput& in) {
         return has(in.head, 0, "#!/bin/sh\n#V2.0 Format\n"sv) ||
                (has(in.head, 0, "#!/bin/sh"sv) && contains(in.head, "cloop", 256));
       }},
      // Android sparse image (AOSP libsparse): magic 0xed26ff3a, major 1.
      {{"Android sparse", "an Android sparse image", ForeignKind::kDiskImage,
        "expand it with simg2img"},
       [](const ProbeInput& in) {
         return in.head.size() >= 28 && load_le32(in.head.data()) == 0xed26ff3a &&
                load_le16(in.head.data() + 4) == 1;
       }},
      // Expert Witness (libyal EWF document, "File header"): EVF / LVF and
      // the EWF2 variants. SMART (.s01) files carry the EVF signature too.
      {{"E01", "an Expert Witness (EWF: E01 or SMART s01) evidence file", ForeignKind::kForensic,
        "export it with ewfexport"},
       [](const ProbeInput& in) { return has(in.head, 0, "EVF\x09\x0d\x0a\xff\x00"sv); }},
      {{"Ex01", "an EnCase 7 (Ex01, EWF2) evidence file", ForeignKind::kForensic,
        "export it with ewfexport"},
       [](const ProbeInput& in) { return has(in.head, 0, "EVF2\x0d\x0a\x81\x00"sv); }},
      {{"L01", "an EnCase logical evidence file (L01)", ForeignKind::kForensic,
        "it holds files, not a disk: open it with a forensic suite"},
       [](const ProbeInput& in) {
         return has(in.head, 0, "LVF\x09\x0d\x0a\xff\x00"sv) ||
                has(in.head, 0, "LVF2\x0d\x0a\x81\x00"sv);
       }},
      {{"AFF", "an Advanced Forensic Format (AFF) image", ForeignKind::kForensic,
        "export it with affconvert or affcat"},
       [](const ProbeInput& in) { return has(in.head, 0, "AFF10\r\n\0"sv); }},
      // AFF4 is a ZIP container whose volume holds information.turtle.
      {{"AFF4", "an AFF4 forensic image", ForeignKind::kForensic,
        "export it with aff4imager --export"},
       [](const ProbeInput& in) {
         return has(in.head, 0, "PK\x03\x04"sv) && (contains(in.head, "information.turtle") ||
                                                    contains(in.tail, "information.turtle"));
       }},
      // Apple UDIF: the 512-byte "koly" trailer; encrypted images start
      // with "encrcdsa" (v2) or end with "cdsaencr" (v1).
      {{"DMG (encrypted)", "an encrypted Apple disk image", ForeignKind::kEncrypted,
        "decrypt it on macOS (hdiutil convert) first"},
       [](const ProbeInput& in) {
         return has(in.head, 0, "encrcdsa"sv) ||
                (in.tail.size() >= 8 && has(in.tail, in.tail.size() - 8, "cdsaencr"sv));
       }},
      {{"DMG", "an Apple disk image (UDIF/DMG)", ForeignKind::kDiskImage,
        "convert it with dmg2img or qemu-img"},
       [](const ProbeInput& in) {
         return in.tail.size() >= 512 && has(in.tail, in.tail.size() - 512, "koly"sv) &&
                load_be32(in.tail.data() + in.tail.size() - 512 + 4) == 4;
       }},
      {{"sparseimage", "an Apple sparse disk image", ForeignKind::kDiskImage,
        "convert it on macOS with hdiutil convert"},
       [](const ProbeInput& in) { return has(in.head, 0, "sprs"sv); }},
      // Compressed streams: RFC 1952 (gzip: ID1 ID2 CM=8), the .xz format,
      // RFC 8878 (zstd frame magic), bzip2 ("BZh" level, then the pi block
      // magic or the end-of-stream magic), LZ4 frames, lzip.
      {{"gzip", "a gzip-compressed file", ForeignKind::kCompressed,
        "decompress it first: gunzip -k"},
       [](const ProbeInput& in) { return has(in.head, 0, "\x1f\x8b\x08"sv); }},
      {{"xz", "an xz-compressed file", ForeignKind::kCompressed, "decompress it first: xz -dk"},
       [](const ProbeInput& in) {
         return has(in.head, 0,
                    "\xfd"
                    "7zXZ\0"sv);
       }},
      {{"zstd", "a zstd-compressed file", ForeignKind::kCompressed, "decompress it first: zstd -d"},
       [](const ProbeInput& in) { return has(in.head, 0, "\x28\xb5\x2f\xfd"sv); }},
      {{"bzip2", "a bzip2-compressed file", ForeignKind::kCompressed,
        "decompress it first: bunzip2 -k"},
       [](const ProbeInput& in) {
         return has(in.head, 0, "BZh"sv) && in.head.size() >= 10 && in.head[3] >= '1' &&
                in.head[3] <= '9' &&
                (has(in.head, 4, "\x31\x41\x59\x26\x53\x59"sv) ||
                 has(in.head, 4, "\x17\x72\x45\x38\x50\x90"sv));
       }},
      {{"lz4", "an LZ4-compressed file", ForeignKind::kCompressed, "decompress it first: lz4 -d"},
       [](const ProbeInput& in) { return has(in.head, 0, "\x04\x22\x4d\x18"sv); }},
      {{"lzip", "an lzip-compressed file", ForeignKind::kCompressed,
        "decompress it first: lzip -dk"},
       [](const ProbeInput& in) {
         return has(in.head, 0, "LZIP"sv) && in.head.size() > 4 && in.head[4] == 1;
       }},
      // Archives of files: the image is inside.
      {{"zip", "a ZIP archive", ForeignKind::kArchive, "extract the image from the archive first"},
       [](const ProbeInput& in) { return has(in.head, 0, "PK\x03\x04"sv); }},
      {{"7z", "a 7-Zip archive", ForeignKind::kArchive, "extract the image from the archive first"},
       [](const ProbeInput& in) { return has(in.head, 0, "7z\xbc\xaf\x27\x1c"sv); }},
      {{"rar", "a RAR archive", ForeignKind::kArchive, "extract the image from the archive first"},
       [](const ProbeInput& in) { return has(in.head, 0, "Rar!\x1a\x07"sv); }},
      // POSIX tar: "ustar" at 257 (an OVA or an XVA is a tar too).
      {{"tar", "a tar archive (an OVA or XVA is one)", ForeignKind::kArchive,
        "extract the disk image from it first: tar -xf"},
       [](const ProbeInput& in) { return has(in.head, 257, "ustar"sv); }},
      {{"WIM", "a Windows Imaging (WIM) archive", ForeignKind::kArchive,
        "it holds files, not a disk: apply it with wimlib-imagex"},
       [](const ProbeInput& in) { return has(in.head, 0, "MSWIM\0\0\0"sv); }},
      // Encrypted volumes: LUKS (cryptsetup's on-disk format documents),
      // BitLocker ("-FVE-FS-" as the OEM id of its volume header), FreeBSD
      // GELI (metadata "GEOM::ELI" in the last sector).
      {{"LUKS1", "a LUKS1 encrypted volume", ForeignKind::kEncrypted,
        "unlock it with cryptsetup open and image the mapped device"},
       [](const ProbeInput& in) {
         return has(in.head, 0, "LUKS\xba\xbe"sv) && in.head.size() >= 8 &&
                load_be16(in.head.data() + 6) == 1;
       }},
      {{"LUKS2", "a LUKS2 encrypted volume", ForeignKind::kEncrypted,
        "unlock it with cryptsetup open and image the mapped device"},
       [](const ProbeInput& in) {
         return has(in.head, 0, "LUKS\xba\xbe"sv) && in.head.size() >= 8 &&
                load_be16(in.head.data() + 6) == 2;
       }},
      {{"BitLocker", "a BitLocker encrypted volume", ForeignKind::kEncrypted,
        "unlock it with dislocker and image the unlocked volume"},
       [](const ProbeInput& in) { return has(in.head, 3, "-FVE-FS-"sv); }},
      {{"GELI", "a FreeBSD GELI encrypted volume", ForeignKind::kEncrypted,
        "attach it with geli on FreeBSD and image the decrypted provider"},
       [](const ProbeInput& in) {
         return in.tail.size() >= 512 && has(in.tail, in.tail.size() - 512, "GEOM::ELI"sv);
       }},
      // Files that describe virtual machines rather than hold a disk.
      {{"VMware configuration", "a VMware virtual machine configuration (.vmx)",
        ForeignKind::kNotADisk, "its disks are the .vmdk files it names"},
       [](const ProbeInput& in) {
         return (contains(in.head, "config.version", 4096) || contains(in.head, ".encoding", 64)) &&
                contains(in.head, "virtualHW.version", 16384);
       }},
      // VMware suspend/snapshot state (.vmss/.vmsn): little-endian magics.
      {{"VMware state", "a VMware suspended-state or snapshot file (.vmss/.vmsn)",
        ForeignKind::kNotADisk, "it holds memory and device state; the disk is the .vmdk"},
       [](const ProbeInput& in) {
         if (in.head.size() < 4) return false;
         const uint32_t m = load_le32(in.head.data());
         return m == 0xbed2bed0 || m == 0xbad1bad1 || m == 0xbed2bed2 || m == 0xbed3bed3;
       }},
      {{"VirtualBox machine", "a VirtualBox machine description (.vbox)", ForeignKind::kNotADisk,
        "its disks are the .vdi/.vmdk/.vhd files it names"},
       [](const ProbeInput& in) { return contains(in.head, "<VirtualBox xmlns=", 1024); }},
      {{"OVF", "an OVF descriptor (.ovf)", ForeignKind::kNotADisk,
        "its disks are the files it references"},
       [](const ProbeInput& in) {
         return contains(in.head, "<Envelope", 2048) &&
                contains(in.head, "schemas.dmtf.org/ovf/envelope", 4096);
       }},
      {{"libvirt save", "a libvirt/QEMU saved memory state", ForeignKind::kNotADisk,
        "it holds a guest's memory, not a disk"},
       [](const ProbeInput& in) {
         return has(in.head, 0, "LibvirtQemudSave"sv) || has(in.head, 0, "LibvirtQemudPart"sv);
       }},
  };
  return list;
}

}  // namespace

const std::vector<ForeignFormat>& foreign_formats() {
  static const std::vector<ForeignFormat> list = [] {
    std::vector<ForeignFormat> out;
    for (const Signature& s : signatures()) out.push_back(s.format);
    return out;
  }();
  return list;
}

std::optional<ForeignFormat> identify_foreign(const ProbeInput& in) {
  for (const Signature& s : signatures()) {
    if (s.match(in)) return s.format;
  }
  return std::nullopt;
}

std::string foreign_message(const ForeignFormat& f, const std::string& force_hint) {
  std::string msg = "this is " + f.article;
  if (f.kind == ForeignKind::kNotADisk)
    msg += ", not a disk image";
  else if (f.kind == ForeignKind::kEncrypted)
    msg += "; vdisk does not decrypt it";
  else
    msg += "; vdisk does not read " + f.name;
  msg += " (" + f.advice;
  if (!force_hint.empty()) msg += ", or " + force_hint;
  return msg + ")";
}

std::optional<ForeignFormat> identify_foreign(const BlockDevice& dev) {
  try {
    const uint64_t size = dev.size();
    std::vector<uint8_t> head(static_cast<size_t>(std::min<uint64_t>(size, kProbeHeadBytes)));
    std::vector<uint8_t> tail(static_cast<size_t>(std::min<uint64_t>(size, kProbeTailBytes)));
    dev.read(0, head.data(), head.size());
    dev.read(size - tail.size(), tail.data(), tail.size());
    ProbeInput in;
    in.file_size = size;
    in.head = head;
    in.tail = tail;
    return identify_foreign(in);
  } catch (const Error&) {
    return std::nullopt;
  }
}

}  // namespace vdisk
