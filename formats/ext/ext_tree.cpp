#include "formats/ext/ext_tree.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <vector>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/guid.h"
#include "formats/core/writer.h"
#include "formats/ext/ext_layout.h"

namespace vdisk::ext {

namespace {

struct FeatureName {
  uint32_t bit;
  const char* name;
};
constexpr FeatureName kIncompatNames[] = {
    {kIncompatCompression, "COMPRESSION"},
    {kIncompatFiletype, "FILETYPE"},
    {kIncompatRecover, "RECOVER"},
    {kIncompatJournalDev, "JOURNAL_DEV"},
    {kIncompatMetaBg, "META_BG"},
    {kIncompatExtents, "EXTENTS"},
    {kIncompat64Bit, "64BIT"},
    {kIncompatMmp, "MMP"},
    {kIncompatFlexBg, "FLEX_BG"},
    {kIncompatEaInode, "EA_INODE"},
    {kIncompatDirData, "DIRDATA"},
    {kIncompatCsumSeed, "CSUM_SEED"},
    {kIncompatLargeDir, "LARGEDIR"},
    {kIncompatInlineData, "INLINE_DATA"},
    {kIncompatEncrypt, "ENCRYPT"},
    {kIncompatCasefold, "CASEFOLD"},
};

// What a reader that ignores the journal and never writes can handle.
// MMP only guards writers; CSUM_SEED only changes checksums (not verified
// here); EA_INODE only moves large xattr values out (inline data never uses
// it); CASEFOLD only changes how lookups hash names, and names are read
// linearly.
constexpr uint32_t kSupportedIncompat = kIncompatFiletype | kIncompatRecover | kIncompatMetaBg |
                                        kIncompatExtents | kIncompat64Bit | kIncompatMmp |
                                        kIncompatFlexBg | kIncompatEaInode | kIncompatCsumSeed |
                                        kIncompatLargeDir | kIncompatInlineData | kIncompatCasefold;

bool is_power_of(uint64_t v, uint64_t base) {
  if (v == 0) return false;
  while (v % base == 0) v /= base;
  return v == 1;
}

std::string cstr_field(const uint8_t* p, size_t n) {
  size_t len = 0;
  while (len < n && p[len] != 0) ++len;
  return std::string(reinterpret_cast<const char*>(p), len);
}

// A decoded inode: the raw bytes are kept for in-inode xattrs.
struct Inode {
  uint32_t ino = 0;
  uint64_t where = 0;  // device byte offset, for messages
  uint16_t mode = 0;
  uint32_t flags = 0;
  uint64_t size = 0;
  std::vector<uint8_t> raw;
  const uint8_t* iblock() const { return raw.data() + kInBlock; }
  uint16_t type() const { return mode & kSIfMt; }
};

struct Run {
  uint64_t lblock = 0;
  uint64_t count = 0;
  uint64_t pblock = 0;
  bool zero = true;  // a hole or an uninitialised extent
};

struct RawDirent {
  std::string name;
  uint32_t ino = 0;
  // Non-empty: the entry cannot be used (its name holds '/' or NUL); it is
  // left out of listings and reported by skipped(), as other trees do.
  std::string unusable;
  uint64_t offset = 0;  // device byte offset of the record
};

class ExtTree final : public FileTree {
 public:
  ExtTree(BlockDevicePtr dev, std::string label, Superblock sb, std::vector<uint64_t> inode_tables)
      : dev_(std::move(dev)),
        label_(std::move(label)),
        sb_(std::move(sb)),
        inode_tables_(std::move(inode_tables)) {}

  NodeId root() const override { return kRootIno; }

  NodeStat stat(NodeId node) const override { return stat_of(load_inode(node)); }

  std::vector<DirEntry> list(NodeId dir) const override {
    Inode in = load_inode(dir);
    if (in.type() != kSIfDir) {
      throw Error(ErrorKind::kInvalidArgument, label_, in.where,
                  "inode " + std::to_string(dir) + " is not a directory");
    }
    std::vector<DirEntry> out;
    for (const RawDirent& d : dirents(in)) {
      if (d.unusable.empty()) out.push_back(DirEntry{d.name, stat_of(load_inode(d.ino))});
    }
    return out;
  }

  std::vector<SkippedEntry> skipped(NodeId dir) const override {
    Inode in = load_inode(dir);
    std::vector<SkippedEntry> out;
    if (in.type() != kSIfDir) return out;
    for (const RawDirent& d : dirents(in)) {
      if (!d.unusable.empty()) out.push_back(SkippedEntry{d.name, d.unusable, d.offset});
    }
    return out;
  }

  NodeId lookup(NodeId dir, const std::string& name) const override {
    Inode in = load_inode(dir);
    if (in.type() != kSIfDir) {
      throw Error(ErrorKind::kNotFound, label_, std::nullopt, "not a directory");
    }
    for (const RawDirent& d : dirents(in)) {
      if (d.unusable.empty() && d.name == name) return d.ino;
    }
    throw Error(ErrorKind::kNotFound, label_, std::nullopt, "no entry named '" + name + "'");
  }

  size_t read(NodeId file, uint64_t offset, void* buf, size_t len) const override {
    Inode in = load_inode(file);
    if (in.type() != kSIfReg) {
      throw Error(ErrorKind::kInvalidArgument, label_, in.where,
                  "inode " + std::to_string(file) + " is not a regular file");
    }
    return read_data(in, offset, static_cast<uint8_t*>(buf), len);
  }

  std::string readlink(NodeId link) const override {
    Inode in = load_inode(link);
    if (in.type() != kSIfLnk) {
      throw Error(ErrorKind::kInvalidArgument, label_, in.where,
                  "inode " + std::to_string(link) + " is not a symbolic link");
    }
    if (in.size > sb_.block_size) {
      throw Error(ErrorKind::kCorrupt, label_, in.where,
                  "symbolic link of " + std::to_string(in.size) + " bytes is longer than a block");
    }
    std::string target(static_cast<size_t>(in.size), '\0');
    if (!(in.flags & (kFlExtents | kFlInlineData)) && in.size < kInBlockSize) {
      // A fast symlink: the target lives in i_block itself.
      std::memcpy(target.data(), in.iblock(), target.size());
    } else {
      size_t n = read_data(in, 0, reinterpret_cast<uint8_t*>(target.data()), target.size());
      target.resize(n);
    }
    return target;
  }

  Json info() const override {
    Json j = Json::object();
    j.set("filesystem", (sb_.incompat & kIncompatExtents)  ? "ext4"
                        : (sb_.compat & kCompatHasJournal) ? "ext3"
                                                           : "ext2");
    j.set("volume_name", sb_.volume_name);
    j.set("uuid", sb_.uuid);
    j.set("block_size", sb_.block_size);
    j.set("blocks", sb_.blocks_count);
    j.set("inodes", sb_.inodes_count);
    j.set("groups", sb_.group_count);
    j.set("inode_size", sb_.inode_size);
    j.set("incompat_features", incompat_feature_names(sb_.incompat));
    j.set("journal", (sb_.compat & kCompatHasJournal) ? "present, ignored" : "none");
    if (sb_.incompat & kIncompatRecover) {
      j.set("warning", "the journal needs recovery; read as last checkpointed");
    }
    return j;
  }

 private:
  [[noreturn]] void corrupt(uint64_t where, const std::string& msg) const {
    throw Error(ErrorKind::kCorrupt, label_, where, msg);
  }

  uint64_t block_offset(uint64_t block, uint64_t where, const char* what) const {
    if (block >= sb_.blocks_count) {
      corrupt(where, std::string(what) + " block " + std::to_string(block) +
                         " is past the end of the filesystem (" + std::to_string(sb_.blocks_count) +
                         " blocks)");
    }
    uint64_t off = block * sb_.block_size;
    if (off + sb_.block_size > dev_->size()) {
      corrupt(where, std::string(what) + " block " + std::to_string(block) +
                         " is past the end of the device (" + std::to_string(dev_->size()) +
                         " bytes)");
    }
    return off;
  }

  Inode load_inode(uint64_t ino) const {
    if (ino < 1 || ino > sb_.inodes_count) {
      throw Error(
          ErrorKind::kNotFound, label_, std::nullopt,
          "inode " + std::to_string(ino) + " is outside 1.." + std::to_string(sb_.inodes_count));
    }
    uint64_t group = (ino - 1) / sb_.inodes_per_group;
    uint64_t index = (ino - 1) % sb_.inodes_per_group;
    uint64_t table = inode_tables_[group];
    uint64_t byte = index * sb_.inode_size;
    uint64_t block = table + byte / sb_.block_size;
    Inode in;
    in.ino = static_cast<uint32_t>(ino);
    in.where = block_offset(block, kSuperblockOffset, "inode table") + byte % sb_.block_size;
    in.raw.resize(sb_.inode_size);
    dev_->read(in.where, in.raw.data(), in.raw.size());
    const uint8_t* r = in.raw.data();
    in.mode = load_le16(r + kInMode);
    in.flags = load_le32(r + kInFlags);
    in.size = load_le32(r + kInSizeLo) | (static_cast<uint64_t>(load_le32(r + kInSizeHigh)) << 32);
    return in;
  }

  uint32_t extra_isize(const Inode& in) const {
    if (sb_.inode_size <= kGoodOldInodeSize) return 0;
    uint32_t e = load_le16(in.raw.data() + kInExtraIsize);
    return e + kGoodOldInodeSize <= sb_.inode_size ? e : 0;
  }

  Timestamp time_field(const Inode& in, uint32_t secs_off, uint32_t extra_off) const {
    Timestamp t;
    t.seconds = static_cast<int32_t>(load_le32(in.raw.data() + secs_off));
    // The extra word exists when i_extra_isize covers it: bits 0-1 extend the
    // seconds past 2038, bits 2-31 are nanoseconds.
    if (extra_off + 4 <= kGoodOldInodeSize + extra_isize(in)) {
      uint32_t extra = load_le32(in.raw.data() + extra_off);
      t.seconds += static_cast<int64_t>(extra & 3) << 32;
      t.nanoseconds = std::min<uint32_t>(extra >> 2, 999'999'999);
    }
    return t;
  }

  NodeStat stat_of(const Inode& in) const {
    const uint8_t* r = in.raw.data();
    NodeStat st;
    st.id = in.ino;
    switch (in.type()) {
      case kSIfDir:
        st.type = NodeType::kDirectory;
        break;
      case kSIfLnk:
        st.type = NodeType::kSymlink;
        break;
      case kSIfChr:
        st.type = NodeType::kCharDevice;
        break;
      case kSIfBlk:
        st.type = NodeType::kBlockDevice;
        break;
      case kSIfIfo:
        st.type = NodeType::kFifo;
        break;
      case kSIfSock:
        st.type = NodeType::kSocket;
        break;
      default:
        st.type = NodeType::kRegular;
        break;
    }
    st.mode = in.mode & 07777;
    st.uid = load_le16(r + kInUid) | (static_cast<uint32_t>(load_le16(r + kInUidHigh)) << 16);
    st.gid = load_le16(r + kInGid) | (static_cast<uint32_t>(load_le16(r + kInGidHigh)) << 16);
    st.nlink = load_le16(r + kInLinksCount);
    st.size = in.size;
    if (st.type == NodeType::kCharDevice || st.type == NodeType::kBlockDevice) {
      // Old encoding in i_block[0] (8-bit major/minor), new in i_block[1].
      uint32_t b0 = load_le32(in.iblock()), b1 = load_le32(in.iblock() + 4);
      uint32_t major, minor;
      if (b0) {
        major = (b0 >> 8) & 0xFF;
        minor = b0 & 0xFF;
      } else {
        major = (b1 >> 8) & 0xFFF;
        minor = (b1 & 0xFF) | ((b1 >> 12) & 0xFFF00);
      }
      // The file-tree convention (shared with ISO 9660 and `vdisk ls -l`).
      st.rdev = (uint64_t{major} << 32) | minor;
      st.size = 0;
    }
    st.atime = time_field(in, kInAtime, kInAtimeExtra);
    st.mtime = time_field(in, kInMtime, kInMtimeExtra);
    st.ctime = time_field(in, kInCtime, kInCtimeExtra);
    return st;
  }

  // --- block mapping ---------------------------------------------------------

  struct Leaf {
    uint64_t lblock, count, pblock;
    bool uninit;
  };

  // Collects the leaves of the extent (sub)tree at `node` that meet logical
  // blocks [first, end). `seen` holds the tree blocks visited so far: a
  // block met twice (a shared or cyclic node) is corruption, which bounds
  // the walk by the tree's real size.
  void walk_extents(const uint8_t* node, size_t node_size, int expect_depth, uint64_t first,
                    uint64_t end, uint64_t where, std::vector<Leaf>& out,
                    std::vector<uint64_t>& seen) const {
    if (load_le16(node + kEhMagic) != kExtentMagic) {
      corrupt(where, "extent header magic " + std::to_string(load_le16(node + kEhMagic)) +
                         " is not 0xF30A");
    }
    uint32_t entries = load_le16(node + kEhEntries);
    uint32_t max = load_le16(node + kEhMax);
    uint32_t depth = load_le16(node + kEhDepth);
    if (entries > max || kExtentHeaderSize + uint64_t{max} * kExtentEntrySize > node_size) {
      corrupt(where, "extent node with " + std::to_string(entries) + " of " + std::to_string(max) +
                         " entries does not fit in " + std::to_string(node_size) + " bytes");
    }
    if (depth > kMaxExtentDepth ||
        (expect_depth >= 0 && depth != static_cast<uint32_t>(expect_depth))) {
      corrupt(where, "extent node depth " + std::to_string(depth) + " (expected " +
                         (expect_depth >= 0 ? std::to_string(expect_depth) : "at most 5") + ")");
    }
    const uint8_t* e = node + kExtentHeaderSize;
    for (uint32_t i = 0; i < entries; ++i, e += kExtentEntrySize) {
      if (depth == 0) {
        uint64_t lb = load_le32(e + kEeBlock);
        uint32_t len = load_le16(e + kEeLen);
        bool uninit = len > kEeMaxInitLen;
        if (uninit) len -= kEeMaxInitLen;
        uint64_t pb = load_le32(e + kEeStartLo) | (uint64_t{load_le16(e + kEeStartHi)} << 32);
        if (len == 0 || lb + len <= first || lb >= end) continue;
        if (pb + len > sb_.blocks_count) {
          corrupt(where, "extent at logical block " + std::to_string(lb) + " maps blocks " +
                             std::to_string(pb) + "+" + std::to_string(len) +
                             " past the end of the filesystem");
        }
        out.push_back(Leaf{lb, len, pb, uninit});
      } else {
        uint64_t lo = load_le32(e + kEiBlock);
        uint64_t hi = i + 1 < entries ? load_le32(e + kExtentEntrySize + kEiBlock) : UINT64_MAX;
        if (hi <= lo) {
          corrupt(where, "extent index entries out of order (" + std::to_string(lo) + " then " +
                             std::to_string(hi) + ")");
        }
        if (hi <= first || lo >= end) continue;
        uint64_t child = load_le32(e + kEiLeafLo) | (uint64_t{load_le16(e + kEiLeafHi)} << 32);
        uint64_t off = block_offset(child, where, "extent tree");
        if (std::find(seen.begin(), seen.end(), child) != seen.end()) {
          corrupt(where, "extent tree block " + std::to_string(child) + " is reached twice");
        }
        seen.push_back(child);
        std::vector<uint8_t> blk(sb_.block_size);
        dev_->read(off, blk.data(), blk.size());
        walk_extents(blk.data(), blk.size(), static_cast<int>(depth) - 1, first, end, off, out,
                     seen);
      }
    }
  }

  // One entry of an indirect block, through a cache local to one call.
  uint32_t indirect_entry(uint64_t block, uint64_t index, uint64_t where,
                          std::map<uint64_t, std::vector<uint8_t>>& cache) const {
    auto it = cache.find(block);
    if (it == cache.end()) {
      if (cache.size() > 64) cache.clear();
      std::vector<uint8_t> b(sb_.block_size);
      dev_->read(block_offset(block, where, "indirect"), b.data(), b.size());
      it = cache.emplace(block, std::move(b)).first;
    }
    return load_le32(it->second.data() + index * 4);
  }

  // The physical block of logical block `l` through the block map (0 for a
  // hole) and, for a hole, how many blocks from `l` on are certainly holes
  // (an absent indirect block covers its whole subtree).
  std::pair<uint64_t, uint64_t> bmap(const Inode& in, uint64_t l,
                                     std::map<uint64_t, std::vector<uint8_t>>& cache) const {
    const uint64_t per = sb_.block_size / 4;
    const uint8_t* ib = in.iblock();
    if (l < kDirectBlocks) return {load_le32(ib + 4 * l), 1};
    l -= kDirectBlocks;
    uint64_t top;
    int levels;
    if (l < per) {
      top = load_le32(ib + 4 * kIndBlock);
      levels = 1;
    } else if ((l -= per) < per * per) {
      top = load_le32(ib + 4 * kDindBlock);
      levels = 2;
    } else if ((l -= per * per) < per * per * per) {
      top = load_le32(ib + 4 * kTindBlock);
      levels = 3;
    } else {
      return {0, UINT64_MAX};
    }
    uint64_t span = 1;
    for (int k = 0; k < levels; ++k) span *= per;
    uint64_t b = top;
    if (b == 0) return {0, span - l % span};
    for (int lev = levels - 1; lev >= 0; --lev) {
      span /= per;
      b = indirect_entry(b, (l / span) % per, in.where, cache);
      if (b == 0) return {0, span - l % span};
    }
    return {b, 1};
  }

  // Runs covering logical blocks [first, first + count), in order.
  std::vector<Run> map_blocks(const Inode& in, uint64_t first, uint64_t count) const {
    std::vector<Run> runs;
    const uint64_t end = first + count;
    auto add = [&](uint64_t lb, uint64_t n, uint64_t pb, bool zero) {
      if (n == 0) return;
      if (!runs.empty()) {
        Run& r = runs.back();
        if (r.zero == zero && r.lblock + r.count == lb && (zero || r.pblock + r.count == pb)) {
          r.count += n;
          return;
        }
      }
      runs.push_back(Run{lb, n, pb, zero});
    };
    if (in.flags & kFlExtents) {
      std::vector<Leaf> leaves;
      std::vector<uint64_t> seen;
      walk_extents(in.iblock(), kInBlockSize, -1, first, end, in.where + kInBlock, leaves, seen);
      std::sort(leaves.begin(), leaves.end(),
                [](const Leaf& a, const Leaf& b) { return a.lblock < b.lblock; });
      uint64_t cur = first;
      for (const Leaf& lf : leaves) {
        uint64_t s = std::max(lf.lblock, cur);
        uint64_t e = std::min(lf.lblock + lf.count, end);
        if (s >= e) continue;
        add(cur, s - cur, 0, true);
        add(s, e - s, lf.pblock + (s - lf.lblock), lf.uninit);
        cur = e;
      }
      add(cur, end - cur, 0, true);
    } else {
      std::map<uint64_t, std::vector<uint8_t>> cache;
      for (uint64_t l = first; l < end;) {
        auto [pb, n] = bmap(in, l, cache);
        if (pb == 0) {
          n = std::min(n, end - l);
          add(l, n, 0, true);
          l += n;
          continue;
        }
        if (pb >= sb_.blocks_count) {
          corrupt(in.where, "block map of inode " + std::to_string(in.ino) + " points at block " +
                                std::to_string(pb) + " past the end of the filesystem");
        }
        add(l, 1, pb, false);
        ++l;
      }
    }
    return runs;
  }

  // The system.data value of an inline-data inode (in the inode body).
  std::vector<uint8_t> inline_xattr(const Inode& in) const {
    const uint32_t start = kGoodOldInodeSize + extra_isize(in);
    const uint8_t* r = in.raw.data();
    const uint32_t isz = sb_.inode_size;
    if (start + 4 > isz || load_le32(r + start) != kXattrMagic) return {};
    const uint32_t first = start + 4;
    uint32_t p = first;
    while (p + kXeName <= isz && load_le32(r + p) != 0) {
      uint32_t name_len = r[p + kXeNameLen];
      uint32_t next = p + ((kXeName + name_len + 3) & ~3u);
      if (next > isz) break;
      if (r[p + kXeNameIndex] == kXattrIndexSystem && name_len == 4 &&
          std::memcmp(r + p + kXeName, "data", 4) == 0 && load_le32(r + p + kXeValueInum) == 0) {
        uint64_t off = first + uint64_t{load_le16(r + p + kXeValueOffs)};
        uint64_t size = load_le32(r + p + kXeValueSize);
        if (off + size > isz) {
          corrupt(in.where + p, "inline data attribute of " + std::to_string(size) +
                                    " bytes runs past the inode");
        }
        return std::vector<uint8_t>(r + off, r + off + size);
      }
      p = next;
    }
    return {};
  }

  size_t read_data(const Inode& in, uint64_t offset, uint8_t* out, size_t len) const {
    if (offset >= in.size || len == 0) return 0;
    len = static_cast<size_t>(std::min<uint64_t>(len, in.size - offset));
    if (in.flags & kFlInlineData) {
      std::vector<uint8_t> data(in.iblock(), in.iblock() + kInBlockSize);
      auto x = inline_xattr(in);
      data.insert(data.end(), x.begin(), x.end());
      if (in.size > data.size()) {
        corrupt(in.where, "inline file of " + std::to_string(in.size) + " bytes holds only " +
                              std::to_string(data.size()));
      }
      std::memcpy(out, data.data() + offset, len);
      return len;
    }
    const uint64_t bs = sb_.block_size;
    const uint64_t first = offset / bs;
    const uint64_t last = (offset + len - 1) / bs;
    size_t done = 0;
    for (const Run& r : map_blocks(in, first, last - first + 1)) {
      uint64_t run_start = r.lblock * bs;
      uint64_t s = std::max<uint64_t>(run_start, offset + done);
      uint64_t e = std::min<uint64_t>(run_start + r.count * bs, offset + len);
      if (s >= e) continue;
      size_t n = static_cast<size_t>(e - s);
      if (r.zero) {
        std::memset(out + (s - offset), 0, n);
      } else {
        uint64_t pb = r.pblock + (s - run_start) / bs;
        uint64_t dev_off = block_offset(pb, in.where, "data") + (s - run_start) % bs;
        uint64_t end_block = r.pblock + r.count - 1;
        block_offset(end_block, in.where, "data");
        dev_->read(dev_off, out + (s - offset), n);
      }
      done = static_cast<size_t>(e - offset);
    }
    return len;
  }

  // --- directories -----------------------------------------------------------

  // Parses one block (or inline area) of directory entries.
  void parse_dirents(const uint8_t* p, size_t n, uint64_t where,
                     std::vector<RawDirent>& out) const {
    const bool filetype = sb_.incompat & kIncompatFiletype;
    size_t pos = 0;
    while (pos + 8 <= n) {
      const uint8_t* d = p + pos;
      uint32_t ino = load_le32(d + kDeInode);
      uint32_t rec = load_le16(d + kDeRecLen);
      uint32_t name_len = filetype ? d[kDeNameLen] : load_le16(d + kDeNameLen);
      if (rec < 8 || rec % 4 != 0 || pos + rec > n || (ino != 0 && kDeName + name_len > rec)) {
        corrupt(where + pos, "directory entry with record length " + std::to_string(rec) +
                                 " and name length " + std::to_string(name_len) +
                                 " does not fit its block");
      }
      if (ino != 0 && name_len > 0) {
        std::string name(reinterpret_cast<const char*>(d + kDeName), name_len);
        bool dot = name == "." || name == "..";
        if (!dot && name.find_first_of(std::string("/\0", 2)) != std::string::npos) {
          // Not a name a file can have: the one entry is left out, not the
          // directory (the kernel's ext4 reports it the same way, per entry).
          const bool slash = name.find('/') != std::string::npos;
          out.push_back(RawDirent{std::move(name), ino,
                                  slash ? "the name contains '/'" : "the name contains a NUL byte",
                                  where + pos});
        } else if (!dot) {
          if (ino > sb_.inodes_count) {
            corrupt(where + pos, "directory entry '" + name + "' names inode " +
                                     std::to_string(ino) + " of " +
                                     std::to_string(sb_.inodes_count));
          }
          out.push_back(RawDirent{std::move(name), ino, "", where + pos});
        }
      }
      pos += rec;
    }
  }

  std::vector<RawDirent> dirents(const Inode& in) const {
    std::vector<RawDirent> out;
    if (in.flags & kFlInlineData) {
      // i_block: the parent's inode number, then entries; system.data holds
      // a second, separate run of entries.
      parse_dirents(in.iblock() + kInlineDirParentSize, kInBlockSize - kInlineDirParentSize,
                    in.where + kInBlock + kInlineDirParentSize, out);
      auto x = inline_xattr(in);
      if (!x.empty()) parse_dirents(x.data(), x.size(), in.where, out);
      return out;
    }
    // Linear and htree directories alike: every block holds ordinary entries
    // (the htree interior blocks hide behind entries that cover them whole).
    const uint64_t bs = sb_.block_size;
    if (in.size > sb_.blocks_count * bs) {
      corrupt(in.where, "directory inode " + std::to_string(in.ino) + " claims " +
                            std::to_string(in.size) + " bytes, more than the filesystem");
    }
    const uint64_t blocks = div_round_up(in.size, bs);
    constexpr uint64_t kChunkBlocks = 64;
    std::vector<uint8_t> buf;
    // A hole in a directory holds no entries; data runs are read in pieces.
    for (const Run& r : map_blocks(in, 0, blocks)) {
      if (r.zero) continue;
      block_offset(r.pblock + r.count - 1, in.where, "directory");
      for (uint64_t k = 0; k < r.count; k += kChunkBlocks) {
        uint64_t n = std::min(kChunkBlocks, r.count - k);
        buf.resize(n * bs);
        uint64_t off = block_offset(r.pblock + k, in.where, "directory");
        dev_->read(off, buf.data(), buf.size());
        for (uint64_t j = 0; j < n; ++j) parse_dirents(buf.data() + j * bs, bs, off + j * bs, out);
      }
    }
    return out;
  }

  BlockDevicePtr dev_;
  std::string label_;
  Superblock sb_;
  std::vector<uint64_t> inode_tables_;  // first block of each group's inode table
};

bool group_has_super(const Superblock& sb, uint64_t g) {
  if (g == 0) return true;
  if (sb.compat & kCompatSparseSuper2) return g == sb.backup_bgs[0] || g == sb.backup_bgs[1];
  if (!(sb.ro_compat & kRoCompatSparseSuper)) return true;
  return g == 1 || is_power_of(g, 3) || is_power_of(g, 5) || is_power_of(g, 7);
}

}  // namespace

std::string incompat_feature_names(uint32_t bits) {
  std::string out;
  for (const FeatureName& f : kIncompatNames) {
    if (bits & f.bit) {
      if (!out.empty()) out += '|';
      out += f.name;
      bits &= ~f.bit;
    }
  }
  for (int i = 0; i < 32; ++i) {
    if (bits & (1u << i)) {
      char hex[16];
      snprintf(hex, sizeof hex, "0x%X", 1u << i);
      if (!out.empty()) out += '|';
      out += hex;
    }
  }
  return out;
}

Superblock parse_superblock(const uint8_t* s, uint64_t dev_size, const std::string& label) {
  auto at = [](uint32_t field) { return kSuperblockOffset + field; };
  if (load_le16(s + kSbMagic) != kExtMagic) {
    throw Error(ErrorKind::kNotThisFormat, label, at(kSbMagic), "no ext2/3/4 super block magic");
  }
  auto bad = [&](uint32_t field, const std::string& msg) {
    throw Error(ErrorKind::kCorrupt, label, at(field), "ext super block: " + msg);
  };
  Superblock sb;
  uint32_t log_bs = load_le32(s + kSbLogBlockSize);
  if (log_bs > 6)
    bad(kSbLogBlockSize, "block size 1024 << " + std::to_string(log_bs) + " is over 64 KiB");
  sb.block_size = 1024u << log_bs;
  sb.compat = load_le32(s + kSbFeatureCompat);
  sb.incompat = load_le32(s + kSbFeatureIncompat);
  sb.ro_compat = load_le32(s + kSbFeatureRoCompat);
  sb.rev_level = load_le32(s + kSbRevLevel);
  if (sb.rev_level == 0) sb.compat = sb.incompat = sb.ro_compat = 0;
  if (uint32_t unknown = sb.incompat & ~kSupportedIncompat) {
    throw Error(ErrorKind::kUnsupported, label, at(kSbFeatureIncompat),
                "ext filesystem uses incompatible features vdisk cannot read: " +
                    incompat_feature_names(unknown));
  }
  sb.blocks_count = load_le32(s + kSbBlocksCountLo);
  if (sb.incompat & kIncompat64Bit)
    sb.blocks_count |= static_cast<uint64_t>(load_le32(s + kSbBlocksCountHi)) << 32;
  sb.inodes_count = load_le32(s + kSbInodesCount);
  sb.first_data_block = load_le32(s + kSbFirstDataBlock);
  sb.blocks_per_group = load_le32(s + kSbBlocksPerGroup);
  sb.inodes_per_group = load_le32(s + kSbInodesPerGroup);
  sb.inode_size = sb.rev_level == 0 ? kGoodOldInodeSize : load_le16(s + kSbInodeSize);
  sb.first_meta_bg = load_le32(s + kSbFirstMetaBg);
  sb.state = load_le16(s + kSbState);
  sb.backup_bgs[0] = load_le32(s + kSbBackupBgs);
  sb.backup_bgs[1] = load_le32(s + kSbBackupBgs + 4);
  sb.volume_name = cstr_field(s + kSbVolumeName, 16);
  sb.uuid = Guid::decode(s + kSbUuid, GuidByteOrder::kBigEndian).to_string();

  if (sb.blocks_count == 0 || sb.first_data_block >= sb.blocks_count)
    bad(kSbBlocksCountLo, "block count " + std::to_string(sb.blocks_count));
  if (sb.blocks_per_group == 0 || sb.blocks_per_group > 8u * sb.block_size)
    bad(kSbBlocksPerGroup, "blocks per group " + std::to_string(sb.blocks_per_group));
  // The inode bitmap of a group is one block, so a group holds at most
  // 8 * block size inodes (ext4 disk layout, "Block Group Descriptors").
  if (sb.inodes_per_group == 0 || sb.inodes_count == 0 || sb.inodes_per_group > 8u * sb.block_size)
    bad(kSbInodesPerGroup, "inodes per group " + std::to_string(sb.inodes_per_group));
  if (sb.inode_size < kGoodOldInodeSize || sb.inode_size > sb.block_size ||
      (sb.inode_size & (sb.inode_size - 1)) != 0)
    bad(kSbInodeSize, "inode size " + std::to_string(sb.inode_size));
  uint64_t groups = div_round_up(sb.blocks_count - sb.first_data_block, sb.blocks_per_group);
  if (groups > UINT32_MAX) bad(kSbBlocksCountLo, "too many block groups");
  sb.group_count = static_cast<uint32_t>(groups);
  if (uint64_t{sb.inodes_per_group} * sb.group_count < sb.inodes_count)
    bad(kSbInodesCount, "inode count " + std::to_string(sb.inodes_count) + " exceeds " +
                            std::to_string(sb.inodes_per_group) + " per group x " +
                            std::to_string(sb.group_count) + " groups");
  sb.desc_size = kGdSize32;
  if (sb.incompat & kIncompat64Bit) {
    sb.desc_size = load_le16(s + kSbDescSize);
    if (sb.desc_size < kGdSize64Min || sb.desc_size > 1024 || (sb.desc_size & (sb.desc_size - 1)))
      bad(kSbDescSize, "group descriptor size " + std::to_string(sb.desc_size));
  }
  // Every block number is later checked against blocks_count; the device
  // must hold at least the group descriptors (checked when reading them), a
  // truncated tail only fails the reads that reach it.
  (void)dev_size;
  return sb;
}

int probe(const BlockDevice& dev) {
  if (dev.size() < kSuperblockOffset + kSuperblockSize) return 0;
  uint8_t magic[2];
  dev.read(kSuperblockOffset + kSbMagic, magic, 2);
  if (load_le16(magic) != kExtMagic) return 0;
  uint8_t log_bs[4];
  dev.read(kSuperblockOffset + kSbLogBlockSize, log_bs, 4);
  return load_le32(log_bs) <= 6 ? 100 : 0;
}

std::unique_ptr<FileTree> open_ext_tree(BlockDevicePtr dev, const std::string& label) {
  if (dev->size() < kSuperblockOffset + kSuperblockSize) {
    throw Error(ErrorKind::kNotThisFormat, label, 0, "too small for an ext super block");
  }
  std::vector<uint8_t> raw(kSuperblockSize);
  dev->read(kSuperblockOffset, raw.data(), raw.size());
  Superblock sb = parse_superblock(raw.data(), dev->size(), label);
  if (sb.incompat & kIncompatRecover) {
    default_warning(label +
                    ": the ext journal needs recovery; vdisk ignores the journal and "
                    "reads the filesystem as last checkpointed (recent changes may be missing)");
  }
  // Group descriptors: contiguous after the super block, except with META_BG
  // where groups from s_first_meta_bg on keep theirs in the first block of
  // each meta group (after a super block backup there).
  const uint64_t bs = sb.block_size;
  const uint64_t per_block = bs / sb.desc_size;
  uint64_t table_bytes =
      checked_mul(sb.group_count, sb.desc_size, label, kSuperblockOffset, "group descriptor table");
  if (table_bytes > dev->size()) {
    throw Error(ErrorKind::kCorrupt, label, kSuperblockOffset,
                std::to_string(sb.group_count) + " group descriptors need " +
                    std::to_string(table_bytes) + " bytes, more than the device holds");
  }
  auto desc_block = [&](uint64_t group) -> uint64_t {
    uint64_t idx = group / per_block;
    if ((sb.incompat & kIncompatMetaBg) && idx >= sb.first_meta_bg) {
      uint64_t first_group = idx * per_block;
      return sb.first_data_block + first_group * sb.blocks_per_group +
             (group_has_super(sb, first_group) ? 1 : 0);
    }
    return sb.first_data_block + 1 + idx;
  };
  std::vector<uint64_t> tables(sb.group_count);
  std::vector<uint8_t> blk(bs);
  uint64_t loaded = UINT64_MAX;
  for (uint64_t g = 0; g < sb.group_count; ++g) {
    uint64_t b = desc_block(g);
    if (b >= sb.blocks_count || (b + 1) * bs > dev->size()) {
      throw Error(ErrorKind::kCorrupt, label, kSuperblockOffset,
                  "group descriptor block " + std::to_string(b) + " of group " + std::to_string(g) +
                      " is past the end of the filesystem or device");
    }
    if (b != loaded) {
      dev->read(b * bs, blk.data(), blk.size());
      loaded = b;
    }
    const uint8_t* d = blk.data() + (g % per_block) * sb.desc_size;
    uint64_t t = load_le32(d + kGdInodeTableLo);
    if (sb.desc_size >= kGdSize64Min)
      t |= static_cast<uint64_t>(load_le32(d + kGdInodeTableHi)) << 32;
    uint64_t table_blocks = div_round_up(uint64_t{sb.inodes_per_group} * sb.inode_size, bs);
    if (t == 0 || t + table_blocks > sb.blocks_count) {
      throw Error(ErrorKind::kCorrupt, label, b * bs + (g % per_block) * sb.desc_size,
                  "inode table of group " + std::to_string(g) + " at block " + std::to_string(t) +
                      " is outside the filesystem");
    }
    tables[g] = t;
  }
  return std::make_unique<ExtTree>(std::move(dev), label, std::move(sb), std::move(tables));
}

}  // namespace vdisk::ext
