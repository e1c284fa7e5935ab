// Containers vdisk recognises but does not read. A qcow2, an E01, a gzip'd
// image or a LUKS volume read as raw bytes would be converted, hashed and
// mounted as if those bytes were the disk — wrong output with a success exit
// code. So the registry knows their signatures and refuses them by name
// (STYLE.md 14). A container that gets a reader is registered as a format;
// its probe then scores kProbeSignature and wins before this list is asked.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "formats/core/format.h"

namespace vdisk {

enum class ForeignKind {
  kDiskImage,   // another virtual disk format (qcow, QED, Parallels, ...)
  kForensic,    // an evidence container (E01, AFF, ...)
  kCompressed,  // a compressed stream (gzip, xz, ...)
  kArchive,     // an archive of files (zip, tar, ...)
  kEncrypted,   // an encrypted volume (LUKS, BitLocker, ...)
  kNotADisk,    // a file that describes or accompanies disks (.vmx, .ovf, ...)
};

struct ForeignFormat {
  std::string name;     // "QED"
  std::string article;  // "a QED image", "a LUKS2 encrypted volume"
  ForeignKind kind;
  std::string advice;  // what to do instead, without the -f raw hint
};

// Every foreign container the registry knows, in the order they are tried
// (for `vdisk formats`).
const std::vector<ForeignFormat>& foreign_formats();

// The foreign container whose signature is in `in` (head and tail as the
// probe sees them), or nullopt. Never throws; needs only `in.head` and
// `in.tail` (for a partition, the first and last bytes of the partition).
std::optional<ForeignFormat> identify_foreign(const ProbeInput& in);

// "this is a QED image; vdisk does not read QED (convert it with qemu-img,
// or pass -f raw to treat the file as a raw disk)". `force_hint` names the
// way to read the bytes as they are; empty leaves that part out.
std::string foreign_message(const ForeignFormat& f, const std::string& force_hint);

// identify_foreign() on the first and last bytes of a device (a partition
// where no file system was recognised). Never throws: a device that cannot
// be read is no known container.
std::optional<ForeignFormat> identify_foreign(const BlockDevice& dev);

}  // namespace vdisk
