// A file tree inside an image (ISO 9660, FAT, ext2/3/4, NTFS). The CLI's ls / cat /
// extract and the FUSE tree mode use only this interface; the registry
// (formats/registry.h) lists the file systems and opens a tree.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/json.h"

namespace vdisk {

using NodeId = uint64_t;

enum class NodeType : uint8_t {
  kRegular,
  kDirectory,
  kSymlink,
  kCharDevice,
  kBlockDevice,
  kFifo,
  kSocket
};

struct Timestamp {
  int64_t seconds = 0;  // since the Unix epoch, UTC
  uint32_t nanoseconds = 0;
};

struct NodeStat {
  NodeId id = 0;
  NodeType type = NodeType::kRegular;
  uint32_t mode = 0;  // permission bits only (07777)
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 1;
  uint64_t size = 0;  // bytes (symlink: target length)
  uint64_t rdev = 0;  // devices: major << 32 | minor (host-independent; makedev() at the OS edge)
  Timestamp mtime, atime, ctime;
};

struct DirEntry {
  std::string name;  // UTF-8, never "." or ".." and never containing '/'
  NodeStat stat;
};

// An entry a file system leaves out of a listing because it cannot be used
// safely: a name that is empty, ".", "..", holds '/' or NUL, or is longer
// than kMaxNameBytes; a damaged record. Callers report it (and go on).
struct SkippedEntry {
  std::string name;  // as recorded, cut to kMaxNameBytes (may be empty)
  std::string reason;
  std::optional<uint64_t> offset;  // device byte offset of the record
};

// Bounds for names a file system assembles from pieces (ISO 9660 Rock Ridge
// NM and SL entries continued through CE areas), so that a crafted image
// cannot make a name or a symlink target of megabytes: Linux's NAME_MAX and
// PATH_MAX. (FAT and ext names are bounded by their formats.)
inline constexpr size_t kMaxNameBytes = 255;
inline constexpr size_t kMaxLinkBytes = 4096;

// How a tree is opened.
struct TreeOptions {
  // Names exactly as recorded, without the display mapping a file system
  // applies by default (ISO 9660 without Rock Ridge or Joliet: lower case,
  // ";1" and a trailing '.' removed, as Linux shows them).
  bool raw_names = false;
};

// Thread-safe, read-only. Node ids are stable for the life of the tree.
class FileTree {
 public:
  virtual ~FileTree() = default;
  virtual NodeId root() const = 0;
  virtual NodeStat stat(NodeId node) const = 0;
  // Entries of a directory, in the order the image stores them.
  virtual std::vector<DirEntry> list(NodeId dir) const = 0;
  // Entries of `dir` that list(dir) left out, and why (call after list()).
  // Default: none.
  virtual std::vector<SkippedEntry> skipped(NodeId dir) const;
  // Looks up one name in a directory; throws Error(kNotFound).
  virtual NodeId lookup(NodeId dir, const std::string& name) const;
  // Reads up to len bytes of a regular file at offset; returns the count (0 at
  // or past the end).
  virtual size_t read(NodeId file, uint64_t offset, void* buf, size_t len) const = 0;
  virtual std::string readlink(NodeId link) const = 0;
  // Filesystem-level fields for `info` (volume id, extensions, …).
  virtual Json info() const = 0;

  // The optional parts below have defaults that suit a tree without them.

  // Entries of `dir` that list() leaves out because the filesystem keeps them
  // for itself (NTFS $MFT, $Extend …): `ls -a` shows them; lookup() finds
  // them. Default: none.
  virtual std::vector<DirEntry> list_system(NodeId dir) const;
  // Named data streams of `node` (NTFS alternate data streams): one entry per
  // stream, named by the stream alone (no "file:" prefix), whose id reads
  // with read(). Default: none.
  virtual std::vector<DirEntry> streams(NodeId node) const;
  // What the file stores from `offset` on: kData, or kZero for a hole that
  // reads as zeros and takes no space (a sparse file). The extent is not
  // empty and ends at or before the file's end; `offset` is below the size.
  // Default: data up to the end.
  virtual Extent file_extent(NodeId file, uint64_t offset) const;
  // Filesystem-specific fields of a node for `ls --output json` (creation
  // time, DOS attributes, owner SID …). Default: an empty object.
  virtual Json details(NodeId node) const;
};

// Resolves "/a/b/c" (or "a/b/c") from the root; "" and "/" are the root.
// Does not follow symlinks. Throws Error(kNotFound) naming `image` and the path.
NodeId resolve_tree_path(const FileTree& tree, const std::string& path, const std::string& image);

struct FileSystemDescriptor {
  std::string name;
  // Score > 0 when the device holds this filesystem (cheap: a few sector reads).
  int (*probe)(const BlockDevice& dev);
  std::unique_ptr<FileTree> (*open)(BlockDevicePtr dev, const std::string& label);
  // Optional: open with TreeOptions (null: `open`, options ignored).
  std::unique_ptr<FileTree> (*open_with)(BlockDevicePtr dev, const std::string& label,
                                         const TreeOptions& opts) = nullptr;
};

}  // namespace vdisk
