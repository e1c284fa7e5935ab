#include "formats/dmg/dmg_reader.h"

#include <bzlib.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <list>
#include <map>
#include <mutex>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/hex.h"
#include "formats/dmg/dmg_layout.h"
#include "formats/dmg/dmg_plist.h"

namespace vdisk::dmg {

bool adc_decode(const uint8_t* in, size_t in_len, std::vector<uint8_t>& out) {
  size_t ip = 0, op = 0;
  while (ip < in_len && op < out.size()) {
    uint8_t b = in[ip++];
    if (b & 0x80) {
      size_t n = (b & 0x7f) + 1u;
      if (n > in_len - ip || n > out.size() - op) return false;
      std::memcpy(out.data() + op, in + ip, n);
      ip += n;
      op += n;
      continue;
    }
    size_t len, dist;
    if (b & 0x40) {
      if (in_len - ip < 2) return false;
      len = (b & 0x3f) + 4u;
      dist = ((size_t{in[ip]} << 8) | in[ip + 1]) + 1;
      ip += 2;
    } else {
      if (in_len - ip < 1) return false;
      len = ((b >> 2) & 0x0f) + 3u;
      dist = ((size_t{b} & 3) << 8 | in[ip]) + 1;
      ip += 1;
    }
    if (dist > op || len > out.size() - op) return false;
    for (size_t i = 0; i < len; ++i, ++op) out[op] = out[op - dist];  // may overlap
  }
  return op == out.size();
}

namespace {

struct Chunk {
  uint64_t start = 0;   // disk byte offset
  uint64_t length = 0;  // disk bytes
  uint32_t type = 0;
  uint64_t in = 0;  // file offset of the compressed bytes
  uint64_t in_len = 0;
  uint64_t end() const { return start + length; }
};

struct Partition {
  std::string name;
  std::string id;
  uint64_t first_sector = 0, sectors = 0;
};

const char* chunk_type_name(uint32_t t) {
  switch (t) {
    case kChunkZero:
      return "zero";
    case kChunkRaw:
      return "raw";
    case kChunkIgnore:
      return "ignore";
    case kChunkAdc:
      return "adc";
    case kChunkZlib:
      return "zlib";
    case kChunkBzip2:
      return "bzip2";
    case kChunkLzfse:
      return "lzfse";
    case kChunkLzma:
      return "lzma";
    default:
      return "unknown";
  }
}

bool decodable(uint32_t t) {
  return t == kChunkZero || t == kChunkRaw || t == kChunkIgnore || t == kChunkAdc ||
         t == kChunkZlib || t == kChunkBzip2;
}

class DmgDevice final : public BlockDevice {
 public:
  DmgDevice(std::shared_ptr<const File> f, std::vector<Chunk> chunks, std::vector<Partition> parts,
            uint64_t size, uint32_t variant)
      : file_(std::move(f)),
        chunks_(std::move(chunks)),
        parts_(std::move(parts)),
        size_(size),
        variant_(variant) {}

  uint64_t size() const override { return size_; }
  std::string label() const override { return file_->path(); }

  ImageInfo info() const override {
    ImageInfo info;
    info.path = file_->path();
    info.format = "dmg";
    info.virtual_size = size_;
    info.actual_size = file_->allocated_on_host();
    std::map<std::string, uint64_t> counts;
    for (auto& c : chunks_) counts[chunk_type_name(c.type)]++;
    Json types = Json::object();
    std::string undone;
    for (auto& [k, v] : counts) {
      types.set(k, v);
      if (k == "lzfse" || k == "lzma" || k == "unknown") undone += (undone.empty() ? "" : ", ") + k;
    }
    info.subformat = counts.count("zlib")    ? "UDZO"
                     : counts.count("bzip2") ? "UDBZ"
                     : counts.count("lzfse") ? "ULFO"
                     : counts.count("lzma")  ? "ULMO"
                     : counts.count("adc")   ? "UDCO"
                                             : "UDRO";
    info.details.set("chunk_types", std::move(types));
    if (!undone.empty()) info.details.set("codecs_not_decoded", undone);
    info.details.set("image_variant", uint64_t{variant_});
    Json parts = Json::array();
    for (auto& p : parts_) {
      Json j = Json::object();
      j.set("name", p.name);
      j.set("id", p.id);
      j.set("first_sector", p.first_sector);
      j.set("sectors", p.sectors);
      parts.push(std::move(j));
    }
    info.details.set("partitions", std::move(parts));
    return info;
  }

 protected:
  void do_read(uint64_t offset, void* buf, size_t len) const override {
    auto* out = static_cast<uint8_t*>(buf);
    while (len > 0) {
      const Chunk* c = chunk_at(offset);
      uint64_t end = c ? c->end() : next_start(offset);
      size_t n = static_cast<size_t>(std::min<uint64_t>(len, end - offset));
      if (!c || c->type == kChunkZero || c->type == kChunkIgnore) {
        std::memset(out, 0, n);
      } else if (c->type == kChunkRaw) {
        // A raw chunk may hold fewer bytes than its sectors (a short last
        // chunk); the rest reads as zeros.
        uint64_t rel = offset - c->start;
        size_t have =
            rel < c->in_len ? static_cast<size_t>(std::min<uint64_t>(n, c->in_len - rel)) : 0;
        if (have) file_->read_at(c->in + rel, out, have);
        std::memset(out + have, 0, n - have);
      } else {
        auto data = decoded(*c);
        std::memcpy(out, data->data() + (offset - c->start), n);
      }
      out += n;
      offset += n;
      len -= n;
    }
  }

  Extent do_block_status(uint64_t offset, uint64_t len) const override {
    const Chunk* c = chunk_at(offset);
    uint64_t end = c ? c->end() : next_start(offset);
    uint64_t n = std::min(len, end - offset);
    if (!c || c->type == kChunkIgnore) return Extent{n, ExtentType::kUnallocated};
    if (c->type == kChunkZero) return Extent{n, ExtentType::kZero};
    return Extent{n, ExtentType::kData};
  }

 private:
  const Chunk* chunk_at(uint64_t off) const {
    auto it = std::upper_bound(chunks_.begin(), chunks_.end(), off,
                               [](uint64_t v, const Chunk& c) { return v < c.start; });
    if (it == chunks_.begin()) return nullptr;
    --it;
    return off < it->end() ? &*it : nullptr;
  }
  uint64_t next_start(uint64_t off) const {
    auto it = std::upper_bound(chunks_.begin(), chunks_.end(), off,
                               [](uint64_t v, const Chunk& c) { return v < c.start; });
    return it == chunks_.end() ? size_ : it->start;
  }

  std::shared_ptr<const std::vector<uint8_t>> decoded(const Chunk& c) const {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = cache_.begin(); it != cache_.end(); ++it) {
        if (it->first == c.start) {
          cache_.splice(cache_.begin(), cache_, it);
          return it->second;
        }
      }
    }
    if (!decodable(c.type)) {
      throw Error(ErrorKind::kUnsupported, file_->path(), c.in,
                  std::string("DMG chunk at disk offset ") + std::to_string(c.start) + " is " +
                      chunk_type_name(c.type) + "-compressed (type 0x" + hex_digits(c.type, 8) +
                      "), which vdisk does not decode");
    }
    std::vector<uint8_t> in(static_cast<size_t>(c.in_len));
    file_->read_at(c.in, in.data(), in.size());
    auto out = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(c.length));
    bool ok = false;
    if (c.type == kChunkZlib) {
      uLongf n = static_cast<uLongf>(out->size());
      int r = uncompress(out->data(), &n, in.data(), static_cast<uLong>(in.size()));
      ok = r == Z_OK;  // a short result leaves zeros (the vector starts zeroed)
    } else if (c.type == kChunkBzip2) {
      unsigned n = static_cast<unsigned>(out->size());
      int r = BZ2_bzBuffToBuffDecompress(reinterpret_cast<char*>(out->data()), &n,
                                         reinterpret_cast<char*>(in.data()),
                                         static_cast<unsigned>(in.size()), 0, 0);
      ok = r == BZ_OK;
    } else if (c.type == kChunkAdc) {
      ok = adc_decode(in.data(), in.size(), *out);
    }
    if (!ok) {
      throw Error(ErrorKind::kIo, file_->path(), c.in,
                  std::string("DMG ") + chunk_type_name(c.type) + " chunk for disk offset " +
                      std::to_string(c.start) + " is damaged");
    }
    std::lock_guard<std::mutex> lock(mu_);
    cache_.emplace_front(c.start, out);
    if (cache_.size() > kCachedChunks) cache_.pop_back();
    return out;
  }

  static constexpr size_t kCachedChunks = 8;
  std::shared_ptr<const File> file_;
  std::vector<Chunk> chunks_;
  std::vector<Partition> parts_;
  uint64_t size_;
  uint32_t variant_;
  mutable std::mutex mu_;
  mutable std::list<std::pair<uint64_t, std::shared_ptr<const std::vector<uint8_t>>>> cache_;
};

}  // namespace

BlockDevicePtr open_dmg(std::shared_ptr<const File> file, const OpenOptions& opts) {
  const std::string& path = file->path();
  const uint64_t fsize = file->size();
  uint8_t head[8] = {};
  file->read_some(0, head, sizeof head);
  if (std::memcmp(head, "encrcdsa", 8) == 0)
    throw_unsupported(path, "encrypted DMG (encrcdsa): vdisk does not decrypt disk images");
  if (std::memcmp(head, "sprs", 4) == 0)
    throw_unsupported(path, "Apple sparse image (.sparseimage, 'sprs') is not supported");
  if (fsize < kKolySize) throw Error(ErrorKind::kNotThisFormat, path, 0, "too small for a DMG");
  uint8_t tail8[8];
  file->read_at(fsize - 8, tail8, 8);
  if (std::memcmp(tail8, "cdsaencr", 8) == 0)
    throw_unsupported(path, "encrypted DMG (cdsaencr): vdisk does not decrypt disk images");
  const uint64_t koly_at = fsize - kKolySize;
  uint8_t k[kKolySize];
  file->read_at(koly_at, k, sizeof k);
  if (std::memcmp(k, "koly", 4) != 0)
    throw Error(ErrorKind::kNotThisFormat, path, koly_at, "no DMG koly trailer");
  if (load_be32(k + kKolyHeaderSize) != kKolySize)
    throw_corrupt(
        path, koly_at + kKolyHeaderSize,
        "DMG koly header size " + std::to_string(load_be32(k + kKolyHeaderSize)) + " is not 512");
  uint64_t df_off = load_be64(k + kKolyDataForkOffset), df_len = load_be64(k + kKolyDataForkLength);
  uint64_t xml_off = load_be64(k + kKolyXmlOffset), xml_len = load_be64(k + kKolyXmlLength);
  uint64_t sectors = load_be64(k + kKolySectorCount);
  if (df_off > koly_at || df_len > koly_at - df_off)
    throw_corrupt(path, koly_at + kKolyDataForkOffset, "DMG data fork lies outside the file");
  if (xml_len == 0)
    throw_unsupported(path, "DMG without an XML property list (resource fork only)");
  if (xml_off > koly_at || xml_len > koly_at - xml_off)
    throw_corrupt(path, koly_at + kKolyXmlOffset, "DMG property list lies outside the file");
  if (xml_len > kMaxPlistBytes) throw_unsupported(path, "DMG property list is larger than 64 MiB");
  if (sectors > (UINT64_MAX >> 10))
    throw_corrupt(path, koly_at + kKolySectorCount, "DMG sector count is out of range");
  std::string xml(static_cast<size_t>(xml_len), '\0');
  file->read_at(xml_off, xml.data(), xml.size());
  PlistNode root = parse_plist(xml, path, xml_off);
  const PlistNode* rf = root.get("resource-fork");
  const PlistNode* blkx = rf ? rf->get("blkx") : nullptr;
  if (!blkx || blkx->type != "array")
    throw_corrupt(path, xml_off, "DMG property list has no resource-fork/blkx array");

  std::vector<Chunk> chunks;
  std::vector<Partition> parts;
  uint64_t disk_end = sectors * kSector;
  for (const PlistNode& e : blkx->children) {
    const PlistNode* data = e.get("Data");
    if (!data || data->type != "data") throw_corrupt(path, xml_off, "DMG blkx entry without Data");
    std::vector<uint8_t> m = decode_base64(data->text, path, xml_off);
    Partition p;
    if (const PlistNode* n = e.get("Name")) p.name = n->text;
    if (const PlistNode* n = e.get("CFName"); n && p.name.empty()) p.name = n->text;
    if (const PlistNode* n = e.get("ID")) p.id = n->text;
    std::string where = "DMG blkx entry '" + p.name + "': ";
    if (m.size() < kMishHeader || std::memcmp(m.data(), "mish", 4) != 0)
      throw_corrupt(path, xml_off, where + "Data is not a mish block table");
    p.first_sector = load_be64(m.data() + kMishFirstSector);
    p.sectors = load_be64(m.data() + kMishSectorCount);
    uint64_t data_off = load_be64(m.data() + kMishDataOffset);
    uint64_t n = load_be32(m.data() + kMishChunkCount);
    if (n > (m.size() - kMishHeader) / kChunkSize)
      throw_corrupt(path, xml_off,
                    where + "mish lists " + std::to_string(n) + " chunks, more than its " +
                        std::to_string(m.size()) + " bytes hold");
    if (p.first_sector > (UINT64_MAX >> 10) || p.sectors > (UINT64_MAX >> 10) - p.first_sector)
      throw_corrupt(path, xml_off, where + "mish sector range is out of range");
    for (uint64_t i = 0; i < n; ++i) {
      const uint8_t* c = m.data() + kMishHeader + i * kChunkSize;
      uint32_t type = load_be32(c);
      if (type == kChunkComment || type == kChunkTerminator) continue;
      uint64_t s = load_be64(c + 8), cnt = load_be64(c + 16);
      uint64_t coff = load_be64(c + 24), clen = load_be64(c + 32);
      std::string what = where + "chunk " + std::to_string(i);
      if (s > p.sectors || cnt > p.sectors - s)
        throw_corrupt(path, xml_off, what + " lies outside its partition");
      if (cnt == 0) continue;
      Chunk ch;
      ch.type = type;
      ch.start = (p.first_sector + s) * kSector;
      ch.length = cnt * kSector;
      if (type != kChunkZero && type != kChunkIgnore) {
        if (data_off > df_len || coff > df_len - data_off || clen > df_len - data_off - coff)
          throw_corrupt(path, xml_off, what + " data lies outside the data fork");
        ch.in = df_off + data_off + coff;
        ch.in_len = clen;
        if (type != kChunkRaw && ch.length > kMaxChunkBytes)
          throw_unsupported(path, what + " decodes to more than 64 MiB");
      }
      chunks.push_back(ch);
    }
    disk_end = std::max(disk_end, (p.first_sector + p.sectors) * kSector);
    parts.push_back(std::move(p));
  }
  std::sort(chunks.begin(), chunks.end(),
            [](const Chunk& a, const Chunk& b) { return a.start < b.start; });
  for (size_t i = 1; i < chunks.size(); ++i) {
    if (chunks[i].start < chunks[i - 1].end())
      throw_corrupt(path, xml_off,
                    "DMG chunks overlap at disk offset " + std::to_string(chunks[i].start));
  }
  (void)opts;
  return std::make_shared<DmgDevice>(std::move(file), std::move(chunks), std::move(parts), disk_end,
                                     load_be32(k + kKolyImageVariant));
}

}  // namespace vdisk::dmg
